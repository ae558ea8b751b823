#!/bin/bash
# b321-cron [--tee] JOB PROGRAM [ARGS...]: runs one job's program the way every run of it goes.
# Run by /etc/cron.d/backup321-<job>, and by the b321-<job> entry point (with --tee) when a person
# runs the job by hand. It holds the job's lock, <locks>/cron-<job>.lock (B321_LOCK_DIR, set by
# both), so two runs of a job never overlap, whoever started them: a run that finds the lock
# taken does nothing and exits 75 (EX_TEMPFAIL: the job is already running; try again once it has
# finished). All output goes to syslog (tag backup321).
# --tee: the output also goes where it went before (the terminal of the person who typed b321-<job>:
# stdout to stdout, stderr to stderr), and the program replaces the wrapper, so it keeps its pid and
# the terminal's process group: Ctrl-C reaches the job, whose exit trap still gets its last lines
# out (the copies ignore the terminal's signals).
set -Eeuo pipefail

# copy_out FD PID: reads the job's output and writes it to FD and to syslog. The terminal's signals
# are ignored (they are the job's to handle), and the job's lock is not held here: a copy that
# outlives the job must not keep the next run out. Output that FD no longer takes (a closed
# terminal, `| head`) still reaches syslog.
copy_out() {
  local fd=$1 pid=$2
  trap '' INT QUIT TERM HUP
  exec 9>&- >&"$fd"
  tee -p >(logger -t backup321 -p user.info --id="$pid" --)
}

main() {
  local tee=0 job lock
  if [ "${1:-}" = --tee ]; then
    tee=1
    shift
  fi
  job=$1
  shift
  lock=${B321_LOCK_DIR:?set by the cron file and the entry point (written by an older backup321: run pulumi up)}/cron-$job.lock
  mkdir -p -- "$B321_LOCK_DIR"
  exec 9>>"$lock"
  if ! flock -n 9; then
    if [ "$tee" = 1 ]; then
      logger -t backup321 -p user.warning -- "[$job] not started by hand: another run of it is still going"
      echo "b321-$job: not started: $job is already running (by cron or by hand; it holds $lock). Try again once it has finished." >&2
    else
      logger -t backup321 -p user.warning -- "[$job] skipped: another run of it (by cron or by hand) is still going"
    fi
    exit 75
  fi
  if [ "$tee" = 1 ]; then
    exec 3>&1 4>&2
    exec > >(copy_out 3 $$) 2> >(copy_out 4 $$)
    exec "$@" 3>&- 4>&-
  fi
  local rc
  set +e
  "$@" 2>&1 | logger -t backup321 -p user.info --id=$$ --
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

main "$@"
