#!/bin/bash
# b321-supervise: keeps one long-running program up on a host without systemd (components/host
# Service; with systemd, a unit with Restart=always does this instead).
#   b321-supervise.sh start DIR -- PROGRAM [ARGS...]
#       starts the supervisor in its own session unless one runs for DIR (cron runs this @reboot
#       and every minute, so a supervisor that died is back within a minute); exits 0 either way
#   b321-supervise.sh run DIR -- PROGRAM [ARGS...]
#       the supervisor itself, in the foreground: runs PROGRAM, and when it ends starts it again
#       after a backoff: 1 s, doubled each time it ends within 60 s of its start, at most 60 s; a
#       run that lasted 60 s or more resets it
#   b321-supervise.sh stop DIR
#       stops the supervisor and its program (TERM; KILL after 30 s); exits 0 when none runs
#   b321-supervise.sh status DIR
#       exits 0 and prints the pids when the supervisor runs, 3 when it does not
# DIR (0700) holds supervisor.lock, held by the running supervisor for its whole life (whether one
# runs is whether the lock is free: no stale pid file can fool it), supervisor.pid and child.pid.
# The program's output and the supervisor's own lines go to syslog (tag backup321) and to stderr.
set -Euo pipefail

NAME=""
DIR=""
STOP=0
CHILD=""

log() {
  printf '%s b321-supervise[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$NAME" "$*" >&2
  logger -t backup321 -p user.notice -- "[$NAME] supervisor: $*" 2>/dev/null || true
}

usage() {
  echo "usage: b321-supervise.sh start|run DIR -- PROGRAM [ARGS...] | stop|status DIR" >&2
  exit 2
}

# locked: true when a supervisor holds DIR's lock.
locked() {
  [ -e "$DIR/supervisor.lock" ] || return 1
  ! flock -n "$DIR/supervisor.lock" true
}

cmd_start() {
  locked && return 0
  setsid "$0" run "$DIR" -- "$@" </dev/null >/dev/null 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    locked && return 0
    sleep 0.1
  done
  log "the supervisor did not start"
  return 1
}

on_stop() {
  STOP=1
  [ -z "$CHILD" ] || kill -TERM "$CHILD" 2>/dev/null || true
}

# relay: the program's output to stderr and syslog, line by line.
relay() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line" >&2
    logger -t backup321 -p user.info -- "[$NAME] $line" 2>/dev/null || true
  done
}

cmd_run() {
  exec 9>>"$DIR/supervisor.lock"
  flock -n 9 || { log "already running"; return 0; }
  printf '%s\n' "$$" >"$DIR/supervisor.pid"
  trap on_stop TERM INT HUP
  local delay=1 start end rc
  while [ "$STOP" = 0 ]; do
    printf -v start '%(%s)T' -1
    # the lock stays the supervisor's: a program that outlives it must not keep the next one out
    "$@" 9>&- </dev/null > >(exec 9>&-; relay) 2>&1 &
    CHILD=$!
    printf '%s\n' "$CHILD" >"$DIR/child.pid"
    log "started $1 (pid $CHILD)"
    rc=0
    wait "$CHILD" || rc=$?
    # a signal to the supervisor ends the first wait early: wait for the program itself
    while kill -0 "$CHILD" 2>/dev/null; do wait "$CHILD" || rc=$?; done
    CHILD=""
    rm -f -- "$DIR/child.pid"
    [ "$STOP" = 0 ] || break
    printf -v end '%(%s)T' -1
    if [ $((end - start)) -ge 60 ]; then delay=1; fi
    log "$1 ended (exit $rc) after $((end - start)) s: starting it again in $delay s"
    sleep "$delay" &
    wait $! || true
    delay=$((delay * 2 > 60 ? 60 : delay * 2))
  done
  rm -f -- "$DIR/supervisor.pid"
  log "stopped"
}

cmd_stop() {
  local pid child i
  locked || return 0
  pid=$(cat -- "$DIR/supervisor.pid" 2>/dev/null) || pid=""
  child=$(cat -- "$DIR/child.pid" 2>/dev/null) || child=""
  [[ $pid =~ ^[0-9]+$ ]] && kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 300; i++)); do
    locked || return 0
    sleep 0.1
  done
  log "the supervisor did not stop within 30 s: killing it and its program"
  [[ $child =~ ^[0-9]+$ ]] && kill -KILL "$child" 2>/dev/null
  [[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    locked || return 0
    sleep 0.1
  done
  return 1
}

cmd_status() {
  if locked; then
    echo "running: supervisor $(cat -- "$DIR/supervisor.pid" 2>/dev/null), program $(cat -- "$DIR/child.pid" 2>/dev/null || echo '(restarting)')"
    return 0
  fi
  echo "not running"
  return 3
}

main() {
  local cmd=${1:-}
  DIR=${2:-}
  { [ -n "$cmd" ] && [[ $DIR == /* ]]; } || usage
  NAME=${DIR##*/}
  shift 2
  case $cmd in
    start | run)
      { [ "${1:-}" = -- ] && [ -n "${2:-}" ]; } || usage
      shift
      install -d -m 0700 -- "$DIR"
      "cmd_$cmd" "$@"
      ;;
    stop | status)
      [ $# -eq 0 ] || usage
      "cmd_$cmd"
      ;;
    *) usage ;;
  esac
}

main "$@"
