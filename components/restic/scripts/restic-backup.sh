#!/bin/bash
# restic-backup.sh ENV_FILE: backs up BACKUP_PATHS (tags BACKUP_TAGS, --host RESTIC_HOST), then
# applies the keep policy with forget --group-by host,tags --prune. Exit code 3 (snapshot made but
# some files unreadable) is a warning listing them, and skips forget: an incomplete snapshot must
# not push a complete one out. A failed backup never forgets anything. The first complete snapshot
# after a password rotation retires the old keys once restic check passes (restic_retire_old_keys).
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
source "${BASH_SOURCE[0]%/*}/restic-lib.sh"

# unreadable_files ERRFILE: the items restic reported as errors, one per line.
unreadable_files() {
  local err=$1
  {
    sed -n 's/.*"message_type":"error".*"item":"\([^"]*\)".*/\1/p' -- "$err"
    sed -n 's/^error: \(.*\)$/\1/p' -- "$err"
  } | sort -u
}

main() {
  b321_start "$@"
  restic_setup
  b321_lock "restic-$REPO_NAME"
  restic_require_mounts
  restic_require_repo
  local -a paths args
  read -r -a paths <<< "${BACKUP_PATHS:?BACKUP_PATHS missing}"
  args=(backup --json --quiet --host "${RESTIC_HOST:?RESTIC_HOST missing}")
  [ -z "${BACKUP_TAGS:-}" ] || args+=(--tag "$BACKUP_TAGS")
  [ -z "${BACKUP_EXCLUDE_FILE:-}" ] || args+=(--exclude-file "$BACKUP_EXCLUDE_FILE")
  local out err rc=0
  out=$(mktemp)
  err=$(mktemp)
  restic_run "${args[@]}" -- "${paths[@]}" > "$out" 2> "$err" || rc=$?
  case "$rc" in
    0 | 3)
      b321_set_text snapshot "$(restic_json_field "$out" snapshot_id)"
      b321_set bytes "$(restic_json_field "$out" data_added)"
      b321_set files "$(restic_json_field "$out" total_files_processed)"
      ;;
    *)
      b321_fail "restic backup of $REPO_NAME failed (exit $rc): $(grep -v '^{' -- "$err" | tail -n 3 | tr '\n' ' ')"
      ;;
  esac
  if [ "$rc" -eq 3 ]; then
    local list count
    list=$(unreadable_files "$err")
    count=$(printf '%s\n' "$list" | grep -c . || true)
    b321_set unreadable "$count"
    b321_warn "snapshot made but $count file(s) could not be read (forget skipped): $(printf '%s\n' "$list" | head -n 20 | paste -sd ' ' -)"
    rm -f -- "$out" "$err"
    return 0
  fi
  rm -f -- "$out" "$err"
  restic_forget_prune
  restic_retire_old_keys
}

main "$@"
