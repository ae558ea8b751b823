// restic repositories: the scripts on a host, and per repository its password, init and jobs
// (backup or copy with forget/prune, rotating check).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import type { RetentionPolicy } from "../../stacks/primitives";
import { generationLabel, generationName, type Rotation } from "../../stacks/model/rotation";
import { Host, RemoteFile, ScheduledJob, installJobFiles } from "../host";
import { fileMarker, readinessCommand, renderCredentialsFile, jobFiles, shq } from "../host/render";
import {
  backupEnv,
  forgetArgs,
  passwordFileCommand,
  passwordResource,
  renderExcludeFile,
  repositoryEnv,
  repositoryUrl,
  resticFiles,
  type ResticFiles,
  type ResticLocation,
  resticDrillJob,
  resticJob,
} from "./render";

export type { ResticLocation };

/** The scripts every restic job runs, with their file names. */
export const RESTIC_SCRIPTS = [
  ["lib", "restic-lib.sh", "0644"],
  ["init", "restic-init.sh", "0755"],
  ["backup", "restic-backup.sh", "0755"],
  ["copy", "restic-copy.sh", "0755"],
  ["check", "restic-check.sh", "0755"],
  ["drill", "restic-drill.sh", "0755"],
] as const;

/** The job that creates (or rekeys) a repository, run by `pulumi up`. */
const initJob = (repo: string) => `${resticJob(repo)}-init`;

export interface ResticScriptsArgs {
  readonly host: Host;
  /** The restic binary on the host. Defaults to restic (from PATH). */
  readonly restic?: string;
}

/** The restic scripts on one host, shared by every repository that host runs. */
export class ResticScripts extends pulumi.ComponentResource {
  public readonly host: Host;
  public readonly restic: string;
  /** Installed script paths by role (init, backup, copy, check). */
  public readonly paths: Readonly<Record<string, string>>;
  /** What a repository on this host must wait for. */
  public readonly resources: pulumi.Resource[];

  constructor(name: string, args: ResticScriptsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:restic:ResticScripts", name, {}, opts);
    this.host = args.host;
    this.restic = args.restic ?? "restic";
    const tools = args.host.command(
      `${name}-tools`,
      // jq: the restore drill reads restic's JSON
      { create: readinessCommand([this.restic, "jq"]) },
      { parent: this },
    );
    const files = RESTIC_SCRIPTS.map(([role, file, mode]) =>
      args.host.installScript(`${name}-${role}`, __dirname, file, { parent: this, mode }),
    );
    this.paths = Object.fromEntries(RESTIC_SCRIPTS.map(([role], i) => [role, files[i].path]));
    this.resources = [tools, ...files, ...args.host.base];
    this.registerOutputs({ paths: this.paths });
  }
}

export interface ResticS3Credentials {
  /** Access key id of the IAM user that writes the repository prefix. */
  readonly accessKeyId: pulumi.Input<string>;
  /** Its secret access key (a secret). */
  readonly secretAccessKey: pulumi.Input<string>;
  /**
   * What the key needs before it can work: the bucket, its policy, the writer's user policy. init
   * waits for them. Defaults to none.
   */
  readonly dependsOn?: readonly pulumi.Resource[];
}

export interface ResticCheck {
  /** Cron schedule of `restic check`. */
  readonly schedule: string;
  /** Rotating subsets: every pack is read once per this many runs. */
  readonly subsets: number;
}

export interface ResticDrill {
  /** Cron schedule of the restore drill. */
  readonly schedule: string;
  /** Files restored per drill. */
  readonly files: number;
  /** Most MB restored per drill. */
  readonly maxMb: number;
}

export interface ResticRepositoryArgs {
  /** The host's restic scripts (ResticScripts on the host that runs this repository). */
  readonly scripts: ResticScripts;
  /** Repository name, unique on the host: job names restic-<repo>, restic-<repo>-check. */
  readonly repo: string;
  /** Where the repository lives. */
  readonly location: ResticLocation;
  /** S3 credentials (kind s3). Written to a 0600 file; never on a command line. */
  readonly s3?: ResticS3Credentials;
  /** PEM certificate the S3 endpoint chains to (a self-signed endpoint). Defaults to the system store. */
  readonly caCertificate?: pulumi.Input<string>;
  /** restic --host of every snapshot: the site's host name, so a rebuilt host keeps its groups. */
  readonly hostTag: string;
  /** Backup (or copy) schedule. */
  readonly schedule: string;
  /** Paths backed up. Ignored with copyFrom. Defaults to none. */
  readonly paths?: readonly string[];
  /** restic exclude patterns. Defaults to none. */
  readonly excludes?: readonly string[];
  /** Stable tags: forget groups by host and tags. Defaults to none. */
  readonly tags?: readonly string[];
  /** Keep policy applied by forget after every successful run. */
  readonly retention: RetentionPolicy;
  /** Rotating integrity check. Defaults to none. */
  readonly check?: ResticCheck;
  /** Restore drill of a rotating sample. Defaults to none. */
  readonly drill?: ResticDrill;
  /** Fill this repository by `restic copy` from another on the same host, created with its chunker parameters. */
  readonly copyFrom?: ResticRepository;
  /**
   * The key generation in use (stacks/model/rotation.ts keyGeneration): a password per generation,
   * the newest in the password file. Defaults to 0.
   */
  readonly generation?: number;
  /** The site's rotation, to say from which month each password is in use. */
  readonly rotation?: Rotation;
  /** Seconds a copy waits for a run holding its source's lock (a long backup). Defaults to 3600. */
  readonly copyLockWaitSeconds?: number;
  /**
   * Seconds init keeps retrying while S3 answers AccessDenied or InvalidAccessKeyId (kind s3):
   * a new IAM key or policy takes a while to reach S3. Defaults to 300.
   */
  readonly initAccessWaitSeconds?: number;
}

/**
 * A restic repository: a random password in a 0600 file (installed once, never replaced or deleted:
 * it is what opens the data), `restic init` only when the repository is missing, and the jobs:
 * backup (or copy) followed by forget/prune, and the rotating check. Destroying it never deletes
 * repository data nor its password file.
 */
export class ResticRepository extends pulumi.ComponentResource {
  public readonly repo: string;
  public readonly url: string;
  public readonly host: Host;
  public readonly passwordFile: string;
  /** Its files on the host (password, S3 keys, CA, excludes). */
  public readonly files: ResticFiles;
  /** The repository password (secret): escrow it with the stack passphrase. */
  public readonly password: pulumi.Output<string>;
  /** Every password generation (secret), by generation: each opens the copies made while it was current. */
  public readonly passwords: pulumi.Output<Record<string, string>>;
  /** Mount point required by jobs touching this repository, if any. */
  public readonly mountpoint?: string;
  /** The init command: jobs, and copies from this repository, wait for it. */
  public readonly init: command.remote.Command;
  /** Job names on the host. */
  public readonly jobs: string[];

  constructor(name: string, args: ResticRepositoryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:restic:ResticRepository", name, {}, opts);
    const { scripts } = args;
    const host = scripts.host;
    this.host = host;
    this.repo = args.repo;
    this.url = repositoryUrl(args.location);
    this.mountpoint = args.location.kind === "local" ? args.location.mountpoint : undefined;
    if (args.location.kind === "s3" && !args.s3)
      throw new pulumi.ResourceError(`restic repository ${args.repo}: s3 needs credentials`, this);
    if (args.copyFrom && args.copyFrom.host !== host)
      throw new pulumi.ResourceError(
        `restic repository ${args.repo}: copyFrom ${args.copyFrom.repo} is on another host`,
        this,
      );
    const files = resticFiles(host.paths, args.repo, {
      s3: args.location.kind === "s3",
      ca: args.caCertificate !== undefined,
    });
    this.passwordFile = files.passwordFile;
    this.files = files;

    // One password per key generation, each protected like the MariaDB keys: the newest opens the
    // repository; an older one still opens a copy of it made before its rotation (a disk kept away).
    const passwords = Array.from(
      { length: (args.generation ?? 0) + 1 },
      (_, i) =>
        new random.RandomPassword(
          generationName(passwordResource(name), i),
          { length: 48, special: false },
          {
            parent: this,
            protect: true,
            retainOnDelete: true,
            additionalSecretOutputs: ["result"],
          },
        ),
    );
    this.password = pulumi.secret(passwords[passwords.length - 1].result);
    this.passwords = pulumi.secret(
      pulumi
        .all(passwords.map((p) => p.result))
        .apply((all) =>
          Object.fromEntries(all.map((pw, i) => [generationLabel(args.rotation, i), pw])),
        ),
    );
    const secretFiles = this.installFiles(name, args, files);
    const src = args.copyFrom?.files;
    const common = repositoryEnv({
      repo: args.repo,
      url: this.url,
      // restic copy reads both repositories with one set of S3 keys and CA: a local copy of an s3
      // repository uses its source's.
      files: {
        ...files,
        s3CredentialsFile: files.s3CredentialsFile ?? src?.s3CredentialsFile,
        caFile: files.caFile ?? src?.caFile,
      },
      mountpoint: this.mountpoint,
      hostTag: args.hostTag,
      restic: scripts.restic,
      cacheDir: `${host.paths.state}/cache/restic`,
      from: args.copyFrom && {
        repo: args.copyFrom.repo,
        url: args.copyFrom.url,
        passwordFile: args.copyFrom.passwordFile,
        mountpoint: args.copyFrom.mountpoint,
      },
    });
    this.init = this.createIfMissing(name, args, common, [...scripts.resources, ...secretFiles]);
    this.jobs = this.scheduleJobs(name, args, common, files.excludeFile);
    this.registerOutputs({
      url: this.url,
      passwordFile: this.passwordFile,
      password: this.password,
      passwords: this.passwords,
      jobs: this.jobs,
    });
  }

  /** The password file (installed once, kept on delete), the S3 keys, the CA and the excludes. */
  private installFiles(
    name: string,
    args: ResticRepositoryArgs,
    files: ResticFiles,
  ): pulumi.Resource[] {
    const host = args.scripts.host;
    // No delete: the file is what opens the repository's data. A new password is an update that
    // rotates the repository's key before replacing the file.
    const passwordFile = host.command(
      `${name}-password-file`,
      {
        marker: fileMarker(host.hostName, files.passwordFile),
        create: passwordFileCommand(files.passwordFile),
        update: passwordFileCommand(files.passwordFile, {
          initScript: args.scripts.paths.init,
          initEnv: this.initEnvPath(args),
        }),
        stdin: this.password,
        secret: true,
        dependsOn: [...host.base, ...args.scripts.resources],
      },
      { parent: this, retainOnDelete: true },
    );
    const out: pulumi.Resource[] = [passwordFile];
    if (args.s3 && files.s3CredentialsFile) {
      const s3 = args.s3;
      out.push(
        new RemoteFile(
          `${name}-s3-credentials`,
          {
            host,
            path: files.s3CredentialsFile,
            content: pulumi.secret(
              pulumi
                .all([s3.accessKeyId, s3.secretAccessKey])
                .apply(([id, key]) => renderCredentialsFile(id, key)),
            ),
            secret: true,
            dependsOn: host.base,
          },
          { parent: this },
        ),
      );
    }
    if (args.caCertificate !== undefined && files.caFile) {
      out.push(
        new RemoteFile(
          `${name}-ca`,
          { host, path: files.caFile, content: args.caCertificate, dependsOn: host.base },
          { parent: this },
        ),
      );
    }
    if (!args.copyFrom) {
      out.push(
        new RemoteFile(
          `${name}-exclude`,
          {
            host,
            path: files.excludeFile,
            content: renderExcludeFile(args.excludes ?? []),
            dependsOn: host.base,
          },
          { parent: this },
        ),
      );
    }
    return out;
  }

  private initEnvPath(args: ResticRepositoryArgs): string {
    return jobFiles(args.scripts.host.paths, initJob(args.repo)).envFile;
  }

  /** restic init when the repository is missing (a copy target with its source's chunker parameters). */
  private createIfMissing(
    name: string,
    args: ResticRepositoryArgs,
    common: Record<string, string>,
    dependsOn: pulumi.Resource[],
  ): command.remote.Command {
    const host = args.scripts.host;
    const job = initJob(args.repo);
    const { env } = installJobFiles(
      `${name}-init`,
      {
        host,
        job,
        vars: {
          ...common,
          ...(args.location.kind === "s3"
            ? { INIT_ACCESS_WAIT_SECONDS: String(args.initAccessWaitSeconds ?? 300) }
            : {}),
        },
        note: `(restic init of ${args.repo})`,
        ownsResults: true,
      },
      { parent: this },
    );
    // Never deletes the repository: backups outlive the stack. A new URL is a new repository.
    return host.command(
      `${name}-init`,
      {
        create: `${shq(args.scripts.paths.init)} ${shq(env.path)}`,
        replaceOn: [this.url, args.copyFrom?.url ?? ""],
        // The first deploy creates the IAM key, its policy and the bucket in the same run: init
        // waits for all of them (and still retries while IAM propagates, restic-init.sh).
        dependsOn: [
          ...dependsOn,
          env,
          ...(args.copyFrom ? [args.copyFrom.init] : []),
          ...(args.s3?.dependsOn ?? []),
        ],
      },
      { parent: this, retainOnDelete: true },
    );
  }

  /** The backup (or copy) job with forget/prune, and the rotating check. */
  private scheduleJobs(
    name: string,
    args: ResticRepositoryArgs,
    common: Record<string, string>,
    excludeFile: string,
  ): string[] {
    const host = args.scripts.host;
    const copy = args.copyFrom !== undefined;
    const main = resticJob(args.repo);
    new ScheduledJob(
      `${name}-${copy ? "copy" : "backup"}`,
      {
        host,
        job: main,
        schedule: args.schedule,
        script: copy ? args.scripts.paths.copy : args.scripts.paths.backup,
        env: copy
          ? {
              ...common,
              FORGET_ARGS: forgetArgs(args.retention).join(" "),
              COPY_LOCK_WAIT: args.copyLockWaitSeconds ?? 3600,
            }
          : {
              ...common,
              ...backupEnv({
                paths: args.paths ?? [],
                tags: args.tags ?? [],
                retention: args.retention,
              }),
              BACKUP_EXCLUDE_FILE: excludeFile,
            },
        dependsOn: [this.init],
      },
      { parent: this },
    );
    const jobs = [main];
    // The check and the drill read only this repository: the copy source's disk need not be mounted.
    const thisRepoOnly = {
      ...common,
      FROM_NAME: "",
      FROM_URL: "",
      FROM_PASSWORD_FILE: "",
      FROM_MOUNT: "",
    };
    if (args.check) {
      const job = `${resticJob(args.repo)}-check`;
      new ScheduledJob(
        `${name}-check`,
        {
          host,
          job,
          schedule: args.check.schedule,
          script: args.scripts.paths.check,
          env: { ...thisRepoOnly, CHECK_SUBSETS: args.check.subsets },
          dependsOn: [this.init],
        },
        { parent: this },
      );
      jobs.push(job);
    }
    if (args.drill) {
      const job = resticDrillJob(args.repo);
      new ScheduledJob(
        `${name}-drill`,
        {
          host,
          job,
          schedule: args.drill.schedule,
          script: args.scripts.paths.drill,
          env: {
            ...thisRepoOnly,
            DRILL_FILES: args.drill.files,
            DRILL_MAX_MB: args.drill.maxMb,
            DRILL_SCRATCH: `${host.paths.state}/restic-scratch`,
          },
          dependsOn: [this.init],
        },
        { parent: this },
      );
      jobs.push(job);
    }
    return jobs;
  }
}
