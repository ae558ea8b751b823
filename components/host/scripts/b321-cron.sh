#!/bin/bash
# Run by /etc/cron.d/backup321-<job>: b321-cron JOB PROGRAM [ARGS...]
# Holds a per-job lock so runs never overlap, and sends all output to syslog (tag backup321).
set -Eeuo pipefail

main() {
  local job=$1 state
  shift
  state=${B321_STATE_DIR:-/var/lib/backup321}
  mkdir -p -- "$state/locks"
  exec 9>>"$state/locks/cron-$job.lock"
  if ! flock -n 9; then
    logger -t backup321 -p user.warning -- "[$job] skipped: the previous run is still going"
    exit 75
  fi
  local rc
  set +e
  "$@" 2>&1 | logger -t backup321 -p user.info --id=$$ --
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

main "$@"
