// Pure functions for the offsite concern: the bucket's lifecycle rules and policy, the IAM policy of
// each writer, the files pushed to hosts, and the NAS-side authorized_keys line.
import type { Bucket } from "../../stacks/model/offsite";
import { shq } from "../host/render";
import { keyComment } from "../host/ssh-trust";
import { runTimesIn } from "../../stacks/schedule";
export { renderCredentialsFile } from "../host/render";

/** The partition-aws ARN of a bucket (eu-west-3 and every commercial region). */
export function bucketArn(bucketName: string): string {
  return `arn:aws:s3:::${bucketName}`;
}

/** A lifecycle rule as `aws.s3.BucketLifecycleConfiguration` takes it. */
export interface LifecycleRule {
  readonly id: string;
  readonly status: "Enabled";
  readonly filter: { readonly prefix?: string };
  readonly transitions?: { readonly days: number; readonly storageClass: string }[];
  readonly expiration?: { readonly days?: number; readonly expiredObjectDeleteMarker?: boolean };
  readonly noncurrentVersionExpiration?: { readonly noncurrentDays: number };
  readonly abortIncompleteMultipartUpload?: { readonly daysAfterInitiation: number };
}

/** Days after which an incomplete multipart upload is aborted (its parts are billed until then). */
export const ABORT_MULTIPART_DAYS = 7;

/** The dump upload's job name (its env file names the bucket, region and key file). */
export const UPLOAD_JOB = "offsite-upload";

/** The NAS sync's job name (its env file names the NAS, its pinned host key and the sync key). */
export const NAS_JOB = "nas-sync";
/** The library of the NAS read-back (pull and checks), shared by nas-drill.sh and the standby's DR drill. */
export const NAS_PULL_LIB = "nas-pull.sh";

/** The NAS copy's read-back drill (the monitor checks its result like a restore test). */
export const NAS_DRILL_JOB = `${NAS_JOB}-drill`;

/** The offsite dumps' restore drill (the monitor checks its result like a restore test). */
export const UPLOAD_DRILL_JOB = `${UPLOAD_JOB}-drill`;

/** What the lifecycle needs from the bucket model (defaults filled by stacks/). */
export type LifecycleSpec = Pick<
  Bucket,
  "dumpPrefix" | "resticPrefix" | "transitions" | "expireDumpsAfterDays" | "noncurrentDays"
>;

/** The transitions in effect: the model's, or GLACIER after 30 days on the dump prefix. */
export function effectiveTransitions(b: LifecycleSpec): NonNullable<Bucket["transitions"]> {
  return b.transitions ?? [{ prefix: b.dumpPrefix, days: 30, storageClass: "GLACIER" }];
}

function overlaps(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}

function ruleId(prefix: string): string {
  return `archive-${prefix.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "") || "all"}`;
}

/**
 * The bucket's lifecycle: dumps (the fulls and, under <dumpPrefix>binlogs/, the binlogs uploaded
 * after them, so expiring with the same days never drops a binlog before its full) move to their
 * archive class and expire; other archived prefixes
 * only move; noncurrent versions expire; incomplete multipart uploads are aborted. Nothing under
 * the restic prefix is ever transitioned (restic cannot read archived objects, restic issue 4583):
 * the model checks refuse that earlier, and this throws rather than render such a rule.
 */
export function lifecycleRules(b: LifecycleSpec): LifecycleRule[] {
  const transitions = effectiveTransitions(b);
  for (const t of transitions) {
    if (t.prefix === "" || overlaps(t.prefix, b.resticPrefix)) {
      throw new Error(
        `a transition on "${t.prefix}" would move restic data under "${b.resticPrefix}" to ${t.storageClass} (restic issue 4583)`,
      );
    }
  }
  const byPrefix = new Map<string, { days: number; storageClass: string }[]>();
  byPrefix.set(b.dumpPrefix, []);
  for (const t of transitions) {
    byPrefix.set(t.prefix, [
      ...(byPrefix.get(t.prefix) ?? []),
      { days: t.days, storageClass: t.storageClass },
    ]);
  }
  const rules: LifecycleRule[] = [
    {
      id: "dumps",
      status: "Enabled",
      filter: { prefix: b.dumpPrefix },
      ...(byPrefix.get(b.dumpPrefix)!.length > 0
        ? { transitions: [...byPrefix.get(b.dumpPrefix)!].sort((x, y) => x.days - y.days) }
        : {}),
      expiration: { days: b.expireDumpsAfterDays },
    },
  ];
  for (const [prefix, ts] of [...byPrefix].sort(([x], [y]) => x.localeCompare(y))) {
    if (prefix === b.dumpPrefix) continue;
    rules.push({
      id: ruleId(prefix),
      status: "Enabled",
      filter: { prefix },
      transitions: [...ts].sort((x, y) => x.days - y.days),
    });
  }
  rules.push(
    {
      id: "noncurrent-versions",
      status: "Enabled",
      filter: {},
      noncurrentVersionExpiration: { noncurrentDays: b.noncurrentDays },
      expiration: { expiredObjectDeleteMarker: true },
    },
    {
      id: "abort-incomplete-multipart",
      status: "Enabled",
      filter: {},
      abortIncompleteMultipartUpload: { daysAfterInitiation: ABORT_MULTIPART_DAYS },
    },
  );
  return rules;
}

/** An IAM / bucket policy statement. */
export interface Statement {
  readonly Sid: string;
  readonly Effect: "Allow" | "Deny";
  readonly Principal?: "*";
  readonly Action: string | string[];
  readonly Resource: string | string[];
  readonly Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  readonly Version: "2012-10-17";
  readonly Statement: Statement[];
}

/** The bucket policy: every request without TLS is denied, whoever makes it. */
export function bucketPolicy(bucketName: string): PolicyDocument {
  const arn = bucketArn(bucketName);
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [arn, `${arn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  };
}

/** Who writes to the bucket; each gets its own IAM user and key. */
export type Writer = "dumps" | "restic";

/**
 * The least a writer needs on its own prefix.
 * dumps: put (multipart included), read back for the post-upload check, list its prefix, abort
 * its own failed multipart uploads; never delete (old dumps leave only by the lifecycle). With
 * `retention` (Object Lock on), also set and read each object's retention: never
 * s3:BypassGovernanceRetention, so it can lengthen a lock but not shorten or remove it.
 * restic: get/put/delete/list (restic removes lock files and pruned packs; with versioning the
 * deleted objects stay recoverable until the noncurrent versions expire).
 */
export function writerPolicy(
  bucketName: string,
  writer: Writer,
  prefix: string,
  opts: {
    readonly retention?: boolean;
    /** The bucket's SSE-KMS key: S3 uses it on the writer's behalf (puts, multipart, reads). */
    readonly kms?: { readonly keyArn: string; readonly region: string };
  } = {},
): PolicyDocument {
  const arn = bucketArn(bucketName);
  const objects = `${arn}/${prefix}*`;
  // Only through S3 in the bucket's region: the key cannot be used directly with these credentials.
  const kms: Statement[] = opts.kms
    ? [
        {
          Sid: "BucketKmsKeyThroughS3",
          Effect: "Allow",
          Action: ["kms:Decrypt", "kms:GenerateDataKey"],
          Resource: opts.kms.keyArn,
          Condition: { StringEquals: { "kms:ViaService": `s3.${opts.kms.region}.amazonaws.com` } },
        },
      ]
    : [];
  const list: Statement = {
    Sid: "ListOwnPrefix",
    Effect: "Allow",
    Action: "s3:ListBucket",
    Resource: arn,
    Condition: { StringLike: { "s3:prefix": [`${prefix}*`] } },
  };
  switch (writer) {
    case "dumps":
      return {
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "WriteAndReadBackDumps",
            Effect: "Allow",
            Action: [
              "s3:AbortMultipartUpload",
              "s3:GetObject",
              ...(opts.retention ? ["s3:GetObjectRetention"] : []),
              "s3:PutObject",
              ...(opts.retention ? ["s3:PutObjectRetention"] : []),
              // RUNBOOK.md's recovery brings a full back from Glacier with this key
              "s3:RestoreObject",
            ],
            Resource: objects,
          },
          list,
          ...kms,
        ],
      };
    case "restic":
      return {
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "ResticRepository",
            Effect: "Allow",
            Action: ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            Resource: objects,
          },
          list,
          {
            Sid: "BucketLocation",
            Effect: "Allow",
            Action: "s3:GetBucketLocation",
            Resource: arn,
          },
          ...kms,
        ],
      };
    default: {
      const never: never = writer;
      throw new Error(`unknown writer ${String(never)}`);
    }
  }
}

/** The comment that marks a source host's key in the NAS's authorized_keys. */
export function nasKeyComment(sourceHost: string): string {
  return keyComment("nas-sync", sourceHost);
}

/**
 * The NAS-side authorized_keys line for the source host's sync key: `restrict` (no shell, pty or
 * forwarding) and a forced command, the receiver, so the key can only add snapshots under `path`;
 * retention is the NAS's own (`keep`, by its own clock), so the source host cannot delete older
 * snapshots, nor push them out faster than one new snapshot per `minIntervalMinutes`.
 */
export function authorizedKeyLine(spec: {
  readonly receiver: string;
  readonly path: string;
  readonly keep: number;
  /** Minutes during which a finished snapshot is never removed, whatever keep says. */
  readonly minAgeMinutes: number;
  /** Minutes after an accepted snapshot during which the NAS refuses the next one (0: no limit). */
  readonly minIntervalMinutes: number;
  readonly publicKey: string;
  readonly sourceHost: string;
}): string {
  const key = spec.publicKey.trim().split(/\s+/).slice(0, 2).join(" ");
  if (!/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(key))
    throw new Error(`"${spec.publicKey}" is not an ed25519 public key`);
  for (const p of [spec.receiver, spec.path])
    if (!/^\/[A-Za-z0-9._/@+-]*$/.test(p)) throw new Error(`"${p}" must be a plain absolute path`);
  if (!Number.isInteger(spec.keep) || spec.keep < 1)
    throw new Error(`keep ${spec.keep} must be a positive integer`);
  if (!Number.isInteger(spec.minAgeMinutes) || spec.minAgeMinutes < 0)
    throw new Error(`minAgeMinutes ${spec.minAgeMinutes} must be a whole number`);
  if (!Number.isInteger(spec.minIntervalMinutes) || spec.minIntervalMinutes < 0)
    throw new Error(`minIntervalMinutes ${spec.minIntervalMinutes} must be a whole number`);
  const params = [spec.path, spec.keep, spec.minAgeMinutes, spec.minIntervalMinutes].join(" ");
  return `restrict,command="${spec.receiver} ${params}" ${key} ${nasKeyComment(spec.sourceHost)}`;
}

/**
 * Where backup321 lives in the NAS account: its home (/root for root, else /home/<user>, unless
 * given), its authorized_keys and the receiver, the forced command of every key there.
 */
export function nasAccount(
  user: string,
  home?: string,
  authorizedKeysFile?: string,
): { home: string; authorizedKeys: string; receiver: string } {
  const h = home ?? (user === "root" ? "/root" : `/home/${user}`);
  return {
    home: h,
    authorizedKeys: authorizedKeysFile ?? `${h}/.ssh/authorized_keys`,
    receiver: `${h}/.backup321/nas-receive.sh`,
  };
}

/** The comment that marks a reader's key (a standby's disaster-recovery drill) on the NAS. */
export function nasReaderKeyComment(readerHost: string): string {
  return keyComment("nas-read", readerHost);
}

/**
 * The NAS-side authorized_keys line for a reader's key (a standby host that rebuilds the database
 * from the NAS in its drill): `restrict` and the receiver in read-only mode, so the key can ask for
 * the newest snapshot's name and read that snapshot, and nothing else (every other command is
 * refused and recorded in `<path>/.refused`).
 */
export function readOnlyKeyLine(spec: {
  readonly receiver: string;
  readonly path: string;
  readonly publicKey: string;
  readonly readerHost: string;
}): string {
  const key = spec.publicKey.trim().split(/\s+/).slice(0, 2).join(" ");
  if (!/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(key))
    throw new Error(`"${spec.publicKey}" is not an ed25519 public key`);
  for (const p of [spec.receiver, spec.path])
    if (!/^\/[A-Za-z0-9._/@+-]*$/.test(p)) throw new Error(`"${p}" must be a plain absolute path`);
  return `restrict,command="${spec.receiver} --read-only ${spec.path}" ${key} ${nasReaderKeyComment(spec.readerHost)}`;
}

/**
 * The default minimum interval between two snapshots the NAS accepts: half the shortest gap
 * between two runs of the sync's schedule (over a fortnight, UTC), so a late or retried run still
 * passes while a flood from a compromised sender does not.
 */
export function nasMinIntervalMinutes(schedule: string): number {
  const from = Date.UTC(2028, 0, 3);
  const times = runTimesIn(schedule, "UTC", from, from + 14 * 24 * 3600_000);
  let gap = 7 * 24 * 60;
  for (let i = 1; i < times.length; i++) gap = Math.min(gap, (times[i] - times[i - 1]) / 60_000);
  return Math.floor(gap / 2);
}

/**
 * Installs stdin as an executable file owned by the connecting user (the NAS receiver): the NAS
 * has no backup321 library and often no root, so this is RemoteFile without chown or sudo.
 */
export function installUserFileCommand(file: string, mode: string): string {
  if (!/^0[0-7]{3}$/.test(mode)) throw new Error(`mode "${mode}" must be octal like 0700`);
  const f = shq(file);
  const dir = shq(file.slice(0, file.lastIndexOf("/")) || "/");
  return [
    "set -eu",
    `mkdir -p -m 0700 -- ${dir}`,
    `tmp=$(mktemp -- ${f}.b321.XXXXXX)`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `cat > "$tmp"`,
    `if cmp -s -- "$tmp" ${f}; then exit 0; fi`,
    `chmod ${mode} -- "$tmp"`,
    `mv -f -- "$tmp" ${f}`,
    "trap - EXIT",
  ].join("\n");
}

/** Fails with a clear message when a tool the NAS side needs is missing there. */
export function requireToolsCommand(tools: readonly string[], where: string): string {
  const list = tools.map(shq).join(" ");
  return `for t in ${list}; do command -v "$t" >/dev/null 2>&1 || { echo "backup321: $t is missing on ${where} (install it)" >&2; exit 1; }; done`;
}

/** IAM user names are at most 64 characters: the bucket name is shortened, the writer kept. */
export function writerUserName(bucketName: string, writer: Writer): string {
  return `${bucketName.slice(0, 64 - writer.length - 1)}-${writer}`;
}

/** The access key of a bucket writer ("dumps" or "restic") of an OffsiteBucket named BUCKET. */
export const writerKeyResource = (bucket: string, writer: Writer) => `${bucket}-${writer}-key`;
