#!/bin/bash
# restic-drill.sh ENV_FILE: the restore drill of a restic repository (an integrity check alone is
# not a restore). It restores a rotating sample of the newest snapshot's files (DRILL_FILES files,
# DRILL_MAX_MB at most) into scratch space with restic restore --verify, so every restored byte is
# checked against the hashes restic recorded at backup time; then each sampled file whose source
# is unchanged since the snapshot (this host, same size and mtime) is compared with the live file,
# byte for byte. The sample moves on after each successful run (<state>/restic/<repo>.drill-next):
# over the months the drills go through the whole snapshot. A failed run keeps the sample, so the
# next run tries the same files again. Records the measured restore time (restore_seconds) and
# what it compared; the scratch copy is removed whatever happens.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind drill
source "${BASH_SOURCE[0]%/*}/restic-lib.sh"


# pick_sample LIST OFFSET: from "path<TAB>size" lines (in snapshot order), every STRIDE-th file
# from OFFSET, up to DRILL_FILES files and DRILL_MAX_MB (the first one is always taken). Paths
# with glob characters are left out: restic reads --include as a pattern.
pick_sample() {
  local list=$1 offset=$2
  awk -F'\t' -v want="$DRILL_FILES" -v maxb="$((DRILL_MAX_MB * 1024 * 1024))" -v offset="$offset" '
    BEGIN { n = 0 }
    $1 ~ /[*?\\[]/ || index($1, "]") { next }
    { path[n] = $1; size[n] = $2; n++ }
    END {
      stride = int(n / want); if (stride < 1) stride = 1
      for (i = offset % stride; i < n && taken < want; i += stride) {
        if (taken && total + size[i] > maxb) continue
        print path[i] "\t" size[i]; taken++; total += size[i]
      }
    }' "$list"
}

main() {
  b321_start "$@"
  restic_setup
  local want=${DRILL_FILES:?DRILL_FILES missing} counter offset snap id short host when work
  [[ $want =~ ^[1-9][0-9]*$ ]] || b321_fail "DRILL_FILES must be a positive number"
  [[ ${DRILL_MAX_MB:?DRILL_MAX_MB missing} =~ ^[1-9][0-9]*$ ]] ||
    b321_fail "DRILL_MAX_MB must be a positive number"
  command -v jq >/dev/null 2>&1 ||
    b321_fail "jq is missing on $(hostname) (apt-get install jq): the drill reads restic's JSON with it"
  # the repository's own lock: no prune removes a pack while the restore reads it
  b321_lock "restic-$REPO_NAME" "${DRILL_LOCK_WAIT:-3600}"
  restic_require_mounts
  restic_require_repo
  b321_scratch "${DRILL_SCRATCH:?DRILL_SCRATCH missing}" "restic-$REPO_NAME"
  SCRATCH=$B321_SCRATCH
  work=$SCRATCH/.drill
  mkdir -- "$work"

  restic_run snapshots --json >"$work/snapshots.json" ||
    b321_fail "restic snapshots of $REPO_NAME failed"
  snap=$(jq -r 'sort_by(.time) | last // empty | [.id, .short_id, .hostname, .time] | @tsv' \
    "$work/snapshots.json")
  [ -n "$snap" ] || b321_fail "$REPO_NAME has no snapshot: nothing to restore"
  IFS=$'\t' read -r id short host when <<<"$snap"
  b321_set_text snapshot "$short"

  restic_run ls --json "$id" >"$work/ls.json" || b321_fail "restic ls of snapshot $short failed"
  jq -r 'select(.struct_type == "node" and .type == "file") | [.path, .size] | @tsv' \
    "$work/ls.json" >"$work/files.tsv"
  [ -s "$work/files.tsv" ] || b321_fail "snapshot $short of $REPO_NAME holds no file"

  counter=$B321_STATE/restic/$REPO_NAME.drill-next
  mkdir -p -- "${counter%/*}"
  offset=$(cat -- "$counter" 2>/dev/null || echo 0)
  [[ $offset =~ ^[0-9]+$ ]] || offset=0
  pick_sample "$work/files.tsv" "$offset" >"$work/sample.tsv"

  local -a args=(restore "$id" --target "$SCRATCH" --verify)
  local path size t0 t1
  while IFS=$'\t' read -r path size; do
    b321_log "sample: $path ($size bytes)"
    args+=(--include "$path")
  done <"$work/sample.tsv"
  t0=$(date +%s)
  restic_run "${args[@]}" >&2 ||
    b321_fail "restic restore --verify of the sample of snapshot $short failed: the repository cannot give back what it holds"
  t1=$(date +%s)

  local files=0 bytes=0 live=0 restored
  while IFS=$'\t' read -r path size; do
    restored=$SCRATCH$path
    [ -f "$restored" ] || b321_fail "$path of snapshot $short was not restored"
    [ "$(stat -c %s -- "$restored")" = "$size" ] ||
      b321_fail "$path restored from snapshot $short has $(stat -c %s -- "$restored") bytes, the snapshot says $size"
    files=$((files + 1))
    bytes=$((bytes + size))
    # unchanged since the snapshot (restic restores the recorded mtime): must be the same bytes
    if [ "$host" = "${RESTIC_HOST:-}" ] && [ -f "$path" ] &&
      [ "$(stat -c '%s %.9Y' -- "$path")" = "$(stat -c '%s %.9Y' -- "$restored")" ]; then
      cmp -s -- "$path" "$restored" ||
        b321_fail "$path restored from snapshot $short differs from the live file, which has not changed since (same size and mtime)"
      live=$((live + 1))
    fi
  done <"$work/sample.tsv"
  b321_set files "$files"
  b321_set bytes "$bytes"
  b321_set live_compared "$live"
  b321_set restore_seconds "$((t1 - t0))"
  b321_log "restore drill passed: $files files ($bytes bytes) of snapshot $short ($when) restored and verified in $((t1 - t0)) s, $live compared with their unchanged source"
  printf '%s\n' "$((offset + 1))" >"$counter.partial"
  mv -f -- "$counter.partial" "$counter"
}

main "$@"
