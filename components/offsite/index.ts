// The offsite concern: the S3 bucket (versioned, encrypted, private, TLS only, dumps archived to
// Glacier by the lifecycle while restic data stays hot), one IAM user per writer scoped to its
// prefix, the dump upload job, and the NAS sync into dated hard-linked snapshots.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { dumpLock, type Bucket as BucketModel } from "../../stacks/model/offsite";
import { Host, RemoteFile, ScheduledJob, readScript } from "../host";
import { generationName } from "../../stacks/model/rotation";
import { removeFileCommand } from "../host/render";
import {
  ensureKeyCommand,
  installAuthorizedKeyCommand,
  knownHostsLine,
  removeAuthorizedKeyCommand,
  scanKnownHostsCommand,
} from "../host/ssh-trust";
import {
  authorizedKeyLine,
  bucketArn,
  bucketPolicy,
  installUserFileCommand,
  lifecycleRules,
  nasKeyComment,
  nasMinIntervalMinutes,
  requireToolsCommand,
  writerPolicy,
  writerKeyResource,
  writerUserName,
  renderCredentialsFile,
  type Writer,
  UPLOAD_JOB,
  UPLOAD_DRILL_JOB,
  NAS_JOB,
  NAS_PULL_LIB,
  nasAccount,
} from "./render";

/** An access key of one writer; the secret half is a secret output. */
export interface WriterKey {
  readonly userName: pulumi.Output<string>;
  readonly accessKeyId: pulumi.Output<string>;
  readonly secretAccessKey: pulumi.Output<string>;
}

export interface OffsiteBucketArgs {
  /** The bucket's model (stacks/model/offsite.ts, defaults filled). */
  readonly bucket: BucketModel;
  /** Give the dump uploader its own IAM user and key. Defaults to true. */
  readonly dumpWriter?: boolean;
  /** Give the restic cloud repository its own IAM user and key. Defaults to true. */
  readonly resticWriter?: boolean;
  /**
   * The key generation in use (stacks/model/rotation.ts keyGeneration): each writer has the key of
   * this generation only. A new generation creates its key, the hosts' credential files follow, and
   * the engine deletes the old key last. Defaults to 0.
   */
  readonly generation?: number;
}

/**
 * The offsite bucket. Protected: `pulumi destroy` refuses to remove it, and it is never emptied
 * by the program (no forceDestroy). Pass an aws provider through `opts.providers` to pick the
 * region and account.
 */
export class OffsiteBucket extends pulumi.ComponentResource {
  public readonly bucketName: pulumi.Output<string>;
  public readonly arn: pulumi.Output<string>;
  /** The dump uploader's key, when dumpWriter. */
  public readonly dumpWriter?: WriterKey;
  /** The restic repository's key, when resticWriter: wire into the restic component. */
  public readonly resticWriter?: WriterKey;
  public readonly bucket: aws.s3.Bucket;

  constructor(name: string, args: OffsiteBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:offsite:OffsiteBucket", name, {}, opts);
    const b = args.bucket;
    this.bucket = this.createBucket(name, b);
    this.bucketName = this.bucket.bucket;
    this.arn = pulumi.output(bucketArn(b.name));
    this.configureBucket(name, b);
    if (args.dumpWriter ?? true)
      this.dumpWriter = this.createWriter(name, b, "dumps", args.generation ?? 0);
    if (args.resticWriter ?? true)
      this.resticWriter = this.createWriter(name, b, "restic", args.generation ?? 0);
    this.registerOutputs({
      bucketName: this.bucketName,
      arn: this.arn,
      dumpWriter: this.dumpWriter,
      resticWriter: this.resticWriter,
    });
  }

  private createBucket(name: string, b: BucketModel): aws.s3.Bucket {
    return new aws.s3.Bucket(
      `${name}-bucket`,
      {
        bucket: b.name,
        objectLockEnabled: dumpLock(b) !== undefined,
        forceDestroy: false,
        tags: { "managed-by": "backup321" },
      },
      // objectLockEnabled forces a new bucket, which protect refuses: it only counts at creation,
      // and an existing bucket gets Object Lock from its BucketObjectLockConfiguration.
      { parent: this, protect: true, ignoreChanges: ["objectLockEnabled"] },
    );
  }

  private configureBucket(name: string, b: BucketModel): void {
    const bucket = this.bucketName;
    const versioning = new aws.s3.BucketVersioning(
      `${name}-versioning`,
      { bucket, versioningConfiguration: { status: "Enabled" } },
      { parent: this },
    );
    new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-encryption`,
      {
        bucket,
        rules: [
          b.kmsKeyArn
            ? {
                applyServerSideEncryptionByDefault: {
                  sseAlgorithm: "aws:kms",
                  kmsMasterKeyId: b.kmsKeyArn,
                },
                bucketKeyEnabled: true,
              }
            : { applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } },
        ],
      },
      { parent: this },
    );
    const publicAccess = new aws.s3.BucketPublicAccessBlock(
      `${name}-public-access`,
      {
        bucket,
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      { parent: this },
    );
    new aws.s3.BucketPolicy(
      `${name}-policy`,
      { bucket, policy: JSON.stringify(bucketPolicy(b.name)) },
      { parent: this, dependsOn: [publicAccess] },
    );
    new aws.s3.BucketLifecycleConfiguration(
      `${name}-lifecycle`,
      { bucket, rules: lifecycleRules(b) },
      { parent: this, dependsOn: [versioning] },
    );
    if (dumpLock(b)) {
      // Enabled, with no default retention: a default retention makes every restic PutObject fail
      // (restic issue 2202: Content-MD5 required with Object Lock parameters), so the uploader
      // sets a retention on each dump object itself. Needs versioning first.
      new aws.s3.BucketObjectLockConfiguration(
        `${name}-object-lock`,
        { bucket, objectLockEnabled: "Enabled" },
        { parent: this, dependsOn: [versioning] },
      );
    }
  }

  private createWriter(
    name: string,
    b: BucketModel,
    writer: Writer,
    generation: number,
  ): WriterKey {
    const prefix = writer === "dumps" ? b.dumpPrefix : b.resticPrefix;
    const user = new aws.iam.User(
      `${name}-${writer}-user`,
      {
        name: writerUserName(b.name, writer),
        path: "/backup321/",
        tags: { "managed-by": "backup321", bucket: b.name, prefix },
      },
      { parent: this },
    );
    new aws.iam.UserPolicy(
      `${name}-${writer}-policy`,
      {
        name: `${writer}-${prefix.replace(/[^A-Za-z0-9]+/g, "-").replace(/-$/, "")}`,
        user: user.name,
        policy: JSON.stringify(
          writerPolicy(b.name, writer, prefix, {
            retention: writer === "dumps" && dumpLock(b) !== undefined,
            ...(b.kmsKeyArn ? { kms: { keyArn: b.kmsKeyArn, region: b.region } } : {}),
          }),
        ),
      },
      { parent: this },
    );
    const key = new aws.iam.AccessKey(
      // A new name per generation, never a replacement of the same one: the engine creates the new
      // key, updates what uses it, and deletes the old key at the end (IAM allows two per user).
      generationName(writerKeyResource(name, writer), generation),
      { user: user.name },
      { parent: this },
    );
    return {
      userName: user.name,
      accessKeyId: key.id,
      secretAccessKey: pulumi.secret(key.secret),
    };
  }
}

export interface DumpUploadArgs {
  /** The host holding the verified fulls (the MariaDB host). */
  readonly host: Host;
  /** Bucket name. */
  readonly bucket: string;
  /** AWS region of the bucket. */
  readonly region: string;
  /** Key prefix of dumps. */
  readonly prefix: string;
  /**
   * Directory of the full backups and their manifests. Defaults to none: no full is sent, only the
   * binlogs of `binlogs` and `stream` (the stream host).
   */
  readonly backupDir?: string;
  /** Cron schedule of the upload. */
  readonly schedule: string;
  /** The dump writer's access key id. */
  readonly accessKeyId: pulumi.Input<string>;
  /** The dump writer's secret key (a secret; reaches the host only as a 0600 file). */
  readonly secretAccessKey: pulumi.Input<string>;
  /** KMS key for the uploads' server-side encryption. Defaults to SSE-S3 (AES256). */
  readonly kmsKeyArn?: string;
  /** S3 endpoint override (tests: s3rver). Defaults to AWS. */
  readonly endpoint?: string;
  /** CA bundle trusted for the endpoint. Defaults to the system's. */
  readonly caBundle?: string;
  /** aws CLI request checksums: when_required for S3 servers without aws-chunked. Defaults to when_supported. */
  readonly checksumCalculation?: "when_supported" | "when_required";
  /** Warn when the newest verified full is older than this. Defaults to 192 (8 days). */
  readonly maxAgeHours?: number;
  /** Job name on the host. Defaults to offsite-upload. */
  readonly job?: string;
  /**
   * Object Lock retention set on every object the job writes (the bucket must have Object Lock
   * enabled), proved by reading it back. Defaults to none: objects are only versioned.
   */
  readonly objectLock?: { readonly mode: "GOVERNANCE" | "COMPLIANCE"; readonly days: number };
  /**
   * The binlog shipper's verified copies (compressed and encrypted by the shipper, named by the
   * binlog's identity), sent as they are to `<prefix>binlogs/` on every run (the daily offsite
   * increment). Defaults to none: only fulls are sent.
   */
  readonly binlogs?: {
    /** Directory of the shipped binlogs (each verified copy has its `<copy>.sha256`). */
    readonly dir: string;
    /** The server's binlog basename (full path or file name, e.g. /var/log/mysql/mysql-bin). */
    readonly basename: string;
  };
  /**
   * The binlog stream's sealed files (mariadb.stream, on this host: compressed and encrypted by
   * mariadb-stream.sh as the shipper seals its copies), sent as they are to `<prefix>binlog-stream/`
   * on every run; its open file in live/ never is. Defaults to none.
   */
  readonly stream?: {
    /** The stream's directory (mariadb.stream.dir). */
    readonly dir: string;
    /** The server's binlog basename (full path or file name), as for `binlogs`. */
    readonly basename: string;
  };
  /**
   * Restore drill of the uploaded fulls (offsite-drill.sh): the newest full downloaded with the
   * writer's key (get and list only), checked, decrypted and prepared. Needs the MariaDB key and
   * mariadb-lib.sh on this host (the MariaDB host). Defaults to none.
   */
  readonly drill?: UploadDrill;
}

export interface UploadDrill {
  /** Cron schedule of the drill. */
  readonly schedule: string;
  /** The MariaDB encryption key file on the host (0600). */
  readonly keyFile: string;
  /** The stack's key fingerprint (the drill refuses another key file). */
  readonly keyFingerprint: pulumi.Input<string>;
  /** Every MariaDB key ever used (rotation): a full made before a rotation opens with its own. */
  readonly keyringFile?: string;
  /** What must be on the host first (the MariaDB key and scripts). */
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * The upload of the newest verified full (sent when new, i.e. weekly), of every verified shipped
 * binlog and of every sealed file of the binlog stream not yet in the bucket (daily) to the bucket's
 * dump prefix (offsite-upload.sh).
 */
export class DumpUpload extends pulumi.ComponentResource {
  public readonly job: ScheduledJob;
  /** The restore drill, when `drill` is set. */
  public readonly drill?: ScheduledJob;
  public readonly credentialsFile: string;

  constructor(name: string, args: DumpUploadArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:offsite:DumpUpload", name, {}, opts);
    const { host } = args;
    const jobName = args.job ?? UPLOAD_JOB;
    const basename = binlogBasename(this, args);
    this.credentialsFile = `${host.paths.secrets}/${jobName}-aws`;
    const scriptFile = host.installScript(`${name}-script`, __dirname, "offsite-upload.sh", {
      parent: this,
    });
    const credentials = new RemoteFile(
      `${name}-credentials`,
      {
        host,
        path: this.credentialsFile,
        content: pulumi.secret(
          pulumi
            .all([args.accessKeyId, args.secretAccessKey])
            .apply(([id, key]) => renderCredentialsFile(id, key)),
        ),
        secret: true,
        dependsOn: host.base,
      },
      { parent: this },
    );
    const env: Record<string, string> = {
      ...(args.backupDir
        ? {
            OFFSITE_BACKUP_DIR: args.backupDir,
            OFFSITE_MAX_AGE_HOURS: String(args.maxAgeHours ?? 192),
          }
        : {}),
      OFFSITE_CREDENTIALS: this.credentialsFile,
      OFFSITE_PREFIX: args.prefix,
      OFFSITE_REGION: args.region,
      OFFSITE_SSE: args.kmsKeyArn ? "aws:kms" : "AES256",
      ...(args.kmsKeyArn ? { OFFSITE_KMS_KEY_ID: args.kmsKeyArn } : {}),
      ...(args.endpoint ? { OFFSITE_ENDPOINT: args.endpoint } : {}),
      ...(args.caBundle ? { OFFSITE_CA_BUNDLE: args.caBundle } : {}),
      ...(args.checksumCalculation
        ? { OFFSITE_CHECKSUM_CALCULATION: args.checksumCalculation }
        : {}),
      ...(args.objectLock
        ? {
            OFFSITE_LOCK_DAYS: String(args.objectLock.days),
            OFFSITE_LOCK_MODE: args.objectLock.mode,
          }
        : {}),
      ...(basename ? { OFFSITE_BINLOG_BASENAME: basename } : {}),
      ...(args.binlogs ? { OFFSITE_BINLOG_DIR: args.binlogs.dir } : {}),
      ...(args.stream ? { OFFSITE_STREAM_DIR: args.stream.dir } : {}),
    };
    this.job = new ScheduledJob(
      `${name}-job`,
      {
        host,
        job: jobName,
        schedule: args.schedule,
        script: scriptFile.path,
        env: { ...env, OFFSITE_BUCKET: args.bucket },
        dependsOn: [scriptFile, credentials],
      },
      { parent: this },
    );
    if (args.drill) this.drill = this.scheduleDrill(name, args, args.drill, credentials);
    this.registerOutputs({ credentialsFile: this.credentialsFile, envFile: this.job.envFile });
  }

  /** The drill reads with the upload's credentials file: the writer's key can get and list its prefix. */
  private scheduleDrill(
    name: string,
    args: DumpUploadArgs,
    drill: UploadDrill,
    credentials: pulumi.Resource,
  ): ScheduledJob {
    const { host } = args;
    const script = host.installScript(`${name}-drill-script`, __dirname, "offsite-drill.sh", {
      parent: this,
    });
    return new ScheduledJob(
      `${name}-drill`,
      {
        host,
        job: UPLOAD_DRILL_JOB,
        schedule: drill.schedule,
        script: script.path,
        env: pulumi.output(drill.keyFingerprint).apply((fp) => ({
          OFFSITE_BUCKET: args.bucket,
          OFFSITE_CREDENTIALS: this.credentialsFile,
          OFFSITE_PREFIX: args.prefix,
          OFFSITE_REGION: args.region,
          ...(args.endpoint ? { OFFSITE_ENDPOINT: args.endpoint } : {}),
          ...(args.caBundle ? { OFFSITE_CA_BUNDLE: args.caBundle } : {}),
          ...(args.checksumCalculation
            ? { OFFSITE_CHECKSUM_CALCULATION: args.checksumCalculation }
            : {}),
          MARIADB_KEY_FILE: drill.keyFile,
          MARIADB_KEY_FINGERPRINT: fp,
          ...(drill.keyringFile ? { MARIADB_KEYRING: drill.keyringFile } : {}),
          DRILL_SCRATCH: `${host.paths.state}/offsite-scratch`,
        })),
        dependsOn: [script, credentials, ...(drill.dependsOn ?? [])],
      },
      { parent: this },
    );
  }
}

/**
 * The binlog file name (mysql-bin) the upload's binlogs and stream share; the job sends nothing but
 * what these name, so at least one of backupDir, binlogs and stream is needed.
 */
function binlogBasename(self: pulumi.Resource, args: DumpUploadArgs): string | undefined {
  const names = [args.binlogs?.basename, args.stream?.basename]
    .filter((b): b is string => b !== undefined)
    .map((b) => b.slice(b.lastIndexOf("/") + 1));
  if (names.some((n) => n !== names[0]))
    throw new pulumi.ResourceError(
      `binlogs.basename "${names[0]}" and stream.basename "${names[1]}" differ: both are the server's binlog basename (mariadb.binlogBasename)`,
      self,
    );
  if (!args.backupDir && names.length === 0)
    throw new pulumi.ResourceError(
      "nothing to upload: give backupDir (the fulls), binlogs (the shipped binlogs) or stream (the binlog stream's directory)",
      self,
    );
  return names[0];
}

export interface NasSyncArgs {
  /** The host whose backup directories are copied (it runs the job and holds the key). */
  readonly host: Host;
  /** The NAS (a storage-only host: only rsync and a POSIX shell are needed there). */
  readonly nas: Host;
  /** Address, port and user the source host dials (usually the NAS host's own). */
  readonly nasAddress: string;
  /** Defaults to 22. */
  readonly nasPort?: number;
  /** Defaults to the NAS host's SSH user. */
  readonly nasUser?: string;
  /** Pinned NAS host key line; when unset, the source host scans it once (trust on first use). */
  readonly nasHostKey?: string;
  /** Directory on the NAS holding the dated snapshots. */
  readonly path: string;
  /** Local directories copied into each snapshot (full paths kept). */
  readonly sources: readonly string[];
  /**
   * rsync exclude patterns: what under the sources is never copied (a path is matched with the
   * source's full path, e.g. /backups/binlog-stream/live/). Defaults to none.
   */
  readonly excludes?: readonly string[];
  /**
   * Another NasSync to the same NAS account whose receiver this one's key uses too (another source
   * host syncing to its own path): the receiver is installed and removed with that one only.
   * Defaults to none: this one installs it.
   */
  readonly sharedReceiver?: NasSync;
  /** Snapshots the NAS keeps. */
  readonly keep: number;
  /** Minutes a finished snapshot is kept whatever `keep` says (a flood of new snapshots cannot push it out). Defaults to 2880 (48 h). */
  readonly minAgeMinutes?: number;
  /** Minutes after an accepted snapshot during which the NAS refuses another (a compromised sender cannot flood it). Defaults to half the shortest gap between two runs of `schedule`. */
  readonly minIntervalMinutes?: number;
  readonly schedule: string;
  /** The NAS user's home. Defaults to /root for root, else /home/<user>. */
  readonly nasHome?: string;
  /** The NAS user's authorized_keys. Defaults to <nasHome>/.ssh/authorized_keys. */
  readonly authorizedKeysFile?: string;
  /** Job name on the source host. Defaults to nas-sync. */
  readonly job?: string;
  /**
   * Read-back drill of the newest snapshot (nas-drill.sh), through the NAS's read-only path with
   * the same key. Defaults to none.
   */
  readonly drill?: {
    /** Cron schedule of the drill. */
    readonly schedule: string;
  };
}

/**
 * rsync to dated, hard-linked snapshot directories on the NAS. The source host gets its own
 * ed25519 key (made on the host; only the public half is read back); on the NAS that key is
 * restricted to a forced command, nas-receive.sh, which only accepts new snapshots and applies
 * the retention itself: it accepts exactly nas-sync.sh's rsync command line, names each snapshot by
 * its own clock, refuses empty ones and more than one per `minIntervalMinutes`, and logs every
 * refusal in `<path>/.refused` on the NAS (the next snapshot reports them to the job as a warning).
 */
export class NasSync extends pulumi.ComponentResource {
  public readonly job: ScheduledJob;
  /** The read-back drill, when `drill` is set. */
  public readonly drill?: ScheduledJob;
  public readonly publicKey: pulumi.Output<string>;
  public readonly keyFile: string;
  public readonly receiver: string;
  /** The command that installs the receiver on the NAS (the sharedReceiver's when given). */
  public readonly receiverCommand: pulumi.Resource;

  constructor(name: string, args: NasSyncArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:offsite:NasSync", name, {}, opts);
    const { host, nas } = args;
    const jobName = args.job ?? NAS_JOB;
    const nasUser = args.nasUser ?? nas.user;
    const nasPort = args.nasPort ?? 22;
    const {
      home,
      authorizedKeys,
      receiver: receiverPath,
    } = nasAccount(nasUser, args.nasHome, args.authorizedKeysFile);
    this.receiver = receiverPath;
    this.keyFile = `${host.paths.secrets}/${jobName}_ed25519`;
    const knownHosts = `${host.paths.etc}/${jobName}.known_hosts`;

    // No delete: the key opens the NAS for every snapshot this host sends.
    const key = host.command(
      `${name}-key`,
      {
        create: ensureKeyCommand(this.keyFile, nasKeyComment(host.hostName)),
        dependsOn: host.base,
      },
      { parent: this },
    );
    this.publicKey = key.stdout.apply((s) => s.trim());

    // The NAS account has no sudo: its commands run as itself, owner stamps in its home.
    const onNas = { asLoginUser: true, ownersDir: `${home}/.backup321/owners` };
    if (args.sharedReceiver && args.sharedReceiver.receiver !== this.receiver)
      throw new pulumi.ResourceError(
        `the shared receiver is ${args.sharedReceiver.receiver}, but this NAS account's is ${this.receiver} (the same NAS user and home)`,
        this,
      );
    const receiver = (this.receiverCommand =
      args.sharedReceiver?.receiverCommand ??
      nas.command(
        `${name}-receiver`,
        {
          ...onNas,
          create: [
            requireToolsCommand(["rsync"], nas.hostName),
            installUserFileCommand(this.receiver, "0700"),
          ].join("\n"),
          delete: removeFileCommand(this.receiver),
          owns: this.receiver,
          stdin: readScript(__dirname, "nas-receive.sh"),
        },
        { parent: this },
      ));
    const line = this.publicKey.apply(
      (publicKey) =>
        authorizedKeyLine({
          receiver: this.receiver,
          path: args.path,
          keep: args.keep,
          minAgeMinutes: args.minAgeMinutes ?? 2880,
          minIntervalMinutes: args.minIntervalMinutes ?? nasMinIntervalMinutes(args.schedule),
          publicKey,
          sourceHost: host.hostName,
        }) + "\n",
    );
    const authorized = nas.command(
      `${name}-authorized-key`,
      {
        ...onNas,
        create: installAuthorizedKeyCommand(authorizedKeys, nasKeyComment(host.hostName)),
        delete: removeAuthorizedKeyCommand(authorizedKeys, nasKeyComment(host.hostName)),
        owns: `authorized-key:${authorizedKeys}:${host.hostName}`,
        stdin: line,
        dependsOn: [receiver],
      },
      { parent: this },
    );
    const pinned: pulumi.Resource = args.nasHostKey
      ? new RemoteFile(
          `${name}-known-hosts`,
          {
            host,
            path: knownHosts,
            content: knownHostsLine(args.nasAddress, nasPort, args.nasHostKey),
            dependsOn: host.base,
          },
          { parent: this },
        )
      : host.command(
          `${name}-known-hosts`,
          {
            create: scanKnownHostsCommand(knownHosts, args.nasAddress, nasPort),
            delete: removeFileCommand(knownHosts),
            owns: knownHosts,
            dependsOn: host.base,
          },
          { parent: this },
        );
    const scriptFile = host.installScript(`${name}-script`, __dirname, "nas-sync.sh", {
      parent: this,
    });
    const nasEnv = {
      NAS_ADDRESS: args.nasAddress,
      NAS_KEY: this.keyFile,
      NAS_KNOWN_HOSTS: knownHosts,
      NAS_PATH: args.path,
      NAS_PORT: nasPort,
      NAS_SOURCES: args.sources.join(" "),
      NAS_USER: nasUser,
      ...(args.excludes && args.excludes.length > 0
        ? { NAS_EXCLUDES: excludesEnv(this, args.excludes) }
        : {}),
    };
    this.job = new ScheduledJob(
      `${name}-job`,
      {
        host,
        job: jobName,
        schedule: args.schedule,
        script: scriptFile.path,
        env: nasEnv,
        dependsOn: [scriptFile, key, authorized, pinned],
      },
      { parent: this },
    );
    if (args.drill) {
      const drillScript = host.installScript(`${name}-drill-script`, __dirname, "nas-drill.sh", {
        parent: this,
      });
      const pullLib = host.installScript(`${name}-drill-lib`, __dirname, NAS_PULL_LIB, {
        parent: this,
      });
      this.drill = new ScheduledJob(
        `${name}-drill`,
        {
          host,
          job: `${jobName}-drill`,
          schedule: args.drill.schedule,
          script: drillScript.path,
          env: {
            ...nasEnv,
            DRILL_SCRATCH: `${host.paths.state}/nas-scratch`,
          },
          dependsOn: [drillScript, pullLib, key, authorized, pinned],
        },
        { parent: this },
      );
    }
    this.registerOutputs({ publicKey: this.publicKey, receiver: this.receiver });
  }
}

/** NAS_EXCLUDES: the patterns, one word each (nas-sync.sh splits them on spaces). */
function excludesEnv(self: pulumi.Resource, excludes: readonly string[]): string {
  const bad = excludes.find((e) => !/^[A-Za-z0-9._/*@+-]+$/.test(e));
  if (bad !== undefined)
    throw new pulumi.ResourceError(
      `exclude pattern "${bad}" must be one word of letters, digits, . _ / * @ + -`,
      self,
    );
  return excludes.join(" ");
}
