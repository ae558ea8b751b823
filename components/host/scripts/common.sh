#!/bin/bash
# Shared by every backup321 job script. A job script does:
#   source "${BASH_SOURCE[0]%/*}/common.sh"
#   b321_start "$@"            # loads the job's env file, arms the exit trap, status "running"
#   b321_usage "why"           # a wrong command line: exit 2, no status, no alert (before any lock)
#   b321_lock repo-usb         # one run at a time per resource; a held lock fails the run
#   ... work; b321_fail "why" on any problem, b321_set bytes 123, b321_warn "why" ...
# On every exit the trap writes <state>/status/<job>.json and <state>/metrics/<job>.prom, and a
# failed or warning run calls the alert hook. The exit code is the script's own.
# shellcheck disable=SC2034  # variables here are read by the scripts that source this file

B321_ERROR=""
B321_WARNING=""
B321_STARTED=""
B321_START_EPOCH=0
declare -A B321_FIELDS=()
B321_CLEANUP=()
B321_SPACE_DIRS=()

b321_log() {
  local msg="$*"
  printf '%s backup321[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${B321_JOB:-?}" "$msg" >&2
}

b321_json_escape() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/}
  s=${s//$'\t'/\\t}
  printf '%s' "$s"
}

# b321_set KEY VALUE: an extra field in the status file (numbers stay numbers).
b321_set() {
  B321_FIELDS[$1]=$2
}

b321_fail() {
  B321_ERROR=$*
  b321_log "FAILED: $*"
  exit 1
}

# b321_usage MESSAGE: a wrong command line, before the run takes a lock or touches anything. It
# exits 2 with no status and no alert: no job ran, the person who typed it reads the message, and a
# "failed" status would replace the last real result and page everyone for a typo.
b321_usage() {
  trap - EXIT
  b321_log "usage: $*"
  exit 2
}

# A run that did its job but with a problem worth a look (e.g. restic exit code 3).
b321_warn() {
  B321_WARNING=${B321_WARNING:+$B321_WARNING; }$*
  b321_log "WARNING: $*"
}

b321_previous_success() {
  local file=$1
  [ -f "$file" ] || return 0
  sed -n 's/.*"last_success": *"\([^"]*\)".*/\1/p' "$file" | head -n 1
}

b321_write_status() {
  local rc=$1 result=$2 now end_epoch dir status_file tmp last_success key value fields=""
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  end_epoch=$(date +%s)
  dir=$B321_STATE/status
  status_file=$dir/$B321_JOB.json
  mkdir -p -- "$dir"
  b321_metrics_dir
  last_success=$(b321_previous_success "$status_file")
  [ "$result" = failed ] || last_success=$now
  for key in "${!B321_FIELDS[@]}"; do
    value=${B321_FIELDS[$key]}
    if [[ $value =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
      fields+=$(printf ',\n  "%s": %s' "$key" "$value")
    else
      fields+=$(printf ',\n  "%s": "%s"' "$key" "$(b321_json_escape "$value")")
    fi
  done
  tmp=$(mktemp -- "$status_file.XXXXXX")
  cat > "$tmp" <<JSON
{
  "job": "$(b321_json_escape "$B321_JOB")",
  "script": "$(b321_json_escape "${0##*/}")",
  "host": "$(b321_json_escape "$(hostname)")",
  "result": "$result",
  "exit_code": $rc,
  "started": "$B321_STARTED",
  "ended": "$now",
  "duration_seconds": $((end_epoch - B321_START_EPOCH)),
  "last_success": "${last_success}",
  "error": "$(b321_json_escape "${B321_ERROR:-$B321_WARNING}")"$fields
}
JSON
  chmod 0644 -- "$tmp"
  mv -f -- "$tmp" "$status_file"
  b321_write_metrics "$result" "$end_epoch" "$last_success"
}

# b321_metrics_dir: creates <state>/metrics readable by all (the umask is 077): node_exporter's
# textfile collector runs as its own user, and the metrics hold nothing secret.
b321_metrics_dir() {
  mkdir -p -- "$B321_STATE/metrics"
  chmod 0755 -- "$B321_STATE/metrics"
}

b321_write_metrics() {
  local result=$1 end_epoch=$2 last_success=$3 prom tmp ok=0 success_epoch=0 label
  prom=$B321_STATE/metrics/$B321_JOB.prom
  label="job=\"$B321_JOB\""
  [ "$result" = failed ] || ok=1
  [ -z "$last_success" ] || success_epoch=$(date -d "$last_success" +%s)
  tmp=$(mktemp -- "$prom.XXXXXX")
  {
    echo "# HELP backup321_job_success 1 when the last run succeeded (or warned), 0 when it failed."
    echo "# TYPE backup321_job_success gauge"
    echo "backup321_job_success{$label} $ok"
    echo "# TYPE backup321_job_last_run_timestamp_seconds gauge"
    echo "backup321_job_last_run_timestamp_seconds{$label} $end_epoch"
    echo "# TYPE backup321_job_last_success_timestamp_seconds gauge"
    echo "backup321_job_last_success_timestamp_seconds{$label} $success_epoch"
    echo "# TYPE backup321_job_duration_seconds gauge"
    echo "backup321_job_duration_seconds{$label} $((end_epoch - B321_START_EPOCH))"
    echo "# TYPE backup321_job_bytes gauge"
    echo "backup321_job_bytes{$label} ${B321_FIELDS[bytes]:-0}"
  } > "$tmp"
  chmod 0644 -- "$tmp"
  mv -f -- "$tmp" "$prom"
}

b321_alert() {
  local result=$1 message=$2 hook=${B321_ALERT:-$B321_LIB/alert.sh}
  [ -x "$hook" ] || { b321_log "no alert hook at $hook"; return 0; }
  # The job's env file is sourced, not exported: tell the hook where alert.env is.
  B321_ETC=${B321_ETC:-/etc/backup321} "$hook" "$B321_JOB" "$result" "$message" ||
    b321_log "alert hook failed"
}

# b321_cleanup FUNC: FUNC (no arguments) runs when the script exits, before the status is written
# (remove temp files, stop a scratch server). Functions run last-registered first.
b321_cleanup() {
  B321_CLEANUP+=("$1")
}

b321_run_cleanup() {
  local i
  for ((i = ${#B321_CLEANUP[@]} - 1; i >= 0; i--)); do
    "${B321_CLEANUP[$i]}" || b321_log "cleanup ${B321_CLEANUP[$i]} failed"
  done
  B321_CLEANUP=()
}

# b321_watch_space DIR: when the run fails, a full file system under DIR is named in the error
# (a failed write only says "exited with 1"; the alert should say the disk is full).
b321_watch_space() {
  B321_SPACE_DIRS+=("$1")
}

b321_full_dirs() {
  local dir avail
  for dir in "${B321_SPACE_DIRS[@]}"; do
    avail=$(df -Pk -- "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }') || continue
    [ -z "$avail" ] || [ "$avail" -ge 1024 ] || printf '; %s is full (%s KiB free)' "$dir" "$avail"
  done
}

b321_on_exit() {
  local rc=$? result=success
  trap - EXIT
  b321_run_cleanup
  if [ "$rc" -ne 0 ]; then
    result=failed
    [ -n "$B321_ERROR" ] || B321_ERROR="exited with code $rc"
    B321_ERROR+=$(b321_full_dirs)
  elif [ -n "$B321_WARNING" ]; then
    result=warning
  fi
  b321_write_status "$rc" "$result" || b321_log "could not write the status file"
  if [ "$result" != success ]; then
    b321_alert "$result" "${B321_ERROR:-$B321_WARNING}"
  fi
  b321_log "finished: $result"
  exit "$rc"
}

b321_on_err() {
  local rc=$? line=$1 cmd=$2
  [ -n "$B321_ERROR" ] || B321_ERROR="line $line: '$cmd' exited with $rc"
}

b321_on_signal() {
  B321_ERROR=${B321_ERROR:-"interrupted by signal $1"}
  exit 1
}

# b321_start ENV_FILE: loads the job's configuration and arms the traps.
b321_start() {
  local env_file=${1:-}
  [ -n "$env_file" ] || { echo "usage: $0 /etc/backup321/<job>.env" >&2; exit 2; }
  [ -r "$env_file" ] || { echo "backup321: cannot read $env_file" >&2; exit 2; }
  # shellcheck source=/dev/null
  source "$env_file"
  : "${B321_JOB:?B321_JOB missing from $env_file}" "${B321_STATE:?B321_STATE missing from $env_file}"
  B321_LIB=${B321_LIB:-${BASH_SOURCE[0]%/*}}
  B321_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  B321_START_EPOCH=$(date +%s)
  umask 077
  trap b321_on_exit EXIT
  trap 'b321_on_err "$LINENO" "$BASH_COMMAND"' ERR
  trap 'b321_on_signal TERM' TERM
  trap 'b321_on_signal INT' INT
  trap 'b321_on_signal HUP' HUP
  b321_log "started"
}

# b321_lock NAME [WAIT_SECONDS]: holds <state>/locks/NAME.lock until the script exits; fails if
# another run has it (after waiting up to WAIT_SECONDS, default 0).
b321_lock() {
  local name=$1 wait=${2:-0} file
  mkdir -p -- "$B321_STATE/locks"
  file=$B321_STATE/locks/$name.lock
  exec {B321_LOCK_FD}>>"$file"
  flock -w "$wait" "$B321_LOCK_FD" || b321_fail "another run holds the lock $file"
}

# b321_require_mount DIR: fails unless DIR is a mount point (a missing USB SSD must never fill /).
b321_require_mount() {
  local dir=$1
  mountpoint -q -- "$dir" || b321_fail "$dir is not mounted (is the USB SSD plugged in and in /etc/fstab by UUID?)"
}

# b321_sha256 FILE: prints the file's sha256. openssl's is several times faster than sha256sum
# (SHA extensions), which matters on multi-GB backups; same digest either way.
b321_sha256() {
  local f=$1
  [[ $f == /* ]] || f=./$f
  if command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$f" | cut -d' ' -f1
  else
    sha256sum -- "$f" | cut -d' ' -f1
  fi
}
