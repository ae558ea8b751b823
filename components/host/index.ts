// The primitives every other component uses: a typed SSH connection, files pushed with owner and
// mode, cron jobs, a scheduled job (env file + entry point + cron line) and a supervised service.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as fs from "node:fs";
import * as path from "node:path";
import type { HostPaths } from "../../stacks/model/hosts";
import { maxIntervalHours } from "../../stacks/schedule";
import {
  asRoot,
  claimCommand,
  cronFileName,
  installFileCommand,
  jobEntry,
  jobFiles,
  layoutCommand,
  evidenceCommand,
  renderEvidenceEntryPoint,
  readinessCommand,
  ownerStampFile,
  releaseCommand,
  fileMarker,
  removeFileCommand,
  renderCronFile,
  jobEnv,
  renderEntryPoint,
  renderEnvFile,
  renderJobEntry,
  serviceCreateCommand,
  serviceDeleteCommand,
  serviceFiles,
  sha256,
} from "./render";

export type { HostPaths };

/** The tools every backup321 script relies on; checked before anything is pushed. */
export const BASE_TOOLS = [
  "bash",
  "flock",
  "install",
  "mktemp",
  "sha256sum",
  "logger",
  "mountpoint",
];

/** Reads a static script shipped in a component's scripts/ folder. */
export function readScript(componentDir: string, file: string): string {
  return fs.readFileSync(path.join(componentDir, "scripts", file), "utf8");
}

export interface HostArgs {
  /** The host's name in the site model. */
  readonly hostName: string;
  /** Address reachable from where `pulumi up` runs. */
  readonly address: pulumi.Input<string>;
  /** SSH port. Defaults to 22. */
  readonly port?: pulumi.Input<number>;
  /** SSH user: root, or a user with passwordless sudo. Defaults to root. */
  readonly user?: string;
  /** SSH private key (a secret). */
  readonly privateKey: pulumi.Input<string>;
  /** Pinned host key line, when known. */
  readonly hostKey?: pulumi.Input<string>;
  /** Raised after the host was reinstalled: every command on it runs again. Defaults to 1. */
  readonly generation?: number;
  /** Rebuild mode: the host's cron files are installed with their job lines commented out. Defaults to false. */
  readonly disarmed?: boolean;
  /** Where things go on the host. Defaults to the layout of docs/architecture.md. */
  readonly paths: HostPaths;
  /** IANA time zone the host's cron runs in (job intervals are measured in it; the site passes stacks/defaults hostTimezone). Defaults to UTC. */
  readonly timezone?: string;
  /** Extra tools to require before anything runs (e.g. mariadb-backup). Defaults to none. */
  readonly requiredTools?: readonly string[];
  /** Install the shared script library (common.sh, cron wrapper, alert hook). Defaults to true; false for a storage-only NAS. */
  readonly installLibrary?: boolean;
  /** Failed dials before giving up. Defaults to 10. */
  readonly dialErrorLimit?: number;
  /** Seconds per dial attempt. Defaults to 15. */
  readonly perDialTimeout?: number;
}

/**
 * A host reached over SSH. `ready` is the first command run there: it waits for the host (bounded by
 * the dial limits) and checks the base tools; everything pushed to the host depends on it. It also
 * installs the shared script library (common.sh, the cron wrapper, the alert hook).
 */
/** A remote command with backup321's lifecycle rules (see Host.command). */
export interface HostCommandArgs {
  /** Runs as root on create, and on every update unless `update` is given: it must be idempotent. */
  readonly create: pulumi.Input<string>;
  /** Runs as root on update instead of create. */
  readonly update?: pulumi.Input<string>;
  /** Runs as root on delete; with `owns`, only while this resource is still the owner. */
  readonly delete?: string;
  /**
   * What the command creates on the host (an absolute path, "mariadb-user:..."): the create records
   * this resource as its owner, and the delete leaves it to a newer owner.
   */
  readonly owns?: string;
  /** Run as the login user itself instead of root (a NAS account). Defaults to false. */
  readonly asLoginUser?: boolean;
  /** Where owner stamps go. Defaults to the host's paths.owners. */
  readonly ownersDir?: string;
  /** First line of every command text (the offline plan reads a file's marker from it). */
  readonly marker?: string;
  readonly stdin?: pulumi.Input<string>;
  /** stdin and outputs are secrets; nothing is logged. Defaults to false. */
  readonly secret?: boolean;
  /** Defaults to stderr (none when secret). */
  readonly logging?: "stdout" | "stderr" | "stdoutAndStderr" | "none";
  /**
   * Identities of what the command creates: a change replaces the command (old deleted first,
   * then the new created). Anything else that changes is an update. Defaults to `owns` when the
   * command has a delete (what it deletes is what it owns), else none.
   */
  readonly replaceOn?: pulumi.Input<string>[];
  /** Values (content hashes) whose change must run the command again, as an update. */
  readonly runAgainOn?: pulumi.Input<string>[];
  /** Resources to wait for besides the host's readiness. */
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class Host extends pulumi.ComponentResource {
  public readonly connection: pulumi.Output<command.types.input.remote.ConnectionArgs>;
  public readonly hostName: string;
  public readonly user: string;
  public readonly generation: number;
  public readonly disarmed: boolean;
  public readonly paths: HostPaths;
  public readonly timezone: string;
  public readonly ready: command.remote.Command;
  /** Resources a job on this host must wait for: readiness and the shared library. */
  public readonly base: pulumi.Resource[];

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:host:Host", name, {}, opts);
    this.hostName = args.hostName;
    this.user = args.user ?? "root";
    this.generation = args.generation ?? 1;
    this.disarmed = args.disarmed ?? false;
    this.paths = args.paths;
    this.timezone = args.timezone ?? "UTC";
    this.connection = pulumi.secret(
      pulumi.output({
        host: args.address,
        port: args.port ?? 22,
        user: this.user,
        privateKey: args.privateKey,
        hostKey: args.hostKey,
        dialErrorLimit: args.dialErrorLimit ?? 10,
        perDialTimeout: args.perDialTimeout ?? 15,
      }),
    );
    this.ready = new command.remote.Command(
      `${name}-ready`,
      {
        connection: this.connection,
        // A storage-only host (a NAS) is used as its own user: no sudo is needed or assumed there.
        create: this.withGeneration(
          args.installLibrary === false
            ? readinessCommand(["sh"])
            : asRoot(
                this.user,
                `${readinessCommand([...BASE_TOOLS, ...(args.requiredTools ?? [])])}\n${layoutCommand(args.paths)}`,
              ),
        ),
        addPreviousOutputInEnv: false,
      },
      { parent: this, customTimeouts: { create: "5m", update: "5m" } },
    );
    this.base = [this.ready, ...(args.installLibrary === false ? [] : this.installLibrary(name))];
    this.registerOutputs({ paths: this.paths });
  }

  private installLibrary(name: string): RemoteFile[] {
    const scripts = [
      ["common", "common.sh"],
      ["cron-wrapper", "b321-cron.sh"],
      ["alert", "alert.sh"],
      ["evidence", "evidence.sh"],
    ].map(([role, file]) =>
      this.installScript(`${name}-${role}`, __dirname, file, { parent: this }),
    );
    const evidence = new RemoteFile(
      `${name}-evidence-bin`,
      {
        host: this,
        path: evidenceCommand(this.paths),
        content: renderEvidenceEntryPoint(this.paths),
        mode: "0755",
        dependsOn: [this.ready],
      },
      { parent: this },
    );
    return [...scripts, evidence];
  }

  /**
   * A script shipped in a component's scripts/ folder, installed as <lib>/<file> (0755 unless
   * `mode` says otherwise) once the host's base is there; `render` adapts its text first.
   */
  installScript(
    name: string,
    componentDir: string,
    file: string,
    opts: { parent: pulumi.Resource; mode?: string; render?: (text: string) => string },
  ): RemoteFile {
    const text = readScript(componentDir, file);
    return new RemoteFile(
      name,
      {
        host: this,
        path: `${this.paths.lib}/${file}`,
        content: opts.render ? opts.render(text) : text,
        mode: opts.mode ?? "0755",
        // the library itself is part of the base: it waits for readiness only
        dependsOn: this.base,
      },
      { parent: opts.parent },
    );
  }

  /** Where the cron wrapper is installed: cron and the b321-<job> entry points run every job through it. */
  get cronWrapper(): string {
    return `${this.paths.lib}/b321-cron.sh`;
  }

  /** The command text with the host's generation: raising it changes every command, so all run again. */
  private withGeneration(text: string, marker?: string): string {
    return [marker, `# backup321 host generation ${this.generation}`, text]
      .filter((l) => l !== undefined)
      .join("\n");
  }

  /**
   * One remote command on this host, as root, with the rules the real engine needs (README
   * "Lifecycle"): a changed input is an update that runs the (idempotent) create again, never a
   * create-before-delete replacement that the old delete would undo; the delete leaves alone what a
   * newer resource wrote (`owns`); only `replaceOn` identities replace, old deleted first.
   */
  command(
    name: string,
    args: HostCommandArgs,
    opts: Omit<pulumi.CustomResourceOptions, "dependsOn" | "customTimeouts"> & {
      parent: pulumi.Resource;
    },
  ): command.remote.Command {
    const stampFile = args.owns
      ? ownerStampFile(args.ownersDir ?? this.paths.owners, args.owns)
      : undefined;
    const stamp = `${name} ${args.owns ?? ""}`;
    const as = (text: string): string => (args.asLoginUser ? text : asRoot(this.user, text));
    const asRootOwned = (text: string): string =>
      as(stampFile ? claimCommand(text, stampFile, stamp) : text);
    const rerun = (args.runAgainOn ?? []).map((v) =>
      pulumi.output(v).apply((x) => sha256(x ?? "")),
    );
    const replaceOn =
      args.replaceOn ??
      (args.owns !== undefined && args.delete !== undefined ? [args.owns] : undefined);
    const render = (text: pulumi.Input<string>): pulumi.Output<string> =>
      pulumi
        .all([text, ...rerun])
        .apply(([t, ...values]) =>
          this.withGeneration(
            asRootOwned(
              values.length > 0 ? `# backup321 inputs ${values.join(" ")}\n${t}` : String(t),
            ),
            args.marker,
          ),
        );
    const create = render(args.create);
    const secret = args.secret ?? false;
    return new command.remote.Command(
      name,
      {
        connection: this.connection,
        create,
        update: args.update === undefined ? create : render(args.update),
        delete:
          args.delete === undefined
            ? undefined
            : as(stampFile ? releaseCommand(args.delete, stampFile, stamp) : args.delete),
        stdin:
          args.stdin === undefined ? undefined : secret ? pulumi.secret(args.stdin) : args.stdin,
        triggers: replaceOn,
        logging: args.logging ?? (secret ? "none" : "stderr"),
        addPreviousOutputInEnv: false,
      },
      {
        ...opts,
        ...this.commandOptions(opts.parent, args.dependsOn),
        deleteBeforeReplace: replaceOn !== undefined,
        additionalSecretOutputs: secret ? ["stdin", "stdout", "stderr"] : [],
      },
    );
  }

  /** Custom resource options every remote command on this host uses. */
  commandOptions(
    parent: pulumi.Resource,
    dependsOn: pulumi.Input<pulumi.Resource>[] = [],
  ): pulumi.CustomResourceOptions {
    return {
      parent,
      dependsOn: [this.ready, ...dependsOn],
      customTimeouts: { create: "30m", update: "30m", delete: "10m" },
    };
  }
}

export interface RemoteFileArgs {
  readonly host: Host;
  /** Absolute path on the host. */
  readonly path: string;
  readonly content: pulumi.Input<string>;
  /** Octal mode. Defaults to 0644 (0600 when secret). */
  readonly mode?: string;
  /** Defaults to root. */
  readonly owner?: string;
  /** Defaults to the owner's name. */
  readonly group?: string;
  /** Mode of parent directories it creates. Defaults to 0755 (0700 when secret). */
  readonly dirMode?: string;
  /** The content is a secret: never logged, kept secret in state, 0600. Defaults to false. */
  readonly secret?: boolean;
  /** Resources to wait for besides the host. */
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
  /** Never removed, not even by `pulumi destroy` (keys and passwords that open backups). Defaults to false. */
  readonly keep?: boolean;
  /**
   * Other files (absolute paths) that go when this one is deleted, under the same owner guard: what
   * the file brought about on the host, e.g. a job's status and metrics with its registry entry.
   * Defaults to none.
   */
  readonly removeWith?: readonly string[];
}

/**
 * A file on a host, pushed through the SSH session's stdin (never argv or env) and written
 * atomically with owner and mode. A content change re-runs the install in place (update); a path
 * change replaces it (the old path removed, then the new one written); delete removes it unless a
 * newer resource wrote the path since, or the file is kept.
 */
export class RemoteFile extends pulumi.ComponentResource {
  public readonly path: string;
  public readonly contentHash: pulumi.Output<string>;
  public readonly command: command.remote.Command;

  constructor(name: string, args: RemoteFileArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:host:RemoteFile", name, {}, opts);
    const secret = args.secret ?? false;
    const owner = args.owner ?? "root";
    const install = installFileCommand({
      path: args.path,
      mode: args.mode ?? (secret ? "0600" : "0644"),
      owner,
      group: args.group ?? owner,
      dirMode: args.dirMode ?? (secret ? "0700" : "0755"),
    });
    const content = pulumi.output(args.content);
    const hash = content.apply(sha256);
    this.path = args.path;
    this.contentHash = secret ? pulumi.secret(hash) : hash;
    this.command = args.host.command(
      `${name}-file`,
      {
        marker: fileMarker(args.host.hostName, args.path),
        create: install,
        // Files that open backups (keys, passwords) are never removed by a delete.
        delete: args.keep
          ? undefined
          : [args.path, ...(args.removeWith ?? [])].map(removeFileCommand).join("\n"),
        // A kept file is never deleted: nothing to guard.
        owns: args.keep ? undefined : args.path,
        stdin: content,
        secret,
        // A new path is a new file; new content is an update of this one.
        replaceOn: [args.path],
        dependsOn: args.dependsOn,
      },
      { parent: this },
    );
    this.registerOutputs({ path: this.path, contentHash: this.contentHash });
  }
}

export interface CronJobArgs {
  readonly host: Host;
  /** Job name: the file is <cron dir>/backup321-<job>. */
  readonly job: string;
  /** Five-field cron expression. */
  readonly schedule: string;
  /** Program run (absolute path). */
  readonly command: string;
  readonly args?: readonly string[];
  /** User the job runs as. Defaults to root. */
  readonly user?: string;
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/** /etc/cron.d/backup321-<job>: a per-job flock through the cron wrapper, output to syslog. */
export class CronJob extends pulumi.ComponentResource {
  public readonly path: string;
  public readonly file: RemoteFile;

  constructor(name: string, args: CronJobArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:host:CronJob", name, {}, opts);
    const { host } = args;
    this.path = `${host.paths.cron}/${cronFileName(args.job)}`;
    const content = renderCronFile({
      job: args.job,
      schedule: args.schedule,
      command: args.command,
      args: args.args ?? [],
      wrapper: host.cronWrapper,
      lockDir: host.paths.locks,
      user: args.user ?? "root",
      disarmed: host.disarmed,
    });
    this.file = new RemoteFile(
      `${name}-crontab`,
      {
        host,
        path: this.path,
        content,
        mode: "0644",
        dependsOn: [...host.base, ...(args.dependsOn ?? [])],
      },
      { parent: this },
    );
    this.registerOutputs({ path: this.path });
  }
}

export interface ScheduledJobArgs {
  readonly host: Host;
  /** Job name, unique on the host: status/<job>.json, cron.d/backup321-<job>, sbin/b321-<job>. */
  readonly job: string;
  readonly schedule: string;
  /** Path of the installed script the job runs. */
  readonly script: string;
  /** Variables of the job's env file (no secrets: paths to secret files only). */
  readonly env: pulumi.Input<Readonly<Record<string, string | number | boolean>>>;
  /** What the script needs installed first (its own file, secrets, config). */
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
  /** Hours the monitor allows past the job's interval before its last success is stale. Defaults to a quarter of the interval, 1 to 12 h. */
  readonly graceHours?: number;
  /** Files the job's runs write besides its status and metrics file (absolute paths): removed with the job. Defaults to none. */
  readonly alsoWrites?: readonly string[];
}

/**
 * A job as docs/architecture.md says: <etc>/<job>.env (0600), the b321-<job> entry point that runs it
 * by hand as cron does (the same wrapper, lock and syslog; the output shown too), the cron file, and
 * <etc>/jobs.d/<job>.json, which tells the monitor how often the job must succeed (so every job of
 * every component is watched without more code).
 *
 * The job's status and metrics files go with its registry entry: a job removed from the model (or a
 * destroyed site) leaves no metrics saying it last succeeded, and a job added again later starts as
 * one that never ran. The cron file depends on the entry, so it is removed first: no run of the job
 * starts once its results are gone. A newer resource that registered the same job (create before
 * delete) keeps all of it (owner stamps).
 */
export class ScheduledJob extends pulumi.ComponentResource {
  public readonly envFile: string;
  public readonly entryPoint: string;
  public readonly statusFile: string;
  public readonly registryFile: string;
  /** The registry entry: its delete removes what the job's runs wrote (status, metrics, alsoWrites). */
  public readonly registry: RemoteFile;
  public readonly resources: pulumi.Resource[];

  constructor(name: string, args: ScheduledJobArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:host:ScheduledJob", name, {}, opts);
    const { host, job } = args;
    const files = jobFiles(host.paths, job);
    this.envFile = files.envFile;
    this.entryPoint = files.entryPoint;
    this.statusFile = files.statusFile;
    this.registryFile = files.registryFile;
    const { env, bin } = installJobFiles(
      name,
      { host, job, vars: args.env, entryPoint: { script: args.script, dependsOn: host.base } },
      { parent: this },
    );
    const registry = new RemoteFile(
      `${name}-registry`,
      {
        host,
        path: this.registryFile,
        content: renderJobEntry(
          jobEntry(
            job,
            args.schedule,
            host.timezone,
            maxIntervalHours(args.schedule, host.timezone),
            args.graceHours,
          ),
        ),
        mode: "0644",
        removeWith: [this.statusFile, files.metricsFile, ...(args.alsoWrites ?? [])],
        dependsOn: host.base,
      },
      { parent: this },
    );
    const cron = new CronJob(
      `${name}-cron`,
      {
        host,
        job,
        schedule: args.schedule,
        command: args.script,
        args: [this.envFile],
        dependsOn: [env, bin, registry, ...(args.dependsOn ?? [])],
      },
      { parent: this },
    );
    this.registry = registry;
    this.resources = [env, bin, cron, registry];
    this.registerOutputs({
      envFile: this.envFile,
      registryFile: this.registryFile,
      entryPoint: this.entryPoint,
      statusFile: this.statusFile,
    });
  }
}

export interface JobFilesArgs {
  readonly host: Host;
  readonly job: string;
  /** The job's own variables (no secrets: paths to secret files only). */
  readonly vars: pulumi.Input<Readonly<Record<string, string | number | boolean>>>;
  /** What the env file says the job is, after "backup321 job <job>". Defaults to nothing. */
  readonly note?: string;
  /** The job's status and metrics go with the env file (a job with no registry entry). Defaults to false. */
  readonly ownsResults?: boolean;
  /** The b321-<job> entry point, running this script, installed after these. Defaults to none. */
  readonly entryPoint?: {
    readonly script: string;
    readonly dependsOn: pulumi.Input<pulumi.Resource>[];
  };
}

/**
 * A job's files: <etc>/<job>.env (0600: its variables and the host's directories, jobEnv) as
 * `<prefix>-env`, and with `entryPoint` the <sbin>/b321-<job> entry point that runs it by hand as
 * cron does (renderEntryPoint) as `<prefix>-bin`.
 */
export function installJobFiles(
  prefix: string,
  args: JobFilesArgs & Required<Pick<JobFilesArgs, "entryPoint">>,
  opts: { parent: pulumi.Resource },
): { env: RemoteFile; bin: RemoteFile };
export function installJobFiles(
  prefix: string,
  args: JobFilesArgs,
  opts: { parent: pulumi.Resource },
): { env: RemoteFile; bin?: RemoteFile };
export function installJobFiles(
  prefix: string,
  args: JobFilesArgs,
  opts: { parent: pulumi.Resource },
): { env: RemoteFile; bin?: RemoteFile } {
  const { host, job } = args;
  const files = jobFiles(host.paths, job);
  const env = new RemoteFile(
    `${prefix}-env`,
    {
      host,
      path: files.envFile,
      content: pulumi.output(args.vars).apply((vars) =>
        renderEnvFile(`backup321 job ${job}${args.note ? ` ${args.note}` : ""}`, {
          ...vars,
          ...jobEnv(host.paths, job),
        }),
      ),
      mode: "0600",
      dirMode: "0700",
      removeWith: args.ownsResults ? [files.statusFile, files.metricsFile] : undefined,
      dependsOn: host.base,
    },
    opts,
  );
  if (!args.entryPoint) return { env };
  const bin = new RemoteFile(
    `${prefix}-bin`,
    {
      host,
      path: files.entryPoint,
      content: renderEntryPoint({
        job,
        script: args.entryPoint.script,
        envFile: files.envFile,
        wrapper: host.cronWrapper,
        lockDir: host.paths.locks,
      }),
      mode: "0755",
      dependsOn: args.entryPoint.dependsOn,
    },
    opts,
  );
  return { env, bin };
}

export interface ServiceArgs {
  readonly host: Host;
  /** The service's name, unique on the host: unit backup321-<name>.service. */
  readonly name: string;
  /** The program kept running (absolute path) and its arguments. */
  readonly program: string;
  readonly args?: readonly string[];
  /** Contents (or their hashes) the program runs with: a change restarts the service. Defaults to none. */
  readonly restartOn?: pulumi.Input<string>[];
  /** What the program needs installed first (its script, env file, secrets). */
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * A long-running program kept up on a host: a systemd unit (Restart=always) where systemd runs the
 * host, else b321-supervise.sh (a restart loop with backoff, holding a lock for its whole life)
 * started by cron at boot and every minute unless it runs. One remote command: create installs and
 * (re)starts it, an update (new arguments, a new version of what it runs: restartOn) does the same
 * in place, delete stops it before removing its unit or supervisor (never what the program wrote).
 * A renamed service is a replacement, the old one stopped and removed first.
 */
export class Service extends pulumi.ComponentResource {
  public readonly unitName: string;
  public readonly runDir: string;
  public readonly command: command.remote.Command;

  constructor(name: string, args: ServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:host:Service", name, {}, opts);
    const { host } = args;
    const spec = {
      name: args.name,
      program: args.program,
      args: args.args ?? [],
      paths: host.paths,
      disarmed: host.disarmed,
    };
    const files = serviceFiles(spec);
    this.unitName = files.unitName;
    this.runDir = files.runDir;
    this.command = host.command(
      `${name}-service`,
      {
        create: serviceCreateCommand(spec),
        delete: serviceDeleteCommand(spec),
        owns: `service:${args.name}`,
        stdin: readScript(__dirname, "b321-supervise.sh"),
        runAgainOn: args.restartOn,
        dependsOn: [...host.base, ...(args.dependsOn ?? [])],
      },
      { parent: this },
    );
    this.registerOutputs({ unitName: this.unitName, runDir: this.runDir });
  }
}
