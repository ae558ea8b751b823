#!/bin/bash
# Shared by every backup321 job script. A job script does:
#   source "${BASH_SOURCE[0]%/*}/common.sh"
#   b321_start "$@"            # loads the job's env file, arms the exit trap, records the run
#   b321_usage "why"           # a wrong command line: exit 2, no status, no alert (before any lock)
#   b321_lock repo-usb         # one run at a time per resource; a held lock fails the run
#   ... work; b321_fail "why" on any problem, b321_set bytes 123, b321_warn "why" ...
# On every exit the trap writes <status>/<job>.json and <metrics>/<job>.prom, and a
# failed or warning run calls the alert hook. The exit code is the script's own.
#
# A run killed without its trap (kill -9, the OOM killer, a reboot) writes no status. So that it is
# not invisible, b321_start writes a run record, <runs>/<job>.<pid>.json, one key per line:
#   job, host        as in the status file
#   pid              the script's pid
#   pid_start_ticks  its start time (field 22 of /proc/<pid>/stat): a reused pid has another
#   boot_id          /proc/sys/kernel/random/boot_id: after a reboot the pid means nothing
#   started          when the run started (UTC), as "started" in the status file
# The record is removed once the run's status file is written. A record whose process is gone (pid,
# start ticks and boot id no longer match a live process) is a run that ended without a result: the
# monitor reports it as a failure of the job, and the job's next run that does not fail reports it
# as a warning and removes it. The status file keeps the last result (and last_success) meanwhile.
# The job runs in its own session (b321_start re-executes it under setsid when it does not lead its
# process group), and a watchdog kills the group when the script dies without its trap, so its
# children (mariadb-dump, openssl, a scratch mariadbd...) do not run on as orphans. The exit trap
# ends whatever the run left behind in its group too.
#
# Status and metrics files are written to a temp file beside them and renamed over the old ones
# only when every write succeeded: on a full disk the previous status (and last_success) stays, and
# the run alerts that its status could not be written.
# Every run also appends one line to the host's history, <history>/<YYYY-MM>.tsv (HISTORY_COLUMNS in
# file-contracts.ts), after its alert went out or failed to: the evidence an auditor reads with
# b321-evidence. Lines are only ever appended; a month's file goes once it is 13 months old.
# The directories (<status>, <metrics>, <locks>, <runs>, <history>: the host's paths) come from the
# job's env file, which pulumi up writes (B321_STATUS_DIR...); b321_start refuses to run without them.
# shellcheck disable=SC2034  # variables here are read by the scripts that source this file

# The job's env file sets these (b321_start sources it and refuses to run without them).
B321_DIRS=(B321_ETC B321_STATE B321_STATUS_DIR B321_METRICS_DIR B321_LOCK_DIR B321_RUN_DIR
  B321_HISTORY_DIR)
: "${B321_JOB:=}" "${B321_ETC:=}" "${B321_LIB:=}" "${B321_STATE:=}" "${B321_STATUS_DIR:=}" \
  "${B321_METRICS_DIR:=}" "${B321_LOCK_DIR:=}" "${B321_RUN_DIR:=}" "${B321_JOBS_DIR:=}" \
  "${B321_HISTORY_DIR:=}"
# What the job's runs are, for the evidence: backup unless the script says otherwise (b321_kind).
B321_KIND=backup

B321_ERROR=""
B321_WARNING=""
B321_STARTED=""
B321_START_EPOCH=0
B321_ENDED=""
B321_END_EPOCH=""
declare -A B321_FIELDS=()
declare -A B321_TEXT_FIELDS=()
B321_CLEANUP=()
B321_SPACE_DIRS=()
B321_RUN_FILE=""
B321_WATCHDOG_PID=""
B321_STALE_RUNS=()
# Below this many KiB free, a file system counts as full.
B321_FULL_KIB=1024

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

# b321_set_text KEY VALUE: an extra field that is text even when it is all digits (an id: restic's
# short snapshot ids are 8 hex digits, all of them decimal digits one time in 43).
b321_set_text() {
  B321_FIELDS[$1]=$2
  B321_TEXT_FIELDS[$1]=1
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
  b321_stop_watchdog
  [ -z "$B321_RUN_FILE" ] || rm -f -- "$B321_RUN_FILE"
  b321_log "usage: $*"
  exit 2
}

# A run that did its job but with a problem worth a look (e.g. restic exit code 3).
b321_warn() {
  B321_WARNING=${B321_WARNING:+$B321_WARNING; }$*
  b321_log "WARNING: $*"
}

# b321_phase NAME: the run enters phase NAME and the previous one ends (b321_phase "" only ends
# it; the exit trap ends the last; entering the current phase changes nothing). Each phase's
# seconds go into the status as phase_<NAME>_seconds (a phase entered again adds up) and the last
# one entered as "phase": a slow restore shows where its time went, a failed one where it stopped.
B321_PHASE=""
B321_PHASE_START=0
b321_phase() {
  local now key
  [ "$1" != "$B321_PHASE" ] || return 0
  printf -v now '%(%s)T' -1
  if [ -n "$B321_PHASE" ]; then
    key=phase_${B321_PHASE}_seconds
    B321_FIELDS[$key]=$((${B321_FIELDS[$key]:-0} + now - B321_PHASE_START))
    b321_log "phase $B321_PHASE: ended after $((now - B321_PHASE_START)) s"
  fi
  B321_PHASE=$1
  B321_PHASE_START=$now
  [ -z "$B321_PHASE" ] || {
    B321_FIELDS[phase]=$B321_PHASE
    b321_log "phase $B321_PHASE: started"
  }
}

# b321_size BYTES: BYTES for people (1.2 GiB, 310 MiB, 12 KiB, 800 B).
b321_size() {
  local n=$1 unit=B i=0 units=(B KiB MiB GiB TiB PiB)
  while [ "$n" -ge $((1024 ** (i + 1))) ] && [ "$i" -lt 5 ]; do i=$((i + 1)); done
  [ "$i" -gt 0 ] || { printf '%s B' "$n"; return 0; }
  unit=${units[$i]}
  n=$((n * 10 / 1024 ** i))
  if [ "$n" -lt 100 ]; then printf '%d.%d %s' $((n / 10)) $((n % 10)) "$unit"; else printf '%d %s' $((n / 10)) "$unit"; fi
}

# b321_progress LABEL TOTAL: copies stdin to stdout unchanged and logs how far it got: "LABEL: 1.2
# GiB of 3.4 GiB (35%), 210 MiB/s, 11 s left" at most every B321_PROGRESS_SECONDS (default 10: a
# long restore under cron does not flood syslog), then a last line with the exact byte count.
# dd (coreutils, binary safe) does the copy and counts; the bytes never pass through the shell.
b321_progress() {
  local rc=0 fd pid
  exec {fd}> >(b321_progress_report "$1" "$2" >&2)
  pid=$!
  LC_ALL=C dd bs=1M status=progress 2>&"$fd" || rc=$?
  exec {fd}>&-
  wait "$pid" 2>/dev/null || true # its last line comes before what the script logs next
  return "$rc"
}

# b321_progress_report LABEL TOTAL: reads dd's stderr (each update after a \r; when dd ends, its
# records in/out and the final byte count) and logs b321_progress's lines. Anything else dd says
# (an error) is logged as it is. Without the final count (dd killed), the last line says "stopped".
b321_progress_report() {
  set +e
  trap - ERR
  local label=$1 total=$2 every=${B321_PROGRESS_SECONDS:-10} start now last rec line
  local bytes=0 out="" final="" eof=0 rate left
  printf -v start '%(%s)T' -1
  last=$start
  while [ "$eof" = 0 ]; do
    IFS= read -r -d $'\r' rec || eof=1
    [ -n "$rec" ] || continue
    while IFS= read -r line; do
      if [[ $line =~ ^([0-9]+)\ bytes? ]]; then
        bytes=${BASH_REMATCH[1]}
        [ -z "$out" ] || final=1
      elif [[ $line =~ ^[0-9]+\+[0-9]+\ records\ (in|out)$ ]]; then
        [ "${BASH_REMATCH[1]}" != out ] || out=1
      elif [ -n "$line" ]; then
        b321_log "$label: $line"
      fi
    done <<<"$rec"
    printf -v now '%(%s)T' -1
    if [ "$eof" = 0 ] && [ -z "$final" ] && [ $((now - last)) -ge "$every" ]; then
      last=$now
      rate=$((bytes / (now > start ? now - start : 1)))
      left=""
      [ "$rate" -eq 0 ] || [ "$bytes" -ge "$total" ] || left=", $(((total - bytes) / rate)) s left"
      b321_log "$label: $(b321_size "$bytes") of $(b321_size "$total") ($(b321_percent "$bytes" "$total")%), $(b321_size "$rate")/s$left"
    fi
  done
  printf -v now '%(%s)T' -1
  rate=$((bytes / (now > start ? now - start : 1)))
  if [ -n "$final" ]; then
    b321_log "$label: $(b321_size "$bytes") of $(b321_size "$total") ($(b321_percent "$bytes" "$total")%, $bytes of $total bytes) in $((now - start)) s, $(b321_size "$rate")/s"
  else
    b321_log "$label: stopped at $(b321_size "$bytes") of $(b321_size "$total") ($(b321_percent "$bytes" "$total")%, $bytes of $total bytes) after $((now - start)) s"
  fi
}

# b321_percent PART TOTAL: PART as a whole percentage of TOTAL (100 when TOTAL is 0).
b321_percent() {
  if [ "$2" -gt 0 ]; then printf '%d' $(($1 * 100 / $2)); else printf 100; fi
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
  # the history line says the same end and duration (b321_record_history)
  B321_ENDED=$now
  B321_END_EPOCH=$end_epoch
  dir=$B321_STATUS_DIR
  status_file=$dir/$B321_JOB.json
  mkdir -p -- "$dir"
  b321_metrics_dir
  last_success=$(b321_previous_success "$status_file")
  [ "$result" = failed ] || last_success=$now
  for key in "${!B321_FIELDS[@]}"; do
    value=${B321_FIELDS[$key]}
    # a JSON number: no leading zero ("007" stays text: as a number it is not JSON)
    if [ -z "${B321_TEXT_FIELDS[$key]:-}" ] && [[ $value =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?$ ]]; then
      fields+=$(printf ',\n  "%s": %s' "$key" "$value")
    else
      fields+=$(printf ',\n  "%s": "%s"' "$key" "$(b321_json_escape "$value")")
    fi
  done
  b321_replace "$status_file" <<JSON || return 1
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
  b321_write_metrics "$result" "$end_epoch" "$last_success"
}

# b321_replace FILE: FILE's new content (mode 0644) from stdin, written to a temp file beside it,
# flushed, and renamed over FILE only when every step succeeded. On a full disk (or any write
# error) the temp file is removed, FILE is left as it was, and the function returns 1.
b321_replace() {
  local file=$1 tmp
  if ! tmp=$(mktemp -- "$file.XXXXXX" 2>/dev/null); then
    b321_log "cannot create a temp file beside $file"
    return 1
  fi
  if cat >"$tmp" && [ -s "$tmp" ] && chmod 0644 -- "$tmp" && sync -- "$tmp" &&
    mv -f -- "$tmp" "$file"; then
    return 0
  fi
  rm -f -- "$tmp"
  b321_log "could not write $file"
  return 1
}

# b321_metrics_dir: creates <metrics> readable by all (the umask is 077): node_exporter's
# textfile collector runs as its own user, and the metrics hold nothing secret.
b321_metrics_dir() {
  mkdir -p -- "$B321_METRICS_DIR"
  chmod 0755 -- "$B321_METRICS_DIR"
}

b321_write_metrics() {
  local result=$1 end_epoch=$2 last_success=$3 prom ok=0 success_epoch=0 label
  prom=$B321_METRICS_DIR/$B321_JOB.prom
  label="job=\"$B321_JOB\""
  [ "$result" = failed ] || ok=1
  [ -z "$last_success" ] || success_epoch=$(date -d "$last_success" +%s)
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
  } | b321_replace "$prom"
}

# b321_kind KIND: what this script's runs are in the history (HISTORY_COLUMNS kind): check, drill,
# restore or setup; a script that says nothing is a backup.
b321_kind() {
  case $1 in
    backup | check | drill | restore | setup) B321_KIND=$1 ;;
    *) b321_usage "b321_kind: unknown kind '$1' (backup, check, drill, restore or setup)" ;;
  esac
}

# b321_alert RESULT MESSAGE: returns 1 when the alert could not be delivered (no hook, a channel
# down): the history records whether it was.
b321_alert() {
  local result=$1 message=$2 hook=${B321_ALERT:-$B321_LIB/alert.sh}
  [ -x "$hook" ] || { b321_log "no alert hook at $hook"; return 1; }
  # The job's env file is sourced, not exported: tell the hook where alert.env is.
  B321_ETC=$B321_ETC "$hook" "$B321_JOB" "$result" "$message" && return 0
  b321_log "alert hook failed"
  return 1
}

# b321_tsv VALUE: VALUE as one history column (tabs and line breaks would split the line).
b321_tsv() {
  local s=$1
  s=${s//$'\t'/ }
  s=${s//$'\r'/}
  printf '%s' "${s//$'\n'/ \\n }"
}

# b321_record_history RESULT ALERT MESSAGE: appends this run to <history>/<YYYY-MM>.tsv (columns:
# HISTORY_COLUMNS in file-contracts.ts), under a lock so that runs ending together do not mix their
# lines, then removes the months older than the last 13. A history that cannot be written is logged:
# the status file and the alert already said what matters.
b321_record_history() {
  local result=$1 alert=$2 message=$3 dir=$B321_HISTORY_DIR file keep f line
  local ended=${B321_ENDED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)} end_epoch=${B321_END_EPOCH:-$(date +%s)}
  file=$dir/${ended:0:7}.tsv
  line=$(printf '%s\t' "$ended" "$(b321_tsv "$(hostname)")" "$B321_JOB" \
    "$B321_KIND" "$result" "$((end_epoch - B321_START_EPOCH))" \
    "${B321_FIELDS[restore_seconds]:-}" "${B321_FIELDS[bytes]:-}" "$alert")
  line+=$(b321_tsv "$message")
  if ! { mkdir -p -- "$dir" && chmod 0755 -- "$dir" &&
    { flock -w 10 9 && printf '%s\n' "$line" >&9; } 9>>"$file" && chmod 0644 -- "$file"; } 2>/dev/null; then
    b321_log "could not append this run to the history $file"
    return 0
  fi
  keep=$(date -u -d "$(date -u +%Y-%m-01) -12 months" +%Y-%m)
  for f in "$dir"/[0-9][0-9][0-9][0-9]-[0-9][0-9].tsv; do
    [ -f "$f" ] || continue
    f=${f##*/}
    [[ ${f%.tsv} < $keep ]] && rm -f -- "$dir/$f"
  done
  return 0
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

# b321_scratch PARENT NAME [MODE]: a new scratch directory PARENT/NAME.XXXXXX (mode MODE, default
# 0700) in B321_SCRATCH, removed when the run ends whatever happened; a full PARENT is named in the
# error. A drill restores into it, never beside real data.
B321_SCRATCH=""
b321_scratch() {
  mkdir -p -- "$1"
  B321_SCRATCH=$(mktemp -d -- "$1/$2.XXXXXX") || b321_fail "cannot create a scratch directory in $1"
  [ -z "${3:-}" ] || chmod "$3" -- "$B321_SCRATCH"
  b321_cleanup b321_remove_scratch
  b321_watch_space "$1"
}

b321_remove_scratch() {
  [ -z "$B321_SCRATCH" ] || rm -rf -- "$B321_SCRATCH"
}

# b321_time_restore: starts a drill's clock. restore_seconds (what the monitor holds against the
# RTO) is recorded when the run ends, also when a step failed: its time is known.
B321_RESTORE_T0=""
b321_time_restore() {
  B321_RESTORE_T0=$(date +%s)
  b321_cleanup b321_record_restore_seconds
}

b321_record_restore_seconds() {
  [ -z "$B321_RESTORE_T0" ] || b321_set restore_seconds "$(($(date +%s) - B321_RESTORE_T0))"
}

# b321_watch_space DIR: when the run fails, a full file system under DIR is named in the error
# (a failed write only says "exited with 1"; the alert should say the disk is full).
b321_watch_space() {
  B321_SPACE_DIRS+=("$1")
}

# b321_free_kib DIR: KiB available in DIR's file system (nothing if df cannot tell).
b321_free_kib() {
  df -Pk -- "$1" 2>/dev/null | awk 'NR == 2 { print $4 }' || true
}

# b321_full_now: "DIR<TAB>KiB free" for each watched DIR that is full now. Sampled before the
# cleanup, which removes the run's partial files: a backup that filled the disk by itself leaves it
# with free space once they are gone, and the disk must be named all the same.
b321_full_now() {
  local dir avail
  for dir in "${B321_SPACE_DIRS[@]}"; do
    avail=$(b321_free_kib "$dir")
    [ -z "$avail" ] || [ "$avail" -ge "$B321_FULL_KIB" ] || printf '%s\t%s\n' "$dir" "$avail"
  done
}

# b321_full_dirs [FULL_BEFORE_CLEANUP]: "; DIR is full (N KiB free)" for each watched DIR full now,
# and "; DIR was full when the run failed (...)" for each DIR that was full before the cleanup.
b321_full_dirs() {
  local before=${1:-} dir avail after
  local -A seen=()
  while IFS=$'\t' read -r dir avail; do
    [ -n "$dir" ] || continue
    seen[$dir]=1
    after=$(b321_free_kib "$dir")
    if [ -z "$after" ] || [ "$after" -lt "$B321_FULL_KIB" ]; then
      printf '; %s is full (%s KiB free)' "$dir" "${after:-$avail}"
    else
      printf '; %s was full when the run failed (%s KiB free; %s KiB once the run'"'"'s partial files were removed): the backup does not fit' \
        "$dir" "$avail" "$after"
    fi
  done <<<"$before"
  while IFS=$'\t' read -r dir avail; do
    { [ -n "$dir" ] && [ -z "${seen[$dir]:-}" ]; } || continue
    printf '; %s is full (%s KiB free)' "$dir" "$avail"
  done < <(b321_full_now)
}

# b321_readonly_dirs: "; DIR is on a read-only file system" for each watched DIR mounted read-only
# (a disk with I/O errors is remounted so): the failing command alone would only say "exited 1".
b321_readonly_dirs() {
  local dir opts
  for dir in "${B321_SPACE_DIRS[@]}"; do
    opts=$(findmnt -n -o OPTIONS --target "$dir" 2>/dev/null) || continue
    [[ ,$opts, == *,ro,* ]] || continue
    printf '; %s is on a read-only file system (after disk errors? see dmesg, then mount -o remount,rw)' "$dir"
  done
}

b321_on_exit() {
  local rc=$? result=success full="" write_error=""
  trap - EXIT
  # A signal that lands during `IFS= read` runs its trap, and so this, with that IFS.
  IFS=$' \t\n'
  b321_phase "" # the last phase ends with the work, before the cleanup
  b321_stop_watchdog
  [ "$rc" -eq 0 ] || full=$(b321_full_now)
  b321_run_cleanup
  b321_stop_leftovers
  if [ "$rc" -ne 0 ]; then
    result=failed
    [ -n "$B321_ERROR" ] || B321_ERROR="exited with code $rc"
    B321_ERROR+=$(b321_full_dirs "$full")
    B321_ERROR+=$(b321_readonly_dirs)
  else
    b321_stale_runs
    [ -z "$B321_WARNING" ] || result=warning
  fi
  if b321_write_status "$rc" "$result"; then
    b321_end_run
  else
    write_error="its status could not be written to $B321_STATUS_DIR (the previous status file is kept)"
    local avail
    avail=$(b321_free_kib "$B321_STATUS_DIR")
    [ -z "$avail" ] || [ "$avail" -ge "$B321_FULL_KIB" ] ||
      write_error+="; $B321_STATUS_DIR is full ($avail KiB free)"
    b321_log "$write_error"
  fi
  local message=${B321_ERROR:-$B321_WARNING} alerted=none
  if [ -n "$write_error" ]; then
    if [ "$result" = failed ]; then
      message="$B321_ERROR; $write_error"
    else
      message="the run ended with $result${B321_WARNING:+ ($B321_WARNING)}, but $write_error"
    fi
    if b321_alert failed "$message"; then alerted=sent; else alerted=undelivered; fi
  elif [ "$result" != success ]; then
    if b321_alert "$result" "$message"; then alerted=sent; else alerted=undelivered; fi
  fi
  b321_record_history "$result" "$alerted" "$message"
  b321_log "finished: $result"
  exit "$rc"
}

# b321_proc_stat PID: the fields of /proc/PID/stat after the command name into the array
# B321_STAT (B321_STAT[0] is field 3, the state; field N is B321_STAT[N-3]); returns 1 when PID is
# gone. No subshell: the watchdog calls it every second.
B321_STAT=()
b321_proc_stat() {
  local line
  B321_STAT=()
  { IFS= read -r line </proc/"$1"/stat; } 2>/dev/null || return 1
  IFS=$' \t\n' read -r -a B321_STAT <<<"${line##*) }"
}

# b321_pid_start PID: the start time of PID (clock ticks since boot); nothing when PID is gone or a
# zombie. PID and start time together name one process: pids are reused.
b321_pid_start() {
  b321_proc_stat "$1" || return 0
  case ${B321_STAT[0]:-} in Z | X | x) return 0 ;; esac
  printf '%s\n' "${B321_STAT[19]:-}"
}

b321_boot_id() {
  local id=""
  { read -r id </proc/sys/kernel/random/boot_id; } 2>/dev/null || true
  printf '%s\n' "$id"
}

# b321_run_alive RECORD: the process a run record names is still running (same boot, pid and start).
b321_run_alive() {
  local file=$1 pid ticks boot
  pid=$(sed -n 's/^ *"pid": *\([0-9][0-9]*\),\{0,1\} *$/\1/p' -- "$file" | head -n 1)
  ticks=$(sed -n 's/^ *"pid_start_ticks": *\([0-9][0-9]*\),\{0,1\} *$/\1/p' -- "$file" | head -n 1)
  boot=$(sed -n 's/^ *"boot_id": *"\([^"]*\)".*/\1/p' -- "$file" | head -n 1)
  [ -n "$pid" ] && [ -n "$ticks" ] && [ "$boot" = "$(b321_boot_id)" ] &&
    [ "$(b321_pid_start "$pid")" = "$ticks" ]
}

# b321_own_group "$@": makes the script the leader of its own process group (and session), so
# that everything it starts can be stopped as a group. A script that is not one already (started
# by cron's wrapper in a pipe, by another program) is executed again, same pid, under setsid.
b321_own_group() {
  if [ -n "${B321_SETSID:-}" ]; then
    unset B321_SETSID
    return 0
  fi
  b321_proc_stat "$$" || return 0
  [ "${B321_STAT[2]:-}" != "$$" ] || return 0
  command -v setsid >/dev/null 2>&1 || {
    b321_log "setsid is missing: the job's children are not stopped if it is killed"
    return 0
  }
  local -a argv=()
  mapfile -d '' -t argv </proc/$$/cmdline
  [ "${#argv[@]}" -gt 0 ] || return 0
  export B321_SETSID=1
  exec setsid -- "${argv[@]}"
}

# b321_watchdog PID TICKS: runs beside the job until its main process (PID started at TICKS) is
# gone. The exit trap stops it; if it is still there, the script died without its trap (kill -9,
# the OOM killer): it stops the job's process group, its own included.
b321_watchdog() {
  local pid=$1 ticks=$2
  set +e
  trap - EXIT ERR
  trap '' TERM INT HUP
  exec </dev/null >/dev/null
  # It outlives nothing it needs, but its `sleep` may outlive it by a second: holding a copy of a
  # lock the job inherited (flock LOCK job) would make the next run find the lock taken.
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    [ "$fd" -le 2 ] || [ "$fd" = 255 ] || eval "exec $fd>&-" 2>/dev/null
  done
  while [ "$(b321_pid_start "$pid")" = "$ticks" ]; do
    sleep 1 2>/dev/null
  done
  b321_log "the job's process $pid is gone without its exit trap (kill -9? the OOM killer?): stopping its process group"
  kill -TERM -- "-$pid" 2>/dev/null
  sleep 2 2>/dev/null
  kill -KILL -- "-$pid" 2>/dev/null
}

b321_stop_watchdog() {
  [ -n "$B321_WATCHDOG_PID" ] || return 0
  kill -KILL "$B321_WATCHDOG_PID" 2>/dev/null || true
  wait "$B321_WATCHDOG_PID" 2>/dev/null || true
  B321_WATCHDOG_PID=""
}

# b321_stop_tree PID: TERM to PID and every process under it (a background job's pipe and what its
# stages started), read from /proc: they share the run's process group, so that a kill -9 of the
# run still stops them (b321_watchdog), and cannot be stopped apart as a group.
b321_stop_tree() {
  local -A kids=()
  local -a todo=("$1") tree=()
  local f pid
  for f in /proc/[0-9]*/stat; do
    pid=${f#/proc/}
    pid=${pid%/stat}
    if b321_proc_stat "$pid" && [ -n "${B321_STAT[1]:-}" ]; then kids[${B321_STAT[1]}]+=" $pid"; fi
  done
  while [ "${#todo[@]}" -gt 0 ]; do
    pid=${todo[0]}
    todo=("${todo[@]:1}")
    tree+=("$pid")
    # shellcheck disable=SC2206  # a list of pids
    todo+=(${kids[$pid]:-})
  done
  kill -TERM "${tree[@]}" 2>/dev/null || true
}

# b321_stop_leftovers: after the cleanup, nothing the run started should still run; whatever does
# (a child of a stage that failed, a forgotten background process) is sent TERM. Only when the
# script leads its own session: then every other member of its group is its own.
b321_stop_leftovers() {
  b321_proc_stat "$$" || return 0
  [ "${B321_STAT[3]:-}" = "$$" ] || return 0
  trap '' TERM
  kill -TERM -- "-$$" 2>/dev/null || true
  trap 'b321_on_signal TERM' TERM
}

# b321_start_run: writes this run's record (see the header). A record that cannot be written (a
# full state disk) is logged and the job goes on: its status write will fail and alert too.
b321_start_run() {
  local dir=$B321_RUN_DIR ticks
  ticks=$(b321_pid_start "$$")
  B321_RUN_FILE=$dir/$B321_JOB.$$.json
  if ! mkdir -p -- "$dir" || ! b321_replace "$B321_RUN_FILE" <<JSON; then
{
  "job": "$(b321_json_escape "$B321_JOB")",
  "host": "$(b321_json_escape "$(hostname)")",
  "pid": $$,
  "pid_start_ticks": ${ticks:-0},
  "boot_id": "$(b321_boot_id)",
  "started": "$B321_STARTED"
}
JSON
    b321_log "could not record the run in $dir"
    B321_RUN_FILE=""
  fi
  [ -n "$ticks" ] || return 0
  (b321_watchdog "$$" "$ticks") &
  B321_WATCHDOG_PID=$!
}

# b321_stale_runs: earlier runs of this job that ended without a result (their record is there,
# their process is not) become a warning of this run; b321_end_run removes their records.
b321_stale_runs() {
  local f started pid
  B321_STALE_RUNS=()
  for f in "$B321_RUN_DIR/$B321_JOB".*.json; do
    { [ -f "$f" ] && [ "$f" != "$B321_RUN_FILE" ]; } || continue
    { [[ ${f##*/} =~ ^(.+)\.[0-9]+\.json$ ]] && [ "${BASH_REMATCH[1]}" = "$B321_JOB" ]; } || continue
    ! b321_run_alive "$f" || continue
    started=$(sed -n 's/^ *"started": *"\([^"]*\)".*/\1/p' -- "$f" | head -n 1)
    pid=${f%.json}
    pid=${pid##*.}
    b321_warn "an earlier run (started ${started:-?}, pid $pid) ended without recording a result: it was killed (kill -9, the OOM killer), the host went down, or its status could not be written"
    B321_STALE_RUNS+=("$f")
  done
}

# b321_end_run: the status is written: this run's record and the stale ones it reported go.
b321_end_run() {
  rm -f -- ${B321_RUN_FILE:+"$B321_RUN_FILE"} "${B321_STALE_RUNS[@]}"
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
  local var
  for var in B321_JOB "${B321_DIRS[@]}"; do
    [ -n "${!var:-}" ] || {
      echo "backup321: $var missing from $env_file (written by an older backup321: run pulumi up)" >&2
      exit 2
    }
  done
  b321_own_group
  B321_LIB=${B321_LIB:-${BASH_SOURCE[0]%/*}}
  B321_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  B321_START_EPOCH=$(date +%s)
  umask 077
  trap b321_on_exit EXIT
  trap 'b321_on_err "$LINENO" "$BASH_COMMAND"' ERR
  trap 'b321_on_signal TERM' TERM
  trap 'b321_on_signal INT' INT
  trap 'b321_on_signal HUP' HUP
  b321_start_run
  b321_log "started"
}

# b321_lock NAME [WAIT_SECONDS]: holds <locks>/NAME.lock until the script exits; fails if
# another run has it (after waiting up to WAIT_SECONDS, default 0).
b321_lock() {
  local name=$1 wait=${2:-0} file
  mkdir -p -- "$B321_LOCK_DIR"
  file=$B321_LOCK_DIR/$name.lock
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
# b321_ssh_cmd KEY PORT KNOWN_HOSTS: B321_SSH, the ssh command a job reaches another host with (its
# own key only, the host key pinned, no prompt; for rsync -e "${B321_SSH[*]}" too: no argument of
# it may hold a space).
B321_SSH=()
b321_ssh_cmd() {
  B321_SSH=(ssh -i "$1" -p "$2" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
    -o "UserKnownHostsFile=$3" -o ConnectTimeout=30 -o ServerAliveInterval=30 -o LogLevel=ERROR)
}

# b321_aws_env CREDENTIALS REGION [ENDPOINT] [CA_BUNDLE] [CHECKSUM_CALCULATION]: the aws CLI's
# environment for a job, credentials only from the 0600 file (nothing from the environment or
# ~/.aws), and B321_AWS_OPTS, its endpoint and CA bundle options.
B321_AWS_OPTS=()
b321_aws_env() {
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
  export AWS_SHARED_CREDENTIALS_FILE=$1 AWS_CONFIG_FILE=/dev/null
  export AWS_DEFAULT_REGION=$2 AWS_EC2_METADATA_DISABLED=true
  export AWS_REQUEST_CHECKSUM_CALCULATION=${5:-when_supported}
  B321_AWS_OPTS=()
  [ -z "${3:-}" ] || B321_AWS_OPTS+=(--endpoint-url "$3")
  [ -z "${4:-}" ] || B321_AWS_OPTS+=(--ca-bundle "$4")
}

b321_sha256() {
  local f=$1
  [[ $f == /* ]] || f=./$f
  if command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$f" | cut -d' ' -f1
  else
    sha256sum -- "$f" | cut -d' ' -f1
  fi
}

# Binlog identity. A server numbers its binlogs from .000001 again after a rebuild, so a name does
# not identify a binlog; its identity does: <name>.<start>.s<server id>, the start being when its
# first event was written (UTC, YYYYmmddTHHMMSSZ), both read from its header. Shipped copies are
# named <identity>.zst.enc (compressed, encrypted), so a reused name never overwrites another
# history, and the order of the histories is their start times', never their numbers'.
B321_BINLOG_ID_RE='^(.+)\.([0-9]+)\.([0-9]{8}T[0-9]{6}Z)\.s([0-9]+)$'

# b321_binlog_identity FILE: prints the identity of a binlog file; fails when FILE is no binlog.
b321_binlog_identity() {
  local f=$1 magic ts sid
  magic=$(od -An -tx1 -N4 -- "$f" 2>/dev/null | tr -d ' \n') && [ "$magic" = fe62696e ] || return 1
  ts=$(od -An -tu4 --endian=little -j4 -N4 -- "$f" | tr -d ' \n')
  sid=$(od -An -tu4 --endian=little -j9 -N4 -- "$f" | tr -d ' \n')
  [[ $ts =~ ^[0-9]+$ && $sid =~ ^[0-9]+$ ]] || return 1
  printf '%s.%s.s%s\n' "${f##*/}" "$(date -u -d "@$ts" +%Y%m%dT%H%M%SZ)" "$sid"
}

# b321_binlog_stamp ID_OR_PATH: the start stamp of an identity or of a shipped copy's path.
b321_binlog_stamp() {
  local id=${1##*/}
  id=${id%.zst.enc}
  [[ $id =~ $B321_BINLOG_ID_RE ]] && printf '%s\n' "${BASH_REMATCH[3]}"
}

# b321_binlog_chain NAME START: reads "identity path" lines (the same identity may come twice: the
# first line wins) and prints "name path" for the binlog NAME that started at START, then for each
# binlog after it in the same history, in order. START is a stamp, or ~STAMP for the latest NAME
# started at or before STAMP (a manifest that names only the file). Prints "NONE" when that binlog
# is not there, "GAP name" for each number missing from the history; the history ends where the
# numbering starts again (a rebuilt server).
b321_binlog_chain() {
  local name=$1 start=$2 id path
  while read -r id path; do
    [[ $id =~ $B321_BINLOG_ID_RE ]] || continue
    printf '%s %d %s %s %s\n' "${BASH_REMATCH[3]}" "$((10#${BASH_REMATCH[2]}))" \
      "${BASH_REMATCH[1]}.${BASH_REMATCH[2]}" "${BASH_REMATCH[4]}" "$path"
  done | LC_ALL=C sort -k1,1 -k2,2n -s | awk -v want="$name" -v start="$start" '
    {
      n++; s[n] = $1; q[n] = $2; nm[n] = $3; sid[n] = $4
      p = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ [^ ]+ /, "", p); path[n] = p
    }
    END {
      at = 0
      for (i = 1; i <= n; i++)
        if (nm[i] == want && (start ~ /^~/ ? s[i] <= substr(start, 2) : s[i] == start)) at = i
      if (!at) { print "NONE"; exit }
      print nm[at], path[at]
      base = nm[at]; sub(/\.[0-9]+$/, "", base)
      width = length(nm[at]) - length(base) - 1
      prev = at
      for (i = at + 1; i <= n; i++) {
        if (s[i] == s[prev] && nm[i] == nm[prev] && sid[i] == sid[prev]) continue
        if (q[i] <= q[prev] || substr(nm[i], 1, length(base) + 1) != base ".") break
        for (m = q[prev] + 1; m < q[i]; m++) printf "GAP %s.%0" width "d\n", base, m
        print nm[i], path[i]
        prev = i
      }
    }'
}
