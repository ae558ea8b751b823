#!/bin/bash
# Point-in-time recovery drill: restores a scratch instance to the newest checkpoint the binlog
# shipping recorded (mariadb-binlogs.sh: a binlog position and the CHECKSUM TABLE of every table at
# that position, in one consistent snapshot) and compares every table's checksum with it, exactly.
# The recovery is PITR's own (mdb_pitr_build: the newest intact full consistent before the
# checkpoint, then its binlogs replayed), stopped at the checkpoint's position instead of a time, and
# it reads the shipped copies only (MDB_SHIPPED_ONLY): the server's own binlogs are not the backup.
# A damaged or missing copy, a change that never reached the binlog, a replay that does not give
# back what the server held: each fails the drill with its alert. Records the measured restore time
# (restore_seconds: the monitor holds it against the RTO) and each phase's seconds; the scratch
# instance is stopped and removed whatever happens. Tables the checkpoint skipped (too large, or of
# an engine without consistent snapshots) are counted, not compared.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind drill
b321_start "$@"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"

WORK=""

drill_cleanup() {
  mdb_stop_scratch
  [ -z "$WORK" ] || rm -rf -- "$WORK"
}

# newest_checkpoint: prints the newest checkpoint (by the stamp in its name) with a full consistent
# before it (manifests only: the fulls themselves are checked once, by mdb_pick_full).
newest_checkpoint() {
  local f nb full oldest=""
  while IFS= read -r full; do
    nb=$(mdb_manifest_get "$full.manifest.json" consistent_before_epoch)
    [[ $nb =~ ^[0-9]+$ ]] || continue
    { [ -n "$oldest" ] && [ "$oldest" -le "$nb" ]; } || oldest=$nb
  done < <(mdb_fulls)
  [ -n "$oldest" ] || return 0
  for f in "$MARIADB_BINLOG_BACKUP_DIR"/checkpoints/*.json.enc; do
    [[ -f $f && ${f##*/} =~ $MDB_CHECKPOINT_RE ]] || continue
    nb=$(stamp_epoch "${BASH_REMATCH[1]}")
    # strictly after: the full was complete a second before the checkpoint's snapshot began
    if [ "$nb" -gt "$oldest" ]; then printf '%s %s\n' "$nb" "$f"; fi
  done | LC_ALL=C sort -n | tail -n 1 | cut -d' ' -f2-
}

# stamp_epoch YYYYmmddTHHMMSSZ: that UTC time as Unix time.
stamp_epoch() {
  local s=$1
  date -u -d "${s:0:4}-${s:4:2}-${s:6:2} ${s:9:2}:${s:11:2}:${s:13:2}" +%s
}

# checkpoint_sums CHECKPOINT: "db.table<TAB>value" of its tables block (a number, or "skipped: why").
checkpoint_sums() {
  awk '/^  "tables": \{/ { t = 1; next } t && /^  \}/ { t = 0 } t {
    line = $0; sub(/^ +"/, "", line); key = line; sub(/": .*$/, "", key)
    val = line; sub(/^.*": /, "", val); sub(/,$/, "", val); gsub(/^"|"$/, "", val)
    print key "\t" val }' "$1"
}

# compare CHECKPOINT: every checksummed table of the checkpoint has the same checksum in the scratch
# instance (CHECKSUM TABLE there too); a table missing there is a difference.
compare() {
  local ckpt=$1 t v got sql="" sep="" db tb problems="" compared=0 skipped=0
  local -A want=()
  while IFS=$'\t' read -r t v; do
    [ -n "$t" ] || continue
    if [[ $v =~ ^[0-9]+$ ]]; then
      want[$t]=$v
      db=${t%%.*}
      tb=${t#*.}
      # shellcheck disable=SC2016  # backquotes are SQL identifier quotes, not a command
      printf -v tb '`%s`.`%s`' "${db//\`/\`\`}" "${tb//\`/\`\`}"
      sql+=$sep$tb
      sep=", "
    else
      skipped=$((skipped + 1))
      b321_log "not compared: $t ($v)"
    fi
  done < <(checkpoint_sums "$ckpt")
  b321_set tables_skipped "$skipped"
  [ -n "$sql" ] || {
    b321_set tables 0
    b321_warn "the checkpoint $name records no checksum to compare (every table was skipped): the recovery ran, its data was not checked"
    return 0
  }
  while IFS=$'\t' read -r t got; do
    [ -n "${want[$t]+x}" ] || continue
    if [ "$got" = NULL ]; then
      problems+="$t is missing; "
    elif [ "$got" != "${want[$t]}" ]; then
      problems+="$t has checksum $got, the checkpoint recorded ${want[$t]}; "
    fi
    compared=$((compared + 1))
    unset "want[$t]"
  done < <(mdb_scratch_sql -e "CHECKSUM TABLE $sql" 2>/dev/null || true)
  for t in "${!want[@]}"; do problems+="$t is missing; "; done
  b321_set tables "$compared"
  [ -z "$problems" ] ||
    b321_fail "the recovery to checkpoint $name differs from what the server held then: ${problems%; }"
}

main() {
  b321_lock mariadb-restore
  b321_cleanup drill_cleanup
  b321_phase check
  mdb_require_key
  # shellcheck disable=SC2034  # read by mdb_binlog_candidates
  MDB_SHIPPED_ONLY=1
  local found ckpt name nb bfile bpos file t0 t1
  found=$(newest_checkpoint)
  [ -n "$found" ] ||
    b321_fail "no checkpoint after a full in $MARIADB_BINLOG_BACKUP_DIR/checkpoints: the binlog shipping records one each run (is it running, after a full?)"
  name=${found##*/}
  b321_set checkpoint "$name"
  install -d -m 0711 -- "$MARIADB_SCRATCH_DIR"
  WORK=$(mktemp -d -- "$MARIADB_SCRATCH_DIR/pitr-drill.XXXXXX")
  chmod 0755 -- "$WORK"
  # the plain checkpoint stays in the private work directory (the datadir gets its own)
  ckpt=$WORK/checkpoint.json
  mdb_decrypt_any "$found" "$ckpt" ||
    b321_fail "the checkpoint $found does not decrypt with any of the stack's keys (corrupted?)"
  [[ $name =~ $MDB_CHECKPOINT_RE ]]
  nb=$(mdb_checkpoint_get "$ckpt" not_before_epoch)
  bfile=$(mdb_checkpoint_get "$ckpt" binlog_file)
  bpos=$(mdb_checkpoint_get "$ckpt" binlog_position)
  {
    [ "$(mdb_checkpoint_get "$ckpt" binlog_identity).$bpos" = "${BASH_REMATCH[2]}.${BASH_REMATCH[3]}" ] &&
      [ "$nb" = "$(stamp_epoch "${BASH_REMATCH[1]}")" ] && [ -n "$bfile" ]
  } || b321_fail "the checkpoint $found does not hold what its name says (binlog, position, time)"
  # The full restored (and its increment) is hashed from the bytes its unpack reads.
  # shellcheck disable=SC2034  # read by mariadb-lib.sh
  MDB_SHA_IN_PASS=1
  t0=$(date +%s)
  while :; do
    mdb_pick_full "$((nb - 1))"
    file=$MDB_PICKED
    [ -n "$file" ] || mdb_no_intact_full "consistent before the checkpoint $name"
    b321_set file "$file"
    b321_log "recovering ${file##*/} up to checkpoint $name ($bfile:$bpos, $(mdb_checkpoint_get "$ckpt" time)) in a scratch instance under $WORK"
    mdb_pitr_build "$file" "$WORK/data" "--stop-position=$bpos" "$bfile"
    mdb_unpack_failed "$file" || break
  done
  t1=$(date +%s)
  b321_set restore_seconds "$((t1 - t0))"
  b321_phase compare
  compare "$ckpt"
  b321_log "PITR drill passed: ${B321_FIELDS[tables]} tables equal to checkpoint $name, recovered in $((t1 - t0)) s"
}

main
