#!/bin/bash
# restic-check.sh ENV_FILE: restic check --read-data-subset=n/CHECK_SUBSETS, n rotating from run to
# run (kept in <state>/restic/<repo>.check-next), so every pack is read once per CHECK_SUBSETS
# successful runs. A failed check keeps n: the next run reads the same subset again.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind check
source "${BASH_SOURCE[0]%/*}/restic-lib.sh"

main() {
  b321_start "$@"
  restic_setup
  local total=${CHECK_SUBSETS:?CHECK_SUBSETS missing} counter n
  [[ $total =~ ^[1-9][0-9]*$ ]] || b321_fail "CHECK_SUBSETS must be a positive number"
  b321_lock "restic-$REPO_NAME"
  restic_require_mounts
  restic_require_repo
  counter=$B321_STATE/restic/$REPO_NAME.check-next
  mkdir -p -- "${counter%/*}"
  n=$(cat -- "$counter" 2> /dev/null || echo 1)
  [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le "$total" ] || n=1
  b321_set subset "$n/$total"
  restic_unlock_stale
  restic_run check --read-data-subset="$n/$total" >&2 ||
    b321_fail "restic check of $REPO_NAME found problems (subset $n/$total)"
  printf '%s\n' "$(((n % total) + 1))" > "$counter.partial"
  mv -f -- "$counter.partial" "$counter"
}

main "$@"
