// Pure functions for the PBS side: the variables of each datastore's env file, token names, and
// the proxmox-backup-manager command line behind the configured prefix.
import { keepOptions } from "../../stacks/primitives";
import { shq } from "../host/render";
import type { RetentionPolicy } from "../../stacks/primitives";

export interface DiskSpec {
  /** File system UUID (blkid). */
  readonly uuid: string;
  /** Where the disk is mounted; the datastore lives below it. */
  readonly mountpoint: string;
  /** File system type for fstab. Defaults to ext4. */
  readonly fsType?: string;
}

export interface DatastoreSpec {
  readonly name: string;
  /** Directory of the chunk store (below the disk's mount point when there is a disk). */
  readonly path: string;
  /** The disk holding it: jobs refuse to write when it is not mounted. Defaults to none. */
  readonly disk?: DiskSpec;
  /** Retention of the datastore's prune job. */
  readonly retention: RetentionPolicy;
  /** PBS calendar events. Defaults to daily, daily, weekly. */
  readonly gcSchedule?: string;
  readonly pruneSchedule?: string;
  readonly verifySchedule?: string;
  /** Re-verify snapshots verified longer ago than this many days. Defaults to 30. */
  readonly reverifyAfterDays?: number;
  /** The guard warns below this share of free space. Defaults to 10. */
  readonly minFreePercent?: number;
}

/** The name of the API token PVE uses for a datastore (one token per datastore). */
/** The id of a datastore's prune and verify jobs in PBS (pbs-setup.sh job_id). */
export const pbsJobId = (datastore: string): string => `b321-${datastore}`;

export function tokenName(datastore: string): string {
  return `pve-${datastore}`;
}

/** The PBS auth id of that token: user@realm!token. */
export function tokenId(user: string, datastore: string): string {
  return `${user}!${tokenName(datastore)}`;
}

/** The keep-* options of a tier as pbs-setup.sh reads them: "keep-daily=5 keep-weekly=4". */
export function keepList(policy: RetentionPolicy): string {
  return keepOptions(policy)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

export interface DatastoreEnvOptions {
  readonly prefix: string;
  readonly user: string;
  /** Where the token secret is kept (0600). */
  readonly tokenFile: string;
  readonly fstab: string;
}

/** The variables of <etc>/pbs-<datastore>.env, read by pbs-setup.sh and pbs-guard.sh. */
export function datastoreEnv(
  d: DatastoreSpec,
  o: DatastoreEnvOptions,
): Record<string, string | number> {
  if (d.disk && !d.path.startsWith(`${d.disk.mountpoint.replace(/\/+$/, "")}/`)) {
    throw new Error(
      `datastore ${d.name}: ${d.path} must be below the disk's mount point ${d.disk.mountpoint}`,
    );
  }
  return {
    PBS_PREFIX: o.prefix,
    PBS_USER: o.user,
    PBS_DATASTORE: d.name,
    PBS_PATH: d.path,
    PBS_MOUNT: d.disk?.mountpoint ?? "",
    PBS_UUID: d.disk?.uuid ?? "",
    PBS_FSTYPE: d.disk?.fsType ?? "ext4",
    PBS_FSTAB: o.fstab,
    PBS_GC_SCHEDULE: d.gcSchedule ?? "daily",
    PBS_PRUNE_SCHEDULE: d.pruneSchedule ?? "daily",
    PBS_KEEP: keepList(d.retention),
    PBS_VERIFY_SCHEDULE: d.verifySchedule ?? "weekly",
    PBS_REVERIFY_DAYS: d.reverifyAfterDays ?? 30,
    PBS_TOKEN: tokenName(d.name),
    PBS_TOKEN_FILE: o.tokenFile,
  };
}

/** `<script> <action> <env>` as one shell command line. */
export function setupCommand(script: string, action: string, envFile: string): string {
  return [script, action, envFile].map(shq).join(" ");
}
