// The MariaDB instance, its databases and how they are backed up (source MariaDB, docs/sources.md).
import { z } from "zod";
import { absPath, cron, name } from "../primitives";

/**
 * A replica of the server that takes the full backups, so that the primary carries none of their
 * load (the seed's 192.168.10.21). Binlogs are still shipped from the primary, and PITR replays the
 * primary's binlogs from the coordinates each full records.
 */
export const replica = z.strictObject({
  /** Host (by name, role mariadb) that runs the replica; not the primary's host. */
  host: name,
  /**
   * A full is refused (failed status, alert) when the replica is more than this many seconds behind
   * the primary, and the monitor alerts on it. Defaults to 300.
   */
  maxLagSeconds: z
    .number()
    .int()
    .positive("must be a positive whole number of seconds (e.g. 300)")
    .default(300),
  /** The replica server's unix socket. Defaults to /run/mysqld/mysqld.sock. */
  socket: absPath.default("/run/mysqld/mysqld.sock"),
});
export type Replica = z.infer<typeof replica>;

/**
 * The yearly disaster-recovery drill: a standby host rebuilds the database host from the NAS's
 * newest snapshot alone (its own read-only key), with the restore test and a point-in-time recovery
 * on that copy, timed end to end against the RTO.
 */
export const drDrill = z.strictObject({
  /** Host (by name, role mariadb) that plays the rebuilt database host; not mariadb.host. */
  host: name,
  /** When the drill runs (cron, in the standby's time zone), e.g. yearly: "0 6 10 3 *". */
  schedule: cron,
});
export type DrDrill = z.infer<typeof drDrill>;

/**
 * Continuous binlog streaming to another host (mariadb-stream.sh under a supervised service): the
 * primary's binlogs are copied there event by event as they are written, each closed one sealed
 * (compressed, encrypted with the fulls' key), so a lost database host loses at most the stream's
 * lag, not a shipping interval. The primary must accept TCP connections from the stream host.
 */
export const stream = z.strictObject({
  /** Host (by name) that receives the stream, e.g. the backup host; not mariadb.host. */
  host: name,
  /**
   * The watchdog (every minute) and the monitor alert when the stream is down or further behind the
   * primary than this; it is also the database's RPO when its host is lost. Defaults to 60.
   */
  maxLagSeconds: z
    .number()
    .int()
    .positive("must be a positive whole number of seconds (e.g. 60)")
    .default(60),
  /** Where the stream host keeps the streamed binlogs. Defaults to /backups/binlog-stream. */
  dir: absPath.default("/backups/binlog-stream"),
  /**
   * Days the stream host keeps the sealed binlogs (never the newest); older ones are on the NAS and
   * in the bucket with the shipped copies. Defaults to 35 (four weekly fulls and a week).
   */
  keepDays: z
    .number()
    .int()
    .positive("must be a positive whole number of days (e.g. 35)")
    .default(35),
  /** The primary's MariaDB port. Defaults to 3306. */
  port: z.number().int().min(1).max(65535).default(3306),
  /** The stream user's name on the primary (REPLICATION SLAVE, BINLOG MONITOR only). Defaults to b321_stream. */
  user: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,32}$/, "must be a MariaDB user name")
    .default("b321_stream"),
  /** The server id the stream registers with on the primary: unique among its replicas. Defaults to 4242. */
  serverId: z.number().int().positive().default(4242),
  /**
   * The CA of the primary's TLS certificate, a file on the stream host: TLS is then required and the
   * certificate verified. Defaults to none: TLS when the server offers it.
   */
  sslCa: absPath.optional(),
});
export type Stream = z.infer<typeof stream>;

export const mariadb = z.strictObject({
  /** Host (by name) that runs the MariaDB server (the primary when there is a replica). */
  host: name,
  /** Take the full backups on this replica instead of the primary. Defaults to none. */
  replica: replica.optional(),
  /** The yearly disaster-recovery drill on a standby, from the NAS copy alone (needs offsite.nas). Defaults to none. */
  drDrill: drDrill.optional(),
  /** Continuous binlog streaming to another host (an RPO of seconds when the database host is lost). Defaults to none. */
  stream: stream.optional(),
  /** Databases to back up (the backup user is granted on these only). */
  databases: z
    .array(z.string().regex(/^[A-Za-z0-9_]+$/, "must be a database name (letters, digits, _)"))
    .min(1, "lists no database (e.g. [atlastech_db])"),
  /**
   * Backup method: physical (mariadb-backup stream of the whole instance, restored without SQL
   * replay) or logical (mariadb-dump of the listed databases). Defaults to physical.
   */
  method: z.enum(["physical", "logical"]).default("physical"),
  /** Compression of full backups: zstd, or gzip for the seed's file format. Defaults to zstd. */
  compression: z.enum(["zstd", "gzip"]).default("zstd"),
  /** Name of the backup user. Defaults to backup_user. */
  backupUser: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,32}$/, "must be a MariaDB user name")
    .default("backup_user"),
  /** Where full backups and their manifests are written (on the replica's host when there is one). Defaults to /backups/database. */
  backupDir: absPath.default("/backups/database"),
  /** Where shipped binlogs are kept. Defaults to /backups/binlogs. */
  binlogBackupDir: absPath.default("/backups/binlogs"),
  /** The server's binlog basename. Defaults to /var/log/mysql/mysql-bin. */
  binlogBasename: absPath.default("/var/log/mysql/mysql-bin"),
  /** server_id written to the binlog drop-in. Defaults to 1. */
  serverId: z.number().int().positive().default(1),
  /** Drop-in directory of the server's configuration. Defaults to /etc/mysql/mariadb.conf.d. */
  confDir: absPath.default("/etc/mysql/mariadb.conf.d"),
  /** Service restarted when the binlog drop-in changes. Defaults to mariadb. */
  service: z
    .string()
    .regex(/^[A-Za-z0-9@._-]+$/, "must be a service name (e.g. mariadb)")
    .default("mariadb"),
  /**
   * Command run as root to restart the server after the binlog drop-in changed; the drop-in is put in
   * place only when it succeeds. Defaults to `systemctl restart <service>`; set it on a host without
   * systemd (e.g. `service mariadb restart`).
   */
  restartCommand: z
    .string()
    .regex(/^[^\n\r]+$/, "must be one line (e.g. service mariadb restart)")
    .optional(),
  /**
   * Commands run as root to stop and start the server: RUNBOOK.md's recovery swaps the datadir
   * between them. Default to `systemctl stop|start <service>`.
   */
  stopCommand: z
    .string()
    .regex(/^[^\n\r]+$/, "must be one line (e.g. service mariadb stop)")
    .optional(),
  startCommand: z
    .string()
    .regex(/^[^\n\r]+$/, "must be one line (e.g. service mariadb start)")
    .optional(),
  /**
   * The server's innodb_max_dirty_pages_pct_lwm, set live and in a drop-in (no restart). Above 0, an
   * idle server flushes its dirty pages, so its checkpoint follows the writes: the night's backup then
   * carries minutes of redo, not everything since the last forced checkpoint, and prepares and
   * crash-recovers that much faster. MariaDB's own default, 0, never flushes an idle server. Defaults
   * to 10 (MySQL 8's default); on the replica too when there is one.
   */
  dirtyPagesLwmPct: z
    .number()
    .min(0, "must be a percentage from 0 to 99 (e.g. 10)")
    .max(99, "must be a percentage from 0 to 99 (e.g. 10)")
    .default(10),
  /** The server's datadir: a recovery is built beside it, then swapped in. Defaults to /var/lib/mysql. */
  datadir: absPath.default("/var/lib/mysql"),
  /** The server's unix socket (root logs in through it). Defaults to /run/mysqld/mysqld.sock. */
  socket: absPath.default("/run/mysqld/mysqld.sock"),
  schedules: z
    .strictObject({
      /** Full backup. Defaults to Sunday 02:00. */
      full: cron.default("0 2 * * 0"),
      /**
       * Incremental backup (physical method only): the pages changed since the newest full, so a
       * restore late in the week reads the full and one increment and replays only the binlogs
       * after it. E.g. the seed's Monday to Saturday 02:00: "0 2 * * 1-6". Defaults to none.
       */
      incremental: cron.optional(),
      /** Binlog shipping. Defaults to hourly, so the database RPO is one hour. */
      binlogs: cron.default("15 * * * *"),
      /** Restore test into a scratch instance. Defaults to the 1st of the month, 03:00. */
      restoreTest: cron.default("0 3 1 * *"),
      /**
       * Point-in-time recovery drill: a scratch instance recovered from the shipped binlogs to the
       * newest checkpoint of the binlog shipping, every table's checksum compared with it; the
       * monitor alerts when it fails, is overdue or takes longer than the RTO. Defaults to none.
       */
      pitrDrill: cron.optional(),
    })
    .prefault({}),
  /**
   * What each binlog shipping run records for the PITR drill: a binlog position and the CHECKSUM
   * TABLE of every table at it (one read of each table per run).
   */
  checkpoints: z
    .strictObject({
      /** Tables larger than this (MB of data) are recorded as skipped, not read. Defaults to 256. */
      maxTableMb: z.number().int().positive().default(256),
    })
    .prefault({}),
  retention: z
    .strictObject({
      /** Verified fulls kept (count). Defaults to 4 (four weekly fulls). */
      fulls: z.number().int().positive("must be a positive whole number (e.g. 4)").default(4),
      /**
       * Days a full's increments are kept after the newest of them (they go together; their full
       * stays while they do). Defaults to 7.
       */
      incrementDays: z
        .number()
        .int()
        .positive("must be a positive whole number of days (e.g. 7)")
        .default(7),
      /**
       * Days the server keeps its own binlogs (binlog_expire_logs_seconds; the seed's expire_logs_days).
       * Shipped copies are kept back to the oldest kept full, so PITR works from any full. Defaults to 7.
       */
      binlogExpireDays: z
        .number()
        .int()
        .positive("must be a positive whole number of days (e.g. 7)")
        .default(7),
    })
    .prefault({}),
});
export type MariaDb = z.infer<typeof mariadb>;

/** The command that stops or starts the server: the model's, or systemctl on its service. */
export function serviceCommand(m: MariaDb, verb: "stop" | "start"): string {
  const own = verb === "stop" ? m.stopCommand : m.startCommand;
  return own ?? `systemctl ${verb} ${m.service}`;
}

/** The host that takes and keeps the full backups: the replica's when there is one. */
export function fullsHost(m: MariaDb): string {
  return m.replica?.host ?? m.host;
}
