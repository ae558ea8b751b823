// BackupSite: the whole site from its model. Each component gets only its own slice of the model.
import {
  bucketWriters,
  hostTimezone,
  nasFrom,
  nasSources,
  streamNasPath,
  uploadHost,
} from "../../stacks/defaults";
import * as pulumi from "@pulumi/pulumi";
import type { Site } from "../../stacks/schema";
import { maxIntervalHours } from "../../stacks/schedule";
import type { Host as HostModel } from "../../stacks/model/hosts";
import { dumpLock } from "../../stacks/model/offsite";
import * as aws from "@pulumi/aws";
import { Host } from "../host";
import { DumpUpload, NasSync, OffsiteBucket } from "../offsite";
import { ResticRepository, ResticScripts, type ResticLocation } from "../restic";
import { resticLocation } from "../restic/render";
import type { ResticRepository as ResticModel } from "../../stacks/model/restic";
import { RESTIC_S3_SECRETS } from "../../stacks/secrets";
import { ProxmoxBackupServer } from "../pbs";
import { ProxmoxBackups } from "../proxmox";
import { Monitor } from "../monitoring";
import { monitorChecksFor } from "../monitoring/render";
import { MariaDbBackup, type DrDrillArgs, type StreamArgs } from "../mariadb";
import { nasAccount } from "../offsite/render";
import { fullsHost } from "../../stacks/model/mariadb";
import { keyGeneration } from "../../stacks/model/rotation";
import { now } from "../../stacks/clock";
import { HANDOFF_TOOLS, MARIADB_TOOLS, STREAM_TOOLS, streamUnsealed } from "../mariadb/render";
import { partName } from "./names";
import { contactLine } from "../../stacks/model/people";

/** A NAS only receives copies: nothing of backup321 runs there. */
/** How another host of the site reaches this one over SSH (its model address, port and host key). */
function sshReach(site: Site, hostName: string) {
  const h = site.hosts.find((x) => x.name === hostName)!;
  return { address: h.address, port: h.port, hostKey: h.hostKey };
}

/**
 * The tools a MariaDB host needs: the handoff's too on the primary and replica of mariadb.replica,
 * and on the standby of mariadb.drDrill.
 */
function mariadbTools(site: Site, hostName: string): readonly string[] {
  const m = site.mariadb;
  const handoff = m?.replica && [m.host, m.replica.host].includes(hostName);
  // the DR drill's standby reads the NAS with rsync over ssh, with a key it makes (ssh-keygen)
  const drill = m?.drDrill?.host === hostName;
  return handoff || drill ? [...MARIADB_TOOLS, ...HANDOFF_TOOLS] : MARIADB_TOOLS;
}

const isStorageOnly = (h: HostModel): boolean =>
  h.roles.length > 0 && h.roles.every((r) => r === "nas");

export interface BackupSiteArgs {
  /** The validated site model (stacks/). */
  readonly site: Site;
  /** Stack secrets by config key, as listed by stacks/secrets.ts requiredSecrets(). */
  readonly secrets: Readonly<Record<string, pulumi.Input<string>>>;
  /** RUNBOOK.md (components/site/runbook), installed on every host that runs jobs. Defaults to none. */
  readonly runbook?: string;
}

export class BackupSite extends pulumi.ComponentResource {
  public readonly hosts: Readonly<Record<string, Host>>;
  /** The offsite bucket, when the model has one (its restic writer key feeds the restic repositories). */
  public readonly offsiteBucket?: OffsiteBucket;
  /** restic repositories by name. */
  public readonly restic: Readonly<Record<string, ResticRepository>>;
  public readonly pbs?: ProxmoxBackupServer;
  public readonly proxmox?: ProxmoxBackups;
  /** The MariaDB backups (keys, jobs, PITR), when the site has a database. */
  public readonly mariadb?: MariaDbBackup;
  /** The monitor of each host that runs jobs, by host name. */
  public readonly monitors: Readonly<Record<string, Monitor>>;
  /** The key generation of this run (site.rotation): the same for every rotated secret. */
  public readonly generation: number;
  /** What was installed where: hosts and their roles, resource counts per concern. */
  public readonly summary: pulumi.Output<pulumi.UnwrappedObject<Record<string, unknown>>>;

  constructor(name: string, args: BackupSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:site:BackupSite", name, {}, opts);
    const { site } = args;
    // Read once: every rotated secret of this run is of the same generation.
    this.generation = keyGeneration(site.rotation, now());
    this.hosts = this.connectHosts(name, args);
    const mariadb = (this.mariadb = this.buildMariaDb(name, site));
    this.offsiteBucket = this.buildOffsite(name, site, mariadb);
    this.restic = this.buildRestic(name, args);
    this.pbs = this.buildPbs(name, site);
    this.proxmox = this.buildProxmox(name, args);
    this.monitors = this.buildMonitoring(name, args);
    const summary: Record<string, unknown> = {
      site: site.name,
      targets: site.targets,
      hosts: Object.fromEntries(
        site.hosts.map((h) => [h.name, { address: h.address, roles: h.roles }]),
      ),
      mariadb: mariadb && {
        host: site.mariadb?.host,
        fullsOn: site.mariadb && fullsHost(site.mariadb),
        method: site.mariadb?.method,
        jobs: mariadb.statusFiles,
        pitr: mariadb.pitrCommand,
      },
      restic: Object.fromEntries(
        Object.values(this.restic).map((r) => [r.repo, { url: r.url, jobs: r.jobs }]),
      ),
      proxmox: this.proxmox && {
        storages: Object.keys(this.proxmox.storages),
        jobs: Object.keys(this.proxmox.jobs),
        snapshots: this.proxmox.snapshotJob !== undefined,
      },
      pbs: this.pbs && { datastores: Object.keys(this.pbs.access), tls: this.pbs.fingerprint },
      offsite: {
        bucket: site.offsite.bucket?.name ?? null,
        upload: site.offsite.upload ? uploadHost(site) : null,
        nas: site.offsite.nas ? `${site.offsite.nas.host}:${site.offsite.nas.path}` : null,
      },
      monitoring: { hosts: Object.keys(this.monitors), schedule: site.monitoring.schedule },
    };
    this.summary = pulumi.output(summary);
    this.registerOutputs({ summary: this.summary });
  }

  private buildMariaDb(name: string, site: Site): MariaDbBackup | undefined {
    const m = site.mariadb;
    if (!m) return undefined;
    return new MariaDbBackup(
      partName.mariadb(name),
      {
        host: this.hosts[m.host],
        config: m,
        siteName: site.name,
        timezone: site.timezone,
        socket: m.socket,
        restartCommand: m.restartCommand,
        generation: this.generation,
        rotation: site.rotation,
        replica: m.replica && {
          host: this.hosts[m.replica.host],
          primary: sshReach(site, m.host),
          socket: m.replica.socket,
          maxLagSeconds: m.replica.maxLagSeconds,
        },
        drDrill: this.drDrillArgs(site),
        stream: this.streamArgs(site),
      },
      { parent: this },
    );
  }

  /** mariadb.stream: the stream host, and the primary as each reaches the other. */
  private streamArgs(site: Site): StreamArgs | undefined {
    const m = site.mariadb;
    const st = m?.stream;
    if (!m || !st) return undefined;
    const address = (h: string) => site.hosts.find((x) => x.name === h)!.address;
    return {
      host: this.hosts[st.host],
      address: address(m.host),
      port: st.port,
      from: address(st.host),
      user: st.user,
      serverId: st.serverId,
      dir: st.dir,
      keepDays: st.keepDays,
      basename: m.binlogBasename.slice(m.binlogBasename.lastIndexOf("/") + 1),
      maxLagSeconds: st.maxLagSeconds,
      sslCa: st.sslCa,
    };
  }

  /** mariadb.drDrill: the standby, and the NAS of offsite.nas as the NAS sync reaches it. */
  private drDrillArgs(site: Site): DrDrillArgs | undefined {
    const d = site.mariadb?.drDrill;
    const nas = site.offsite.nas;
    if (!d || !nas) return undefined;
    const nasModel = site.hosts.find((h) => h.name === nas.host)!;
    return {
      host: this.hosts[d.host],
      schedule: d.schedule,
      nas: {
        host: this.hosts[nas.host],
        address: nasModel.address,
        port: nasModel.port,
        user: nasModel.user,
        hostKey: nasModel.hostKey,
        path: nas.path,
        ...nasAccount(nasModel.user),
      },
      sources: nasSources(site),
    };
  }

  private buildPbs(name: string, site: Site): ProxmoxBackupServer | undefined {
    const p = site.pbs;
    if (!p) return undefined;
    return new ProxmoxBackupServer(
      `${name}-pbs`,
      {
        host: this.hosts[p.host],
        commandPrefix: p.commandPrefix,
        user: p.user,
        guardSchedule: p.guardSchedule,
        datastores: p.datastores.map((d) => ({ ...d, retention: site.retention[d.retention] })),
      },
      { parent: this },
    );
  }

  private buildProxmox(name: string, args: BackupSiteArgs): ProxmoxBackups | undefined {
    const { site } = args;
    const p = site.proxmox;
    if (!p) return undefined;
    const pbs = this.pbs;
    const server = site.pbs?.server ?? site.hosts.find((h) => h.name === site.pbs?.host)?.address;
    const apiToken = args.secrets[p.apiTokenSecret];
    if (apiToken === undefined)
      throw new pulumi.ResourceError(
        `backup321:${p.apiTokenSecret}: missing Proxmox API token`,
        this,
      );
    const used = [...new Set(p.jobs.map((j) => j.datastore))];
    return new ProxmoxBackups(
      `${name}-proxmox`,
      {
        host: this.hosts[p.host],
        endpoint: p.endpoint,
        apiToken: pulumi.secret(apiToken),
        insecure: p.insecure,
        node: p.node,
        storages:
          pbs && server
            ? used.map((ds) => ({
                datastore: ds,
                server,
                username: pbs.access[ds].tokenId,
                password: pbs.access[ds].tokenSecret,
                fingerprint: pbs.fingerprint,
              }))
            : [],
        jobs: p.jobs.map((j) => ({ ...j, retention: site.retention[j.retention] })),
        snapshots: p.snapshots,
      },
      { parent: this },
    );
  }

  /** Alerts, the hourly check and the runbook on every host that runs jobs (not a storage-only NAS). */
  private buildMonitoring(name: string, args: BackupSiteArgs): Record<string, Monitor> {
    const { site } = args;
    const mon = site.monitoring;
    const webhookUrl =
      mon.webhookSecret === undefined ? undefined : args.secrets[mon.webhookSecret];
    if (mon.webhookSecret !== undefined && webhookUrl === undefined)
      throw new pulumi.ResourceError(
        `backup321:${mon.webhookSecret}: missing alert webhook URL (monitoring.webhookSecret)`,
        this,
      );
    return Object.fromEntries(
      site.hosts
        .filter((h) => !isStorageOnly(h))
        .map((h) => [
          h.name,
          new Monitor(
            `${name}-${h.name}-monitor`,
            {
              host: this.hosts[h.name],
              schedule: mon.schedule,
              checks: monitorChecksFor(site, h.name),
              email: mon.email,
              webhookUrl: webhookUrl === undefined ? undefined : pulumi.secret(webhookUrl),
              webhookStyle: mon.webhookStyle,
              pingOnSuccess: mon.pingOnSuccess,
              contacts: site.contacts.map(contactLine),
              runbook: args.runbook,
            },
            { parent: this },
          ),
        ]),
    );
  }

  private connectHosts(name: string, args: BackupSiteArgs): Record<string, Host> {
    const secret = (h: HostModel) => {
      const key = args.secrets[h.sshKeySecret];
      if (key === undefined)
        throw new pulumi.ResourceError(
          `backup321:${h.sshKeySecret}: missing SSH key for host ${h.name}`,
          this,
        );
      return pulumi.secret(key);
    };
    return Object.fromEntries(
      args.site.hosts.map((h) => [
        h.name,
        new Host(
          `${name}-${h.name}`,
          {
            hostName: h.name,
            address: h.address,
            port: h.port,
            user: h.user,
            privateKey: secret(h),
            hostKey: h.hostKey,
            generation: h.generation,
            disarmed: h.disarmed,
            paths: h.paths,
            timezone: hostTimezone(args.site, h.name),
            installLibrary: !isStorageOnly(h),
            requiredTools: h.roles.includes("mariadb")
              ? mariadbTools(args.site, h.name)
              : args.site.mariadb?.stream?.host === h.name
                ? STREAM_TOOLS
                : undefined,
          },
          { parent: this },
        ),
      ]),
    );
  }

  /** One ResticScripts per host running restic, then the repositories, copy sources first. */
  private buildRestic(name: string, args: BackupSiteArgs): Record<string, ResticRepository> {
    const { site } = args;
    const scripts: Record<string, ResticScripts> = {};
    const built: Record<string, ResticRepository> = {};
    const pending = [...site.restic.repositories];
    while (pending.length > 0) {
      // stacks/ rejects copy loops, so each pass builds at least one repository.
      const i = pending.findIndex((r) => r.copyFrom === undefined || r.copyFrom in built);
      if (i < 0)
        throw new pulumi.ResourceError(
          `backup321:site.restic.repositories: copyFrom of ${pending.map((r) => r.name).join(", ")} never reaches a repository that backs up paths`,
          this,
        );
      const r = pending.splice(i, 1)[0];
      scripts[r.host] ??= new ResticScripts(
        `${name}-restic-${r.host}`,
        { host: this.hosts[r.host] },
        { parent: this },
      );
      built[r.name] = new ResticRepository(
        partName.restic(name, r.name),
        {
          scripts: scripts[r.host],
          repo: r.name,
          location: this.resticLocation(r, site),
          s3: r.kind === "s3" ? this.resticS3Keys(r, args) : undefined,
          hostTag: r.host,
          schedule: r.schedule,
          paths: r.paths,
          excludes: r.excludes,
          tags: r.tags,
          retention: site.retention[r.retention],
          check: r.check,
          drill: r.drill,
          copyFrom: r.copyFrom === undefined ? undefined : built[r.copyFrom],
          generation: this.generation,
          rotation: site.rotation,
        },
        { parent: this },
      );
    }
    return built;
  }

  private resticLocation(r: ResticModel, site: Site): ResticLocation {
    if (r.kind === "s3" && !site.offsite.bucket)
      throw new pulumi.ResourceError(`backup321:site.offsite.bucket: needed by ${r.name}`, this);
    return resticLocation(r, site.offsite.bucket);
  }

  /**
   * The keys of the bucket's restic writer (IAM, scoped to the restic prefix); a repository on
   * another S3 service (its own endpoint) takes them from the stack secrets instead.
   */
  private resticS3Keys(r: ResticModel, args: BackupSiteArgs) {
    const writer = this.offsiteBucket?.resticWriter;
    if (r.endpoint === undefined && writer && this.offsiteBucket) {
      return {
        accessKeyId: writer.accessKeyId,
        secretAccessKey: writer.secretAccessKey,
        // init waits for the whole bucket component: the bucket, its policy, the writer's user
        // policy (a key alone is refused until they exist).
        dependsOn: [this.offsiteBucket],
      };
    }
    const get = (key: string) => {
      const v = args.secrets[key];
      if (v === undefined)
        throw new pulumi.ResourceError(`backup321:${key}: missing (restic's S3 key)`, this);
      return pulumi.secret(v);
    };
    return {
      accessKeyId: get(RESTIC_S3_SECRETS.accessKeyId),
      secretAccessKey: get(RESTIC_S3_SECRETS.secretAccessKey),
    };
  }

  /** The bucket (own aws provider in the model's region), the dump upload and the NAS sync. */
  private buildOffsite(
    name: string,
    site: Site,
    mariadb: MariaDbBackup | undefined,
  ): OffsiteBucket | undefined {
    const { bucket, upload } = site.offsite;
    let offsite: OffsiteBucket | undefined;
    if (bucket) {
      // Credentials come from the environment of `pulumi up` (AWS_PROFILE, SSO...), never the program.
      const provider = new aws.Provider(`${name}-aws`, { region: bucket.region }, { parent: this });
      offsite = new OffsiteBucket(
        partName.offsite(name),
        {
          bucket,
          dumpWriter: bucketWriters(site).dumps,
          resticWriter: bucketWriters(site).restic,
          generation: this.generation,
        },
        { parent: this, providers: { aws: provider } },
      );
    }
    if (upload && bucket && offsite?.dumpWriter && site.mariadb) {
      const m = site.mariadb;
      const from = uploadHost(site)!; // the MariaDB host unless the model names another
      // the binlog stream's sealed files (encrypted by the stream) are on the stream host only:
      // sent by the upload there, or by an upload of their own
      const stream = m.stream && { dir: m.stream.dir, basename: m.binlogBasename };
      const writer = {
        bucket: bucket.name,
        region: bucket.region,
        prefix: bucket.dumpPrefix,
        schedule: upload.schedule,
        accessKeyId: offsite.dumpWriter.accessKeyId,
        secretAccessKey: offsite.dumpWriter.secretAccessKey,
        kmsKeyArn: bucket.kmsKeyArn,
        objectLock: dumpLock(bucket),
      };
      new DumpUpload(
        `${name}-offsite-upload`,
        {
          ...writer,
          host: this.hosts[from],
          backupDir: site.mariadb.backupDir,
          // a missed full plus a day before the upload warns that it has nothing new
          maxAgeHours: maxIntervalHours(m.schedules.full, hostTimezone(site, m.host)) * 2 + 24,
          // the shipped binlogs (encrypted by the shipper) are on the database host only
          ...(from === m.host
            ? { binlogs: { dir: m.binlogBackupDir, basename: m.binlogBasename } }
            : {}),
          ...(stream && m.stream?.host === from ? { stream } : {}),
          // the drill decrypts with the MariaDB key: on its host only (stacks/ checks the model)
          ...(upload.drill && mariadb && from === m.host
            ? {
                drill: {
                  schedule: upload.drill.schedule,
                  keyFile: mariadb.keyFile,
                  keyFingerprint: mariadb.keyFingerprint,
                  keyringFile: mariadb.keyringFile,
                  dependsOn: mariadb.installed,
                },
              }
            : {}),
        },
        { parent: this },
      );
      if (stream && m.stream && m.stream.host !== from)
        new DumpUpload(
          `${name}-offsite-upload-stream`,
          { ...writer, host: this.hosts[m.stream.host], stream },
          { parent: this },
        );
    }
    this.buildNasSync(name, site);
    return offsite;
  }

  /**
   * The NAS sync of the backups (offsite.nas.from), and of the binlog stream's sealed files: with
   * them when the stream host is that host, else from the stream host to a path of its own.
   */
  private buildNasSync(name: string, site: Site): void {
    const { nas } = site.offsite;
    const from = nasFrom(site);
    if (!nas || !from) return;
    const nasModel = site.hosts.find((h) => h.name === nas.host)!;
    const st = site.mariadb?.stream;
    const common = {
      nas: this.hosts[nas.host],
      nasAddress: nasModel.address,
      nasPort: nasModel.port,
      nasUser: nasModel.user,
      nasHostKey: nasModel.hostKey,
      keep: nas.keep,
      schedule: nas.schedule,
    };
    const merged = st?.host === from;
    const main = new NasSync(
      `${name}-nas-sync`,
      {
        ...common,
        host: this.hosts[from],
        path: nas.path,
        sources: merged ? [...nasSources(site), st.dir] : nasSources(site),
        ...(merged ? { excludes: streamUnsealed(st.dir) } : {}),
        drill: nas.drill,
      },
      { parent: this },
    );
    if (st && !merged)
      new NasSync(
        `${name}-nas-sync-stream`,
        {
          ...common,
          host: this.hosts[st.host],
          path: streamNasPath(site)!,
          sources: [st.dir],
          excludes: streamUnsealed(st.dir),
          sharedReceiver: main,
        },
        { parent: this },
      );
  }
}
