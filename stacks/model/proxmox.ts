// Proxmox VE: the API endpoint, vzdump jobs to PBS, and scheduled local snapshots (copies 1 and 2
// of source 3-2-1, docs/sources.md).
import { z } from "zod";
import { cron, name } from "../primitives";

const guestIds = z.array(z.number().int().min(100, "must be a Proxmox guest id (100 or more)"));

export const proxmox = z.strictObject({
  /** Host (by name) that runs Proxmox VE. */
  host: name,
  /** API endpoint, e.g. https://192.168.10.10:8006/. */
  endpoint: z.string().url("must be a URL (e.g. https://192.168.10.10:8006/)"),
  /** Accept a self-signed API certificate. Defaults to false. */
  insecure: z.boolean().default(false),
  /** PVE node name. Defaults to the host's name. */
  node: z.string().optional(),
  /** Stack config key holding the API token (user@realm!id=secret). Defaults to proxmoxApiToken. */
  apiTokenSecret: z.string().default("proxmoxApiToken"),
  /** Daily vzdump jobs to the PBS storage. */
  jobs: z
    .array(
      z.strictObject({
        id: name,
        schedule: cron,
        /** "all" or a list of guest ids. Defaults to all. */
        guests: z.union([z.literal("all"), guestIds]).default("all"),
        /** PBS datastore (by name) the job writes to. */
        datastore: name,
        /** Retention tier name (from retention:). */
        retention: name,
        /** E-mail for failures. */
        mailto: z.string().email().optional(),
      }),
    )
    .default([]),
  /** Local rollback snapshots (copy 1). */
  snapshots: z
    .strictObject({
      schedule: cron,
      vms: guestIds.default([]),
      containers: guestIds.default([]),
      /** Snapshots kept per guest. Defaults to 7. */
      keep: z.number().int().positive().default(7),
    })
    .optional(),
});
export type Proxmox = z.infer<typeof proxmox>;
