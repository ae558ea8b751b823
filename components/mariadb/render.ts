// Pure functions for the MariaDB backup: the backup user's SQL and grants, its option file, the
// binlog drop-in and the command that applies it, and the env file every MariaDB job reads.
import { dirname, installFileCommand, sha256, shq } from "../host/render";

/** The point-in-time recovery job, run by hand (b321-mariadb-pitr). */
export const PITR_JOB = "mariadb-pitr";
/** Its script (b321-mariadb-pitr runs it with the job's env file). */
export const PITR_SCRIPT = "mariadb-pitr.sh";
/** The scheduled PITR drill (the monitor checks its result like a restore test). */
export const PITR_DRILL_JOB = "mariadb-pitr-drill";

export type Method = "physical" | "logical";
export type Compression = "zstd" | "gzip";

/** The tools the MariaDB scripts need on the database host. */
export const MARIADB_TOOLS = [
  "mariadb",
  "mariadbd",
  "mariadb-dump",
  "mariadb-backup",
  "mariadb-binlog",
  "mariadb-install-db",
  "mbstream",
  "openssl",
  "zstd",
  "gzip",
  "awk",
  "realpath",
  // the physical full's xbstream check in the pass that writes it (mariadb-full.sh)
  "perl",
];

/** What the handoff of a replica's fulls needs on both hosts (rsync over ssh, the replica's own key). */
export const HANDOFF_TOOLS = ["rsync", "ssh", "ssh-keygen"];

/** A string literal for SQL (single quotes, backslashes and quotes escaped). */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function account(user: string): string {
  if (!/^[A-Za-z0-9_]{1,32}$/.test(user)) throw new Error(`"${user}" is not a MariaDB user name`);
  return `${sqlString(user)}@'localhost'`;
}

function database(db: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(db)) throw new Error(`"${db}" is not a database name`);
  return `\`${db}\``;
}

export interface Grants {
  /** Privileges on *.* (server-wide). */
  readonly global: readonly string[];
  /** Privileges on each listed database. */
  readonly perDatabase: readonly string[];
  /** Privileges on single system tables, as [table, privileges]. */
  readonly perTable: readonly (readonly [string, readonly string[]])[];
}

/**
 * Exactly what each method needs on MariaDB 10.11, and nothing that writes.
 * - logical: the seed's SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER on each database (mariadb-dump
 *   --single-transaction --routines --triggers --events), plus RELOAD (FLUSH TABLES WITH READ LOCK for
 *   --master-data, FLUSH BINARY LOGS) and BINLOG MONITOR (SHOW MASTER STATUS / SHOW BINARY LOGS; it
 *   replaced REPLICATION CLIENT in 10.5), plus SELECT on mysql.proc: without it mariadb-dump --routines
 *   silently leaves out every procedure and function the user did not define.
 * - physical: mariadb-backup's RELOAD (BACKUP STAGE, FLUSH), PROCESS (InnoDB status), LOCK TABLES and
 *   BINLOG MONITOR (--binlog-info=ON), plus SELECT on each database for the manifest's row counts.
 * - fulls on a replica, either method: SLAVE MONITOR (SHOW SLAVE STATUS: its state, lag and the
 *   primary's coordinates) and REPLICATION SLAVE ADMIN (STOP/START SLAVE SQL_THREAD while it backs
 *   up). The user is created on the primary and reaches the replica by replication, so the primary's
 *   copy holds them too; there they let the user stop nothing, as the primary has no replica thread.
 */
export function backupGrants(method: Method, onReplica = false): Grants {
  const g = methodGrants(method);
  return onReplica
    ? { ...g, global: [...g.global, "SLAVE MONITOR", "REPLICATION SLAVE ADMIN"] }
    : g;
}

function methodGrants(method: Method): Grants {
  switch (method) {
    case "logical":
      return {
        global: ["RELOAD", "BINLOG MONITOR"],
        perDatabase: ["SELECT", "LOCK TABLES", "SHOW VIEW", "EVENT", "TRIGGER"],
        perTable: [["mysql.proc", ["SELECT"]]],
      };
    case "physical":
      return {
        global: ["RELOAD", "PROCESS", "LOCK TABLES", "BINLOG MONITOR"],
        perDatabase: ["SELECT"],
        perTable: [],
      };
  }
}

export interface UserSpec {
  readonly user: string;
  readonly method: Method;
  readonly databases: readonly string[];
  /** Fulls are taken on a replica (mariadb.replica). Defaults to false. */
  readonly onReplica?: boolean;
}

/** The grants of the backup user, reset to exactly the method's list (a method change removes what is no longer needed). */
export function renderGrantsSql(spec: UserSpec): string {
  const who = account(spec.user);
  const g = backupGrants(spec.method, spec.onReplica);
  return [
    `REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${who};`,
    `GRANT ${g.global.join(", ")} ON *.* TO ${who};`,
    ...spec.databases.map(
      (db) => `GRANT ${g.perDatabase.join(", ")} ON ${database(db)}.* TO ${who};`,
    ),
    ...g.perTable.map(([table, privs]) => `GRANT ${privs.join(", ")} ON ${table} TO ${who};`),
    "",
  ].join("\n");
}

/**
 * Idempotent, as the server's root through unix_socket: creates the user when missing, sets the
 * password read from stdin (a rotation is an update), then the grants. The password is the only
 * secret and comes on stdin, so the grants stay plain text that a preview shows and a review reads;
 * it reaches mariadb through a pipe from bash builtins, never argv.
 */
export function userCommand(socket: string, spec: UserSpec): string {
  const who = account(spec.user);
  return [
    "set -eu",
    'IFS= read -r pw || [ -n "$pw" ]',
    // The generated password is letters and digits: nothing to escape inside the SQL string.
    `case $pw in '' | *[!A-Za-z0-9._-]*) echo "backup321: the backup user's password on stdin must be letters, digits and ._-" >&2; exit 1 ;; esac`,
    "{",
    `  printf "CREATE USER IF NOT EXISTS %s IDENTIFIED BY '%s';\\n" ${shq(who)} "$pw"`,
    `  printf "ALTER USER %s IDENTIFIED BY '%s';\\n" ${shq(who)} "$pw"`,
    // Quoted here-document: the grants verbatim, as a preview shows them.
    "  cat <<'B321_SQL'",
    renderGrantsSql(spec).trimEnd(),
    "B321_SQL",
    `} | ${rootSql(socket)}`,
  ].join("\n");
}

function rootSql(socket: string): string {
  return `mariadb --no-defaults --socket=${shq(socket)} -uroot --batch`;
}

/** The SQL that removes the backup user. */
export function renderDropUserSql(user: string): string {
  return `DROP USER IF EXISTS ${account(user)};\n`;
}

/** Drops the backup user; a server that is gone (no socket) is reported, not an error. */
export function dropUserCommand(socket: string, user: string): string {
  return [
    "set -eu",
    `if [ ! -S ${shq(socket)} ]; then echo ${shq(`backup321: no MariaDB socket at ${socket}: backup user ${user} not dropped`)} >&2; exit 0; fi`,
    `printf '%s' ${shq(renderDropUserSql(user))} | ${rootSql(socket)}`,
  ].join("\n");
}

/** The backup user's option file, read with --defaults-extra-file (0600). */
export function renderOptionFile(user: string, password: string): string {
  if (/[\s"'\\#;]/.test(password))
    throw new Error("the backup password must have no quotes, spaces, # or ;");
  return `# backup321: the MariaDB backup user (managed by pulumi up)\n[client]\nuser=${user}\npassword=${password}\n`;
}

export interface BinlogSpec {
  readonly basename: string;
  readonly serverId: number;
  readonly expireDays: number;
  /** Defaults to 100M (the seed's max_binlog_size). */
  readonly maxSize?: string;
}

/** root's query through the server's socket (a command line ending in -e). */
function rootQuery(socket: string): string {
  return `mariadb --no-defaults --socket=${shq(socket)} -uroot -N -B -e`;
}

/** Shell lines that wait up to `wait` seconds for the server to answer root, failing loudly. */
function awaitServer(socket: string, wait: number): string[] {
  const q = rootQuery(socket);
  return [
    "up=0",
    `for i in $(seq 1 ${wait}); do if ${q} 'SELECT 1' >/dev/null 2>&1; then up=1; break; fi; sleep 1; done`,
    `[ "$up" = 1 ] || { echo ${shq(`backup321: MariaDB does not answer on ${socket} (waited ${wait} s): see its error log`)} >&2; exit 1; }`,
  ];
}

/** The drop-in .cnf that turns binlogs on for PITR (source MariaDB §16.10.3, with today's names). */
export function renderBinlogDropIn(spec: BinlogSpec): string {
  return [
    "# backup321: binary logs for point-in-time recovery (managed by pulumi up).",
    "# Changing this file restarts MariaDB once, from pulumi up.",
    "[mariadb]",
    `log_bin = ${spec.basename}`,
    "binlog_format = ROW",
    `server_id = ${spec.serverId}`,
    `max_binlog_size = ${spec.maxSize ?? "100M"}`,
    `binlog_expire_logs_seconds = ${spec.expireDays * 86400}`,
    "",
  ].join("\n");
}

export interface BinlogConfigCommand {
  /** Where the drop-in goes. */
  readonly path: string;
  readonly basename: string;
  readonly serverId: number;
  readonly socket: string;
  readonly restartCommand: string;
  /** Seconds to wait for the server after a restart. Defaults to 120. */
  readonly waitSeconds?: number;
}

/**
 * Installs the drop-in from stdin. MariaDB is restarted only when the file's bytes changed; then
 * the command waits for the server and checks that log_bin, binlog_format and server_id are live,
 * failing loudly otherwise (a later drop-in may override ours; the server may not come back).
 */
export function binlogConfigCommand(c: BinlogConfigCommand): string {
  const f = shq(c.path);
  const q = rootQuery(c.socket);
  const wait = c.waitSeconds ?? 120;
  return [
    "set -eu",
    `install -d -m 0755 -- ${shq(dirname(c.path))}`,
    `tmp=$(mktemp -- ${f}.b321.XXXXXX)`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `cat > "$tmp"`,
    "changed=0",
    `if id mysql >/dev/null 2>&1; then install -d -o mysql -g mysql -m 0750 -- ${shq(dirname(c.basename))}; fi`,
    `if ! cmp -s -- "$tmp" ${f}; then`,
    // The server reads the file only at a restart: a failed restart puts the previous file back, so
    // a retry sees the change again instead of a drop-in that looks applied.
    `  prev=$(mktemp -- ${f}.b321-prev.XXXXXX)`,
    `  if [ -e ${f} ]; then cp -p -- ${f} "$prev"; else rm -f -- "$prev"; fi`,
    `  chmod 0644 -- "$tmp"; mv -f -- "$tmp" ${f}; changed=1`,
    `  echo ${shq(`backup321: ${c.path} changed: restarting MariaDB`)} >&2`,
    `  if ! ${c.restartCommand}; then`,
    `    if [ -e "$prev" ]; then mv -f -- "$prev" ${f}; else rm -f -- ${f}; fi`,
    `    echo ${shq(`backup321: restart failed: ${c.restartCommand} (${c.path} not changed; pulumi up retries it)`)} >&2`,
    "    exit 1",
    "  fi",
    `  rm -f -- "$prev"`,
    "fi",
    ...awaitServer(c.socket, wait),
    `live=$(${q} "SELECT CONCAT_WS(' ', IF(@@log_bin, 'ON', 'OFF'), @@binlog_format, @@server_id)")`,
    `[ "$live" = ${shq(`ON ROW ${c.serverId}`)} ] || { echo "backup321: MariaDB runs with log_bin binlog_format server_id = $live, not ON ROW ${c.serverId} (does a later file in the drop-in directory override ${c.path}?)" >&2; exit 1; }`,
    `echo "binlog config in place (restarted: $changed)"`,
  ].join("\n");
}

/**
 * The drop-in of the server settings backup321 applies live (no restart): the dirty pages' low water
 * mark, so that an idle server flushes and its checkpoint follows the writes.
 */
export function renderFlushingDropIn(lwmPct: number): string {
  return [
    "# backup321: an idle server flushes its dirty pages, so a night's backup carries little redo",
    "# (managed by pulumi up; applied live, without a restart).",
    "[mariadb]",
    `innodb_max_dirty_pages_pct_lwm = ${lwmPct}`,
    "",
  ].join("\n");
}

export interface FlushingConfigCommand {
  /** Where the drop-in goes. */
  readonly path: string;
  readonly lwmPct: number;
  readonly socket: string;
  /** Seconds to wait for the server. Defaults to 120. */
  readonly waitSeconds?: number;
}

/**
 * Installs the drop-in from stdin (only when its bytes changed), sets the value live, and checks
 * that the server runs with it.
 */
export function flushingConfigCommand(c: FlushingConfigCommand): string {
  const q = rootQuery(c.socket);
  const wait = c.waitSeconds ?? 120;
  const install = { path: c.path, mode: "0644", owner: "root", group: "root", dirMode: "0755" };
  return [
    "set -eu",
    // in a subshell: the install ends early, leaving the file alone, when it is already in place
    `(\n${installFileCommand(install)}\n)`,
    ...awaitServer(c.socket, wait),
    `${q} ${shq(`SET GLOBAL innodb_max_dirty_pages_pct_lwm = ${c.lwmPct}`)}`,
    `live=$(${q} 'SELECT @@innodb_max_dirty_pages_pct_lwm = ${c.lwmPct}')`,
    `[ "$live" = 1 ] || { echo "backup321: MariaDB runs with innodb_max_dirty_pages_pct_lwm = $(${q} 'SELECT @@innodb_max_dirty_pages_pct_lwm'), not ${c.lwmPct}" >&2; exit 1; }`,
    `echo "innodb_max_dirty_pages_pct_lwm = ${c.lwmPct}"`,
  ].join("\n");
}

/** The label hashed before the key: the fingerprint's domain and version. */
export const KEY_FINGERPRINT_LABEL = "backup321 mariadb key fingerprint v1";

/**
 * The encryption key's fingerprint: sha256 of KEY_FINGERPRINT_LABEL, a newline, then the key (the
 * key file's first line: all that `openssl -pass file:` reads). mariadb-lib.sh computes the same
 * from the key file (mdb_key_fingerprint); every manifest records it and every job checks the key
 * file against the stack's before it writes or decrypts anything.
 * NOT A SECRET, on purpose: it is rendered into the jobs' env files and the stack's plain state. The
 * key is random (48 characters of 62, 285 bits), so no hash of it can be searched back to it; the
 * label keeps the fingerprint from matching a plain sha256 of the key or of its file kept anywhere
 * else. Not an HMAC: openssl would need the key on its command line (ps), while this hash gets the
 * key through a pipe from a shell builtin.
 */
export function keyFingerprint(key: string): string {
  return sha256(`${KEY_FINGERPRINT_LABEL}\n${key}`);
}

export interface JobEnvSpec {
  readonly socket: string;
  readonly clientCnf: string;
  readonly keyFile: string;
  /** keyFingerprint() of the stack's key: the key file must match it. */
  readonly keyFingerprint: string;
  readonly databases: readonly string[];
  readonly method: Method;
  readonly compression: Compression;
  readonly backupDir: string;
  readonly binlogBackupDir: string;
  readonly binlogBasename: string;
  readonly prefix: string;
  readonly keepFulls: number;
  /** Days a full's increments are kept after the newest of them (mariadb.retention.incrementDays). */
  readonly keepIncrementDays?: number;
  readonly binlogKeepDays: number;
  readonly timezone: string;
  readonly scratchDir: string;
  readonly serverUser: string;
  /** Every key ever used, one per line (rotation). */
  readonly keyring?: string;
  /** On the replica's full job only: its lag limit in seconds (mariadb.replica.maxLagSeconds). */
  readonly replicaMaxLag?: number;
  /** On the replica's full job only: where it hands each verified full (mariadb-receive.sh). */
  readonly handoff?: Handoff;
  /** Tables larger than this (MB of data) are skipped by the shipping checkpoint's checksums. */
  readonly checkpointMaxTableMb: number;
}

/** The primary's side of the handoff, as the replica's full job reaches it. */
export interface Handoff {
  readonly user: string;
  readonly address: string;
  readonly port: number;
  /** The primary's backupDir. */
  readonly dir: string;
  /** The replica's own key (never leaves it). */
  readonly key: string;
  readonly knownHosts: string;
}

/** What marks the replica's handoff key in the primary's authorized_keys (keyComment). */
export const HANDOFF_PURPOSE = "mariadb-handoff";

/**
 * The primary refuses a second full within this many minutes of the last it accepted, so a stolen
 * handoff key cannot push the kept fulls out faster than one an hour (a full run by hand after the
 * scheduled one still passes).
 */
export const HANDOFF_MIN_INTERVAL_MINUTES = 60;

/**
 * The primary's authorized_keys line for the replica's handoff key: `restrict` (no shell, pty or
 * forwarding) and the receiver as forced command, so the key can only add newer verified fulls to
 * the primary's backupDir, which keeps `keep` of them.
 */
export function handoffKeyLine(spec: {
  readonly receiver: string;
  readonly backupDir: string;
  readonly keep: number;
  /** Days the increments of a full are kept after the newest of them; unset: as long as the full. */
  readonly incrementDays?: number;
  readonly publicKey: string;
  readonly comment: string;
}): string {
  const key = spec.publicKey.trim().split(/\s+/).slice(0, 2).join(" ");
  if (!/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(key))
    throw new Error(`"${spec.publicKey}" is not an ed25519 public key`);
  for (const p of [spec.receiver, spec.backupDir])
    if (!/^\/[A-Za-z0-9._/@+-]*$/.test(p)) throw new Error(`"${p}" must be a plain absolute path`);
  const params = [spec.backupDir, spec.keep, HANDOFF_MIN_INTERVAL_MINUTES, spec.incrementDays ?? ""]
    .join(" ")
    .trimEnd();
  return `restrict,command="${spec.receiver} ${params}" ${key} ${spec.comment}`;
}

/** The variables of every MariaDB job's env file (mariadb-lib.sh documents them). No secret (the key's fingerprint is not one: see keyFingerprint). */
export function mariadbEnv(s: JobEnvSpec): Record<string, string | number> {
  return {
    MARIADB_SOCKET: s.socket,
    MARIADB_CLIENT_CNF: s.clientCnf,
    MARIADB_KEY_FILE: s.keyFile,
    MARIADB_KEY_FINGERPRINT: s.keyFingerprint,
    ...(s.keyring ? { MARIADB_KEYRING: s.keyring } : {}),
    MARIADB_DATABASES: s.databases.join(" "),
    MARIADB_METHOD: s.method,
    MARIADB_COMPRESSION: s.compression,
    MARIADB_BACKUP_DIR: s.backupDir,
    MARIADB_BINLOG_BACKUP_DIR: s.binlogBackupDir,
    MARIADB_BINLOG_BASENAME: s.binlogBasename,
    MARIADB_PREFIX: s.prefix,
    MARIADB_KEEP_FULLS: s.keepFulls,
    ...(s.keepIncrementDays === undefined
      ? {}
      : { MARIADB_INCREMENT_KEEP_DAYS: s.keepIncrementDays }),
    MARIADB_BINLOG_KEEP_DAYS: s.binlogKeepDays,
    MARIADB_TZ: s.timezone,
    MARIADB_SCRATCH_DIR: s.scratchDir,
    MARIADB_SERVER_USER: s.serverUser,
    ...(s.replicaMaxLag === undefined ? {} : { MARIADB_REPLICA_MAX_LAG: s.replicaMaxLag }),
    ...(s.handoff
      ? {
          MARIADB_HANDOFF_USER: s.handoff.user,
          MARIADB_HANDOFF_ADDRESS: s.handoff.address,
          MARIADB_HANDOFF_PORT: s.handoff.port,
          MARIADB_HANDOFF_DIR: s.handoff.dir,
          MARIADB_HANDOFF_KEY: s.handoff.key,
          MARIADB_HANDOFF_KNOWN_HOSTS: s.handoff.knownHosts,
        }
      : {}),
    MARIADB_CHECKPOINT_MAX_TABLE_MB: s.checkpointMaxTableMb,
  };
}

/** The seed's file prefix: the database's name when there is one, else the site's. */
export function filePrefix(databases: readonly string[], site: string): string {
  return databases.length === 1 ? databases[0] : site;
}

/** The generated encryption key of a MariaDbBackup named BACKUP. */
export const keyResource = (backup: string) => `${backup}-key`;

/** The disaster-recovery drill's job on the standby (mariadb.drDrill). */
export const DR_DRILL_JOB = "mariadb-dr-drill";
/** The purpose of the standby's own key, read-only on the NAS (its comment there: backup321-nas-read@<standby>). */
export const DR_DRILL_KEY_PURPOSE = "nas-read";

/** Where the drill reads the database host's copies: the NAS, with the standby's read-only key. */
export interface DrDrillNas {
  readonly user: string;
  readonly address: string;
  readonly port: number;
  /** The NAS directory holding the dated snapshots (offsite.nas.path). */
  readonly path: string;
  /** The standby's own key (read-only on the NAS). */
  readonly key: string;
  /** The NAS's pinned host key on the standby. */
  readonly knownHosts: string;
}

/**
 * The drill's own variables, beside the MariaDB jobs' (mariadbEnv, with the database host's backup
 * directories: the paths the NAS snapshot holds them under): the NAS read-back's and the scratch.
 */
export function drDrillEnv(s: {
  readonly nas: DrDrillNas;
  readonly sources: readonly string[];
  readonly scratch: string;
}): Record<string, string | number> {
  return {
    NAS_USER: s.nas.user,
    NAS_ADDRESS: s.nas.address,
    NAS_PORT: s.nas.port,
    NAS_PATH: s.nas.path,
    NAS_KEY: s.nas.key,
    NAS_KNOWN_HOSTS: s.nas.knownHosts,
    NAS_SOURCES: s.sources.join(" "),
    DRILL_SCRATCH: s.scratch,
  };
}

/** The tools a stream host needs (mariadb.stream) when it runs no MariaDB of its own. */
export const STREAM_TOOLS = ["mariadb", "mariadb-binlog", "openssl", "zstd", "setsid", "flock"];

/** The continuous binlog stream's job (mariadb.stream): its script, status and service name. */
export const STREAM_JOB = "mariadb-stream";
/** Its watchdog, a job run every minute beside it. */
export const STREAM_WATCH_JOB = "mariadb-stream-watch";
/** Where the stream keeps the binlogs it is writing (mariadb-stream.sh): plain, the newest open. */
export const streamLiveDir = (dir: string): string => `${dir}/live`;
/** The stream's scratch files (rsync patterns): its error log and a seal in progress. */
export const STREAM_SCRATCH = [".stream.err", "*.b321-partial"] as const;
/**
 * What in the stream's directory is not a sealed binlog, as rsync exclude patterns: the files in
 * live/ and the scratch files. The NAS gets only the sealed files and their .sha256 (the upload picks
 * those by name).
 */
export function streamUnsealed(dir: string): string[] {
  return [`${streamLiveDir(dir)}/`, ...STREAM_SCRATCH];
}
/** Seconds between two status writes of a healthy stream. */
export const STREAM_STATUS_SECONDS = 10;
/** How old a stream's status may be before it counts as down (the watchdog's default too). */
export const STREAM_STALE_SECONDS = 3 * STREAM_STATUS_SECONDS + 20;

/**
 * The stream's replication user on the primary: the least mariadb-binlog --read-from-remote-server
 * --stop-never needs on MariaDB 10.5+ (REPLICATION SLAVE for the binlog dump; BINLOG MONITOR for
 * SHOW BINARY LOGS / SHOW MASTER STATUS, where the stream resumes and measures its lag), from the
 * stream host's address only.
 */
export interface StreamUserSpec {
  readonly user: string;
  /** The stream host's address as the primary sees it (the account's host part). */
  readonly from: string;
}

function streamAccount(spec: StreamUserSpec): string {
  if (!/^[A-Za-z0-9_]{1,32}$/.test(spec.user))
    throw new Error(`"${spec.user}" is not a MariaDB user name`);
  if (!/^[A-Za-z0-9.:%_-]{1,255}$/.test(spec.from))
    throw new Error(`"${spec.from}" is not a host for a MariaDB account`);
  return `${sqlString(spec.user)}@${sqlString(spec.from)}`;
}

/** The stream user's grants, and nothing else (an older grant is revoked first). */
export function renderStreamGrantsSql(spec: StreamUserSpec): string {
  const who = streamAccount(spec);
  return [
    `REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${who};`,
    `GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO ${who};`,
    "",
  ].join("\n");
}

/**
 * Creates the stream user on the primary (idempotent, as root through unix_socket), its password
 * read from stdin as userCommand does.
 */
export function streamUserCommand(socket: string, spec: StreamUserSpec): string {
  const who = streamAccount(spec);
  return [
    "set -eu",
    'IFS= read -r pw || [ -n "$pw" ]',
    `case $pw in '' | *[!A-Za-z0-9._-]*) echo "backup321: the stream user's password on stdin must be letters, digits and ._-" >&2; exit 1 ;; esac`,
    "{",
    `  printf "CREATE USER IF NOT EXISTS %s IDENTIFIED BY '%s';\\n" ${shq(who)} "$pw"`,
    `  printf "ALTER USER %s IDENTIFIED BY '%s';\\n" ${shq(who)} "$pw"`,
    "  cat <<'B321_SQL'",
    renderStreamGrantsSql(spec).trimEnd(),
    "B321_SQL",
    `} | ${rootSql(socket)}`,
  ].join("\n");
}

/** Drops the stream user; a server that is gone (no socket) is reported, not an error. */
export function dropStreamUserCommand(socket: string, spec: StreamUserSpec): string {
  return [
    "set -eu",
    `if [ ! -S ${shq(socket)} ]; then echo ${shq(`backup321: no MariaDB socket at ${socket}: stream user ${spec.user} not dropped`)} >&2; exit 0; fi`,
    `printf '%s' ${shq(`DROP USER IF EXISTS ${streamAccount(spec)};\n`)} | ${rootSql(socket)}`,
  ].join("\n");
}

/** The stream user's option file on the stream host (0600), with the primary's address. */
export function renderStreamOptionFile(user: string, password: string): string {
  if (/[\s"'\\#;]/.test(password))
    throw new Error("the stream password must have no quotes, spaces, # or ;");
  return `# backup321: the MariaDB binlog stream's user (managed by pulumi up)\n[client]\nuser=${user}\npassword=${password}\n`;
}

export interface StreamEnvSpec {
  /** The primary's address and port, from the stream host. */
  readonly address: string;
  readonly port: number;
  /** The stream user's option file (0600). */
  readonly clientCnf: string;
  /** Where the stream keeps its files (live/ and the sealed binlogs). */
  readonly dir: string;
  /** The primary's binlog base name (the file part of log_bin, e.g. mysql-bin). */
  readonly basename: string;
  /** The server id the stream registers with on the primary (unique among its replicas). */
  readonly serverId: number;
  readonly keyFile: string;
  readonly keyFingerprint: string;
  readonly keyring?: string;
  /** The CA of the primary's certificate: TLS required and verified. Defaults to TLS when offered. */
  readonly sslCa?: string;
  /** The watchdog alerts beyond this lag. */
  readonly maxLagSeconds: number;
  /** Seconds between two status writes of a healthy stream. Defaults to 10. */
  readonly statusSeconds?: number;
  /** Sealed binlogs older than this many days are removed. */
  readonly keepDays: number;
}

/** The env file of the stream and of its watchdog. */
export function streamEnv(s: StreamEnvSpec): Record<string, string | number> {
  if (!/^[A-Za-z0-9_.-]+$/.test(s.basename) || s.basename.includes("/"))
    throw new Error(`"${s.basename}" is not a binlog base name (the file part of log_bin)`);
  return {
    MARIADB_STREAM_ADDRESS: s.address,
    MARIADB_STREAM_PORT: s.port,
    MARIADB_STREAM_CNF: s.clientCnf,
    MARIADB_STREAM_DIR: s.dir,
    MARIADB_STREAM_BASENAME: s.basename,
    MARIADB_STREAM_SERVER_ID: s.serverId,
    MARIADB_KEY_FILE: s.keyFile,
    MARIADB_KEY_FINGERPRINT: s.keyFingerprint,
    ...(s.keyring ? { MARIADB_KEYRING: s.keyring } : {}),
    ...(s.sslCa ? { MARIADB_STREAM_SSL_CA: s.sslCa } : {}),
    MARIADB_STREAM_MAX_LAG: s.maxLagSeconds,
    MARIADB_STREAM_STATUS_SECONDS: s.statusSeconds ?? 10,
    MARIADB_STREAM_KEEP_DAYS: s.keepDays,
  };
}
