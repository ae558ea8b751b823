// The defaults that depend on another part of the model, each resolved here once and read
// everywhere else (components, checks, targets, RUNBOOK.md).
import type { Site } from "./schema";

/** The time zone a host's cron reads its schedules in: its own, else the site's. */
export function hostTimezone(site: Site, hostName: string): string {
  return site.hosts.find((h) => h.name === hostName)?.timezone ?? site.timezone;
}

/** The host that uploads the dumps (offsite.upload.host): defaults to the MariaDB host. */
export function uploadHost(site: Site): string | undefined {
  return site.offsite.upload?.host ?? site.mariadb?.host;
}

/** The host whose backups go to the NAS (offsite.nas.from): defaults to the MariaDB host. */
export function nasFrom(site: Site): string | undefined {
  return site.offsite.nas?.from ?? site.mariadb?.host;
}

/** What goes to the NAS (offsite.nas.sources): defaults to the MariaDB backup and binlog dirs. */
export function nasSources(site: Site): readonly string[] {
  const m = site.mariadb;
  return site.offsite.nas?.sources ?? (m ? [m.backupDir, m.binlogBackupDir] : []);
}

/** The bucket's IAM writers, each with its own access key: the dump uploader, restic's repositories. */
export function bucketWriters(site: Site): { dumps: boolean; restic: boolean } {
  const bucket = site.offsite.bucket !== undefined;
  return {
    dumps: bucket && site.offsite.upload !== undefined,
    restic: bucket && site.restic.repositories.some((r) => r.kind === "s3"),
  };
}

/**
 * Where the binlog stream's sealed files go on the NAS: with the other sources when the stream host
 * is the one that syncs (offsite.nas.from), else in a snapshot directory of their own under
 * offsite.nas.path (each source host's snapshots are the NAS's own to count and expire).
 */
export function streamNasPath(site: Site): string | undefined {
  const st = site.mariadb?.stream;
  const nas = site.offsite.nas;
  if (!st || !nas) return undefined;
  return nasFrom(site) === st.host ? nas.path : `${nas.path}/binlog-stream`;
}
