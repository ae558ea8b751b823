// Proxmox Backup Server: datastores on the USB SSD and their maintenance jobs.
import { z } from "zod";
import { absPath, name } from "../primitives";

export const disk = z.strictObject({
  /** File system UUID of the disk (blkid). */
  uuid: z.string().regex(/^[A-Fa-f0-9-]{8,36}$/, "must be a file system UUID (see blkid)"),
  /** Where it is mounted. */
  mountpoint: absPath,
});
export type Disk = z.infer<typeof disk>;

export const pbs = z.strictObject({
  /** Host (by name) that runs PBS. */
  host: name,
  /** Prefix for PBS commands when PBS runs in a container, e.g. "docker exec pbs". Defaults to none. */
  commandPrefix: z.string().default(""),
  /** Address PVE uses to reach PBS. Defaults to the host's address. */
  server: z.string().optional(),
  datastores: z
    .array(
      z.strictObject({
        name,
        path: absPath,
        /** The USB SSD holding the datastore: jobs refuse to run when it is not mounted. */
        disk: disk.optional(),
        retention: name,
        gcSchedule: z.string().default("daily"),
        pruneSchedule: z.string().default("daily"),
        verifySchedule: z.string().default("weekly"),
        /** Re-verify snapshots older than this many days. Defaults to 30. */
        reverifyAfterDays: z.number().int().positive().default(30),
      }),
    )
    .min(1, "lists no datastore"),
});
export type Pbs = z.infer<typeof pbs>;
