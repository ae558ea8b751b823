// restic repositories: the USB SSD (daily) and the encrypted cloud copy (weekly).
import { z } from "zod";
import { absPath, cron, name } from "../primitives";
import { disk } from "./pbs";

export const resticRepository = z.strictObject({
  name,
  /** Host (by name) that runs restic for this repository. */
  host: name,
  /** local: a directory (the USB SSD); s3: a prefix in the offsite bucket. */
  kind: z.enum(["local", "s3"]),
  /** Directory of a local repository. */
  path: absPath.optional(),
  /** Disk that must be mounted before a local repository is touched. */
  disk: disk.optional(),
  /** Key prefix inside the offsite bucket, for kind s3; must be under bucket.resticPrefix. Defaults to <resticPrefix><name>. */
  prefix: z
    .string()
    .regex(/^[a-z0-9][a-z0-9/_-]*$/, "must be a key prefix like restic/cloud")
    .optional(),
  /** S3 endpoint URL override (MinIO, s3rver), for kind s3. Defaults to AWS in the bucket's region. */
  endpoint: z.string().url().optional(),
  /** Fill this repository by `restic copy` from another (by name) instead of backing up paths. */
  copyFrom: name.optional(),
  /** Backup or copy schedule; forget/prune follow every successful run. */
  schedule: cron,
  /** Paths backed up (ignored when copyFrom is set). */
  paths: z.array(absPath).default([]),
  excludes: z
    .array(
      z
        .string()
        .regex(/^[^\n\r]+$/, "must be one restic exclude pattern on one line (e.g. /var/cache)"),
    )
    .default([]),
  /** Stable tags: forget groups by host and tags. */
  tags: z.array(name).default([]),
  /** Retention tier name (from retention:). */
  retention: name,
  /** Integrity check: schedule and the number of rotating subsets (every pack read once per n runs). */
  check: z
    .strictObject({ schedule: cron, subsets: z.number().int().positive().default(8) })
    .optional(),
  /**
   * Restore drill: a rotating sample of the newest snapshot's files restored (restic restore
   * --verify) and compared with their unchanged sources; the monitor alerts when it fails or is
   * overdue. Defaults to none.
   */
  drill: z
    .strictObject({
      schedule: cron,
      /** Files restored per drill. Defaults to 20. */
      files: z.number().int().positive().default(20),
      /** Most MB restored per drill (the first file of the sample is always taken). Defaults to 1024. */
      maxMb: z.number().int().positive().default(1024),
    })
    .optional(),
});
export type ResticRepository = z.infer<typeof resticRepository>;
export const restic = z.strictObject({ repositories: z.array(resticRepository).default([]) });

/** The key prefix of an s3 repository: its own, or the bucket's restic prefix plus its name. */
export function resticS3Prefix(repo: ResticRepository, resticPrefix: string): string {
  return (repo.prefix ?? `${resticPrefix.replace(/\/*$/, "/")}${repo.name}`).replace(/\/+$/, "");
}
