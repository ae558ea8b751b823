#!/bin/bash
# Restore test (source MariaDB §16.10.6, without its bugs): restores the newest intact full, with
# its newest intact increment, into a scratch instance (its own datadir and socket, no network;
# never the live server), replays the binlog events between the backup's position and the position
# its row counts were taken at, then compares every table's row count with the manifest (the
# increment's, when there is one). Records the measured restore time (RTO).
# Every full is checked against its manifest first (mdb_scan_fulls): one that is not intact is
# skipped and named in the run's warning (and alert); it is left in place for inspection.
# Its status records each phase's seconds (phase_<name>_seconds: check, restore, prepare, start,
# binlogs and replay when there is a gap to replay, compare); the log shows the restore's progress.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind drill
b321_start "$@"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"

WORK=""

restore_cleanup() {
  mdb_stop_scratch
  [ -z "$WORK" ] || rm -rf -- "$WORK"
}

main() {
  b321_lock mariadb-restore
  b321_cleanup restore_cleanup
  b321_phase check
  mdb_require_key
  local file manifest t0 t1 bfile bpos cfile cpos
  # Every full is checked: a corrupt one is a warning naming it, and the newest intact one is tested.
  # The one restored (and its increment) is hashed from the bytes its restore reads.
  # shellcheck disable=SC2034  # read by mariadb-lib.sh
  MDB_SHA_IN_PASS=1
  mdb_scan_fulls
  # Traversable by the server user; the restore's own directory is created below it.
  install -d -m 0711 -- "$MARIADB_SCRATCH_DIR"
  WORK=$(mktemp -d -- "$MARIADB_SCRATCH_DIR/restore-test.XXXXXX")
  chmod 0755 -- "$WORK"
  t0=$(date +%s)
  while :; do
    [ "${#MDB_GOOD_FULLS[@]}" -gt 0 ] || mdb_no_intact_full ""
    file=${MDB_GOOD_FULLS[-1]}
    # with its newest intact increment: the counts compared are the increment's
    mdb_pick_increment "$file"
    manifest=${MDB_PICKED_INCR:-$file}.manifest.json
    b321_set file "$file"
    b321_log "restoring ${file##*/}${MDB_PICKED_INCR:+ and its increment ${MDB_PICKED_INCR##*/}} into a scratch instance under $WORK"
    mdb_restore_full "$file" "$WORK/data" "$MDB_PICKED_INCR"
    mdb_unpack_failed "$file" || break
  done
  bfile=$(mdb_manifest_get "$manifest" binlog_file)
  bpos=$(mdb_manifest_get "$manifest" binlog_position)
  cfile=$(mdb_manifest_get "$manifest" counted_binlog_file)
  cpos=$(mdb_manifest_get "$manifest" counted_binlog_position)
  if [ "$bfile:$bpos" != "$cfile:$cpos" ]; then
    mdb_replay "$MDB_SCRATCH_SOCKET" "$manifest" "--stop-position=$cpos" "$cfile"
  fi
  t1=$(date +%s)
  b321_set restore_seconds "$((t1 - t0))"
  b321_phase compare
  compare_counts "$manifest"
  b321_log "restore test passed in $((t1 - t0)) s"
}

# compare_counts MANIFEST: every recorded table present with the recorded row count, and no table
# the manifest does not know about.
compare_counts() {
  local manifest=$1 t n got want problems="" rows=0 ntables=0 list="" db
  local -A expected=()
  while read -r t n; do
    [ -n "$t" ] || continue
    expected[$t]=$n
    rows=$((rows + n))
    ntables=$((ntables + 1))
  done < <(mdb_manifest_tables "$manifest")
  [ "$ntables" -gt 0 ] || b321_fail "the manifest records no table"
  for db in $(mdb_manifest_get "$manifest" databases); do list+="${list:+,}'$db'"; done
  local -a present
  mapfile -t present < <(mdb_scratch_sql -e "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN ($list) ORDER BY 1")
  for t in "${present[@]}"; do
    [ -n "${expected[$t]+x}" ] || problems+="unexpected table $t; "
  done
  while read -r t got; do
    want=${expected[$t]}
    [ "$got" = "$want" ] || problems+="$t has $got rows, the manifest recorded $want; "
    unset "expected[$t]"
  done < <(mdb_count_sql "${!expected[@]}" | mdb_scratch_sql --force 2>/dev/null || true)
  for t in "${!expected[@]}"; do
    problems+="$t is missing; "
  done
  b321_set tables "$ntables"
  b321_set rows "$rows"
  [ -z "$problems" ] || b321_fail "restored data differs from the manifest: ${problems%; }"
  [ "$rows" -gt 0 ] || b321_warn "every table of the backup is empty"
}

main
