// MariaDbBackup: the backup user, the binlog configuration and the scheduled host scripts of the
// MariaDB backups (source MariaDB, docs/sources.md): full backups, binlog shipping, restore tests,
// and the PITR tool.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import type { MariaDb } from "../../stacks/model/mariadb";
import { generationLabel, generationName, type Rotation } from "../../stacks/model/rotation";
import { Host, RemoteFile, ScheduledJob, Service, installJobFiles } from "../host";
import { removeFileCommand, fileMarker, shq } from "../host/render";
import {
  ensureKeyCommand,
  installAuthorizedKeyCommand,
  keyComment,
  knownHostsLine,
  removeAuthorizedKeyCommand,
  scanKnownHostsCommand,
} from "../host/ssh-trust";
import { NAS_PULL_LIB, nasReaderKeyComment, readOnlyKeyLine } from "../offsite/render";
import {
  binlogConfigCommand,
  flushingConfigCommand,
  renderFlushingDropIn,
  DR_DRILL_JOB,
  DR_DRILL_KEY_PURPOSE,
  drDrillEnv,
  dropUserCommand,
  filePrefix,
  HANDOFF_PURPOSE,
  handoffKeyLine,
  type Handoff,
  keyFingerprint,
  keyResource,
  mariadbEnv,
  PITR_DRILL_JOB,
  PITR_JOB,
  PITR_SCRIPT,
  renderBinlogDropIn,
  renderOptionFile,
  renderStreamOptionFile,
  STREAM_JOB,
  STREAM_STATUS_SECONDS,
  STREAM_WATCH_JOB,
  dropStreamUserCommand,
  streamEnv,
  streamUserCommand,
  userCommand,
} from "./render";

/** Scripts shipped to the host's library directory, by role. */
const SCRIPTS = {
  lib: "mariadb-lib.sh",
  full: "mariadb-full.sh",
  incremental: "mariadb-incremental.sh",
  binlogs: "mariadb-binlogs.sh",
  "restore-test": "mariadb-restore-test.sh",
  pitr: PITR_SCRIPT,
  "pitr-drill": "mariadb-pitr-drill.sh",
} as const;

/** The scripts cron runs, by role (the job is mariadb-<role>, the PITR drill's PITR_DRILL_JOB). */
const SCHEDULED_ROLES = ["full", "incremental", "binlogs", "restore-test", "pitr-drill"] as const;
type ScheduledRole = (typeof SCHEDULED_ROLES)[number];

export interface MariaDbBackupArgs {
  /** The database host (its SSH connection and paths). */
  readonly host: Host;
  /** The site model's mariadb section, defaults filled in. */
  readonly config: MariaDb;
  /** Site name: the file prefix when several databases are backed up. */
  readonly siteName: string;
  /** IANA time zone of --until in point-in-time recovery (the site's). */
  readonly timezone: string;
  /** The server's unix socket. Defaults to /run/mysqld/mysqld.sock. */
  readonly socket?: string;
  /** Command that restarts the server after the binlog drop-in changed. Defaults to `systemctl restart <service>`. */
  readonly restartCommand?: string;
  /** Where restore tests build their scratch instance. Defaults to <state>/mariadb-scratch. */
  readonly scratchDir?: string;
  /** Unix user scratch and restored servers run as. Defaults to mysql. */
  readonly serverUser?: string;
  /**
   * The key generation in use (stacks/model/rotation.ts keyGeneration): every generation up to it
   * is made and kept. Defaults to 0: the first deploy's key and password.
   */
  readonly generation?: number;
  /** The site's rotation, to say in the outputs from which month each key is in use. */
  readonly rotation?: Rotation;
  /**
   * The replica that takes the fulls (mariadb.replica): the full job and the restore test run on its
   * host; binlog shipping and PITR stay on the primary's. Defaults to none: everything on `host`.
   */
  readonly replica?: ReplicaArgs;
  /**
   * The yearly disaster-recovery drill (mariadb.drDrill): a standby rebuilds this database host from
   * the NAS copy alone. Defaults to none.
   */
  readonly drDrill?: DrDrillArgs;
  /**
   * Continuous binlog streaming to another host (mariadb.stream): its user on the primary, and on
   * the stream host the service, its watchdog, the key and the scripts. Defaults to none.
   */
  readonly stream?: StreamArgs;
}

export interface StreamArgs {
  /** The host that receives the stream (not the database host). */
  readonly host: Host;
  /** The primary's address from the stream host, and its MariaDB port. */
  readonly address: string;
  readonly port: number;
  /** The stream host's address as the primary sees it: the stream user's host part. */
  readonly from: string;
  /** The stream user's name. */
  readonly user: string;
  /** The server id the stream registers with. */
  readonly serverId: number;
  /** Where the stream keeps its files. */
  readonly dir: string;
  /** Sealed binlogs older than this many days are removed. */
  readonly keepDays: number;
  /** The primary's binlog base name (the file part of log_bin). */
  readonly basename: string;
  /** The watchdog and the monitor alert beyond this lag (seconds). */
  readonly maxLagSeconds: number;
  /** The CA of the primary's certificate on the stream host: TLS required and verified. Defaults to none. */
  readonly sslCa?: string;
}

export interface DrDrillArgs {
  /** The standby host (not the database host; it may be the replica's). */
  readonly host: Host;
  /** Cron schedule of the drill (yearly). */
  readonly schedule: string;
  /** The NAS that holds the database host's snapshots, and how the standby reaches it. */
  readonly nas: {
    /** The NAS host: the standby's read-only key line goes into its authorized_keys. */
    readonly host: Host;
    readonly address: string;
    readonly port: number;
    /** The NAS account's user (the sync's). */
    readonly user: string;
    /** The NAS's pinned host key line; when unset, the standby scans it once. */
    readonly hostKey?: string;
    /** The NAS directory of the dated snapshots (offsite.nas.path). */
    readonly path: string;
    /** The NAS account's home (owner stamps go under <home>/.backup321). */
    readonly home: string;
    /** The NAS account's authorized_keys. */
    readonly authorizedKeys: string;
    /** The NAS receiver (nas-receive.sh), installed by the NAS sync. */
    readonly receiver: string;
  };
  /** The directories the NAS snapshots hold (offsite.nas sources: the fulls and shipped binlogs). */
  readonly sources: readonly string[];
}

export interface ReplicaArgs {
  /** The replica's host. */
  readonly host: Host;
  /** How the replica reaches the primary to hand it each verified full. */
  readonly primary: {
    readonly address: string;
    readonly port: number;
    /** The primary's pinned host key line; when unset, the replica scans it once. */
    readonly hostKey?: string;
    /** root's authorized_keys on the primary. Defaults to /root/.ssh/authorized_keys. */
    readonly authorizedKeysFile?: string;
  };
  /** The replica server's unix socket. */
  readonly socket: string;
  /** A full is refused when the replica lags more than this (seconds). */
  readonly maxLagSeconds: number;
}

export class MariaDbBackup extends pulumi.ComponentResource {
  /** Where the encryption key is on the host. */
  public readonly keyFile: string;
  /** The encryption key of new fulls and binlogs (a secret): escrow it with the stack passphrase. */
  public readonly encryptionKey: pulumi.Output<string>;
  /** Every key generation, by the month it came into use (a secret): each opens what it encrypted. */
  public readonly encryptionKeys: pulumi.Output<Record<string, string>>;
  /** Where every key ever used is on the host, one per line (mariadb-lib.sh MARIADB_KEYRING). */
  public readonly keyringFile: string;
  /** Status files of the scheduled jobs, by role. */
  public readonly statusFiles: Record<string, string>;
  /** The point-in-time recovery entry point. */
  public readonly pitrCommand: string;
  /** The stack's key fingerprint (plain: it reveals nothing of the key), as the jobs' env files have it. */
  public readonly keyFingerprint: pulumi.Output<string>;
  /** The key file, the backup user and the scripts: what another job using the key needs first. */
  public readonly installed: pulumi.Resource[];
  /** The disaster-recovery drill's status file on the standby, when drDrill is set. */
  public readonly drDrillStatusFile?: string;
  /** The binlog stream's status file on the stream host, when stream is set. */
  public readonly streamStatusFile?: string;

  constructor(name: string, args: MariaDbBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:mariadb:MariaDbBackup", name, {}, opts);
    const { host, config } = args;
    const p = host.paths;
    const socket = args.socket ?? "/run/mysqld/mysqld.sock";
    this.keyFile = `${p.secrets}/mariadb-backup.key`;
    this.keyringFile = `${p.secrets}/mariadb-backup.keyring`;
    const generation = args.generation ?? 0;

    const { password, user, optionFile } = this.createUser(name, args, socket, generation);
    const keys = this.generateKeys(name, generation);
    const key = keys[generation];
    // the ring first: a key file ahead of its ring would leave the current key unlisted
    const keyring = this.installKeyring(name, host, keys);
    const keyFile = this.installKey(name, host, key, keyring);
    const binlogConf = this.configureBinlogs(name, args, socket);
    const flushing = this.configureFlushing(name, host, socket, config);
    const scripts = this.installScripts(name, host);

    // The key's fingerprint goes into the env files in plain text, deliberately (see keyFingerprint:
    // it reveals nothing of a random 285-bit key); the key itself stays a secret.
    const fingerprint = pulumi.unsecret(key.result.apply(keyFingerprint));
    const envOn = (h: Host, sock: string, replicaMaxLag?: number, handoff?: Handoff) =>
      fingerprint.apply((fp) =>
        mariadbEnv({
          socket: sock,
          replicaMaxLag,
          handoff,
          clientCnf: `${h.paths.secrets}/mariadb-backup.cnf`,
          keyFile: `${h.paths.secrets}/mariadb-backup.key`,
          keyring: `${h.paths.secrets}/mariadb-backup.keyring`,
          keyFingerprint: fp,
          databases: config.databases,
          method: config.method,
          compression: config.compression,
          backupDir: config.backupDir,
          binlogBackupDir: config.binlogBackupDir,
          binlogBasename: config.binlogBasename,
          prefix: filePrefix(config.databases, args.siteName),
          keepFulls: config.retention.fulls,
          keepIncrementDays: config.retention.incrementDays,
          binlogKeepDays: config.retention.binlogExpireDays,
          timezone: args.timezone,
          scratchDir: args.scratchDir ?? `${h.paths.state}/mariadb-scratch`,
          serverUser: args.serverUser ?? "mysql",
          checkpointMaxTableMb: config.checkpoints.maxTableMb,
        }),
      );
    const env = envOn(host, socket);
    const needs = [user, optionFile, keyFile, keyring, binlogConf, flushing, ...scripts];
    this.keyFingerprint = fingerprint;
    this.installed = needs;
    const schedules = {
      full: config.schedules.full,
      ...(config.schedules.incremental ? { incremental: config.schedules.incremental } : {}),
      binlogs: config.schedules.binlogs,
      "restore-test": config.schedules.restoreTest,
      ...(config.schedules.pitrDrill ? { "pitr-drill": config.schedules.pitrDrill } : {}),
    };
    const r = args.replica;
    let replicaNeeds: pulumi.Resource[] = [];
    if (r) {
      // The fulls are taken and kept on the replica, so it tests them too (a replica's full needs
      // no binlog for that: it is counted where it was taken). The user it logs in as is the one
      // created above on the primary, which replication brings to the replica; its option file and
      // the key are installed there too. Jobs there have their own names: adding a replica creates
      // them and deletes the primary's, never moves a resource from one host to the other.
      // Each verified full is handed back to the primary, which keeps it beside the binlogs.
      const there = `${name}-replica`;
      const handoff = this.installHandoff(there, host, r, config);
      replicaNeeds = [
        user,
        this.installOptionFile(there, r.host, config.backupUser, password, user),
        this.installKey(there, r.host, key, this.installKeyring(there, r.host, keys)),
        this.configureFlushing(there, r.host, r.socket, config),
        ...this.installScripts(there, r.host),
        ...handoff.resources,
      ];
      const replicaEnv = envOn(r.host, r.socket, r.maxLagSeconds, handoff.env);
      this.statusFiles = {
        // the PITR drill where the binlogs and the handed fulls are
        ...this.scheduleJobs(name, host, env, needs, {
          binlogs: schedules.binlogs,
          "pitr-drill": schedules["pitr-drill"],
        }),
        ...this.scheduleJobs(there, r.host, replicaEnv, replicaNeeds, {
          full: schedules.full,
          incremental: schedules.incremental,
          "restore-test": schedules["restore-test"],
        }),
      };
    } else {
      this.statusFiles = this.scheduleJobs(name, host, env, needs, schedules);
    }
    this.pitrCommand = this.installPitr(name, host, env, needs);
    const d = args.drDrill;
    let standbyNeeds: pulumi.Resource[] = [];
    if (d) {
      if (d.host === host) {
        throw new pulumi.ResourceError(
          `mariadb.drDrill.host: "${host.hostName}" is the database host itself: the drill rebuilds it on a standby`,
          this,
        );
      }
      // On the replica's host the key and the scripts are there already (the same files).
      const onReplica = r !== undefined && d.host === r.host;
      standbyNeeds = onReplica
        ? replicaNeeds
        : [
            this.installKey(
              `${name}-dr`,
              d.host,
              key,
              this.installKeyring(`${name}-dr`, d.host, keys),
            ),
            ...this.installScripts(`${name}-dr`, d.host),
          ];
      const drill = new MariaDbDrDrill(
        `${name}-dr-drill`,
        { ...d, env: envOn(d.host, onReplica ? r.socket : socket), dependsOn: standbyNeeds },
        { parent: this },
      );
      this.drDrillStatusFile = drill.statusFile;
    }
    const st = args.stream;
    if (st) {
      if (st.host === host) {
        throw new pulumi.ResourceError(
          `mariadb.stream.host: "${host.hostName}" is the database host itself: the stream keeps the binlogs on another host`,
          this,
        );
      }
      // On the replica's or the standby's host the key, the ring and mariadb-lib.sh are there already.
      const keyThere =
        r !== undefined && st.host === r.host
          ? replicaNeeds
          : d !== undefined && st.host === d.host
            ? standbyNeeds
            : [
                this.installKey(
                  `${name}-stream`,
                  st.host,
                  key,
                  this.installKeyring(`${name}-stream`, st.host, keys),
                ),
                st.host.installScript(`${name}-stream-script-lib`, __dirname, SCRIPTS.lib, {
                  parent: this,
                }),
              ];
      this.streamStatusFile = this.installStream(
        name,
        host,
        socket,
        st,
        fingerprint,
        keyThere,
        generation,
      );
    }
    this.encryptionKey = pulumi.secret(key.result);
    this.encryptionKeys = pulumi.secret(
      pulumi
        .all(keys.map((k) => k.result))
        .apply((all) =>
          Object.fromEntries(all.map((k, i) => [generationLabel(args.rotation, i), k])),
        ),
    );
    this.registerOutputs({
      keyFile: this.keyFile,
      encryptionKey: this.encryptionKey,
      statusFiles: this.statusFiles,
      pitrCommand: this.pitrCommand,
      drDrillStatusFile: this.drDrillStatusFile,
      streamStatusFile: this.streamStatusFile,
    });
  }

  /**
   * The binlog stream (mariadb.stream): its own replication user on the primary (password
   * generated, on stdin, into a 0600 option file on the stream host), then on the stream host the
   * two scripts, the stream's env file, the supervised service that runs mariadb-stream.sh (restarted
   * when a script, the env or the password changes) and the watchdog, a job every minute whose
   * registry entry takes the stream's status and metrics with it. Returns the stream's status file.
   */
  private installStream(
    name: string,
    primary: Host,
    socket: string,
    st: StreamArgs,
    fingerprint: pulumi.Output<string>,
    needs: pulumi.Resource[],
    generation: number,
  ): string {
    const there = `${name}-stream`;
    const sh = st.host;
    // Rotated with the backup user's (keepers): the user is altered, its option file rewritten.
    const password = new random.RandomPassword(
      `${there}-password`,
      {
        length: 32,
        special: false,
        ...(generation > 0 ? { keepers: { generation: String(generation) } } : {}),
      },
      { parent: this },
    );
    const spec = { user: st.user, from: st.from };
    const user = primary.command(
      `${there}-user`,
      {
        create: streamUserCommand(socket, spec),
        delete: dropStreamUserCommand(socket, spec),
        owns: `mariadb-user:${st.user}@${st.from}@${socket}`,
        stdin: password.result.apply((pw) => `${pw}\n`),
        secret: true,
        dependsOn: primary.base,
      },
      { parent: this },
    );
    const clientCnf = `${sh.paths.secrets}/mariadb-stream.cnf`;
    const cnf = new RemoteFile(
      `${there}-cnf`,
      {
        host: sh,
        path: clientCnf,
        content: password.result.apply((pw) => renderStreamOptionFile(st.user, pw)),
        secret: true,
        dependsOn: [user],
      },
      { parent: this },
    );
    const scripts = (["mariadb-stream.sh", "mariadb-stream-watch.sh"] as const).map((f) =>
      sh.installScript(`${there}-script-${f.replace(/^mariadb-|\.sh$/g, "")}`, __dirname, f, {
        parent: this,
      }),
    );
    const vars = fingerprint.apply((fp) =>
      streamEnv({
        address: st.address,
        port: st.port,
        clientCnf,
        dir: st.dir,
        basename: st.basename,
        serverId: st.serverId,
        keyFile: `${sh.paths.secrets}/mariadb-backup.key`,
        keyFingerprint: fp,
        keyring: `${sh.paths.secrets}/mariadb-backup.keyring`,
        sslCa: st.sslCa,
        maxLagSeconds: st.maxLagSeconds,
        statusSeconds: STREAM_STATUS_SECONDS,
        keepDays: st.keepDays,
      }),
    );
    const { env } = installJobFiles(
      `${there}-job`,
      { host: sh, job: STREAM_JOB, vars },
      { parent: this },
    );
    const status = `${sh.paths.status}/${STREAM_JOB}.json`;
    const watch = new ScheduledJob(
      `${there}-watch`,
      {
        host: sh,
        job: STREAM_WATCH_JOB,
        schedule: "* * * * *",
        script: `${sh.paths.lib}/mariadb-stream-watch.sh`,
        env: vars,
        dependsOn: [cnf, ...scripts, ...needs],
        alsoWrites: [status, `${sh.paths.metrics}/${STREAM_JOB}.prom`],
      },
      { parent: this },
    );
    new Service(
      `${there}-service`,
      {
        host: sh,
        name: STREAM_JOB,
        program: `${sh.paths.lib}/mariadb-stream.sh`,
        args: [`${sh.paths.etc}/${STREAM_JOB}.env`],
        restartOn: [env.contentHash, cnf.contentHash, ...scripts.map((x) => x.contentHash)],
        // The watchdog's entry removes the stream's status and metrics (alsoWrites) when deleted,
        // and the stream writes its status as it stops: the service must be stopped first.
        dependsOn: [env, cnf, ...scripts, ...needs, watch.registry],
      },
      { parent: this },
    );
    return status;
  }

  /**
   * The backup user, created over SSH as the server's root through unix_socket (SQL and password on
   * stdin), then its 0600 option file. Both follow the password: a rotation updates the user and
   * then the file; delete drops the user.
   */
  private createUser(
    name: string,
    args: MariaDbBackupArgs,
    socket: string,
    generation: number,
  ): { password: random.RandomPassword; user: command.remote.Command; optionFile: RemoteFile } {
    const { host, config } = args;
    // A new generation replaces the password (keepers); generation 0 has none, so a stack that
    // takes up rotation keeps its password until the first period has elapsed.
    const password = new random.RandomPassword(
      `${name}-password`,
      {
        length: 32,
        special: false,
        ...(generation > 0 ? { keepers: { generation: String(generation) } } : {}),
      },
      { parent: this },
    );
    // A rotation changes stdin only (the password): an update (ALTER USER), never a replacement
    // ending in DROP USER. A grant change changes the plain command: an update a preview shows.
    const user = host.command(
      `${name}-user`,
      {
        create: userCommand(socket, {
          user: config.backupUser,
          method: config.method,
          databases: config.databases,
          onReplica: args.replica !== undefined,
        }),
        delete: dropUserCommand(socket, config.backupUser),
        owns: `mariadb-user:${config.backupUser}@${socket}`,
        stdin: password.result.apply((pw) => `${pw}\n`),
        secret: true,
        dependsOn: host.base,
      },
      { parent: this },
    );
    const optionFile = this.installOptionFile(name, host, config.backupUser, password, user);
    return { password, user, optionFile };
  }

  /** The backup user's 0600 option file on a host, rewritten after each change of the user. */
  private installOptionFile(
    name: string,
    host: Host,
    backupUser: string,
    password: random.RandomPassword,
    user: command.remote.Command,
  ): RemoteFile {
    return new RemoteFile(
      `${name}-client-cnf`,
      {
        host,
        path: `${host.paths.secrets}/mariadb-backup.cnf`,
        content: pulumi.secret(password.result.apply((pw) => renderOptionFile(backupUser, pw))),
        secret: true,
        dependsOn: [user],
      },
      { parent: this },
    );
  }

  /**
   * The encryption key, generated once and kept in the stack's state (a secret, escrowed with the
   * stack), pushed as a 0600 file. Both are protected: losing the key loses every backup.
   */
  /**
   * Every key generation up to `generation`: 0 is the first deploy's key (its name unchanged), N a
   * key of its own. None is ever replaced or deleted: each opens the fulls and binlogs made with it.
   */
  private generateKeys(name: string, generation: number): random.RandomPassword[] {
    return Array.from(
      { length: generation + 1 },
      (_, i) =>
        new random.RandomPassword(
          generationName(keyResource(name), i),
          { length: 48, special: false },
          { parent: this, protect: true },
        ),
    );
  }

  /**
   * The key ring: every generation, one per line, 0600, kept on delete and protected like the key
   * file. Restores read a full's key from it by the fingerprint its manifest records.
   */
  private installKeyring(name: string, host: Host, keys: random.RandomPassword[]): RemoteFile {
    return new RemoteFile(
      `${name}-keyring`,
      {
        host,
        path: `${host.paths.secrets}/mariadb-backup.keyring`,
        content: pulumi.secret(
          pulumi.all(keys.map((k) => k.result)).apply((all) => all.map((k) => `${k}\n`).join("")),
        ),
        secret: true,
        keep: true,
        dependsOn: host.base,
      },
      { parent: this, protect: true },
    );
  }

  private installKey(
    name: string,
    host: Host,
    key: random.RandomPassword,
    keyring: RemoteFile,
  ): RemoteFile {
    return new RemoteFile(
      `${name}-key-file`,
      {
        host,
        path: `${host.paths.secrets}/mariadb-backup.key`,
        content: pulumi.secret(key.result.apply((k) => `${k}\n`)),
        secret: true,
        keep: true,
        dependsOn: [keyring],
      },
      { parent: this, protect: true },
    );
  }

  /**
   * The binlog drop-in; MariaDB restarts only when its bytes change. Delete removes the file without
   * a restart (binlogs stay on until the next restart of the server).
   */
  private configureBinlogs(
    name: string,
    args: MariaDbBackupArgs,
    socket: string,
  ): command.remote.Command {
    const { host, config } = args;
    const path = `${config.confDir}/99-backup321-binlog.cnf`;
    const content = renderBinlogDropIn({
      basename: config.binlogBasename,
      serverId: config.serverId,
      expireDays: config.retention.binlogExpireDays,
    });
    return host.command(
      `${name}-binlog-conf`,
      {
        marker: fileMarker(host.hostName, path),
        create: binlogConfigCommand({
          path,
          basename: config.binlogBasename,
          serverId: config.serverId,
          socket,
          restartCommand: args.restartCommand ?? `systemctl restart ${shq(config.service)}`,
        }),
        delete: removeFileCommand(path),
        owns: path,
        stdin: content,
        dependsOn: host.base,
      },
      { parent: this },
    );
  }

  /**
   * The dirty pages' low water mark, live and in a drop-in, on a server whose backups are taken.
   * Delete removes the file; the server keeps the value until its next restart.
   */
  private configureFlushing(
    name: string,
    host: Host,
    socket: string,
    config: MariaDb,
  ): command.remote.Command {
    const path = `${config.confDir}/99-backup321-flushing.cnf`;
    return host.command(
      `${name}-flushing-conf`,
      {
        marker: fileMarker(host.hostName, path),
        create: flushingConfigCommand({ path, lwmPct: config.dirtyPagesLwmPct, socket }),
        delete: removeFileCommand(path),
        owns: path,
        stdin: renderFlushingDropIn(config.dirtyPagesLwmPct),
        dependsOn: host.base,
      },
      { parent: this },
    );
  }

  /**
   * The replica's way to hand its fulls to the primary: its own ed25519 key (made there, only the
   * public half read back, never deleted), that key in root's authorized_keys on the primary
   * restricted to mariadb-receive.sh, and the primary's host key pinned on the replica.
   */
  private installHandoff(
    name: string,
    primary: Host,
    r: ReplicaArgs,
    config: MariaDb,
  ): { resources: pulumi.Resource[]; env: Handoff } {
    const keyFile = `${r.host.paths.secrets}/${HANDOFF_PURPOSE}_ed25519`;
    const knownHosts = `${r.host.paths.etc}/${HANDOFF_PURPOSE}.known_hosts`;
    const comment = keyComment(HANDOFF_PURPOSE, r.host.hostName);
    const key = r.host.command(
      `${name}-handoff-key`,
      { create: ensureKeyCommand(keyFile, comment), dependsOn: r.host.base },
      { parent: this },
    );
    const receiver = primary.installScript(
      `${name}-handoff-receiver`,
      __dirname,
      "mariadb-receive.sh",
      { parent: this },
    );
    const authorizedKeys = r.primary.authorizedKeysFile ?? "/root/.ssh/authorized_keys";
    const authorized = primary.command(
      `${name}-handoff-authorized-key`,
      {
        create: installAuthorizedKeyCommand(authorizedKeys, comment),
        delete: removeAuthorizedKeyCommand(authorizedKeys, comment),
        owns: `authorized-key:${authorizedKeys}:${comment}`,
        stdin: key.stdout.apply(
          (publicKey) =>
            handoffKeyLine({
              receiver: receiver.path,
              backupDir: config.backupDir,
              keep: config.retention.fulls,
              incrementDays: config.retention.incrementDays,
              publicKey,
              comment,
            }) + "\n",
        ),
        dependsOn: [receiver],
      },
      { parent: this },
    );
    const { address, port, hostKey } = r.primary;
    const pinned: pulumi.Resource = hostKey
      ? new RemoteFile(
          `${name}-handoff-known-hosts`,
          {
            host: r.host,
            path: knownHosts,
            content: knownHostsLine(address, port, hostKey),
            dependsOn: r.host.base,
          },
          { parent: this },
        )
      : r.host.command(
          `${name}-handoff-known-hosts`,
          {
            create: scanKnownHostsCommand(knownHosts, address, port),
            delete: removeFileCommand(knownHosts),
            owns: knownHosts,
            dependsOn: r.host.base,
          },
          { parent: this },
        );
    return {
      resources: [key, authorized, pinned],
      env: { user: "root", address, port, dir: config.backupDir, key: keyFile, knownHosts },
    };
  }

  private installScripts(name: string, host: Host): RemoteFile[] {
    return Object.entries(SCRIPTS).map(([role, file]) =>
      host.installScript(`${name}-script-${role}`, __dirname, file, { parent: this }),
    );
  }

  private scheduleJobs(
    name: string,
    host: Host,
    env: pulumi.Output<Record<string, string | number>>,
    needs: pulumi.Resource[],
    schedules: Partial<Record<ScheduledRole, string>>,
  ): Record<string, string> {
    const roles = SCHEDULED_ROLES.filter((role) => schedules[role] !== undefined);
    return Object.fromEntries(
      roles.map((role) => {
        const job = new ScheduledJob(
          `${name}-${role}`,
          {
            host,
            job: role === "pitr-drill" ? PITR_DRILL_JOB : `mariadb-${role}`,
            schedule: schedules[role]!,
            script: `${host.paths.lib}/${SCRIPTS[role]}`,
            env,
            dependsOn: needs,
          },
          { parent: this },
        );
        return [role, job.statusFile];
      }),
    );
  }

  /** The PITR tool is run by hand, never by cron: an env file and the b321-mariadb-pitr entry point. */
  private installPitr(
    name: string,
    host: Host,
    env: pulumi.Output<Record<string, string | number>>,
    needs: pulumi.Resource[],
  ): string {
    const { bin } = installJobFiles(
      `${name}-pitr`,
      {
        host,
        job: PITR_JOB,
        vars: env,
        note: "(run by hand)",
        ownsResults: true,
        entryPoint: { script: `${host.paths.lib}/${SCRIPTS.pitr}`, dependsOn: needs },
      },
      { parent: this },
    );
    return bin.path;
  }
}

export interface MariaDbDrDrillArgs extends DrDrillArgs {
  /** The MariaDB jobs' variables on the standby (mariadbEnv: the key, its fingerprint, the dirs). */
  readonly env: pulumi.Input<Record<string, string | number>>;
  /** What the drill needs first on the standby: the MariaDB key file and scripts. */
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * The standby's disaster-recovery drill (mariadb.drDrill): its own ed25519 key (made there, only
 * the public half read back, never deleted), that key on the NAS restricted to the receiver's
 * read-only mode, the NAS's host key pinned on the standby, the drill script with the NAS read-back
 * library, and the scheduled job (mariadb-dr-drill.sh).
 */
export class MariaDbDrDrill extends pulumi.ComponentResource {
  /** The job's status file on the standby. */
  public readonly statusFile: string;
  /** The standby's public key, as authorized (read-only) on the NAS. */
  public readonly publicKey: pulumi.Output<string>;

  constructor(name: string, d: MariaDbDrDrillArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:mariadb:DrDrill", name, {}, opts);
    const standby = d.host;
    const keyFile = `${standby.paths.secrets}/${DR_DRILL_KEY_PURPOSE}_ed25519`;
    const knownHosts = `${standby.paths.etc}/${DR_DRILL_JOB}.known_hosts`;
    const comment = nasReaderKeyComment(standby.hostName);
    const key = standby.command(
      `${name}-key`,
      { create: ensureKeyCommand(keyFile, comment), dependsOn: standby.base },
      { parent: this },
    );
    this.publicKey = key.stdout.apply((s) => s.trim());
    // The NAS account has no sudo: its commands run as itself, owner stamps in its home.
    const authorized = d.nas.host.command(
      `${name}-authorized-key`,
      {
        asLoginUser: true,
        ownersDir: `${d.nas.home}/.backup321/owners`,
        create: installAuthorizedKeyCommand(d.nas.authorizedKeys, comment),
        delete: removeAuthorizedKeyCommand(d.nas.authorizedKeys, comment),
        owns: `authorized-key:${d.nas.authorizedKeys}:${comment}`,
        stdin: key.stdout.apply(
          (publicKey) =>
            readOnlyKeyLine({
              receiver: d.nas.receiver,
              path: d.nas.path,
              publicKey,
              readerHost: standby.hostName,
            }) + "\n",
        ),
        dependsOn: d.nas.host.base,
      },
      { parent: this },
    );
    const { address, port, hostKey } = d.nas;
    const pinned: pulumi.Resource = hostKey
      ? new RemoteFile(
          `${name}-known-hosts`,
          {
            host: standby,
            path: knownHosts,
            content: knownHostsLine(address, port, hostKey),
            dependsOn: standby.base,
          },
          { parent: this },
        )
      : standby.command(
          `${name}-known-hosts`,
          {
            create: scanKnownHostsCommand(knownHosts, address, port),
            delete: removeFileCommand(knownHosts),
            owns: knownHosts,
            dependsOn: standby.base,
          },
          { parent: this },
        );
    const script = standby.installScript(`${name}-script`, __dirname, "mariadb-dr-drill.sh", {
      parent: this,
    });
    const lib = standby.installScript(
      `${name}-lib`,
      path.join(__dirname, "..", "offsite"),
      NAS_PULL_LIB,
      { parent: this },
    );
    const env = pulumi.output(d.env).apply((e) => ({
      ...e,
      ...drDrillEnv({
        nas: { user: d.nas.user, address, port, path: d.nas.path, key: keyFile, knownHosts },
        sources: d.sources,
        scratch: `${standby.paths.state}/dr-scratch`,
      }),
    }));
    const job = new ScheduledJob(
      `${name}-job`,
      {
        host: standby,
        job: DR_DRILL_JOB,
        schedule: d.schedule,
        script: script.path,
        env,
        dependsOn: [...(d.dependsOn ?? []), script, lib, key, authorized, pinned],
      },
      { parent: this },
    );
    this.statusFile = job.statusFile;
    this.registerOutputs({ statusFile: this.statusFile, publicKey: this.publicKey });
  }
}
