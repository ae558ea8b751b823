// The offsite S3 bucket (dumps under their own prefix go to Glacier; restic data never does),
// the dump upload job and the NAS sync (source MariaDB §16.10.7, docs/sources.md).
import { z } from "zod";
import { absPath, cron, keyPrefix, name } from "../primitives";

export const storageClasses = [
  "GLACIER",
  "DEEP_ARCHIVE",
  "GLACIER_IR",
  "STANDARD_IA",
  "ONEZONE_IA",
] as const;

export const bucket = z.strictObject({
  /** Bucket name (globally unique). */
  name: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      "must be an S3 bucket name (e.g. atlastech-backups)",
    ),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-[0-9]$/, "must be an AWS region (e.g. eu-west-3)")
    .default("eu-west-3"),
  /** Prefix of encrypted database dumps. Defaults to database/. */
  dumpPrefix: keyPrefix.default("database/"),
  /** Prefix of restic repositories: never transitioned to an archive class. Defaults to restic/. */
  resticPrefix: keyPrefix.default("restic/"),
  /** Lifecycle transitions of the dump prefix. Defaults to GLACIER after 30 days. */
  transitions: z
    .array(
      z.strictObject({
        prefix: z.string(),
        days: z.number().int().nonnegative(),
        storageClass: z.enum(storageClasses),
      }),
    )
    .optional(),
  /** Dumps expire after this many days. Defaults to 365. */
  expireDumpsAfterDays: z.number().int().positive().default(365),
  /**
   * Days an overwritten or deleted object stays recoverable as a noncurrent version: the only way
   * back for a restic object (restic's prefix is not locked). Must cover the time to notice a
   * problem with the cloud restic repository. Defaults to 30.
   */
  noncurrentDays: z.number().int().positive().default(30),
  /**
   * Object Lock on what the dump uploader writes (fulls, manifests, binlogs under dumpPrefix): each
   * object version gets a retention of `days` in `mode` (GOVERNANCE: only a user with
   * s3:BypassGovernanceRetention can shorten it; COMPLIANCE: no one, not even the root account).
   * Not a bucket default retention: restic cannot write to a bucket with one (restic issue 2202).
   * `false` for an S3 service without Object Lock: the dumps are then only versioned.
   * Defaults to GOVERNANCE for 35 days.
   */
  objectLock: z
    .union([
      z.literal(false),
      z.strictObject({
        mode: z.enum(["GOVERNANCE", "COMPLIANCE"]).default("GOVERNANCE"),
        /**
         * At least the local retention of fulls (4 weekly fulls: 28 days, 29 across a clock
         * change). Defaults to 35: one more week, so the copy of the oldest kept full is still
         * locked for a week after the host drops it (a missed or late full).
         */
        days: z.number().int().positive().default(35),
      }),
    ])
    .default({ mode: "GOVERNANCE", days: 35 }),
  /** KMS key ARN for default encryption; SSE-S3 when unset. */
  kmsKeyArn: z.string().optional(),
});
export type Bucket = z.infer<typeof bucket>;
export type ObjectLock = Exclude<Bucket["objectLock"], false>;

/** The dumps' Object Lock, or undefined when turned off. */
export function dumpLock(b: Pick<Bucket, "objectLock">): ObjectLock | undefined {
  return b.objectLock === false ? undefined : b.objectLock;
}

export const upload = z.strictObject({
  /** Host (by name) that uploads the newest verified full. Defaults to the MariaDB host. */
  host: name.optional(),
  schedule: cron,
  /**
   * Restore drill of the offsite copy: the newest full downloaded from the bucket (hot copies only),
   * checked against its manifest and the upload's sha256, decrypted and prepared (a physical full
   * with mariadb-backup --prepare); the monitor alerts when it fails, is overdue or exceeds the RTO.
   * Runs on the upload host, which must be the MariaDB host (it holds the key). Defaults to none.
   */
  drill: z.strictObject({ schedule: cron }).optional(),
});

export const nas = z.strictObject({
  /** Host (by name) whose backups are synced. Defaults to the MariaDB host. */
  from: name.optional(),
  /** NAS host (by name, role nas). */
  host: name,
  /** Directory on the NAS holding the dated snapshots. */
  path: absPath,
  /** Local directories synced. Defaults to the MariaDB backup and binlog dirs. */
  sources: z.array(absPath).optional(),
  schedule: cron,
  /** Dated snapshots kept. Defaults to 30. */
  keep: z.number().int().positive().default(30),
  /**
   * Read-back drill of the NAS copy: the newest snapshot read back with the sync key (the NAS's
   * read-only path) and every full and shipped binlog in it compared with the checksums recorded
   * when it was made; the monitor alerts when it fails, is overdue or exceeds the RTO. Runs on the
   * host that syncs. Defaults to none.
   */
  drill: z.strictObject({ schedule: cron }).optional(),
});

export const offsite = z.strictObject({
  bucket: bucket.optional(),
  upload: upload.optional(),
  nas: nas.optional(),
});
export type Offsite = z.infer<typeof offsite>;
