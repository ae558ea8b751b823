#!/bin/bash
# Binlog shipping (source MariaDB §16.10.3, without its bugs): FLUSH BINARY LOGS first, then
# copy only closed binlogs, each compressed and encrypted like the fulls and named by its identity
# (common.sh: a rebuilt server reuses the names, never the identities), and verified (the copy
# decrypts to the source's sha256, the source parses with mariadb-binlog) before it is renamed into
# place with its <copy>.sha256. Shipped copies are kept back to the oldest kept full's binlog, and
# at least MARIADB_BINLOG_KEEP_DAYS days: point-in-time recovery works from every kept full.
#
# Each run also records a checkpoint, <dest>/checkpoints/<stamp>.<identity>.<position>.json.enc
# (encrypted like the binlogs; fields: components/host/file-contracts.ts CHECKPOINT_FIELDS), which
# the PITR drill recovers to and compares exactly: a binlog position and the CHECKSUM TABLE of
# every table at that position. Consistency: the checksums are taken inside START TRANSACTION WITH
# CONSISTENT SNAPSHOT, whose binlog position InnoDB reports (binlog_snapshot_file/position, as for
# the full's row counts), and CHECKSUM TABLE reads that snapshot (a consistent read: a commit made
# meanwhile is not in it; it commits nothing). So no FLUSH TABLES WITH READ LOCK: writes go on
# (only DDL on a table waits for its checksum, on the metadata lock), and the position is the exact
# point the drill's replay stops at. The snapshot is taken before the flush, so its binlog is closed
# and shipped by this same run. Its cost is one read of each table per run: tables bigger than
# MARIADB_CHECKPOINT_MAX_TABLE_MB (data_length), and tables of an engine without consistent
# snapshots (MyISAM, Aria...), are recorded as "skipped: <why>" and left out of the comparison. A
# checkpoint that cannot be taken is a warning of the run: shipping (the RPO) goes on without it.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_start "$@"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"

DEST=$MARIADB_BINLOG_BACKUP_DIR

binlogs_cleanup() {
  rm -f -- "$DEST"/*.b321-partial "$DEST"/checkpoints/.checkpoint.* 2>/dev/null || true
}

CKPT_PARTIAL=""
CKPT_FILE=""
CKPT_POS=""
CKPT_NOT_BEFORE=""
CKPT_WHY=""

# checkpoint_take: the checksums and their binlog position, in one consistent snapshot, into
# CKPT_PARTIAL's side files and CKPT_FILE, CKPT_POS. Returns 1 with the reason in CKPT_WHY when it
# cannot be taken (the caller warns: shipping goes on).
checkpoint_take() {
  local list="" db t engine data limit out sql="" sep="" dir=$DEST/checkpoints n=0
  limit=${MARIADB_CHECKPOINT_MAX_TABLE_MB:-256}
  [[ $limit =~ ^[0-9]+$ ]] || { CKPT_WHY="MARIADB_CHECKPOINT_MAX_TABLE_MB is not a number"; return 1; }
  for db in $MARIADB_DATABASES; do list+="${list:+,}'$db'"; done
  install -d -m 0700 -- "$dir" || { CKPT_WHY="cannot create $dir"; return 1; }
  CKPT_PARTIAL=$(mktemp -- "$dir/.checkpoint.XXXXXX.b321-partial") || { CKPT_WHY="cannot write in $dir"; return 1; }
  out=$CKPT_PARTIAL.sql
  mdb_sql "SELECT CONCAT(table_schema, '.', table_name), IFNULL(engine, ''), IFNULL(data_length, 0) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN ($list) ORDER BY 1" \
    >"$out" 2>&1 || { CKPT_WHY="listing the tables failed: $(head -c 300 -- "$out")"; return 1; }
  : >"$CKPT_PARTIAL.skipped"
  while IFS=$'\t' read -r t engine data; do
    [ -n "$t" ] || continue
    if [ "$engine" != InnoDB ]; then
      printf '%s\tskipped: engine %s has no consistent snapshot\n' "$t" "${engine:-unknown}" >>"$CKPT_PARTIAL.skipped"
    elif [ "$data" -gt $((limit * 1048576)) ]; then
      printf '%s\tskipped: %s MiB, above the limit of %s MiB\n' "$t" "$((data / 1048576))" "$limit" >>"$CKPT_PARTIAL.skipped"
    else
      db=${t%%.*}
      t=${t#*.}
      # shellcheck disable=SC2016  # backquotes are SQL identifier quotes, not a command
      printf -v t '`%s`.`%s`' "${db//\`/\`\`}" "${t//\`/\`\`}"
      sql+=$sep$t
      sep=", "
      n=$((n + 1))
    fi
  done <"$out"
  CKPT_NOT_BEFORE=$(date +%s)
  {
    echo "START TRANSACTION WITH CONSISTENT SNAPSHOT;"
    echo "SHOW STATUS LIKE 'binlog_snapshot_file';"
    echo "SHOW STATUS LIKE 'binlog_snapshot_position';"
    [ "$n" = 0 ] || echo "CHECKSUM TABLE $sql;"
    echo "COMMIT;"
  } | mdb_client mariadb -N -B >"$out" 2>"$out.err" ||
    { CKPT_WHY="the checksums failed: $(head -c 300 -- "$out.err")"; return 1; }
  CKPT_FILE=$(awk -F'\t' 'tolower($1) == "binlog_snapshot_file" { print $2 }' "$out")
  CKPT_POS=$(awk -F'\t' 'tolower($1) == "binlog_snapshot_position" { print $2 }' "$out")
  { [ -n "$CKPT_FILE" ] && [[ $CKPT_POS =~ ^[0-9]+$ ]]; } ||
    { CKPT_WHY="the snapshot reports no binlog position (is log_bin on?)"; return 1; }
  # "db.table<TAB>checksum"; NULL for a table dropped before its turn
  awk -F'\t' 'tolower($1) !~ /^binlog_snapshot_/ {
      if ($2 == "NULL") printf "%s\tskipped: dropped before its checksum\n", $1
      else print }' "$out" >"$CKPT_PARTIAL.sums"
  [ "$(wc -l <"$CKPT_PARTIAL.sums")" = "$n" ] ||
    { CKPT_WHY="CHECKSUM TABLE answered for $(wc -l <"$CKPT_PARTIAL.sums") of $n tables"; return 1; }
  rm -f -- "$out" "$out.err"
}

# checkpoint_gtid FILE POS: the GTID position at POS of the (closed) binlog FILE: its Gtid list (the
# state when it started), then each GTID event before POS, the last one per domain.
checkpoint_gtid() {
  mariadb-binlog "--stop-position=$2" -- "$1" 2>/dev/null | awk '
    /Gtid list \[/ {
      s = $0; sub(/.*Gtid list \[/, "", s); sub(/\].*/, "", s)
      n = split(s, a, ","); for (i = 1; i <= n; i++) { split(a[i], p, "-"); if (p[1] != "") g[p[1]] = a[i] }
    }
    match($0, /\tGTID [0-9]+-[0-9]+-[0-9]+/) {
      v = substr($0, RSTART + 6, RLENGTH - 6); split(v, p, "-"); g[p[1]] = v
    }
    END { for (d in g) print g[d] }' | sort -t- -k1,1n | paste -sd, -
}

# checkpoint_write ID: the checkpoint, once its binlog (identity ID) is shipped: written beside the
# shipped binlogs and, like them, encrypted with the stack's key (nothing plain at rest there, and
# it travels with them to the NAS), checked to decrypt to what was written, then renamed into place
# as <stamp>.<ID>.<position>.json.enc (CKPT_WHY says why not).
checkpoint_write() {
  local id=$1 dir=$DEST/checkpoints gtid name stamp plain=$CKPT_PARTIAL.json
  [ -f "$DEST/$id.zst.enc" ] || { CKPT_WHY="its binlog $CKPT_FILE was not shipped"; return 1; }
  gtid=$(checkpoint_gtid "${MARIADB_BINLOG_BASENAME%/*}/$CKPT_FILE" "$CKPT_POS")
  stamp=$(date -u -d "@$CKPT_NOT_BEFORE" +%Y%m%dT%H%M%SZ)
  name=$stamp.$id.$CKPT_POS.json.enc
  {
    echo "{"
    echo "  \"format\": \"backup321-mariadb-checkpoint/1\","
    echo "  \"time\": \"$(date -u -d "@$CKPT_NOT_BEFORE" +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"not_before_epoch\": $CKPT_NOT_BEFORE,"
    echo "  \"binlog_file\": \"$CKPT_FILE\","
    echo "  \"binlog_position\": $CKPT_POS,"
    echo "  \"binlog_identity\": \"$id\","
    echo "  \"gtid\": \"$gtid\","
    echo "  \"databases\": \"$MARIADB_DATABASES\","
    echo "  \"max_table_mb\": ${MARIADB_CHECKPOINT_MAX_TABLE_MB:-256},"
    echo "  \"tables\": {"
    LC_ALL=C sort -t$'\t' -k1,1 -- "$CKPT_PARTIAL.sums" "$CKPT_PARTIAL.skipped" | awk -F'\t' '
      { gsub(/["\\]/, "\\\\&", $1); v = ($2 ~ /^[0-9]+$/) ? $2 : "\"" $2 "\""
        printf "%s    \"%s\": %s", sep, $1, v; sep = ",\n" } END { print "" }'
    echo "  }"
    echo "}"
  } >"$plain" || { CKPT_WHY="cannot write $plain"; return 1; }
  mdb_encrypt <"$plain" >"$CKPT_PARTIAL" || { CKPT_WHY="cannot encrypt $plain"; return 1; }
  mdb_decrypt "$CKPT_PARTIAL" 2>/dev/null | cmp -s -- - "$plain" ||
    { CKPT_WHY="the encrypted checkpoint does not decrypt to what was written"; return 1; }
  mv -- "$CKPT_PARTIAL" "$dir/$name" || { CKPT_WHY="cannot rename $CKPT_PARTIAL"; return 1; }
  b321_set checkpoint "$name"
  b321_log "checkpoint $name: $(grep -c '^    "' -- "$plain") tables at $CKPT_FILE:$CKPT_POS${gtid:+ (GTID $gtid)}"
}

# checkpoint_leftovers: the temp files of a checkpoint (the plain one included), whether it was
# written or not.
checkpoint_leftovers() {
  [ -z "$CKPT_PARTIAL" ] || rm -f -- "$CKPT_PARTIAL" "$CKPT_PARTIAL".*
  CKPT_PARTIAL=""
}

SHIPPED_SIZE=0
SHIPPED_ID=""

# ship SRC: copies one closed binlog to DEST, verified. SHIPPED_SIZE: its size, 0 when already
# there; SHIPPED_ID: its identity.
ship() {
  local src=$1 name id dst size sha
  name=${src##*/}
  id=$(b321_binlog_identity "$src") || b321_fail "$src has no binlog header: not a binlog"
  SHIPPED_ID=$id
  dst=$DEST/$id.zst.enc
  if [ -f "$dst" ] && [ -f "$dst.sha256" ]; then
    SHIPPED_SIZE=0
    return 0
  fi
  size=$(stat -c %s -- "$src")
  sha=$(b321_sha256 "$src")
  mdb_seal_binlog "$src" "$dst" "$name" "$sha"
  SHIPPED_SIZE=$size
}

# prune: removes shipped binlogs that started before the oldest kept full's binlog AND are older
# than the configured days. Never one a kept full needs, whatever its name; with no full yet, or
# when that full's binlog cannot be found, nothing is removed.
prune() {
  local oldest name start first f s removed=0
  # Every full counts here, intact or not (the full and restore-test jobs check them): keeping a
  # few binlogs too many is cheap, and reading every full each hour is not.
  oldest=$(mdb_fulls | head -n 1)
  [ -z "$oldest" ] || read -r name start < <(mdb_binlog_start "$oldest.manifest.json")
  if [[ ${start:-} == "~"* ]]; then
    first=$(mdb_binlog_candidates | b321_binlog_chain "$name" "$start" | head -n 1)
    start=""
    if [ "$first" != NONE ]; then
      f=${first#* }
      [[ $f == *.zst.enc ]] || f=$(b321_binlog_identity "$f") || f=""
      start=$(b321_binlog_stamp "$f") || start=""
    fi
  fi
  if [ -z "${start:-}" ]; then
    b321_set pruned 0
    return 0
  fi
  for f in "$DEST"/*.zst.enc; do
    [ -f "$f" ] || continue
    s=$(b321_binlog_stamp "$f") || continue
    [[ $s < $start ]] || continue
    [ -n "$(find "$f" -maxdepth 0 -mtime "+$MARIADB_BINLOG_KEEP_DAYS")" ] || continue
    rm -f -- "$f.sha256" "$f"
    removed=$((removed + 1))
  done
  b321_set pruned "$removed"
  # A checkpoint goes with its binlog (named in its file name): the drill could not replay to it.
  for f in "$DEST"/checkpoints/*.json.enc; do
    [[ -f $f && ${f##*/} =~ $MDB_CHECKPOINT_RE ]] || continue
    [ -f "$DEST/${BASH_REMATCH[2]}.zst.enc" ] || rm -f -- "$f"
  done
}

main() {
  b321_lock mariadb-binlogs
  b321_cleanup binlogs_cleanup
  mdb_require_server
  install -d -m 0700 -- "$DEST"
  b321_watch_space "$DEST"
  b321_cleanup checkpoint_leftovers
  local ckpt=1
  if ! checkpoint_take; then
    b321_warn "no checkpoint this run: $CKPT_WHY"
    ckpt=0
  fi
  # Flush first: every binlog but the new active one is then closed and safe to copy.
  mdb_sql "FLUSH BINARY LOGS" || b321_fail "FLUSH BINARY LOGS failed"
  local -a logs
  mapfile -t logs < <(mdb_sql "SHOW BINARY LOGS" | cut -f1)
  [ "${#logs[@]}" -ge 2 ] || b321_fail "SHOW BINARY LOGS lists ${#logs[@]} binlog(s) after a flush (is log_bin on?)"
  local dir=${MARIADB_BINLOG_BASENAME%/*} base=${MARIADB_BINLOG_BASENAME##*/}
  local i f s name shipped=0 bytes=0 newest="" newest_start="" newest_id="" first_start
  # A gap: the server dropped binlogs the shipper never copied (PITR cannot cross it). The newest
  # copy by start time, not by number: an older history's higher numbers are no gap.
  for f in "$DEST/$base".*.zst.enc; do
    s=$(b321_binlog_stamp "$f") || continue
    [[ $s < $newest_start ]] || { newest_start=$s; newest=${f##*/}; }
  done
  for ((i = 0; i < ${#logs[@]} - 1; i++)); do
    name=${logs[$i]}
    [[ $name == "$base".* ]] || b321_fail "binlog $name does not match $MARIADB_BINLOG_BASENAME"
    ship "$dir/$name"
    newest_id=$SHIPPED_ID
    if [ "$SHIPPED_SIZE" != 0 ]; then
      shipped=$((shipped + 1))
      bytes=$((bytes + SHIPPED_SIZE))
    fi
  done
  b321_set shipped "$shipped"
  b321_set bytes "$bytes"
  b321_set newest "$newest_id"
  b321_log "shipped $shipped binlog(s), $bytes bytes; newest closed $newest_id"
  if [ "$ckpt" = 1 ]; then
    if ! s=$(b321_binlog_identity "$dir/$CKPT_FILE"); then
      b321_warn "no checkpoint this run: the header of its binlog $CKPT_FILE cannot be read"
    elif ! checkpoint_write "$s"; then
      b321_warn "no checkpoint this run: $CKPT_WHY"
    fi
    checkpoint_leftovers
  fi
  prune
  [ -n "$newest" ] || return 0
  # The server's oldest binlog, in the same history as the newest copy (it started later), must
  # follow that copy's number.
  [[ ${newest%.zst.enc} =~ $B321_BINLOG_ID_RE ]]
  name=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
  first_start=$(b321_binlog_stamp "$(b321_binlog_identity "$dir/${logs[0]}")") || first_start=""
  if ! [[ $first_start < $newest_start ]] &&
    [ "$(mdb_binlog_seq "${logs[0]}")" -gt $(($(mdb_binlog_seq "$name") + 1)) ]; then
    b321_fail "binlogs after $name were purged by the server before being shipped: point-in-time recovery has a gap until the next full (raise binlogExpireDays or ship more often)"
  fi
}

main
