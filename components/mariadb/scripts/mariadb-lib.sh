#!/bin/bash
# Shared by the MariaDB job scripts (sourced after common.sh): client access with the backup user's
# option file, decrypt/decompress of a full, manifests, scratch instances and binlog replay.
# Configuration comes from the job's env file:
#   MARIADB_SOCKET            live server's socket
#   MARIADB_CLIENT_CNF        0600 option file ([client] user, password) of the backup user
#   MARIADB_KEY_FILE          0600 encryption key file (openssl -pass file:): the current key
#   MARIADB_KEYRING           0600 file of every key ever used, one per line (rotation): a full or
#                             binlog made before a rotation opens with its own key [optional]
#   MARIADB_KEY_FINGERPRINT   fingerprint of the stack's key (render.ts keyFingerprint): the key
#                             file must match it (mdb_require_key)
#   MARIADB_DATABASES         databases backed up, space separated
#   MARIADB_METHOD            physical | logical
#   MARIADB_COMPRESSION       zstd | gzip
#   MARIADB_BACKUP_DIR        fulls and their manifests
#   MARIADB_BINLOG_BACKUP_DIR shipped binlogs
#   MARIADB_BINLOG_BASENAME   the server's log_bin basename (its binlogs are read, never written)
#   MARIADB_PREFIX            file name prefix: <prefix>_full_<UTC stamp>.<xb|sql>.<zst|gz>.enc,
#                             <prefix>_incr_<UTC stamp>.xb.<zst|gz>.enc for an increment
#   MARIADB_KEEP_FULLS        verified fulls kept
#   MARIADB_INCREMENT_KEEP_DAYS  a full's increments are kept until the newest of them is this old
#                             [optional: unset, as long as their full]
#   MARIADB_BINLOG_KEEP_DAYS  shipped binlogs are kept at least this long (and back to the oldest full)
#   MARIADB_TZ                time zone of --until in point-in-time recovery
#   MARIADB_SCRATCH_DIR       where restore tests build their scratch instance
#   MARIADB_SERVER_USER       unix user scratch servers run as
#   MARIADB_REPLICA_MAX_LAG   set on a replica only (mariadb.replica): the full job runs there,
#                             refuses a replica that is stopped, broken or lagging more than this
#                             many seconds, and records the primary's coordinates (mdb_replica_*)
#   MARIADB_HANDOFF_USER, _ADDRESS, _PORT, _DIR, _KEY, _KNOWN_HOSTS
#                             set on a replica only: the full job hands each verified full to the
#                             primary's DIR over SSH with KEY (mariadb-receive.sh there)
#   MARIADB_CHECKPOINT_MAX_TABLE_MB  a shipping checkpoint checksums tables up to this size
# shellcheck disable=SC2034  # MDB_* variables are read by the scripts that source this file

MDB_SCRATCH_PID=""
MDB_SCRATCH_SOCKET=""
MDB_REPLAY_TZ=UTC
MDB_REPLAY_DATABASE=""

# The backup user's client options: the option file first (mariadb requires it), then the socket.
mdb_client() {
  local prog=$1
  shift
  "$prog" "--defaults-extra-file=$MARIADB_CLIENT_CNF" "--socket=$MARIADB_SOCKET" "$@"
}

# mdb_sql SQL: runs SQL on the live server as the backup user; tab-separated rows, no header.
mdb_sql() {
  mdb_client mariadb -N -B -e "$1"
}

# Fails the run unless the live server answers and the configuration is complete.
mdb_require_server() {
  local f
  for f in "$MARIADB_CLIENT_CNF" "$MARIADB_KEY_FILE"; do
    [ -s "$f" ] || b321_fail "$f is missing or empty (run pulumi up to install it)"
  done
  mdb_sql "SELECT 1" >/dev/null 2>&1 ||
    b321_fail "MariaDB does not answer on $MARIADB_SOCKET as the backup user (is the server down?)"
}

# mdb_replica_status: MDB_RS, the fields of SHOW SLAVE STATUS (empty on a server that is no
# replica). Read as the backup user (REPLICA MONITOR: render.ts backupGrants).
declare -A MDB_RS=()
mdb_replica_status() {
  local out line
  MDB_RS=()
  out=$(mdb_client mariadb -E -e "SHOW SLAVE STATUS" 2>&1) ||
    b321_fail "SHOW SLAVE STATUS failed on $MARIADB_SOCKET: $out"
  while IFS= read -r line; do
    [[ $line =~ ^\ *([A-Za-z_]+):\ ?(.*)$ ]] && MDB_RS[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  done <<<"$out"
}

# mdb_replica_check MAX_LAG: fails unless the server is a replica whose threads both run, without
# error, at most MAX_LAG seconds behind its primary. A full from a replica that is stopped or far
# behind would silently hold old data while its manifest says "now".
mdb_replica_check() {
  local max=$1 lag
  mdb_replica_status
  [ "${#MDB_RS[@]}" -gt 0 ] ||
    b321_fail "the server on $MARIADB_SOCKET is not a replica (SHOW SLAVE STATUS is empty) but mariadb.replica names it: set up replication, or remove mariadb.replica to back up the primary"
  if [ "${MDB_RS[Slave_IO_Running]:-}" != Yes ] || [ "${MDB_RS[Slave_SQL_Running]:-}" != Yes ]; then
    local err=${MDB_RS[Last_SQL_Error]:-}
    [ -n "$err" ] || err=${MDB_RS[Last_IO_Error]:-}
    b321_fail "the replica is not replicating (Slave_IO_Running=${MDB_RS[Slave_IO_Running]:-?}, Slave_SQL_Running=${MDB_RS[Slave_SQL_Running]:-?}${err:+, last error: $err}): no full taken; fix and START SLAVE on the replica"
  fi
  lag=${MDB_RS[Seconds_Behind_Master]:-NULL}
  [[ $lag =~ ^[0-9]+$ ]] || b321_fail "the replica's lag is unknown (Seconds_Behind_Master=$lag): no full taken"
  b321_set replica_lag_seconds "$lag"
  [ "$lag" -le "$max" ] ||
    b321_fail "the replica lags ${lag} s behind the primary, more than the limit of ${max} s (mariadb.replica.maxLagSeconds): no full taken; let it catch up, or raise the limit"
}

# mdb_replica_freeze: stops the replica's SQL thread (the IO thread goes on fetching), so that its
# data stands still at the primary's coordinates it records: MDB_PRIMARY_FILE, MDB_PRIMARY_POS (the
# primary's binlog, Relay_Master_Log_File/Exec_Master_Log_Pos), MDB_PRIMARY_ID (its server_id) and
# MDB_PRIMARY_GTID (gtid_slave_pos). The backup and its row counts are both taken while it stands
# still, so both are exactly at those coordinates: what mariadb-backup --safe-slave-backup and
# mariadb-dump --dump-slave do, for both methods and the counts alike. mdb_replica_thaw restarts it.
MDB_PRIMARY_FILE=""
MDB_PRIMARY_POS=""
MDB_PRIMARY_ID=""
MDB_PRIMARY_GTID=""
MDB_FROZEN=0
mdb_replica_freeze() {
  local out
  out=$(mdb_sql "STOP SLAVE SQL_THREAD" 2>&1) || b321_fail "STOP SLAVE SQL_THREAD failed: $out"
  MDB_FROZEN=1
  b321_cleanup mdb_replica_thaw
  mdb_replica_status
  MDB_PRIMARY_FILE=${MDB_RS[Relay_Master_Log_File]:-}
  MDB_PRIMARY_POS=${MDB_RS[Exec_Master_Log_Pos]:-}
  MDB_PRIMARY_ID=${MDB_RS[Master_Server_Id]:-}
  MDB_PRIMARY_GTID=$(mdb_sql "SELECT @@gtid_slave_pos") || b321_fail "cannot read gtid_slave_pos"
  [[ -n $MDB_PRIMARY_FILE && $MDB_PRIMARY_POS =~ ^[0-9]+$ && $MDB_PRIMARY_ID =~ ^[0-9]+$ ]] ||
    b321_fail "the replica shows no primary coordinates (Relay_Master_Log_File='$MDB_PRIMARY_FILE', Exec_Master_Log_Pos='$MDB_PRIMARY_POS', Master_Server_Id='$MDB_PRIMARY_ID')"
  b321_log "replica stopped applying at the primary's $MDB_PRIMARY_FILE:$MDB_PRIMARY_POS (GTID $MDB_PRIMARY_GTID)"
}

# mdb_replica_thaw: restarts the SQL thread this run stopped (also from the exit trap).
mdb_replica_thaw() {
  [ "$MDB_FROZEN" = 1 ] || return 0
  MDB_FROZEN=0
  local out
  out=$(mdb_sql "START SLAVE SQL_THREAD" 2>&1) || {
    b321_log "START SLAVE SQL_THREAD failed: $out"
    return 1
  }
}

# The label of mdb_key_fingerprint (components/mariadb/render.ts KEY_FINGERPRINT_LABEL).
MDB_KEY_LABEL="backup321 mariadb key fingerprint v1"

# mdb_key_fingerprint: the key file's fingerprint, computed as render.ts keyFingerprint computes the
# stack's: sha256 of the label, a newline and the key file's first line (all that openssl -pass
# file: reads). The key reaches openssl through a pipe from printf, a builtin: never argv.
mdb_key_fingerprint() {
  local key=""
  IFS= read -r key <"$MARIADB_KEY_FILE" || [ -n "$key" ] || return 1
  mdb_fingerprint_of "$key"
}

# mdb_fingerprint_of KEY: the fingerprint of one key line.
mdb_fingerprint_of() {
  local sum
  sum=$(printf '%s\n%s' "$MDB_KEY_LABEL" "$1" | openssl dgst -sha256 -r) || return 1
  printf '%s\n' "${sum%% *}"
}

# MDB_KEYS: fingerprint -> key, for every key of the key file and the key ring (mdb_load_keys).
declare -A MDB_KEYS=()
mdb_load_keys() {
  [ ${#MDB_KEYS[@]} -eq 0 ] || return 0
  local f key fp
  for f in "$MARIADB_KEY_FILE" ${MARIADB_KEYRING:+"$MARIADB_KEYRING"}; do
    [ -r "$f" ] || continue
    while IFS= read -r key || [ -n "$key" ]; do
      [ -n "$key" ] || continue
      fp=$(mdb_fingerprint_of "$key") || continue
      MDB_KEYS[$fp]=$key
    done <"$f"
  done
}

# mdb_has_key FINGERPRINT: this host holds that key (the current one or one of the ring).
mdb_has_key() {
  [ "$1" = "${MARIADB_KEY_FINGERPRINT:-}" ] && return 0
  mdb_load_keys
  [ -n "${MDB_KEYS[$1]:-}" ]
}

# The key mdb_decrypt uses: empty for the key file (the current key), else one from the ring.
MDB_DECRYPT_KEY=""

# mdb_use_key FINGERPRINT: mdb_decrypt uses that key from now on (empty: the current key). A full
# records its key's fingerprint; after a rotation the ring holds the older keys.
mdb_use_key() {
  if [ -z "$1" ] || [ "$1" = "${MARIADB_KEY_FINGERPRINT:-}" ]; then
    MDB_DECRYPT_KEY=""
    return 0
  fi
  mdb_has_key "$1" ||
    b321_fail "no key with fingerprint $1 on $(hostname), in neither $MARIADB_KEY_FILE nor the key ring ${MARIADB_KEYRING:-(none set)}: what it encrypted was made before a rotation; pulumi up puts every generation back in the ring, and RUNBOOK.md (Encryption keys) says how to take it from the stack"
  MDB_DECRYPT_KEY=${MDB_KEYS[$1]}
}

# mdb_require_key: before anything is encrypted or decrypted, the key file must be the stack's key.
# A full made with another key verifies and passes its restore test with that key, yet cannot be
# read with the key escrowed in the stack: the run fails before writing or restoring anything.
mdb_require_key() {
  local got
  [ -s "$MARIADB_KEY_FILE" ] || b321_fail "$MARIADB_KEY_FILE is missing or empty"
  [ -n "${MARIADB_KEY_FINGERPRINT:-}" ] ||
    b321_fail "MARIADB_KEY_FINGERPRINT is missing from the job's env file (run pulumi up)"
  got=$(mdb_key_fingerprint) || b321_fail "cannot read $MARIADB_KEY_FILE"
  if [ -n "${MARIADB_KEYRING:-}" ]; then
    # compared in the shell: a key never reaches argv
    local key="" line found=""
    IFS= read -r key <"$MARIADB_KEY_FILE" || true
    if [ -r "$MARIADB_KEYRING" ]; then
      while IFS= read -r line || [ -n "$line" ]; do
        [ "$line" != "$key" ] || found=1
      done <"$MARIADB_KEYRING"
    fi
    [ -n "$found" ] ||
      b321_fail "the key ring $MARIADB_KEYRING does not hold the current key (fingerprint $got): run pulumi up, which writes every generation there"
  fi
  [ "$got" = "$MARIADB_KEY_FINGERPRINT" ] ||
    b321_fail "$MARIADB_KEY_FILE is not the stack's encryption key (fingerprint $got, the stack's is $MARIADB_KEY_FINGERPRINT): what it encrypts could not be read with the escrowed key. Move the file aside (anything made with it needs it) and put the stack's key back: the MariaDB key's result from pulumi stack export --show-secrets, one line, mode 0600"
}

mdb_encrypt() {
  openssl enc -aes-256-cbc -salt -pbkdf2 -pass "file:$MARIADB_KEY_FILE"
}

# mdb_decrypt [FILE]: the seed's documented command (openssl enc -aes-256-cbc -d -pbkdf2); without
# FILE, stdin (a full read through b321_progress).
mdb_decrypt() {
  if [ -z "$MDB_DECRYPT_KEY" ]; then
    openssl enc -aes-256-cbc -d -pbkdf2 -pass "file:$MARIADB_KEY_FILE" ${1:+-in "$1"}
  else
    # an older key: through a pipe from printf, a builtin, never argv
    openssl enc -aes-256-cbc -d -pbkdf2 -pass fd:3 ${1:+-in "$1"} 3< <(printf '%s\n' "$MDB_DECRYPT_KEY")
  fi
}

# mdb_decrypt_any FILE OUT [FILTER...]: FILE decrypted (then through FILTER, e.g. zstd -d -q -c)
# into OUT with the key that opens it: the current one first, then the ring's older ones (zstd's
# frame checksum, or the caller's parse, tells a wrong key). What records no key (binlogs,
# checkpoints) opens this way. MDB_PIPE_STATUS: the last try's decrypt and filter statuses.
MDB_PIPE_STATUS=()
mdb_decrypt_any() {
  local f=$1 out=$2 fp
  shift 2
  local -a filter=("$@")
  [ ${#filter[@]} -gt 0 ] || filter=(cat)
  mdb_load_keys
  for fp in "" "${!MDB_KEYS[@]}"; do
    [ -z "$fp" ] || [ "$fp" != "${MARIADB_KEY_FINGERPRINT:-}" ] || continue
    MDB_DECRYPT_KEY=${fp:+${MDB_KEYS[$fp]}}
    set +e
    mdb_decrypt "$f" 2>/dev/null | "${filter[@]}" >"$out" 2>/dev/null
    MDB_PIPE_STATUS=("${PIPESTATUS[@]}")
    set -e
    [ "${MDB_PIPE_STATUS[0]}${MDB_PIPE_STATUS[1]}" != 00 ] || break
  done
  MDB_DECRYPT_KEY=""
  [ "${MDB_PIPE_STATUS[0]}${MDB_PIPE_STATUS[1]}" = 00 ]
}

# mdb_read_full FILE [LABEL]: FILE's bytes on stdout, with the restore's progress (of its size)
# logged as LABEL (default: restore).
mdb_read_full() {
  local size
  size=$(stat -c %s -- "$1")
  b321_progress "${2:-restore}" "$size" <"$1"
}

# zstd: pzstd (the zstd package's parallel front end) where it is installed. Its output is standard
# zstd, independent frames that zstd -d reads too; pzstd -d unpacks them on every core, which a
# single zstd frame does not allow (the restore's slowest stage).
mdb_compress() {
  case $MARIADB_COMPRESSION in
    zstd) if command -v pzstd >/dev/null 2>&1; then pzstd -1 -q -c; else zstd -T0 -1 -q -c; fi ;;
    gzip) if command -v pigz >/dev/null 2>&1; then pigz -c; else gzip -c; fi ;;
    *) b321_fail "unknown compression $MARIADB_COMPRESSION (zstd or gzip)" ;;
  esac
}

# mdb_decompress FILE_NAME: decompresses stdin according to the name (.zst or .gz before .enc).
mdb_decompress() {
  case $1 in
    *.zst.enc) if command -v pzstd >/dev/null 2>&1; then pzstd -d -q -c; else zstd -d -q -c; fi ;;
    *.gz.enc) if command -v pigz >/dev/null 2>&1; then pigz -d -c; else gzip -d -c; fi ;;
    *) b321_fail "cannot tell the compression of $1 (.zst.enc or .gz.enc)" ;;
  esac
}

# mdb_check_pipe STATUS... STAGE_NAMES: fails naming the first stage of a pipe that did not exit 0.
mdb_check_pipe() {
  local -a codes=() names=()
  local sep=0 a i
  for a in "$@"; do
    if [ "$a" = -- ]; then
      sep=1
    elif [ "$sep" = 0 ]; then
      codes+=("$a")
    else
      names+=("$a")
    fi
  done
  for i in "${!codes[@]}"; do
    # 141 is SIGPIPE: that stage died because a later one stopped reading; blame the later one.
    if [ "${codes[$i]}" = 141 ] && [[ " ${codes[*]:i+1} " =~ \ [1-9][0-9]*\  ]]; then continue; fi
    [ "${codes[$i]}" = 0 ] || b321_fail "${names[$i]:-stage $i} failed (exit ${codes[$i]})"
  done
}

# mdb_seal_binlog SRC DST WHAT SHA: the closed binlog SRC (sha256 SHA), which must parse, sealed
# into DST: zstd, then the stack's key, checked to decrypt back to SHA, with DST.sha256 beside it.
# Both are written as .b321-partial, synced, and renamed only once complete. The shipper and the
# stream seal their copies this one way, so PITR reads them alike.
mdb_seal_binlog() {
  local src=$1 dst=$2 what=$3 sha=$4 err
  err=$(mariadb-binlog -- "$src" 2>&1 >/dev/null) ||
    b321_fail "$what does not parse: $(head -n 2 <<<"$err" | tr '\n' ' ')"
  set +e
  zstd -q -c -- "$src" | mdb_encrypt >"$dst.b321-partial"
  mdb_check_pipe "${PIPESTATUS[@]}" -- "compressing $what" "encrypting $what"
  set -e
  [ "$(mdb_decrypt "$dst.b321-partial" | zstd -d -q -c | sha256sum | cut -d' ' -f1)" = "$sha" ] ||
    b321_fail "the sealed copy of $what does not decrypt to it (sha256 $sha)"
  printf '%s  %s\n' "$(b321_sha256 "$dst.b321-partial")" "${dst##*/}" >"$dst.sha256.b321-partial"
  sync -- "$dst.b321-partial" "$dst.sha256.b321-partial"
  mv -- "$dst.b321-partial" "$dst"
  mv -- "$dst.sha256.b321-partial" "$dst.sha256"
}

# mdb_manifest_get MANIFEST KEY: a scalar field of a manifest (one field per line, as written).
mdb_manifest_get() {
  sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" -- "$1" | head -n 1
}

# A binlog shipping checkpoint's file name: <stamp>.<binlog identity>.<position>.json.enc.
MDB_CHECKPOINT_RE='^([0-9]{8}T[0-9]{6}Z)\.(.+\.[0-9]+\.[0-9]{8}T[0-9]{6}Z\.s[0-9]+)\.([0-9]+)\.json\.enc$'

# mdb_checkpoint_get CHECKPOINT KEY: a scalar field of a decrypted binlog shipping checkpoint
# (written one field per line, like a manifest).
mdb_checkpoint_get() {
  mdb_manifest_get "$@"
}

# mdb_manifest_tables MANIFEST: "db.table count" lines recorded in a manifest.
mdb_manifest_tables() {
  awk '/^  "tables": \{/ {t=1; next} t && /^  \}/ {t=0} t {
    gsub(/[",:]/, ""); sub(/^ +/, ""); print }' "$1"
}

# mdb_fulls: every full that has a manifest, oldest first, intact or not (nothing is read: cheap).
mdb_fulls() {
  local m
  for m in "$MARIADB_BACKUP_DIR/${MARIADB_PREFIX}"_full_*.enc.manifest.json; do
    [ -f "$m" ] || continue
    printf '%s\n' "${m%.manifest.json}"
  done | LC_ALL=C sort
}

# mdb_increments [FULL]: every increment that has a manifest, oldest first (of the full named FULL
# only, a file name), intact or not.
mdb_increments() {
  local m
  for m in "$MARIADB_BACKUP_DIR/${MARIADB_PREFIX}"_incr_*.enc.manifest.json; do
    [ -f "$m" ] || continue
    [ -z "${1:-}" ] || [ "$(mdb_manifest_get "$m" base_full)" = "$1" ] || continue
    printf '%s\n' "${m%.manifest.json}"
  done | LC_ALL=C sort
}

# mdb_pick_increment FULL [UNTIL_EPOCH]: MDB_PICKED_INCR, the newest intact increment of FULL
# (consistent before UNTIL_EPOCH when given) that starts where FULL ends (its from_lsn is FULL's
# to_lsn); empty when there is none. Only that one is read: increments build on the full, not on
# each other. A newer one that is not intact is a warning naming it (kept for inspection), and the
# log and the status (increment_skipped) say what the restore falls back to: an older increment,
# or the full and every binlog after it.
MDB_PICKED_INCR=""
mdb_pick_increment() {
  local full=$1 until=${2:-} f why lsn skipped=""
  MDB_PICKED_INCR=""
  lsn=$(mdb_manifest_get "$full.manifest.json" to_lsn)
  while IFS= read -r f; do
    [ -z "$until" ] || mdb_consistent_before "$f" "$until" || continue
    why=$(mdb_full_problem "$f" "$MDB_SHA_IN_PASS")
    if [ -z "$why" ] && [ "$(mdb_manifest_get "$f.manifest.json" from_lsn)" != "$lsn" ]; then
      why="it starts at LSN $(mdb_manifest_get "$f.manifest.json" from_lsn), its full ends at ${lsn:-an unknown LSN}"
    fi
    if [ -z "$why" ]; then
      MDB_PICKED_INCR=$f
      [ -n "$MDB_SHA_IN_PASS" ] || MDB_SHA_OK[$f]=$(mdb_file_stamp "$f")
      break
    fi
    b321_warn "$f: $why: skipped (kept for inspection)"
    skipped+="${skipped:+ }${f##*/}"
  done < <(mdb_increments "${full##*/}" | LC_ALL=C sort -r)
  [ -n "$skipped" ] || return 0
  b321_set increment_skipped "$skipped"
  if [ -n "$MDB_PICKED_INCR" ]; then
    b321_log "falling back to the older increment ${MDB_PICKED_INCR##*/} and the binlogs after it"
  else
    b321_log "falling back to the full ${full##*/} and every binlog after it"
  fi
}

# mdb_full_problem FILE [DEFER]: why FILE (a full or an increment) cannot be relied on, nothing
# when it is intact: its manifest says verified, the file has the recorded size and sha256 (read in
# full: seconds per GB), and it was encrypted with the stack's key (a manifest older than
# key_fingerprint records none). DEFER: all but the sha256, which the unpack that reads the file
# checks in the same pass (mdb_unpack); what an unpack found wrong (MDB_CORRUPT) is a problem.
mdb_full_problem() {
  local file=$1 defer=${2:-} m=$1.manifest.json want got
  if [ -n "${MDB_CORRUPT[$file]:-}" ]; then
    echo "${MDB_CORRUPT[$file]}"
  elif [ ! -f "$file" ]; then
    echo "the file of this manifest is missing"
  elif [ "$(mdb_manifest_get "$m" verified)" != true ]; then
    echo "its manifest does not say verified"
  elif want=$(mdb_manifest_get "$m" bytes) && got=$(stat -c %s -- "$file") && [ "$want" != "$got" ]; then
    echo "$got bytes, its manifest recorded ${want:-none}"
  elif want=$(mdb_manifest_get "$m" key_fingerprint) && [ -n "$want" ] &&
    [ -n "${MARIADB_KEY_FINGERPRINT:-}" ] && ! mdb_has_key "$want"; then
    echo "encrypted with a key this host does not hold (fingerprint $want): pulumi up writes every key of the stack to the ring (RUNBOOK.md, Encryption keys)"
  elif [ -n "$defer" ] || mdb_sha_checked "$file"; then
    :
  elif want=$(mdb_manifest_get "$m" sha256) && got=$(b321_sha256 "$file") && [ "$want" != "$got" ]; then
    echo "sha256 $got differs from its manifest (${want:-none})"
  fi
}

# MDB_SHA_IN_PASS (set by the restore test and the recoveries): the full or increment a run is
# about to unpack is not read once for its sha256 and then again to unpack it; its sha256 is taken
# from the bytes the unpack reads (mdb_unpack), and a mismatch makes the run fall back to an older
# file as a bad sha256 found up front would (mdb_unpack_failed). Other fulls are still read in full.
MDB_SHA_IN_PASS=""
# MDB_CORRUPT: FILE -> what its unpack found wrong (its sha256), for this run.
declare -A MDB_CORRUPT=()
# MDB_UNPACK_FAILED: the file whose unpack found it corrupt just now (mdb_unpack_failed clears it).
MDB_UNPACK_FAILED=""

# mdb_scan_fulls [VERIFIED]: checks every full (mdb_full_problem) into MDB_GOOD_FULLS, the intact
# ones oldest first, and MDB_BAD_FULLS, "FILE: why" for the others. Each bad one is a warning of the
# run (its alert names it). A bad full is never removed here: it stays for inspection, but it never
# counts as a good one (retention keeps that many intact fulls; restores use intact ones only).
# VERIFIED: a full this run has just written, verified and hashed itself: not read a second time.
# With MDB_SHA_IN_PASS, the newest full's sha256 is left to the unpack that reads it.
MDB_GOOD_FULLS=()
MDB_BAD_FULLS=()
MDB_SCANNED=""
# shellcheck disable=SC2120  # the restore test passes none, retention (mariadb-full.sh) its newest
mdb_scan_fulls() {
  local f why verified=${1:-} newest defer
  MDB_GOOD_FULLS=()
  MDB_BAD_FULLS=()
  newest=$(mdb_fulls | tail -n 1)
  while IFS= read -r f; do
    if [ -n "$verified" ] && [ "$f" = "$verified" ]; then
      MDB_GOOD_FULLS+=("$f")
      continue
    fi
    defer=""
    [ -z "$MDB_SHA_IN_PASS" ] || [ "$f" != "$newest" ] || defer=1
    why=$(mdb_full_problem "$f" "$defer")
    if [ -z "$why" ]; then
      MDB_GOOD_FULLS+=("$f")
      [ -n "$defer" ] || MDB_SHA_OK[$f]=$(mdb_file_stamp "$f")
    else
      mdb_bad_full "$f" "$why"
    fi
  done < <(mdb_fulls)
  MDB_SCANNED=1
}

# mdb_bad_full FILE WHY: FILE is not a good full for this run: listed in MDB_BAD_FULLS and a warning.
mdb_bad_full() {
  MDB_BAD_FULLS+=("$1: $2")
  b321_warn "$1: $2: skipped (kept for inspection, not counted as a good full)"
}

# mdb_no_intact_full [WHAT]: the failure when no full can be used, listing the ones skipped.
mdb_no_intact_full() {
  local msg="no intact full backup${1:+ $1} in $MARIADB_BACKUP_DIR" sep=": " b
  for b in "${MDB_BAD_FULLS[@]}"; do
    msg+=$sep$b
    sep="; "
  done
  b321_fail "$msg"
}

# MDB_SHA_OK: FILE -> its mdb_file_stamp when mdb_scan_fulls found its sha256 right, earlier in
# this run: mdb_check_sha does not read the same unchanged file a second time (the restore test
# scans, then restores the newest intact full).
declare -A MDB_SHA_OK=()

# mdb_file_stamp FILE: size, inode and modification time (ns) of FILE: changes when it is written.
mdb_file_stamp() {
  stat -c '%s %i %.9Y' -- "$1"
}

# mdb_sha_matches FILE SHA256: whether SHA256 (of FILE's bytes, read by the caller) is the one its
# manifest recorded; if not, FILE is corrupt for the rest of this run (MDB_CORRUPT) and the restore
# reading it stops (MDB_UNPACK_FAILED, mdb_unpack_failed).
mdb_sha_matches() {
  local want
  want=$(mdb_manifest_get "$1.manifest.json" sha256)
  if [ -n "$want" ] && [ "$want" = "$2" ]; then
    MDB_SHA_OK[$1]=$(mdb_file_stamp "$1")
    return 0
  fi
  MDB_CORRUPT[$1]="sha256 ${2:-unreadable} differs from its manifest (${want:-none})"
  MDB_UNPACK_FAILED=$1
  return 1
}

# mdb_sha_checked FILE: this run found FILE's sha256 right, and FILE has not changed since.
mdb_sha_checked() {
  [ -n "${MDB_SHA_OK[$1]:-}" ] && [ "${MDB_SHA_OK[$1]}" = "$(mdb_file_stamp "$1")" ]
}

# mdb_check_sha FILE: the file's sha256 must be the one its manifest recorded.
mdb_check_sha() {
  local file=$1 want got
  if mdb_sha_checked "$file"; then
    return 0
  fi
  want=$(mdb_manifest_get "$file.manifest.json" sha256)
  got=$(b321_sha256 "$file")
  { [ -n "$want" ] && [ "$want" = "$got" ]; } ||
    b321_fail "$file does not match its manifest (sha256 $got, recorded $want): the file is corrupted"
}

# mdb_binlog_seq NAME: the numeric suffix of a binlog file name (mysql-bin.000042 -> 42).
mdb_binlog_seq() {
  local n=${1##*.}
  printf '%d\n' "$((10#$n))"
}

# mdb_reachable DIR: the scratch server runs as the server user (mysql), which must traverse every
# directory above its datadir; root-owned ancestors get o+x (traverse, not list). The state dir is
# created 0700 by common.sh, so without this a scratch datadir under it is out of mysql's reach.
mdb_reachable() {
  local d=$1
  while [ -n "$d" ] && [ "$d" != / ]; do
    if [ -d "$d" ] && [ "$(stat -c %u -- "$d")" = 0 ]; then chmod o+x -- "$d"; fi
    d=${d%/*}
  done
}

MDB_SCRATCH_SOCKDIR=""
mdb_remove_sockdir() {
  [ -z "$MDB_SCRATCH_SOCKDIR" ] || rm -rf -- "$MDB_SCRATCH_SOCKDIR"
}

# mdb_start_scratch DATADIR RUNDIR: a private mariadbd on DATADIR, socket in RUNDIR, no network,
# no binlog. Never touches the live server: its own datadir, socket and pid file.
# innodb_flush_method=fsync: the restore has just written its files, so they are in the page cache;
# O_DIRECT (the default) would write them back and read them again from the disk (the restore
# test: counting 1.5M rows took 0.60 s that way, 0.35 s from the cache).
mdb_start_scratch() {
  local datadir=$1 rundir=$2 i
  local user=${MARIADB_SERVER_USER:-mysql}
  mkdir -p -- "$rundir"
  mdb_reachable "${datadir%/*}"
  mdb_reachable "${rundir%/*}"
  chown -R -- "$user:" "$datadir" "$rundir"
  chmod 0755 -- "$rundir"
  MDB_SCRATCH_SOCKET=$rundir/mysqld.sock
  # A unix socket path holds at most 107 bytes: a deep scratch dir gets a short private one.
  if [ "${#MDB_SCRATCH_SOCKET}" -gt 100 ]; then
    MDB_SCRATCH_SOCKDIR=$(mktemp -d /tmp/b321-sock.XXXXXX)
    chown -- "$user:" "$MDB_SCRATCH_SOCKDIR"
    b321_cleanup mdb_remove_sockdir
    MDB_SCRATCH_SOCKET=$MDB_SCRATCH_SOCKDIR/mysqld.sock
  fi
  mariadbd --no-defaults "--user=$user" "--datadir=$datadir" "--socket=$MDB_SCRATCH_SOCKET" \
    --skip-networking --skip-log-bin "--pid-file=$rundir/mysqld.pid" \
    "--log-error=$rundir/error.log" --innodb-buffer-pool-size=512M --innodb-flush-method=fsync \
    --skip-slave-start --event-scheduler=OFF \
    </dev/null >/dev/null 2>&1 &
  MDB_SCRATCH_PID=$!
  # Asked every 0.1 s (up to 300 s): a restore's time is measured, and it starts in a second or so.
  for ((i = 0; i < 3000; i++)); do
    if mariadb --no-defaults "--socket=$MDB_SCRATCH_SOCKET" -uroot -N -B -e 'SELECT 1' \
      >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$MDB_SCRATCH_PID" 2>/dev/null || break
    sleep 0.1
  done
  b321_fail "the scratch server on $datadir did not start: $(tail -n 5 -- "$rundir/error.log" 2>/dev/null | tr '\n' ' ')"
}

# mdb_scratch_sql [ARGS...]: the scratch server as root (unix_socket), SQL on stdin.
mdb_scratch_sql() {
  mariadb --no-defaults "--socket=$MDB_SCRATCH_SOCKET" -uroot -N -B "$@"
}

# mdb_stop_scratch: clean shutdown of the scratch server (it is ours: stopped by its pid).
mdb_stop_scratch() {
  local pid=$MDB_SCRATCH_PID i
  [ -n "$pid" ] || return 0
  MDB_SCRATCH_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 6000; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# Unpacks running in the background (mdb_unpack_start): the job's pid by directory, and where it
# leaves its results: in the run directory, not beside what it unpacks (that disk may be full).
declare -A MDB_UNPACKING=() MDB_UNPACK_OUT=()
MDB_UNPACK_REAPER=""
MDB_UNPACK_SEQ=0

# mdb_unpack_start FILE DIR [LABEL]: starts unpacking a physical full or increment into DIR in the
# background: decrypted with its key, decompressed, unpacked, its sha256 taken from the bytes read
# on the way (unless this run has already checked it). A full and its increment unpack at once:
# most of the wall time is the kernel filling fresh pages, which both cores can do.
# mdb_unpack_wait collects the result.
mdb_unpack_start() {
  local file=$1 dir=$2 hash=1
  mdb_use_key "$(mdb_manifest_get "$file.manifest.json" key_fingerprint)"
  mkdir -p -- "$dir"
  ! mdb_sha_checked "$file" || hash=""
  [ -n "$MDB_UNPACK_REAPER" ] || { b321_cleanup mdb_stop_unpacks; MDB_UNPACK_REAPER=1; }
  MDB_UNPACK_SEQ=$((MDB_UNPACK_SEQ + 1))
  MDB_UNPACK_OUT[$dir]=$B321_RUN_DIR/$B321_JOB.$$.unpack$MDB_UNPACK_SEQ
  mdb_unpack_job "$file" "$dir" "$hash" "${3:-restore}" "${MDB_UNPACK_OUT[$dir]}" &
  MDB_UNPACKING[$dir]=$!
}

# mdb_unpack_job FILE DIR HASH LABEL OUT (in the background, so it only writes files): the pipe's
# stage statuses into OUT.pipe and, with HASH, the sha256 of the bytes read into OUT.sha256. A stage
# failing on a corrupt file is not the run's error: mdb_unpack_wait decides once the sha256 is known.
mdb_unpack_job() {
  trap - ERR
  set +e
  local file=$1 dir=$2 out=$5 shafd shapid="" st
  if [ -n "$3" ]; then
    exec {shafd}> >(openssl dgst -sha256 -r | cut -d' ' -f1 >"$out.sha256")
    shapid=$!
  else
    exec {shafd}>/dev/null
  fi
  mdb_read_full "$file" "$4" | tee -- "/dev/fd/$shafd" | mdb_decrypt | mdb_decompress "$file" |
    mbstream -x -p 2 -C "$dir"
  st="${PIPESTATUS[*]}"
  exec {shafd}>&-
  [ -z "$shapid" ] || wait "$shapid"
  printf '%s\n' "$st" >"$out.pipe"
}

# mdb_unpack_wait FILE DIR: waits for FILE's unpack into DIR. A sha256 that differs from the
# manifest's leaves DIR removed, the file in MDB_CORRUPT and MDB_UNPACK_FAILED: the caller falls
# back (mdb_unpack_failed). Otherwise a failed stage fails the run, naming it.
mdb_unpack_wait() {
  local file=$1 dir=$2 pid=${MDB_UNPACKING[$2]} out=${MDB_UNPACK_OUT[$2]} got
  local -a st=()
  wait "$pid" || true
  [ ! -f "$out.pipe" ] || read -r -a st <"$out.pipe"
  got=$(cat -- "$out.sha256" 2>/dev/null || true)
  rm -f -- "$out.pipe" "$out.sha256"
  # only now: a run stopped while it waited still stops this unpack and removes its files
  unset "MDB_UNPACKING[$dir]" "MDB_UNPACK_OUT[$dir]"
  [ "${#st[@]}" = 5 ] || b321_fail "unpacking $file stopped before it finished"
  if ! mdb_sha_checked "$file"; then
    # A later stage that stopped early (a full disk) cut the read short: the sha256 of the bytes
    # that passed says nothing, so the file is hashed apart, and only a wrong one is corruption.
    [ -n "$got" ] && [ "${st[0]}${st[1]}" = 00 ] || got=$(b321_sha256 "$file")
    mdb_sha_matches "$file" "$got" || { rm -rf -- "$dir"; return 0; }
  fi
  # The file is intact: a writer that failed (a full disk) is the cause, and the stages before it
  # failed writing to it.
  [ "${st[4]}" = 0 ] || b321_fail "mbstream -x failed (exit ${st[4]}) unpacking $file into $dir"
  mdb_check_pipe "${st[@]}" -- "reading $file" "hashing $file" "decrypt (wrong key or corrupted file?)" decompress "mbstream -x"
}

# mdb_stop_unpacks: a run that ends early stops its unpacks (every stage of their pipes) before
# their directories are removed.
mdb_stop_unpacks() {
  local dir
  for dir in "${!MDB_UNPACKING[@]}"; do
    b321_stop_tree "${MDB_UNPACKING[$dir]}"
    wait "${MDB_UNPACKING[$dir]}" 2>/dev/null || true
    rm -f -- "${MDB_UNPACK_OUT[$dir]}".*
  done
  MDB_UNPACKING=()
  MDB_UNPACK_OUT=()
}

# mdb_unpack_failed FULL: whether the last restore found a file corrupt while unpacking it (the
# restore stopped there and removed what it had unpacked). The full is then dropped from
# MDB_GOOD_FULLS with the warning a bad sha256 found up front gives (an increment's comes from
# mdb_pick_increment when the caller picks again), and the caller picks again.
mdb_unpack_failed() {
  local f=$MDB_UNPACK_FAILED
  [ -n "$f" ] || return 1
  MDB_UNPACK_FAILED=""
  mdb_stop_scratch
  if [ "$f" = "$1" ]; then
    mdb_bad_full "$f" "${MDB_CORRUPT[$f]}"
    local -a good=()
    local g
    for g in "${MDB_GOOD_FULLS[@]}"; do [ "$g" = "$f" ] || good+=("$g"); done
    MDB_GOOD_FULLS=("${good[@]}")
  fi
  b321_log "${f##*/} is corrupt (${MDB_CORRUPT[$f]}): restoring again without it"
}

# mdb_prepare DATADIR [INCREMENT_DIR]: mariadb-backup --prepare of the unpacked full, then of the
# increment's pages on top of it.
mdb_prepare() {
  local datadir=$1 log=$1.prepare.log
  mariadb-backup --prepare "--target-dir=$datadir" ${2:+"--incremental-dir=$2"} >"$log" 2>&1 ||
    b321_fail "mariadb-backup --prepare${2:+ of the increment} failed: $(tail -n 3 -- "$log" | tr '\n' ' ')"
  rm -f -- "$log"
}

# mdb_restore_begin FILE DATADIR [INCREMENT]: a physical full (and its increment) starts unpacking
# into the empty DATADIR (phase restore), for mdb_restore_full to finish; the caller can do other
# work meanwhile. Nothing for a logical full (it loads into a server mdb_restore_full starts).
mdb_restore_begin() {
  local file=$1 datadir=$2 incr=${3:-}
  mkdir -p -- "$datadir"
  [ -z "$(ls -A -- "$datadir")" ] || b321_fail "$datadir is not empty (restore into an empty directory)"
  [ "$(mdb_manifest_get "$file.manifest.json" method)" = physical ] || return 0
  b321_phase restore
  mdb_unpack_start "$file" "$datadir"
  [ -z "$incr" ] || mdb_unpack_start "$incr" "$datadir.incr" "restore (increment)"
}

# mdb_restore_full FILE DATADIR [INCREMENT [LAZY]]: restores a verified full (and the increment of
# it, a physical one's) into an empty DATADIR, or finishes what mdb_restore_begin started, and leaves
# a scratch server running on it (socket in MDB_SCRATCH_SOCKET; with LAZY, a physical one is only
# prepared). Physical: decrypt | decompress | mbstream -x, then mariadb-backup --prepare (no SQL
# replay); an increment is unpacked beside it (DATADIR.incr) at the same time and prepared on top
# of it. Logical: a fresh instance, then the dump loaded.
# Phases (b321_phase): physical restore, prepare, start; logical start, restore.
mdb_restore_full() {
  local file=$1 datadir=$2 incr=${3:-} lazy=${4:-} method databases
  local manifest=$file.manifest.json
  method=$(mdb_manifest_get "$manifest" method)
  databases=$(mdb_manifest_get "$manifest" databases)
  [ -n "${MDB_UNPACKING[$datadir]:-}" ] || mdb_restore_begin "$file" "$datadir" "$incr"
  case $method in
    physical)
      b321_phase restore
      mdb_unpack_wait "$file" "$datadir"
      if [ -n "$incr" ]; then
        if [ -n "$MDB_UNPACK_FAILED" ]; then
          # the full is corrupt: its increment is of no use
          mdb_stop_unpacks
          rm -rf -- "$datadir.incr"
          return 0
        fi
        mdb_unpack_wait "$incr" "$datadir.incr"
        [ -z "$MDB_UNPACK_FAILED" ] || { rm -rf -- "$datadir"; return 0; }
      fi
      [ -z "$MDB_UNPACK_FAILED" ] || return 0
      b321_phase prepare
      mdb_prepare "$datadir"
      if [ -n "$incr" ]; then
        mdb_prepare "$datadir" "$datadir.incr"
        rm -rf -- "$datadir.incr"
        b321_set increment "$incr"
      fi
      [ -z "$lazy" ] || return 0
      b321_phase start
      mdb_start_scratch "$datadir" "$datadir.run"
      ;;
    logical)
      mdb_sha_checked "$file" || mdb_sha_matches "$file" "$(b321_sha256 "$file")" || return 0
      b321_phase start
      mdb_reachable "${datadir%/*}"
      chown -- "${MARIADB_SERVER_USER:-mysql}:" "$datadir"
      mariadb-install-db --no-defaults "--user=${MARIADB_SERVER_USER:-mysql}" "--datadir=$datadir" \
        --auth-root-authentication-method=socket --skip-test-db >"$datadir.install.log" 2>&1 ||
        b321_fail "mariadb-install-db failed: $(tail -n 3 -- "$datadir.install.log" | tr '\n' ' ')"
      rm -f -- "$datadir.install.log"
      mdb_start_scratch "$datadir" "$datadir.run"
      b321_phase restore
      mdb_load_dump "$file" "$databases" "$MDB_SCRATCH_SOCKET"
      ;;
    *) b321_fail "$manifest names no known method ($method)" ;;
  esac
}

# mdb_load_dump FILE DATABASES SOCKET: loads a logical full into the server on SOCKET as root.
# A single-database dump has no CREATE DATABASE (the seed's format): the database is created first.
mdb_load_dump() {
  local file=$1 databases=$2 socket=$3
  local -a target=()
  mdb_use_key "$(mdb_manifest_get "$file.manifest.json" key_fingerprint)"
  if [ "${databases// /}" = "$databases" ]; then
    mariadb --no-defaults "--socket=$socket" -uroot -e "CREATE DATABASE IF NOT EXISTS \`$databases\`"
    target=("$databases")
  fi
  set +e
  mdb_read_full "$file" | mdb_decrypt | mdb_decompress "$file" |
    mariadb --no-defaults "--socket=$socket" -uroot --binary-mode "${target[@]}"
  mdb_check_pipe "${PIPESTATUS[@]}" -- "reading $file" "decrypt (wrong key or corrupted file?)" decompress "loading the dump"
  set -e
}

# mdb_binlog_start MANIFEST: "name start" of the binlog a full is consistent with, for
# b321_binlog_chain: its recorded identity, or for a manifest without one, the latest binlog of that
# name started before the full's consistent point.
mdb_binlog_start() {
  local manifest=$1 id file epoch
  id=$(mdb_manifest_get "$manifest" binlog_identity)
  if [[ $id =~ $B321_BINLOG_ID_RE ]]; then
    printf '%s %s\n' "${BASH_REMATCH[1]}.${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
    return 0
  fi
  file=$(mdb_manifest_get "$manifest" binlog_file)
  epoch=$(mdb_manifest_get "$manifest" consistent_before_epoch)
  printf '%s ~%s\n' "${file##*/}" "$(date -u -d "@${epoch:-0}" +%Y%m%dT%H%M%SZ)"
}

# mdb_binlog_candidates: "identity path" of every binlog PITR may replay: the server's own first
# (read only; the active one is not shipped yet), then the shipped copies. A copy of the same
# identity is the same binlog; a reused name from another history is another identity.
# MDB_SHIPPED_ONLY=1: the shipped copies alone (a drill of the copies must not read the originals).
MDB_SHIPPED_ONLY=""
mdb_binlog_candidates() {
  local f id
  [ -n "$MDB_SHIPPED_ONLY" ] ||
    for f in "$MARIADB_BINLOG_BASENAME".[0-9]*; do
      [[ -f $f && $f =~ \.[0-9]+$ ]] || continue
      id=$(b321_binlog_identity "$f") && printf '%s %s\n' "$id" "$f"
    done
  for f in "$MARIADB_BINLOG_BACKUP_DIR"/*.zst.enc; do
    [ -f "$f" ] || continue
    id=${f##*/}
    printf '%s %s\n' "${id%.zst.enc}" "$f"
  done
}

# mdb_of_server [SERVER_ID]: keeps the "identity path" lines of binlogs written by that server
# (all when none is given). A full taken on a replica names the primary's binlog but cannot read
# its header there: its manifest records the primary's server_id instead of an identity, so that
# PITR follows the primary's history and never a same-named binlog of another server.
mdb_of_server() {
  awk -v sid="$1" 'sid == "" || $1 ~ ("\\.s" sid "$")'
}

MDB_REPLAY_DIR=""
mdb_remove_replay_dir() {
  [ -z "$MDB_REPLAY_DIR" ] || rm -rf -- "$MDB_REPLAY_DIR"
}

# mdb_open_binlog PATH NAME: sets MDB_OPENED to a plain binlog file: a server binlog as it is, a
# shipped copy (*.zst.enc) checked against its .sha256 when it has one, then decrypted and
# decompressed (zstd checks its own checksum) into a private directory removed on exit.
MDB_OPENED=""
mdb_open_binlog() {
  local f=$1 name=$2 out want
  MDB_OPENED=$f
  [[ $f == *.zst.enc ]] || return 0
  if [ -z "$MDB_REPLAY_DIR" ]; then
    local parent=${MARIADB_SCRATCH_DIR:-$MARIADB_BINLOG_BACKUP_DIR}
    { mkdir -p -- "$parent" && MDB_REPLAY_DIR=$(mktemp -d "$parent/.b321-replay.XXXXXX"); } ||
      b321_fail "cannot make a directory for the decrypted binlogs in $parent"
    b321_cleanup mdb_remove_replay_dir
    b321_watch_space "$MDB_REPLAY_DIR"
  fi
  if [ -f "$f.sha256" ]; then
    want=$(cut -d' ' -f1 -- "$f.sha256")
    [ "$(b321_sha256 "$f")" = "$want" ] ||
      b321_fail "the shipped binlog $f does not match its $f.sha256: it is corrupted (restore it from the bucket or the NAS)"
  fi
  out=$MDB_REPLAY_DIR/$name
  # A binlog records no key: the one that opens it (mdb_decrypt_any).
  mdb_decrypt_any "$f" "$out" zstd -d -q -c ||
    mdb_check_pipe "${MDB_PIPE_STATUS[@]}" -- "decrypting $f (with none of the keys: corrupted file, or a key missing from the ring?)" "decompressing $f"
  MDB_OPENED=$out
}

# mdb_replay SOCKET MANIFEST STOP_OPTION [LAST_FILE [FROM_POS]]: replays binlog events from the
# position a full is consistent with (or FROM_POS) up to STOP_OPTION (--stop-datetime=... read in
# $TZ, or --stop-position=N of LAST_FILE) into the server on SOCKET as root, following the full's
# binlog history by identity. MDB_REPLAY_TZ: zone of --stop-datetime (default UTC);
# MDB_REPLAY_DATABASE: replay only that database's events (a logical restore of one database).
# Fails on a gap: replaying past a missing binlog would silently lose changes.
# Phases: binlogs (finding, checking and decrypting them; measuring the SQL they decode to), then
# replay, whose progress is the SQL fed to the server of that measured total: mariadb-binlog decodes
# the range twice, which costs little beside the server applying it, for an exact total.
mdb_replay() {
  mdb_replay_plan "${@:2}"
  mdb_replay_run "$1"
}

# mdb_replay_plan MANIFEST STOP_OPTION [LAST_FILE [FROM_POS]]: mdb_replay's first half (phase
# binlogs): MDB_REPLAY_DECODE, the mariadb-binlog command of the range, MDB_REPLAY_TOTAL, the bytes
# of SQL it decodes to, and MDB_REPLAY_EMPTY=1 when the range holds no transaction (no GTID event:
# MariaDB writes one before every transaction and DDL).
MDB_REPLAY_DECODE=()
MDB_REPLAY_TOTAL=0
MDB_REPLAY_EMPTY=""
MDB_REPLAY_FROM=""
mdb_replay_plan() {
  local manifest=$1 stop=$2 last=${3:-} name start line
  local start_pos=${4:-$(mdb_manifest_get "$manifest" binlog_position)}
  local -a files=()
  b321_phase binlogs
  read -r name start < <(mdb_binlog_start "$manifest")
  while IFS= read -r line; do
    case $line in
      NONE) b321_fail "binlog $name (the full's, started ${start#\~}) is in neither $MARIADB_BINLOG_BACKUP_DIR nor the server's binlogs: cannot replay from it" ;;
      GAP\ *) b321_fail "binlog ${line#GAP } is missing from $MARIADB_BINLOG_BACKUP_DIR and the server: cannot replay past it" ;;
    esac
    mdb_open_binlog "${line#* }" "${line%% *}"
    files+=("$MDB_OPENED")
    [ "${line%% *}" != "$last" ] || break
  done < <(mdb_binlog_candidates | mdb_of_server "$(mdb_manifest_get "$manifest" binlog_server_id)" |
    b321_binlog_chain "$name" "$start")
  [ "${#files[@]}" -gt 0 ] || b321_fail "no binlog from $name found to replay"
  if [ -n "$last" ] && [ "${files[-1]##*/}" != "$last" ]; then
    b321_fail "binlog $last is missing: cannot replay up to it"
  fi
  local -a filter=()
  [ -z "${MDB_REPLAY_DATABASE:-}" ] || filter=("--database=$MDB_REPLAY_DATABASE")
  MDB_REPLAY_DECODE=(mariadb-binlog "--start-position=$start_pos" "$stop" "${filter[@]}" -- "${files[@]}")
  MDB_REPLAY_FROM="${#files[@]} binlog(s) from $name:$start_pos ($stop)"
  # Its warnings and errors are the replay's own: they are logged once, by the replay.
  MDB_REPLAY_TOTAL=$(TZ=${MDB_REPLAY_TZ:-UTC} "${MDB_REPLAY_DECODE[@]}" 2>/dev/null | wc -c) || true
  MDB_REPLAY_EMPTY=""
  # A range with a transaction decodes to more than its headers; a short one is read again, to the
  # end (grep -c: an early exit would kill the decoder), and counts as empty only when it decoded.
  if [ "$MDB_REPLAY_TOTAL" -lt 65536 ]; then
    local txns rc=0
    txns=$(
      TZ=${MDB_REPLAY_TZ:-UTC} "${MDB_REPLAY_DECODE[@]}" 2>/dev/null |
        grep -cE '[[:space:]]GTID [0-9]+-[0-9]+-[0-9]+'
      exit "${PIPESTATUS[0]}"
    ) || rc=$?
    [ "$rc" != 0 ] || [ "$txns" != 0 ] || MDB_REPLAY_EMPTY=1
  fi
  b321_set binlogs_replayed "${#files[@]}"
}

# mdb_replay_run SOCKET: mdb_replay's second half (phase replay): the planned range into the server
# on SOCKET as root, with its progress.
mdb_replay_run() {
  local socket=$1
  b321_phase replay
  b321_log "replaying $MDB_REPLAY_FROM: $(b321_size "$MDB_REPLAY_TOTAL") of SQL"
  set +e
  TZ=${MDB_REPLAY_TZ:-UTC} "${MDB_REPLAY_DECODE[@]}" | b321_progress replay "$MDB_REPLAY_TOTAL" |
    mariadb --no-defaults "--socket=$socket" -uroot --binary-mode
  mdb_check_pipe "${PIPESTATUS[@]}" -- mariadb-binlog "counting the replayed SQL" "replaying binlog events"
  set -e
}

# mdb_consistent_before FILE UNTIL_EPOCH: true when FILE's manifest says it is consistent before then.
mdb_consistent_before() {
  local c
  c=$(mdb_manifest_get "$1.manifest.json" consistent_before_epoch)
  [[ $c =~ ^[0-9]+$ ]] && [ "$c" -le "$2" ]
}

# mdb_pick_full UNTIL_EPOCH: MDB_PICKED, the newest intact full consistent before that moment (empty
# when there is none), and MDB_PICKED_INCR, its newest intact increment before then (mdb_pick_increment). Every full is checked (mdb_scan_fulls warns naming each bad one); when the
# newest is not intact, the log says which older one is restored instead (the binlogs are replayed
# from that one's position).
MDB_PICKED=""
mdb_pick_full() {
  local until=$1 f newest=""
  local -A intact=()
  # once a run: picking again after a corrupt unpack uses what mdb_unpack_failed left
  [ -n "$MDB_SCANNED" ] || mdb_scan_fulls
  for f in "${MDB_GOOD_FULLS[@]}"; do intact[$f]=1; done
  MDB_PICKED=""
  while IFS= read -r f; do
    mdb_consistent_before "$f" "$until" || continue
    newest=$f
    [ -z "${intact[$f]:-}" ] || MDB_PICKED=$f
  done < <(mdb_fulls)
  if [ -n "$MDB_PICKED" ] && [ "$newest" != "$MDB_PICKED" ]; then
    b321_log "${newest##*/} is not intact: restoring the newest intact full before it, ${MDB_PICKED##*/}"
  fi
  MDB_PICKED_INCR=""
  [ -z "$MDB_PICKED" ] || mdb_pick_increment "$MDB_PICKED" "$until"
}

# mdb_replay_scope FILE: a logical full of one database replays that database's events only (its
# dump restores under any name; other databases' events have nothing to apply to).
mdb_replay_scope() {
  local method databases
  method=$(mdb_manifest_get "$1.manifest.json" method)
  databases=$(mdb_manifest_get "$1.manifest.json" databases)
  MDB_REPLAY_DATABASE=""
  if [ "$method" = logical ] && [ "${databases// /}" = "$databases" ]; then
    MDB_REPLAY_DATABASE=$databases
  fi
}

# mdb_pitr_build FILE DATADIR STOP_OPTION [LAST_FILE [LAZY]]: point-in-time recovery into a new datadir,
# the one code path of b321-mariadb-pitr --target-datadir and of the PITR drill: the full FILE and
# its increment MDB_PICKED_INCR (when one was picked) restored into the empty DATADIR
# (mdb_restore_begin, then mdb_restore_full; the binlogs are planned in between, mdb_replay_plan),
# then replayed from the position of the last of them up to STOP_OPTION (mdb_replay_run). The scratch server is left running on DATADIR (MDB_SCRATCH_SOCKET):
# the caller compares, or stops it and renames the datadir.
# LAZY (b321-mariadb-pitr): no server is started on a physical restore that has nothing to replay
# after it (the prepared datadir is already the recovery).
mdb_pitr_build() {
  local file=$1 datadir=$2 stop=$3 last=${4:-} lazy=${5:-}
  mdb_replay_scope "$file"
  # The binlogs are found, checked and measured while the backups unpack: that time is not waited
  # for, and a missing or corrupt binlog fails the run before the restore is.
  mdb_restore_begin "$file" "$datadir" "$MDB_PICKED_INCR"
  mdb_replay_plan "${MDB_PICKED_INCR:-$file}.manifest.json" "$stop" "$last"
  mdb_restore_full "$file" "$datadir" "$MDB_PICKED_INCR" "$lazy"
  [ -z "$MDB_UNPACK_FAILED" ] || return 0
  if [ -z "$MDB_SCRATCH_PID" ] && [ -n "$MDB_REPLAY_EMPTY" ]; then
    b321_log "nothing to replay in $MDB_REPLAY_FROM: the prepared datadir is the recovery"
    b321_set binlogs_replayed 0
    return 0
  fi
  if [ -z "$MDB_SCRATCH_PID" ]; then
    b321_phase start
    mdb_start_scratch "$datadir" "$datadir.run"
  fi
  mdb_replay_run "$MDB_SCRATCH_SOCKET"
}

# mdb_count_sql TABLES...: SQL printing "db.table count" for each db.table given.
mdb_count_sql() {
  local t db tb
  for t in "$@"; do
    db=${t%%.*}
    tb=${t#*.}
    # shellcheck disable=SC2016  # backquotes are SQL identifier quotes, not a command
    printf 'SELECT CONCAT(%s, " ", COUNT(*)) FROM `%s`.`%s`;\n' "'${t//\'/\'\'}'" "${db//\`/\`\`}" "${tb//\`/\`\`}"
  done
}
