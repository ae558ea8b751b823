// The files one program writes and another reads on a host, each defined once: the status file of
// every job run (common.sh writes it, the monitor reads it), the registry entry of every scheduled
// job (ScheduledJob writes it, the monitor reads it) and the manifest beside every database full
// (mariadb-full.sh writes it; retention, the restore test, PITR, the upload and the monitor read it).
// The integration tests check every such file the real scripts wrote against these schemas, and
// docs/monitoring.md's tables are generated from them (npm run docs), so a field renamed on one side
// fails a test instead of a restore.
import { z } from "zod";

const timestamp = z.iso.datetime().describe("UTC time, e.g. 2026-12-04T02:00:00Z");
const count = z.int().nonnegative();
const text = z.string();

/** A field of a contract: its schema and what it means. */
type Fields = Record<string, z.ZodType>;

const field = <T extends z.ZodType>(schema: T, meaning: string): T => schema.describe(meaning);

/** Fields common.sh writes into every status file, whatever the job. */
export const STATUS_FIELDS = {
  job: field(text, "The job's name (its registry entry and cron file are named after it)."),
  script: field(text, "The script that ran, e.g. `mariadb-full.sh`: it decides the extra fields."),
  host: field(text, "`hostname` of the host that ran it."),
  result: field(
    z.enum(["success", "warning", "failed"]),
    "`success`, `warning` (done, with a problem worth a look) or `failed`.",
  ),
  exit_code: field(z.int(), "The script's exit code (0 unless failed)."),
  started: field(timestamp, "When the run started (UTC)."),
  ended: field(timestamp, "When the run ended (UTC)."),
  duration_seconds: field(count, "ended − started."),
  last_success: field(
    timestamp.or(z.literal("")),
    "The end of the newest run that did not fail, this one or an earlier one; empty if none.",
  ),
  error: field(text, "Why it failed or warned (the alert's text); empty on success."),
} satisfies Fields;

const bytes = field(count, "Bytes written by this run.");
const dumpFile = field(text, "The full backup file it used (absolute path).");
/** What a restore of a physical full says of its increments (mdb_pick_increment). */
const incrementRestored = {
  increment: field(text, "The increment restored on top of the full (absolute path), if any."),
  increment_skipped: field(
    text,
    "Newer increments of the full that were not intact (file names): the restore fell back to an older one, or to the full and its binlogs.",
  ),
};
const restoreSeconds = field(
  count,
  "Seconds from the start of the restore to a server answering with the data: the measured RTO.",
);

interface ScriptStatus {
  /** The extra fields the script may set with b321_set. */
  readonly fields: Fields;
  /** Fields every run that did not fail has set. */
  readonly onSuccess?: readonly string[];
  /** Extra fields named by pattern (one per guest and the like). */
  readonly patterns?: readonly {
    readonly key: RegExp;
    readonly schema: z.ZodType;
    readonly meaning: string;
  }[];
}

/**
 * The fields b321_phase (common.sh) writes for a script whose phases are NAMES: the last phase
 * entered, and the seconds of each phase entered (a failed run has those it reached).
 */
function phases(names: readonly [string, ...string[]]) {
  return {
    field: {
      phase: field(z.enum(names), "The last phase the run entered: where a failed run stopped."),
    },
    pattern: {
      key: new RegExp(`^phase_(${names.join("|")})_seconds$`),
      schema: count,
      meaning:
        "Seconds the run spent in that phase, for each phase it entered (they add up to at most duration_seconds).",
    },
  };
}
const restoreTestPhases = phases([
  "check",
  "restore",
  "prepare",
  "start",
  "binlogs",
  "replay",
  "compare",
]);
const pitrPhases = phases(["check", "restore", "prepare", "binlogs", "start", "replay", "finish"]);
const offsiteDrillPhases = phases(["check", "download", "verify", "restore", "prepare"]);
const pitrDrillPhases = phases([
  "check",
  "restore",
  "prepare",
  "start",
  "binlogs",
  "replay",
  "compare",
]);
const drDrillPhases = phases(["pull", "verify", "test", "recover", "open"]);

const resticRepoFields = {
  stale_locks_removed: field(count, "Stale restic locks removed before the run (restic unlock)."),
  snapshots: field(count, "Snapshots in the repository after the run."),
};

/** A backup or copy that writes snapshots also retires the keys a password rotation replaced. */
const resticWriterFields = {
  ...resticRepoFields,
  old_keys_removed: field(
    count,
    "Keys of earlier passwords removed after this run's snapshot passed restic check (a rotation's first backup).",
  ),
};

/** A binlog's identity (common.sh): its name, when its first event was written, its server id. */
const BINLOG_IDENTITY = /^.+\.[0-9]+\.[0-9]{8}T[0-9]{6}Z\.s[0-9]+$/;

/** The extra fields of each script's status file (b321_set KEY VALUE). */
export const STATUS_EXTRAS: Readonly<Record<string, ScriptStatus>> = {
  "mariadb-full.sh": {
    fields: {
      file: field(text, "The verified full it wrote (absolute path)."),
      method: field(
        z.enum(["physical", "logical"]),
        "`physical` (mariadb-backup) or `logical` (mariadb-dump).",
      ),
      bytes: field(count, "Size of the encrypted full."),
      raw_bytes: field(count, "Size of the unencrypted, uncompressed backup stream."),
      binlog_file: field(text, "The binlog the full is consistent with: PITR replays from here."),
      binlog_position: field(count, "The position in binlog_file."),
      tables: field(count, "Tables whose rows were counted into the manifest."),
      removed: field(count, "Older fulls removed by retention after this one was verified."),
      replica_lag_seconds: field(
        count,
        "On a replica: how far behind its primary it was when the run checked it (before the backup).",
      ),
      handed_to: field(
        text,
        "On a replica: the primary's address that accepted the full (mariadb-receive.sh); missing when it did not.",
      ),
      level: field(
        z.enum(["full", "incremental"]),
        "What the run wrote: a full, or an increment (the job mariadb-incremental).",
      ),
      base_full: field(text, "An increment's full (its file name)."),
      full_instead: field(
        text,
        "Why the incremental job took a full instead (no full yet, the newest not intact or without to_lsn).",
      ),
    },
    onSuccess: ["file", "bytes", "binlog_file", "binlog_position", "level"],
  },
  "mariadb-binlogs.sh": {
    fields: {
      shipped: field(count, "Closed binlogs copied to the binlog backup directory by this run."),
      newest: field(
        z.string().regex(BINLOG_IDENTITY),
        "The identity of the newest closed binlog (its copy is `<identity>.zst.enc`).",
      ),
      bytes,
      pruned: field(count, "Shipped binlogs removed because no kept full needs them."),
      checkpoint: field(
        text,
        "The checkpoint this run recorded (a file name in `<binlogBackupDir>/checkpoints`); absent when none could be taken (the run warns).",
      ),
    },
  },
  "mariadb-stream.sh": {
    fields: {
      state: field(
        z.enum(["streaming", "stopped"]),
        "`streaming` while the run is up (its status is rewritten every few seconds), `stopped` once its connection ended.",
      ),
      tls: field(text, "The TLS cipher of the connection to the primary, or `none`."),
      started_from: field(
        text,
        "The binlog this run started streaming from (the newest one it found partial, fetched again from its start).",
      ),
      file: field(text, "The binlog being streamed (in `<dir>/live`)."),
      position: field(count, "Bytes of it streamed so far."),
      sealed: field(count, "Closed binlogs this run sealed (compressed, encrypted, verified)."),
      bytes,
      covered_epoch: field(
        count,
        "Everything the primary had written at this time (epoch seconds) is on the stream host: the RPO if the primary is lost now.",
      ),
      lag_seconds: field(count, "Seconds between the status write and covered_epoch."),
    },
    onSuccess: ["state", "tls", "file"],
  },
  "mariadb-stream-watch.sh": {
    fields: {
      stream_age_seconds: field(count, "Seconds since the stream last wrote its status."),
      lag_seconds: field(
        count,
        "How far the stream is behind the primary: now minus the stream's covered_epoch (or its start, before it first caught up).",
      ),
    },
    onSuccess: ["stream_age_seconds", "lag_seconds"],
  },
  "mariadb-pitr-drill.sh": {
    fields: {
      checkpoint: field(text, "The checkpoint recovered to and compared with (its file name)."),
      file: dumpFile,
      ...incrementRestored,
      binlogs_replayed: field(count, "Shipped binlogs replayed up to the checkpoint's position."),
      restore_seconds: restoreSeconds,
      tables: field(count, "Tables whose CHECKSUM TABLE was compared with the checkpoint's."),
      tables_skipped: field(
        count,
        "Tables the checkpoint recorded as skipped (too large, or of an engine without consistent snapshots): not compared.",
      ),
      ...pitrDrillPhases.field,
    },
    onSuccess: ["checkpoint", "file", "restore_seconds", "tables"],
    patterns: [pitrDrillPhases.pattern],
  },
  "mariadb-restore-test.sh": {
    fields: {
      file: dumpFile,
      restore_seconds: restoreSeconds,
      ...incrementRestored,
      tables: field(count, "Tables compared with the manifest's row counts."),
      rows: field(count, "Rows restored, all tables."),
      binlogs_replayed: field(
        count,
        "Binlogs replayed up to the point where the rows were counted.",
      ),
      ...restoreTestPhases.field,
    },
    onSuccess: ["file", "restore_seconds", "tables", "rows"],
    patterns: [restoreTestPhases.pattern],
  },
  "mariadb-pitr.sh": {
    fields: {
      file: dumpFile,
      until: field(text, "The recovery target, in the host's time zone."),
      binlogs_replayed: field(count, "Binlogs replayed on top of the full (and its increment)."),
      restore_seconds: restoreSeconds,
      ...incrementRestored,
      ...pitrPhases.field,
    },
    onSuccess: ["file", "until", "restore_seconds"],
    patterns: [pitrPhases.pattern],
  },
  "monitor.sh": {
    fields: {
      checks_total: field(count, "Checks made by this run."),
      checks_failed: field(count, "Checks that found a problem (all listed in the one alert)."),
    },
    onSuccess: ["checks_total", "checks_failed"],
  },
  "nas-sync.sh": {
    fields: {
      snapshot: field(text, "The snapshot the NAS finished."),
      bytes: field(count, "Bytes sent to the NAS."),
    },
  },
  "nas-drill.sh": {
    fields: {
      snapshot: field(text, "The NAS snapshot read back: the newest (ROOT/latest)."),
      fulls: field(
        count,
        "Fulls read back whose size and sha256 match their manifest (and this host's copy of it).",
      ),
      increments: field(
        count,
        "Increments read back whose size and sha256 match their manifest (and this host's copy of it).",
      ),
      binlogs: field(
        count,
        "Shipped and streamed binlogs read back whose sha256 matches their `.sha256`.",
      ),
      bytes: field(count, "Bytes of those fulls, increments and binlogs."),
      restore_seconds: field(
        count,
        "Seconds to read the snapshot back and check it: the measured time to restore from the NAS.",
      ),
    },
    onSuccess: ["snapshot", "fulls", "increments", "binlogs", "bytes", "restore_seconds"],
  },
  "mariadb-dr-drill.sh": {
    fields: {
      snapshot: field(text, "The NAS snapshot the standby rebuilt from: the newest (ROOT/latest)."),
      fulls: field(count, "Fulls read back whose size and sha256 match their manifest."),
      increments: field(count, "Increments read back whose size and sha256 match their manifest."),
      binlogs: field(count, "Shipped binlogs read back whose sha256 matches their `.sha256`."),
      bytes: field(count, "Bytes of those fulls, increments and binlogs."),
      restore_test_seconds: field(
        count,
        "The restore test's restore_seconds on the copy: the newest full restored, binlogs replayed to its counted position.",
      ),
      pitr_seconds: field(
        count,
        "The point-in-time recovery's restore_seconds on the copy, to the end of the shipped binlogs.",
      ),
      file: field(text, "The full the recovery restored (its file name)."),
      restore_seconds: field(
        count,
        "Seconds from the start of the pull to the recovered instance opened (pull, checks, restore test, recovery, start): the measured time to rebuild the database host from the NAS.",
      ),
      ...drDrillPhases.field,
    },
    onSuccess: [
      "snapshot",
      "fulls",
      "increments",
      "binlogs",
      "bytes",
      "restore_test_seconds",
      "pitr_seconds",
      "file",
      "restore_seconds",
    ],
    patterns: [drDrillPhases.pattern],
  },
  "offsite-drill.sh": {
    fields: {
      key: field(text, "The newest full's object key in the bucket: the one restored."),
      storage_class: field(text, "Its storage class (an archive class fails the drill)."),
      method: field(z.enum(["physical", "logical"]), "The full's method, from its manifest."),
      sha256: field(text, "Its sha256, as recorded in its manifest and by the upload."),
      bytes: field(count, "Bytes downloaded (the full)."),
      restore_seconds: field(
        count,
        "Seconds to download, check, decrypt and prepare the full: the measured time to restore from the bucket.",
      ),
      ...offsiteDrillPhases.field,
    },
    onSuccess: ["key", "storage_class", "method", "sha256", "bytes", "restore_seconds"],
    patterns: [offsiteDrillPhases.pattern],
  },
  "offsite-upload.sh": {
    fields: {
      file: field(text, "The newest full, uploaded or found already there."),
      key: field(text, "Its object key in the bucket."),
      sha256: field(text, "The full's sha256, checked against its manifest before the upload."),
      increment: field(
        text,
        "The full's newest increment, uploaded (with its manifest) or found already there; missing when it has none.",
      ),
      full_age_hours: field(z.number().nonnegative(), "Age of that full when the upload ran."),
      binlogs_present: field(count, "Shipped binlogs found already uploaded."),
      binlogs_uploaded: field(count, "Shipped binlogs uploaded by this run."),
      bytes: field(count, "Bytes uploaded by this run."),
      read_back: field(
        count,
        "Objects downloaded and hashed by this run: each upload, and each object found already there that this host had not read back yet (`<state>/offsite-verified/`).",
      ),
      lock_mode: field(
        z.enum(["GOVERNANCE", "COMPLIANCE"]),
        "Object Lock mode asked for every object (set when the bucket's lock is on).",
      ),
      lock_until: field(
        timestamp,
        "The retain-until date every object must reach: now + the lock's days, up to midnight UTC.",
      ),
      full_locked_until: field(timestamp, "The full's retain-until date, read back."),
      manifest_locked_until: field(timestamp, "Its manifest's retain-until date, read back."),
      binlogs_locked: field(count, "Uploaded binlogs whose lock was proven by this run."),
      binlogs_locked_until: field(timestamp, "The earliest retain-until date among them."),
      stream_present: field(count, "The binlog stream's sealed files found already uploaded."),
      stream_uploaded: field(count, "The binlog stream's sealed files uploaded by this run."),
      stream_locked: field(
        count,
        "Uploaded sealed stream files whose lock was proven by this run.",
      ),
      stream_locked_until: field(timestamp, "The earliest retain-until date among them."),
      lock_set: field(count, "Objects whose retention this run set or lengthened."),
      lock_proven: field(
        count,
        "Objects whose retention this run read back and found long enough.",
      ),
    },
  },
  "pbs-guard.sh": {
    fields: {
      datastore: field(text, "The PBS datastore checked."),
      mounted: field(z.literal([0, 1]), "1 when its USB disk is mounted."),
      recovered: field(
        z.literal(1),
        "Set when the run took the datastore out of maintenance mode.",
      ),
      used_bytes: field(count, "Used bytes of the datastore's file system."),
      avail_bytes: field(count, "Free bytes of the datastore's file system."),
      free_percent: field(count, "Free space, percent."),
    },
  },
  "pve-snapshots.sh": {
    fields: {
      snapshot: field(text, "The name of the snapshots taken by this run."),
      guests_ok: field(count, "Guests snapshotted."),
      guests_failed: field(count, "Guests whose snapshot or rotation failed."),
    },
    patterns: [
      { key: /^(vm|ct)_[0-9]+$/, schema: text, meaning: "`ok`, or `failed: why` for that guest." },
      {
        key: /^(vm|ct)_[0-9]+_kept$/,
        schema: count,
        meaning: "b321-* snapshots of that guest kept.",
      },
      {
        key: /^(vm|ct)_[0-9]+_deleted$/,
        schema: count,
        meaning: "b321-* snapshots of that guest deleted.",
      },
    ],
  },
  "restic-backup.sh": {
    fields: {
      snapshot: field(text, "The restic snapshot id."),
      bytes: field(count, "Data added to the repository (after deduplication)."),
      files: field(count, "Files processed."),
      unreadable: field(count, "Files restic could not read (the run warns)."),
      ...resticWriterFields,
    },
  },
  "restic-copy.sh": {
    fields: {
      bytes: field(z.int(), "Growth of the destination repository."),
      repository_bytes: field(count, "Size of the destination repository after the copy."),
      ...resticWriterFields,
    },
  },
  "restic-check.sh": {
    fields: {
      subset: field(
        text,
        "The part of the data read this run, `n/total` of restic's read-data-subset.",
      ),
      ...resticRepoFields,
    },
  },
  "restic-drill.sh": {
    fields: {
      snapshot: field(text, "The snapshot the sample was restored from (short id): the newest."),
      files: field(count, "Files of the sample restored and verified (restic restore --verify)."),
      bytes: field(count, "Bytes restored."),
      live_compared: field(
        count,
        "Files of the sample compared byte for byte with their source, unchanged since the snapshot.",
      ),
      restore_seconds: restoreSeconds,
    },
    onSuccess: ["snapshot", "files", "bytes", "restore_seconds"],
  },
  "restic-init.sh": {
    fields: {
      created: field(z.enum(["true", "false"]), "`true` when this run created the repository."),
      rotated: field(
        z.literal("true"),
        "Set when this run installed a new repository password (its old key stays until the next verified backup).",
      ),
    },
  },
};

/** <etc>/jobs.d/<job>.json, written by ScheduledJob (components/host/render.ts jobEntry). */
export const JOB_ENTRY_FIELDS = {
  job: field(text, "The job's name."),
  schedule: field(text, "Its cron expression."),
  timezone: field(text, "The time zone the schedule is read in (the host's)."),
  maxIntervalHours: field(
    z.number().positive(),
    "The longest gap between two runs, clock changes included.",
  ),
  graceHours: field(z.number().nonnegative(), "Lateness allowed on top of it."),
  maxAgeSeconds: field(count, "maxIntervalHours + graceHours: an older last success is an alert."),
} satisfies Fields;

/**
 * <state>/runs/<job>.<pid>.json, written by common.sh when a run starts and removed once its status
 * is written. One whose process is gone is a run that ended without a result: the monitor reports
 * it, and the job's next run that does not fail warns about it and removes it.
 */
export const RUN_RECORD_FIELDS = {
  job: field(text, "The job's name."),
  host: field(text, "`hostname` of the host that runs it."),
  pid: field(z.int().positive(), "The job script's pid (also in the file name)."),
  pid_start_ticks: field(
    count,
    "Its start time, field 22 of /proc/<pid>/stat: with pid and boot_id it names one process.",
  ),
  boot_id: field(text, "/proc/sys/kernel/random/boot_id when it started."),
  started: field(timestamp, "When the run started (UTC), as `started` in its status file."),
} satisfies Fields;

/**
 * <history>/<YYYY-MM>.tsv, one line per run appended by common.sh after the run's alert, columns
 * in this order, tab-separated (a tab or line break inside a value is written as a space or ` \\n `).
 * b321-evidence (evidence.sh) reads it.
 */
export const HISTORY_COLUMNS = {
  ended: field(timestamp, "When the run ended (UTC)."),
  host: field(text, "`hostname` of the host that ran it."),
  job: field(z.string().min(1), "The job's name."),
  kind: field(
    z.enum(["backup", "check", "drill", "restore", "setup"]),
    "What the job is: `backup` (takes or copies data), `check`, `drill` (a restore test), `restore` (a recovery run by hand) or `setup`; the script says.",
  ),
  result: field(z.enum(["success", "warning", "failed"]), "As in the status file."),
  duration_seconds: field(z.coerce.number().int().nonnegative(), "How long the run took."),
  restore_seconds: field(
    z.union([z.literal(""), z.coerce.number().int().nonnegative()]),
    "The measured restore time (RTO) of a drill or restore; empty for other runs.",
  ),
  bytes: field(
    z.union([z.literal(""), z.coerce.number().int()]),
    "The status file's `bytes`; empty when the job sets none.",
  ),
  alert: field(
    z.enum(["none", "sent", "undelivered"]),
    "`none` (the run succeeded), `sent` (the alert hook delivered it) or `undelivered` (no hook, or a channel down).",
  ),
  message: field(text, "Why it failed or warned (the alert's text); empty on success."),
} satisfies Fields;

/**
 * <backupDir>/<prefix>_full_<stamp>.<ext>.enc.manifest.json, and _incr_ for an increment, written by
 * mariadb-full.sh.
 */
export const MANIFEST_FIELDS = {
  format: field(
    z.enum(["backup321-mariadb-full/1", "backup321-mariadb-incremental/1"]),
    "The manifest's format and version: a full, or an increment of one.",
  ),
  file: field(text, "The full's (or increment's) file name, beside the manifest."),
  base_full: field(
    text.optional(),
    "An increment's full (its file name): restored first, then the increment on top of it. Absent for a full.",
  ),
  from_lsn: field(
    count.optional(),
    "An increment's first LSN: its full's `to_lsn`, else it is not restored. Absent for a full.",
  ),
  to_lsn: field(
    count.optional(),
    "A physical backup's last LSN: an increment of this full starts there. Absent for a logical full (and a physical one made before increments).",
  ),
  verified: field(
    z.literal(true),
    "The full was decrypted, unpacked and checked before it was named.",
  ),
  method: field(
    z.enum(["physical", "logical"]),
    "`physical` (mariadb-backup) or `logical` (mariadb-dump).",
  ),
  compression: field(text, "The compressor of the stream inside the encryption."),
  encryption: field(text, "How it is encrypted (the openssl command's cipher and KDF)."),
  key_fingerprint: field(
    z.string().regex(/^[0-9a-f]{64}$/),
    "Fingerprint of the key that encrypted it: one not the stack's is skipped.",
  ),
  databases: field(text, "The databases in it, space-separated."),
  sha256: field(z.string().regex(/^[0-9a-f]{64}$/), "sha256 of the encrypted file."),
  bytes: field(count, "Size of the encrypted file."),
  raw_bytes: field(count, "Size of the backup stream before compression and encryption."),
  started: field(timestamp, "When the backup started."),
  consistent_before_epoch: field(
    count,
    "Unix time before which every committed transaction is in it.",
  ),
  duration_seconds: field(count, "How long the backup took, verification included."),
  binlog_file: field(text, "The binlog the full is consistent with: PITR replays from here."),
  binlog_position: field(count, "The position in binlog_file."),
  binlog_identity: field(
    z.union([z.literal(""), z.string().regex(BINLOG_IDENTITY)]),
    "binlog_file's identity, `<name>.<start YYYYmmddTHHMMSSZ>.s<server id>` from its header: the shipped copy PITR starts from (a rebuilt server reuses names). Empty when the header could not be read: PITR then takes the latest binlog of that name started before `consistent_before_epoch`.",
  ),
  binlog_server_id: field(
    z.union([z.literal(""), count]).optional(),
    "For a full taken on a replica: the primary's server_id. binlog_file and binlog_position are then the primary's (where the replica stood still), binlog_identity is empty, and PITR follows only that server's binlogs. Absent for a full taken on the primary.",
  ),
  gtid: field(text, "The GTID position at that point (empty when GTIDs are off)."),
  counted_binlog_file: field(text, "Binlog of the snapshot in which rows were counted."),
  counted_binlog_position: field(count, "Its position."),
  tables: field(
    z.record(z.string(), count),
    "Rows per `db.table`, counted in one consistent snapshot.",
  ),
} satisfies Fields;

/**
 * <binlogBackupDir>/checkpoints/<stamp>.<binlog identity>.<position>.json.enc, written (encrypted with
 * the stack's key) by mariadb-binlogs.sh each run; the PITR drill recovers to the newest and compares.
 */
export const CHECKPOINT_FIELDS = {
  format: field(
    z.literal("backup321-mariadb-checkpoint/1"),
    "The checkpoint's format and version.",
  ),
  time: field(timestamp, "When its snapshot began (at or after this second)."),
  not_before_epoch: field(
    count,
    "`time` as Unix time: a full counts before it when it was complete a second earlier.",
  ),
  binlog_file: field(text, "The binlog of the snapshot: the drill's replay stops in it."),
  binlog_position: field(
    count,
    "The snapshot's position in binlog_file (binlog_snapshot_position).",
  ),
  binlog_identity: field(
    z.string().regex(BINLOG_IDENTITY),
    "binlog_file's identity: its shipped copy is `<identity>.zst.enc` (the checkpoint goes when it goes).",
  ),
  gtid: field(
    text,
    "The GTID position at binlog_position (empty when no GTID was ever written), read from the binlog.",
  ),
  databases: field(text, "The databases whose tables it lists, space-separated."),
  max_table_mb: field(count, "Tables with more data than this were skipped, not read."),
  tables: field(
    z.record(z.string(), z.union([count, z.string().regex(/^skipped: /)])),
    "Per `db.table`: its CHECKSUM TABLE in the snapshot, or `skipped: <why>` (too large, an engine without consistent snapshots, dropped meanwhile).",
  ),
} satisfies Fields;

/** The status file schema of one script (the common fields plus its extras). */
export function statusSchema(script: string): z.ZodType {
  const extras = STATUS_EXTRAS[script];
  if (!extras) throw new Error(`no status contract for script ${script} (add it to STATUS_EXTRAS)`);
  return z
    .looseObject({ ...STATUS_FIELDS, ...partial(extras.fields) })
    .superRefine((status, ctx) => {
      const known = new Set([...Object.keys(STATUS_FIELDS), ...Object.keys(extras.fields)]);
      for (const [key, value] of Object.entries(status)) {
        if (known.has(key)) continue;
        const pattern = extras.patterns?.find((p) => p.key.test(key));
        if (!pattern) {
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: `${script} has no status field ${key}`,
          });
          continue;
        }
        const parsed = pattern.schema.safeParse(value);
        if (!parsed.success)
          ctx.addIssue({ code: "custom", path: [key], message: parsed.error.message });
      }
      if (status.result === "failed") return;
      for (const key of extras.onSuccess ?? []) {
        if (!(key in status))
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: `a ${status.result} run of ${script} must record ${key}`,
          });
      }
    });
}

const partial = (fields: Fields): Fields =>
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.optional()]));

/** The fields common.sh writes for any script, its own extras unchecked (a job outside this repo). */
export const commonStatusSchema = z.looseObject(STATUS_FIELDS);
export const jobEntrySchema = z.strictObject(JOB_ENTRY_FIELDS);
export const manifestSchema = z.strictObject(MANIFEST_FIELDS);
export const checkpointSchema = z.strictObject(CHECKPOINT_FIELDS);
export const runRecordSchema = z.strictObject(RUN_RECORD_FIELDS);
export const historyLineSchema = z.strictObject(HISTORY_COLUMNS);

/** One history line as an object of HISTORY_COLUMNS (validate it with historyLineSchema). */
export function parseHistoryLine(line: string): Record<string, string> | string {
  const names = Object.keys(HISTORY_COLUMNS);
  const values = line.split("\t");
  if (values.length !== names.length)
    return `${values.length} columns instead of ${names.length} (${names.join(", ")})`;
  return Object.fromEntries(names.map((n, i) => [n, values[i]]));
}

/** Problems of one file against its contract, each naming the field ("" when it conforms). */
export function contractProblems(schema: z.ZodType, value: unknown): string[] {
  const parsed = schema.safeParse(value);
  if (parsed.success) return [];
  return parsed.error.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`);
}
