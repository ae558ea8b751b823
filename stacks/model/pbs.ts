// Proxmox Backup Server: datastores on the USB SSD and their maintenance jobs.
import { z } from "zod";
import { absPath, address, cron, name } from "../primitives";

export const disk = z.strictObject({
  /** File system UUID of the disk (blkid). */
  uuid: z.string().regex(/^[A-Fa-f0-9-]{8,36}$/, "must be a file system UUID (see blkid)"),
  /** Where it is mounted. */
  mountpoint: absPath,
  /** File system type for the fstab line. Defaults to ext4. */
  fsType: z
    .string()
    .regex(/^[a-z0-9]+$/, "must be a file system type like ext4 or xfs")
    .default("ext4"),
});
export type Disk = z.infer<typeof disk>;

/**
 * A datastore name: PBS takes 3 to 32 characters (DATASTORE_SCHEMA, pbs-api-types datastore.rs)
 * and job ids of at most 32 (JOB_ID_SCHEMA, jobs.rs); the prune and verify jobs are b321-<name>,
 * so a name has at most 27.
 */
const datastoreName = name
  .min(3, "must have at least 3 characters (a PBS datastore name is 3 to 32; e.g. usb-ssd)")
  .max(
    27,
    "must have at most 27 characters (its PBS prune and verify jobs are b321-<name>, and a PBS job id has at most 32)",
  );

/** A PBS/PVE calendar event: words, digits and the characters of the systemd calendar syntax. */
const calendarEvent = z
  .string()
  .regex(
    /^[A-Za-z0-9 :*,./-]+$/,
    'must be a calendar event like "daily", "02:30" or "sat 03:00" (letters, digits, : * , . / -)',
  );

export const pbs = z.strictObject({
  /** Host (by name) that runs PBS. */
  host: name,
  /**
   * Prefix for PBS commands when PBS runs in a container, e.g. "docker exec pbs": plain words only
   * (no quotes or shell syntax). The datastore paths must be the same inside the container and on
   * the host (bind-mount the disk at the same path). Defaults to none.
   */
  commandPrefix: z
    .string()
    .regex(
      /^[A-Za-z0-9_.\/:=@+ -]*$/,
      "must be plain words of letters, digits and ._/:=@+- (e.g. docker exec pbs)",
    )
    .default(""),
  /** The PBS user (realm pbs) whose API token PVE uses. Defaults to backup321@pbs. */
  user: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*@pbs$/, "must be a user of the pbs realm (e.g. backup321@pbs)")
    .default("backup321@pbs"),
  /** How often the disk guard checks that each datastore's disk is mounted. Defaults to every 5 minutes. */
  guardSchedule: cron.default("*/5 * * * *"),
  /** Address PVE uses to reach PBS. Defaults to the host's address. */
  server: address.optional(),
  datastores: z
    .array(
      z.strictObject({
        name: datastoreName,
        path: absPath,
        /** The USB SSD holding the datastore: jobs refuse to run when it is not mounted. */
        disk: disk.optional(),
        retention: name,
        /** PBS calendar events (systemd style, e.g. "daily", "02:30", "sat 03:00"). */
        gcSchedule: calendarEvent.default("daily"),
        pruneSchedule: calendarEvent.default("daily"),
        verifySchedule: calendarEvent.default("weekly"),
        /** Re-verify snapshots older than this many days. Defaults to 30. */
        reverifyAfterDays: z.number().int().positive().default(30),
        /**
         * Hours after its last run at which the monitor calls the verify job stale. Defaults to
         * verifySchedule's longest interval (known for "daily", "weekly"..., "HH:MM" and
         * "<weekdays> HH:MM"; required for any other form), plus grace.
         */
        verifyMaxAgeHours: z.number().positive().optional(),
        /** The guard warns when less than this share of the disk is free. Defaults to 10. */
        minFreePercent: z.number().int().min(0).max(100).default(10),
      }),
    )
    .min(1, "lists no datastore"),
});
export type Pbs = z.infer<typeof pbs>;
