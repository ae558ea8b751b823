// Proxmox VE: the provider from the site model, one PBS storage per datastore (encryption key
// generated here and escrowed as a stack secret, checked on the node before any job runs), the
// vzdump jobs to those storages, and the scheduled local snapshots (copy 1) run by cron.
//
// The key guard at every job run is a node-wide vzdump hook (`script:` in /etc/vzdump.conf,
// written over SSH), not the job's `script` option: PVE accepts that option from root@pam only
// (PVE/API2/Backup.pm), and the provider logs in with an API token, which is never root@pam. A
// second provider logged in as root@pam with a password would work too, but it would put the
// node's root password in the stack, to set one option; the SSH access this component already
// has as root does it without a new credential. The hook checks only backup321's own storages,
// so backups to any other storage on the node run as before.
//
// Retention: the vzdump jobs prune nothing (remove: false, no prune-backups). Pruning from PVE
// needs Datastore.Prune (role DatastorePowerUser, pbs-api-types acl.rs), and with the token
// holding DatastoreBackup only, each guest's backup would be marked failed after its upload
// (VZDump.pm fails the guest on a prune error). Rather than grant it, the token stays unable to
// delete anything on PBS (a compromised PVE node cannot prune its backups away) and the
// datastore's own prune job, run by PBS with the tier the model gives the datastore, is the only
// retention; stacks/checks-proxmox.ts makes sure it keeps at least what each job promises.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import * as proxmoxve from "@muhlba91/pulumi-proxmoxve";
import { Host, ScheduledJob } from "../host";
import { cronToCalendarEvent } from "../../stacks/calendar";
import type { RetentionPolicy } from "../../stacks/primitives";
import { sha256, shq } from "../host/render";
import {
  pbsKeyFile,
  pbsStorageId,
  pveKeyFilePath,
  renderVzdumpHook,
  snapshotFeatureCheck,
} from "./render";

export interface PbsStorageSpec {
  /** PBS datastore name; the PVE storage id is pbs-<datastore>. */
  readonly datastore: string;
  /** PBS address as PVE reaches it. */
  readonly server: pulumi.Input<string>;
  /** API token id, user@pbs!token. */
  readonly username: pulumi.Input<string>;
  /** API token secret (a secret). */
  readonly password: pulumi.Input<string>;
  /** SHA-256 fingerprint of PBS's certificate. */
  readonly fingerprint: pulumi.Input<string>;
}

export interface VzdumpJobSpec {
  /** Stable id; the PVE job id is b321-<id>. */
  readonly id: string;
  /** Five-field cron expression (converted to a PVE calendar event). */
  readonly schedule: string;
  /** "all" or guest ids. */
  readonly guests: "all" | readonly number[];
  /** PBS datastore written to (one of the storages). */
  readonly datastore: string;
  /**
   * What the job promises to keep. PVE prunes nothing (remove: false): the datastore's prune job
   * keeps it, and the model checks that it keeps at least this much.
   */
  readonly retention: RetentionPolicy;
  /** Address that gets failure mails. Defaults to none. */
  readonly mailto?: string;
}

export interface SnapshotSpec {
  /** Five-field cron expression. */
  readonly schedule: string;
  readonly vms: readonly number[];
  readonly containers: readonly number[];
  /** Snapshots kept per guest. */
  readonly keep: number;
}

export interface ProxmoxBackupsArgs {
  /** The PVE node's host (snapshots run there; the key check reads /etc/pve there). */
  readonly host: Host;
  /** API endpoint, e.g. https://192.168.10.10:8006/. */
  readonly endpoint: pulumi.Input<string>;
  /** API token user@realm!id=secret (a secret). */
  readonly apiToken: pulumi.Input<string>;
  /** Accept a self-signed API certificate. Defaults to false. */
  readonly insecure?: boolean;
  /** PVE node name. Defaults to the host's name. */
  readonly node?: string;
  readonly storages: readonly PbsStorageSpec[];
  readonly jobs: readonly VzdumpJobSpec[];
  /** Scheduled local snapshots. Defaults to none. */
  readonly snapshots?: SnapshotSpec;
  /** PVE's cluster file system, where the storage key files live. Defaults to /etc/pve. */
  readonly pveDir?: string;
  /** vzdump's node-wide defaults, where the key guard hook is set. Defaults to /etc/vzdump.conf. */
  readonly vzdumpConf?: string;
}

export class ProxmoxBackups extends pulumi.ComponentResource {
  /** PBS client encryption keys (key files) by PVE storage id: escrow them; backups are unreadable without. */
  public readonly encryptionKeys: pulumi.Output<Record<string, string>>;
  public readonly storages: Readonly<Record<string, proxmoxve.storage.Pbs>>;
  public readonly jobs: Readonly<Record<string, proxmoxve.backup.Job>>;
  public readonly snapshotJob?: ScheduledJob;
  /** The command that sets the key guard hook in /etc/vzdump.conf (when there are storages). */
  public readonly keyGuard?: command.remote.Command;

  private readonly host: Host;
  private readonly node: string;
  private readonly pveDir: string;

  constructor(name: string, args: ProxmoxBackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:proxmox:ProxmoxBackups", name, {}, opts);
    this.host = args.host;
    this.node = args.node ?? args.host.hostName;
    this.pveDir = args.pveDir ?? "/etc/pve";
    const provider = new proxmoxve.Provider(
      `${name}-provider`,
      {
        endpoint: args.endpoint,
        apiToken: pulumi.secret(args.apiToken),
        insecure: args.insecure ?? false,
      },
      { parent: this },
    );
    const keys: Record<string, pulumi.Output<string>> = {};
    const storages: Record<string, proxmoxve.storage.Pbs> = {};
    const checks: Record<string, command.remote.Command> = {};
    for (const s of args.storages) {
      const id = pbsStorageId(s.datastore);
      keys[id] = this.encryptionKey(name, s.datastore);
      storages[s.datastore] = this.pbsStorage(name, s, keys[id], provider);
      checks[s.datastore] = this.checkKeyOnNode(name, s.datastore, storages[s.datastore], keys[id]);
    }
    const jobs: Record<string, proxmoxve.backup.Job> = {};
    if (args.storages.length > 0)
      this.keyGuard = this.guardKeys(
        name,
        args.storages.map((s) => pbsStorageId(s.datastore)),
        args.vzdumpConf ?? "/etc/vzdump.conf",
      );
    for (const j of args.jobs) {
      const check = checks[j.datastore];
      if (!check || !this.keyGuard)
        throw new pulumi.ResourceError(
          `job ${j.id}: datastore "${j.datastore}" has no PBS storage (one of: ${Object.keys(storages).join(", ")})`,
          this,
        );
      jobs[j.id] = this.vzdumpJob(name, j, storages[j.datastore], [check, this.keyGuard], provider);
    }
    if (args.snapshots) this.snapshotJob = this.scheduleSnapshots(name, args.snapshots);
    this.storages = storages;
    this.jobs = jobs;
    this.encryptionKeys = pulumi.secret(pulumi.all(keys));
    this.registerOutputs({
      encryptionKeys: this.encryptionKeys,
      storages: Object.keys(storages).map(pbsStorageId),
      jobs: Object.keys(jobs),
    });
  }

  /** 32 random bytes as a PBS key file (no passphrase): state keeps it secret; protected. */
  private encryptionKey(name: string, datastore: string): pulumi.Output<string> {
    const bytes = new random.RandomBytes(
      `${name}-${datastore}-key`,
      { length: 32 },
      { parent: this, protect: true },
    );
    return pulumi.secret(bytes.base64.apply(pbsKeyFile));
  }

  private pbsStorage(
    name: string,
    s: PbsStorageSpec,
    key: pulumi.Output<string>,
    provider: proxmoxve.Provider,
  ): proxmoxve.storage.Pbs {
    return new proxmoxve.storage.Pbs(
      `${name}-${s.datastore}-storage`,
      {
        resourceId: pbsStorageId(s.datastore),
        server: s.server,
        datastore: s.datastore,
        username: s.username,
        password: pulumi.secret(s.password),
        fingerprint: s.fingerprint,
        encryptionKey: key,
        contents: ["backup"],
        nodes: [this.node],
      },
      { parent: this, provider },
    );
  }

  /**
   * A PBS storage whose key file is missing backs up unencrypted without a word: the node must hold
   * /etc/pve/priv/storage/<id>.enc before any job may use the storage.
   */
  private checkKeyOnNode(
    name: string,
    datastore: string,
    storage: proxmoxve.storage.Pbs,
    key: pulumi.Output<string>,
  ): command.remote.Command {
    const file = pveKeyFilePath(pbsStorageId(datastore), this.pveDir);
    return this.host.command(
      `${name}-${datastore}-key-check`,
      {
        create: `test -s ${shq(file)} || { echo ${shq(`backup321: ${file} is missing: storage ${pbsStorageId(datastore)} would back up unencrypted (re-apply its encryption key)`)} >&2; exit 1; }`,
        // Runs again when the storage is replaced or its key changes. Not the provider's
        // encryptionKeyFingerprint: PVE records the key as "1" and the provider reports an empty
        // fingerprint, so it never changes. The key's SHA-256 reveals nothing of the key.
        runAgainOn: [storage.id, pulumi.unsecret(key.apply(sha256))],
        dependsOn: [storage],
      },
      { parent: this },
    );
  }

  private vzdumpJob(
    name: string,
    j: VzdumpJobSpec,
    storage: proxmoxve.storage.Pbs,
    [keyCheck, keyGuard]: [command.remote.Command, command.remote.Command],
    provider: proxmoxve.Provider,
  ): proxmoxve.backup.Job {
    const guests = j.guests === "all" ? { all: true } : { vmids: j.guests.map((id) => String(id)) };
    return new proxmoxve.backup.Job(
      `${name}-${j.id}`,
      {
        resourceId: `b321-${j.id}`,
        schedule: cronToCalendarEvent(j.schedule),
        storage: storage.resourceId,
        node: this.node,
        ...guests,
        mode: "snapshot",
        // No compress: PBS storages ignore it (the PBS client compresses chunks with zstd).
        // No prune: the datastore's prune job is the retention (see the top of this file).
        remove: false,
        // mailnotification is only read in PVE 8's legacy mode, i.e. when mailto is set; without
        // mailto the notification system decides, and the option would be a dead setting.
        ...(j.mailto ? { mailtos: [j.mailto], mailnotification: "failure" } : {}),
        repeatMissed: true,
        enabled: true,
        // No script: the node-wide key guard (guardKeys) checks the key at every run.
      },
      { parent: this, provider, dependsOn: [keyCheck, keyGuard] },
    );
  }

  /**
   * The vzdump hook that checks a storage's encryption key at the start of every job run, set as
   * the node's default hook in vzdump.conf. Its delete takes the line out before the hook file
   * goes (it depends on the file), so vzdump never names a missing script.
   */
  private guardKeys(name: string, storageIds: string[], conf: string): command.remote.Command {
    const hook = this.host.installScript(`${name}-vzdump-hook`, __dirname, "vzdump-hook.sh", {
      parent: this,
      render: (text) => renderVzdumpHook(text, storageIds),
    });
    return this.host.command(
      `${name}-vzdump-conf`,
      {
        create: `${shq(hook.path)} install ${shq(conf)}`,
        delete: `[ ! -x ${shq(hook.path)} ] || ${shq(hook.path)} remove ${shq(conf)}`,
        // The line in vzdump.conf is this command's: a newer one that claimed it keeps it.
        owns: `vzdump-conf:${conf}`,
        runAgainOn: [hook.contentHash],
        dependsOn: [hook],
      },
      { parent: this },
    );
  }

  private scheduleSnapshots(name: string, s: SnapshotSpec): ScheduledJob {
    const script = this.host.installScript(
      `${name}-snapshot-script`,
      __dirname,
      "pve-snapshots.sh",
      { parent: this },
    );
    // Once per deploy (and when the guest lists change): a guest on storage without snapshots
    // would fail every run; say so now, by name.
    const check = this.host.command(
      `${name}-snapshot-check`,
      {
        create: snapshotFeatureCheck(this.node, s.vms, s.containers),
        dependsOn: this.host.base,
      },
      { parent: this },
    );
    return new ScheduledJob(
      `${name}-snapshots`,
      {
        host: this.host,
        job: "pve-snapshots",
        schedule: s.schedule,
        script: script.path,
        env: {
          SNAP_NODE: this.node,
          SNAP_VMS: s.vms.join(" "),
          SNAP_CONTAINERS: s.containers.join(" "),
          SNAP_KEEP: s.keep,
        },
        dependsOn: [script, check],
      },
      { parent: this },
    );
  }
}
