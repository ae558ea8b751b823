// Proxmox Backup Server on its host (bare metal or a container, through a command prefix): per
// datastore the chunk store on its USB SSD (fstab by UUID, nofail), GC, prune and verify jobs, a
// user and API token limited to DatastoreBackup on that datastore, and a guard that takes the
// datastore offline when its disk is missing. Outputs the certificate fingerprint and, per
// datastore, the token PVE uses (its secret as a Pulumi secret).
//
// How the token secret reaches PVE: PBS prints a token's secret once, when it is generated. The
// setup script (pbs-setup.sh, run over SSH) captures it straight into a 0600 file on the PBS host;
// nothing is printed. A second command reads that file back with logging off and its stdout marked
// secret (additionalSecretOutputs), and that Output, wrapped in pulumi.secret, becomes the password
// of PVE's storage.Pbs: the secret lives only in that file, in the encrypted stack state and in
// /etc/pve/priv on the PVE node. A token whose file was lost is renewed by the next setup run.
//
// With PBS in a container (commandPrefix "docker exec pbs"), the datastore path must be the same
// inside the container and on the host (bind-mount the disk at the same path): the mount checks run
// on the host.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Host, RemoteFile, ScheduledJob } from "../host";
import { renderEnvFile, shq } from "../host/render";
import { datastoreEnv, setupCommand, tokenId, type DatastoreSpec } from "./render";

export type { DatastoreSpec, DiskSpec } from "./render";

export interface ProxmoxBackupServerArgs {
  /** The PBS host (for a container: the host running it). */
  readonly host: Host;
  /** Words put before proxmox-backup-manager, e.g. "docker exec pbs". Defaults to none. */
  readonly commandPrefix?: string;
  /** The PBS user (pbs realm) owning the API tokens. Defaults to backup321@pbs. */
  readonly user?: string;
  readonly datastores: readonly DatastoreSpec[];
  /** Cron schedule of the disk guard. Defaults to every 5 minutes. */
  readonly guardSchedule?: string;
  /** The fstab file the disk entries go to. Defaults to /etc/fstab. */
  readonly fstab?: string;
}

/** What PVE needs to use one datastore. */
export interface DatastoreAccess {
  readonly datastore: string;
  /** user@pbs!token. */
  readonly tokenId: string;
  /** The token's secret (a Pulumi secret). */
  readonly tokenSecret: pulumi.Output<string>;
}

export class ProxmoxBackupServer extends pulumi.ComponentResource {
  /** SHA-256 fingerprint of PBS's TLS certificate (what PVE pins). */
  public readonly fingerprint: pulumi.Output<string>;
  /** Per datastore name: the token PVE uses. */
  public readonly access: Readonly<Record<string, DatastoreAccess>>;
  /** The setup commands, one per datastore, by datastore name. */
  public readonly setups: Readonly<Record<string, command.remote.Command>>;

  private readonly host: Host;
  private readonly user: string;
  private readonly prefix: string;

  constructor(name: string, args: ProxmoxBackupServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:pbs:ProxmoxBackupServer", name, {}, opts);
    this.host = args.host;
    this.user = args.user ?? "backup321@pbs";
    this.prefix = args.commandPrefix ?? "";
    const scripts = this.installScripts(name);
    this.fingerprint = this.readFingerprint(name, scripts);
    const access: Record<string, DatastoreAccess> = {};
    const setups: Record<string, command.remote.Command> = {};
    for (const d of args.datastores) {
      const setup = this.setUpDatastore(name, d, args.fstab ?? "/etc/fstab", scripts);
      setups[d.name] = setup;
      access[d.name] = {
        datastore: d.name,
        tokenId: tokenId(this.user, d.name),
        tokenSecret: this.readToken(name, d.name, setup),
      };
      this.guard(name, d, args.guardSchedule ?? "*/5 * * * *", scripts, setup);
    }
    this.access = access;
    this.setups = setups;
    this.registerOutputs({
      fingerprint: this.fingerprint,
      tokens: Object.values(access).map((a) => a.tokenId),
    });
  }

  private get paths() {
    return this.host.paths;
  }

  private script(file: string): string {
    return `${this.paths.lib}/${file}`;
  }

  private tokenFile(datastore: string): string {
    return `${this.paths.secrets}/pbs-token-${datastore}`;
  }

  private installScripts(name: string): RemoteFile[] {
    return [
      ["lib", "pbs-lib.sh"],
      ["setup-script", "pbs-setup.sh"],
      ["guard-script", "pbs-guard.sh"],
    ].map(([role, file]) =>
      this.host.installScript(`${name}-${role}`, __dirname, file, { parent: this }),
    );
  }

  private readFingerprint(name: string, scripts: RemoteFile[]): pulumi.Output<string> {
    const env = new RemoteFile(
      `${name}-env`,
      {
        host: this.host,
        path: `${this.paths.etc}/pbs.env`,
        content: renderEnvFile("backup321 PBS access", {
          PBS_PREFIX: this.prefix,
          PBS_DATASTORE: "",
        }),
        mode: "0600",
        dirMode: "0700",
        dependsOn: this.host.base,
      },
      { parent: this },
    );
    const cmd = this.host.command(
      `${name}-fingerprint`,
      {
        create: setupCommand(this.script("pbs-setup.sh"), "fingerprint", env.path),
        runAgainOn: [env.contentHash, ...scripts.map((s) => s.contentHash)],
        logging: "stdoutAndStderr",
        dependsOn: [env, ...scripts],
      },
      { parent: this },
    );
    return cmd.stdout.apply((s) => s.trim());
  }

  private setUpDatastore(
    name: string,
    d: DatastoreSpec,
    fstab: string,
    scripts: RemoteFile[],
  ): command.remote.Command {
    const env = new RemoteFile(
      `${name}-${d.name}-env`,
      {
        host: this.host,
        path: `${this.paths.etc}/pbs-${d.name}.env`,
        content: renderEnvFile(
          `backup321 PBS datastore ${d.name}`,
          datastoreEnv(d, {
            prefix: this.prefix,
            user: this.user,
            tokenFile: this.tokenFile(d.name),
            fstab,
          }),
        ),
        mode: "0600",
        dirMode: "0700",
        dependsOn: this.host.base,
      },
      { parent: this },
    );
    const script = this.script("pbs-setup.sh");
    return this.host.command(
      `${name}-${d.name}-setup`,
      {
        create: setupCommand(script, "apply", env.path),
        // Configuration only: the chunk store is never deleted. Without its env file (already
        // destroyed) there is nothing left to remove.
        delete: `[ ! -e ${shq(env.path)} ] || ${setupCommand(script, "remove", env.path)}`,
        owns: `pbs-datastore:${d.name}`,
        runAgainOn: [env.contentHash, ...scripts.map((s) => s.contentHash)],
        dependsOn: [env, ...scripts],
      },
      { parent: this },
    );
  }

  /** Reads the token secret back from its 0600 file: never logged, secret in state. */
  private readToken(
    name: string,
    datastore: string,
    setup: command.remote.Command,
  ): pulumi.Output<string> {
    const cmd = this.host.command(
      `${name}-${datastore}-token`,
      {
        create: `cat -- ${shq(this.tokenFile(datastore))}`,
        // Read again whenever the setup ran again (it may have made a new token).
        runAgainOn: [setup.create as pulumi.Output<string>],
        secret: true,
        dependsOn: [setup],
      },
      { parent: this },
    );
    return pulumi.secret(cmd.stdout);
  }

  private guard(
    name: string,
    d: DatastoreSpec,
    schedule: string,
    scripts: RemoteFile[],
    setup: command.remote.Command,
  ): ScheduledJob {
    const env = datastoreEnv(d, {
      prefix: this.prefix,
      user: this.user,
      tokenFile: this.tokenFile(d.name),
      fstab: "/etc/fstab",
    });
    return new ScheduledJob(
      `${name}-${d.name}-guard`,
      {
        host: this.host,
        job: `pbs-guard-${d.name}`,
        schedule,
        script: this.script("pbs-guard.sh"),
        env: {
          PBS_PREFIX: env.PBS_PREFIX,
          PBS_DATASTORE: env.PBS_DATASTORE,
          PBS_PATH: env.PBS_PATH,
          PBS_MOUNT: env.PBS_MOUNT,
          PBS_UUID: env.PBS_UUID,
          PBS_MIN_FREE_PERCENT: d.minFreePercent ?? 10,
        },
        dependsOn: [...scripts, setup],
      },
      { parent: this },
    );
  }
}
