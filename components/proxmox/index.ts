// Proxmox VE: the provider from the site model, one PBS storage per datastore (encryption key
// generated here and escrowed as a stack secret, checked on the node before any job runs), the
// vzdump jobs to those storages, and the scheduled local snapshots (copy 1) run by cron.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import * as proxmoxve from "@muhlba91/pulumi-proxmoxve";
import { Host, RemoteFile, ScheduledJob, readScript } from "../host";
import { shq } from "../host/render";
import { cronToCalendarEvent } from "../../stacks/calendar";
import type { RetentionPolicy } from "../../stacks/primitives";
import { pbsKeyFile, pbsStorageId, pruneBackups, pveKeyFilePath } from "./render";

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
}

export class ProxmoxBackups extends pulumi.ComponentResource {
  /** PBS client encryption keys (key files) by PVE storage id: escrow them; backups are unreadable without. */
  public readonly encryptionKeys: pulumi.Output<Record<string, string>>;
  public readonly storages: Readonly<Record<string, proxmoxve.storage.Pbs>>;
  public readonly jobs: Readonly<Record<string, proxmoxve.backup.Job>>;
  public readonly snapshotJob?: ScheduledJob;

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
      checks[s.datastore] = this.checkKeyOnNode(name, s.datastore, storages[s.datastore]);
    }
    const jobs: Record<string, proxmoxve.backup.Job> = {};
    let hook: RemoteFile | undefined;
    for (const j of args.jobs) {
      const check = checks[j.datastore];
      if (!check)
        throw new pulumi.ResourceError(
          `job ${j.id}: datastore "${j.datastore}" has no PBS storage (one of: ${Object.keys(storages).join(", ")})`,
          this,
        );
      hook ??= this.installHook(name);
      jobs[j.id] = this.vzdumpJob(name, j, storages[j.datastore], [check, hook], provider);
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
  ): command.remote.Command {
    const file = pveKeyFilePath(pbsStorageId(datastore), this.pveDir);
    return this.host.command(
      `${name}-${datastore}-key-check`,
      {
        create: `test -s ${shq(file)} || { echo ${shq(`backup321: ${file} is missing: storage ${pbsStorageId(datastore)} would back up unencrypted (re-apply its encryption key)`)} >&2; exit 1; }`,
        runAgainOn: [storage.id, storage.encryptionKeyFingerprint],
        dependsOn: [storage],
      },
      { parent: this },
    );
  }

  private vzdumpJob(
    name: string,
    j: VzdumpJobSpec,
    storage: proxmoxve.storage.Pbs,
    [keyCheck, hook]: [command.remote.Command, RemoteFile],
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
        compress: "zstd",
        pruneBackups: pruneBackups(j.retention),
        mailnotification: "failure",
        ...(j.mailto ? { mailtos: [j.mailto] } : {}),
        repeatMissed: true,
        enabled: true,
        // Refuses each run whose storage has lost its encryption key on the node.
        script: hook.path,
      },
      { parent: this, provider, dependsOn: [keyCheck, hook] },
    );
  }

  /** The vzdump hook that checks the storage's encryption key at the start of every job run. */
  private installHook(name: string): RemoteFile {
    return new RemoteFile(
      `${name}-vzdump-hook`,
      {
        host: this.host,
        path: `${this.host.paths.lib}/vzdump-hook.sh`,
        content: readScript(__dirname, "vzdump-hook.sh"),
        mode: "0755",
        dependsOn: this.host.base,
      },
      { parent: this },
    );
  }

  private scheduleSnapshots(name: string, s: SnapshotSpec): ScheduledJob {
    const script = new RemoteFile(
      `${name}-snapshot-script`,
      {
        host: this.host,
        path: `${this.host.paths.lib}/pve-snapshots.sh`,
        content: readScript(__dirname, "pve-snapshots.sh"),
        mode: "0755",
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
        dependsOn: [script],
      },
      { parent: this },
    );
  }
}
