// Pure functions for the monitor: which checks a host runs (from the site model), its env file and
// the alert channels' env file.
import { calendarMaxIntervalHours } from "../../stacks/calendar";
import type { Site } from "../../stacks/schema";
import { maxIntervalHours } from "../../stacks/schedule";
import { fullsHost } from "../../stacks/model/mariadb";
import { defaultGraceHours, renderEnvFile, shq } from "../host/render";
import { PITR_DRILL_JOB } from "../mariadb/render";
import { pbsJobId } from "../pbs/render";
import { resticDrillJob } from "../restic/render";
import { NAS_DRILL_JOB, UPLOAD_DRILL_JOB } from "../offsite/render";
import { hostTimezone, nasFrom, uploadHost } from "../../stacks/defaults";
import { DR_DRILL_JOB, STREAM_STALE_SECONDS } from "../mariadb/render";

/** The job name of the MariaDB restore test; it records restore_seconds in its status file. */
export const MARIADB_RESTORE_TEST_JOB = "mariadb-restore-test";

/** What the monitor on one host checks besides the registered jobs (which it always checks). */
export interface MonitorChecks {
  /** Directories that must be mount points (the USB SSD). */
  readonly mounts: readonly string[];
  /** Alert when a mount is fuller than this percentage. */
  readonly diskFullPercent: number;
  /** Devices whose SMART health is checked (/dev/disk/by-uuid/<uuid>, resolved on the host). */
  readonly smartDevices: readonly string[];
  /** Local restic repository directories whose locks/ are checked. */
  readonly resticRepos: readonly string[];
  readonly staleLockHours: number;
  /** Shipped binlogs must reach back to the newest full. */
  readonly pitr?: {
    readonly binlogDir: string;
    readonly fullDir: string;
    /** How old the newest full may be before its first binlog must have been shipped. */
    readonly graceHours: number;
  };
  /** The replica the fulls are taken on (mariadb.replica): replicating, within its lag limit. */
  readonly replica?: { readonly socket: string; readonly maxLagSeconds: number };
  /**
   * The binlog stream on this host (mariadb.stream): up, reporting (its status no older than
   * staleSeconds), within its lag limit.
   */
  readonly stream?: { readonly maxLagSeconds: number; readonly staleSeconds: number };
  /**
   * PBS verify jobs on this host (the PBS CLI through `prefix`): the last finished run of each must
   * have ended OK, less than maxAgeHours ago.
   */
  readonly pbsVerify?: {
    readonly prefix: string;
    readonly jobs: readonly {
      readonly datastore: string;
      readonly job: string;
      readonly maxAgeHours: number;
    }[];
  };
  /** Restore-test jobs: their last run must have succeeded within the RTO. */
  readonly restoreJobs: readonly string[];
  readonly rtoHours: number;
  /** The RTO of restore jobs that restore a copy another target covers (the site-loss one). */
  readonly restoreRtoHours?: Readonly<Record<string, number>>;
  /** node_exporter textfile collector directory. */
  readonly textfileDir?: string;
}

const uniq = (xs: readonly string[]): string[] => [...new Set(xs)].sort();

/** The checks of one host, from where the site model says each component puts things. */
export function monitorChecksFor(site: Site, hostName: string): MonitorChecks {
  const disks = [
    ...(site.pbs?.host === hostName ? site.pbs.datastores.flatMap((d) => d.disk ?? []) : []),
    ...site.restic.repositories.filter((r) => r.host === hostName).flatMap((r) => r.disk ?? []),
  ];
  const m = site.mariadb?.host === hostName ? site.mariadb : undefined;
  // The host that takes and tests the fulls: the replica's when there is one (it hands each one
  // to the primary, which keeps them beside its binlogs).
  const fulls = site.mariadb && fullsHost(site.mariadb) === hostName ? site.mariadb : undefined;
  const replica = site.mariadb?.replica?.host === hostName ? site.mariadb.replica : undefined;
  const offsiteDrill =
    site.offsite.upload?.drill !== undefined &&
    site.offsite.bucket !== undefined &&
    m !== undefined &&
    uploadHost(site) === hostName;
  const offsiteDrills = [
    ...(offsiteDrill ? [UPLOAD_DRILL_JOB] : []),
    ...site.restic.repositories
      .filter((r) => r.host === hostName && r.drill && r.kind === "s3")
      .map((r) => resticDrillJob(r.name)),
  ];
  const shipEvery = m ? maxIntervalHours(m.schedules.binlogs, hostTimezone(site, m.host)) : 0;
  return {
    mounts: uniq(disks.map((d) => d.mountpoint)),
    diskFullPercent: site.monitoring.diskFullPercent,
    smartDevices: uniq(disks.map((d) => `/dev/disk/by-uuid/${d.uuid.toLowerCase()}`)),
    resticRepos: uniq(
      site.restic.repositories
        .filter((r) => r.host === hostName && r.kind === "local" && r.path)
        .map((r) => r.path as string),
    ),
    staleLockHours: site.monitoring.staleLockHours,
    // On the primary, where the shipped binlogs are and, with a replica, the fulls it hands over.
    ...(m
      ? {
          pitr: {
            binlogDir: m.binlogBackupDir,
            fullDir: m.backupDir,
            graceHours: shipEvery + defaultGraceHours(shipEvery),
          },
        }
      : {}),
    ...(site.pbs?.host === hostName
      ? {
          pbsVerify: {
            prefix: site.pbs.commandPrefix ?? "",
            jobs: site.pbs.datastores.map((d) => ({
              datastore: d.name,
              job: pbsJobId(d.name),
              maxAgeHours: d.verifyMaxAgeHours ?? verifyMaxAgeHours(d.verifySchedule),
            })),
          },
        }
      : {}),
    restoreJobs: [
      ...(fulls ? [MARIADB_RESTORE_TEST_JOB] : []),
      ...(m?.schedules.pitrDrill ? [PITR_DRILL_JOB] : []),
      ...site.restic.repositories
        .filter((r) => r.host === hostName && r.drill)
        .map((r) => resticDrillJob(r.name)),
      ...(site.offsite.nas?.drill && nasFrom(site) === hostName ? [NAS_DRILL_JOB] : []),
      ...(offsiteDrill ? [UPLOAD_DRILL_JOB] : []),
      // the standby's rebuild of the database host from the NAS: a lost host's RTO (rtoHours)
      ...(site.mariadb?.drDrill?.host === hostName && site.offsite.nas ? [DR_DRILL_JOB] : []),
    ],
    ...(replica
      ? { replica: { socket: replica.socket, maxLagSeconds: replica.maxLagSeconds } }
      : {}),
    // the binlog stream's host: what its watchdog checks every minute, checked hourly too
    ...(site.mariadb?.stream?.host === hostName
      ? {
          stream: {
            maxLagSeconds: site.mariadb.stream.maxLagSeconds,
            staleSeconds: STREAM_STALE_SECONDS,
          },
        }
      : {}),
    rtoHours: site.targets.rtoHours,
    // the offsite copies are those of a lost site: their drills answer to that target
    ...(site.targets.siteLoss && offsiteDrills.length > 0
      ? {
          restoreRtoHours: Object.fromEntries(
            offsiteDrills.map((job) => [job, site.targets.siteLoss!.rtoHours]),
          ),
        }
      : {}),
    ...(site.monitoring.textfileDir ? { textfileDir: site.monitoring.textfileDir } : {}),
  };
}

/**
 * How old the last verify of a datastore may be: its schedule's longest interval plus grace (a
 * verify of a big datastore runs for hours). The model checks that the interval is known
 * (stacks/checks-proxmox.ts) or verifyMaxAgeHours is given.
 */
export function verifyMaxAgeHours(schedule: string): number {
  const every = calendarMaxIntervalHours(schedule);
  if (every === undefined)
    throw new Error(`cannot tell how often "${schedule}" runs: set verifyMaxAgeHours`);
  return every + defaultGraceHours(every);
}

/** The monitor job's variables (ScheduledJob adds B321_*). Empty lists turn a check off. */
export function monitorEnv(c: MonitorChecks): Record<string, string | number> {
  const hours = (h: number) => Math.round(h * 3600);
  return {
    MONITOR_MOUNTS: c.mounts.join(" "),
    MONITOR_DISK_FULL_PERCENT: c.diskFullPercent,
    MONITOR_SMART_DEVICES: c.smartDevices.join(" "),
    MONITOR_RESTIC_REPOS: c.resticRepos.join(" "),
    MONITOR_STALE_LOCK_SECONDS: hours(c.staleLockHours),
    MONITOR_PITR_BINLOG_DIR: c.pitr?.binlogDir ?? "",
    MONITOR_PITR_FULL_DIR: c.pitr?.fullDir ?? "",
    MONITOR_PITR_GRACE_SECONDS: hours(c.pitr?.graceHours ?? 0),
    MONITOR_PBS_PREFIX: c.pbsVerify?.prefix ?? "",
    MONITOR_PBS_VERIFY: (c.pbsVerify?.jobs ?? [])
      .map((j) => `${j.datastore}:${j.job}:${hours(j.maxAgeHours)}`)
      .join(" "),
    MONITOR_RESTORE_JOBS: c.restoreJobs.join(" "),
    MONITOR_REPLICA_SOCKET: c.replica?.socket ?? "",
    MONITOR_REPLICA_MAX_LAG_SECONDS: c.replica?.maxLagSeconds ?? "",
    ...(c.stream
      ? {
          MONITOR_STREAM_MAX_LAG_SECONDS: c.stream.maxLagSeconds,
          MONITOR_STREAM_STALE_SECONDS: c.stream.staleSeconds,
        }
      : {}),
    MONITOR_RTO_SECONDS: hours(c.rtoHours),
    MONITOR_RESTORE_RTO_SECONDS: Object.entries(c.restoreRtoHours ?? {})
      .map(([job, h]) => `${job}=${hours(h)}`)
      .join(" "),
    MONITOR_TEXTFILE_DIR: c.textfileDir ?? "",
  };
}

/**
 * The node_exporter textfile directory the monitor copies its host's metrics to, as
 * backup321-<name>.prom: made (readable by node_exporter) when missing, and emptied of those copies
 * when the monitor goes, since nothing would refresh or remove them any more.
 */
export function textfileDirCommands(dir: string): { create: string; delete: string } {
  if (!dir.startsWith("/")) throw new Error(`textfile directory "${dir}" must be absolute`);
  const d = shq(dir);
  return {
    create: `[ -d ${d} ] || install -d -m 0755 -- ${d}`,
    delete: `rm -f -- ${d}/backup321-*.prom ${d}/.backup321.*`,
  };
}

export interface AlertChannels {
  /** Addresses mailed through sendmail. */
  readonly email: readonly string[];
  /** Where the webhook URL file is (0600); undefined when there is no webhook. */
  readonly webhookFile?: string;
  readonly webhookStyle: "json" | "healthchecks";
  readonly pingOnSuccess: boolean;
  /** Who to call, one line each ("name (role, phone)"): every alert names them. */
  readonly contacts: readonly string[];
}

/** <etc>/alert.env, read by alert.sh. It names the URL's file; the URL itself is never in it. */
export function renderAlertEnv(a: AlertChannels): string {
  return renderEnvFile("backup321 alert channels (read by alert.sh)", {
    ALERT_CONTACTS: a.contacts.join("; "),
    ALERT_EMAIL: a.email.join(","),
    ALERT_WEBHOOK_FILE: a.webhookFile ?? "",
    ALERT_WEBHOOK_STYLE: a.webhookStyle,
    ALERT_PING_ON_SUCCESS: a.pingOnSuccess && a.webhookFile !== undefined ? 1 : 0,
  });
}
