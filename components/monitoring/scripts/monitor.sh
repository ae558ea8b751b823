#!/bin/bash
# monitor.sh ENV_FILE: the hourly check of everything backup321 runs on this host.
#
# Every job of every component is a ScheduledJob, which registers itself in <jobs>/<job>.json
# (its schedule and maxAgeSeconds = longest interval + grace); the job's script writes
# <status>/<job>.json on every exit. The monitor reads both and raises ONE alert per run
# listing every problem (alert.sh, through common.sh's exit trap), or, when all is well, pings the
# webhook (a dead-man's switch alerts when the pings stop). Checks, each configured in the env file:
#   jobs         every registered job: last run failed, no success within maxAgeSeconds, or a last
#                success in the future (a wrong clock); and at least one job registered
#   runs         every registered job: a run record (<runs>/<job>.<pid>.json, see common.sh)
#                whose process is gone is a run killed before it recorded a result (kill -9, the
#                OOM killer, a reboot): a failure, named with the time the run started
#   MONITOR_PITR_BINLOG_DIR, MONITOR_PITR_FULL_DIR, MONITOR_PITR_GRACE_SECONDS
#                the shipped binlogs reach back to the newest full: its manifest
#                (*_full_*.manifest.json) names binlog_file and its identity; that binlog and every
#                later one of its history must be there, without a gap in the numbers
#   MONITOR_RESTIC_REPOS, MONITOR_STALE_LOCK_SECONDS
#                no lock in <repo>/locks older than the limit (a live restic refreshes its lock)
#   MONITOR_MOUNTS, MONITOR_DISK_FULL_PERCENT
#                each directory is a mount point and is not fuller than the threshold
#   MONITOR_SMART_DEVICES
#                each device exists and smartctl -H calls it healthy
#   MONITOR_PBS_VERIFY, MONITOR_PBS_PREFIX
#                each PBS verify job ("<datastore>:<job id>:<max age seconds>", space separated):
#                its newest finished run in PBS's task list (proxmox-backup-manager task list, the
#                1000 newest tasks, through the prefix when PBS runs in a container) ended OK, and
#                no longer ago than the max age (its schedule's interval plus grace); none at all
#                counts as stale
#   MONITOR_RESTORE_JOBS, MONITOR_RTO_SECONDS [MONITOR_RESTORE_RTO_SECONDS]
#                the last restore test succeeded and its restore_seconds is within the RTO
#                (MONITOR_RESTORE_RTO_SECONDS: "job=seconds ..." for a drill of a copy that another
#                target covers, e.g. the offsite dumps' drill and the site-loss RTO)
#   MONITOR_REPLICA_SOCKET, MONITOR_REPLICA_MAX_LAG_SECONDS
#                the replica the fulls are taken on (mariadb.replica), queried as root through
#                its socket: both threads running and at most that far behind its primary
#   MONITOR_STREAM_MAX_LAG_SECONDS, MONITOR_STREAM_STALE_SECONDS
#                the binlog stream on this host (mariadb.stream, mariadb-stream.sh), from its status
#                file: its last run did not fail, its status is not older than the stale limit (a
#                healthy stream rewrites it every few seconds), and it lags the primary (now minus
#                its covered_epoch) by at most the limit; its watchdog checks the same every minute
#   channels     the alert channels of alert.env can deliver (sendmail exists, the URL file is there)
# Metrics: <metrics>/monitor-checks.prom (the <dirs> are the host's paths, from the env file). With MONITOR_TEXTFILE_DIR, the metrics of every job
# still on this host (registered in jobs.d, or with its <etc>/<job>.env: the one-off jobs, restic
# init and PITR) and the monitor's checks are copied there as backup321-<name>.prom for
# node_exporter, and any other backup321-*.prom there is removed: a job removed from the host must
# not go on being reported as it last ran.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind check

PROBLEMS=()
CHECKS=0
# The jobs registered in jobs.d (by their name, or the entry's file name when it is unreadable).
declare -A REGISTERED=()
METRICS=()
NOW=0
# Clocks drift a little between a job's run and the monitor's: beyond this, a time is wrong.
FUTURE_TOLERANCE_SECONDS=300

# ok CHECK TARGET / bad CHECK TARGET MESSAGE: one check's outcome, counted and exported as a metric.
ok() {
  CHECKS=$((CHECKS + 1))
  label "$2"
  METRICS+=("backup321_monitor_check_ok{check=\"$1\",target=\"$LABEL\"} 1")
}

bad() {
  CHECKS=$((CHECKS + 1))
  PROBLEMS+=("$3")
  label "$2"
  METRICS+=("backup321_monitor_check_ok{check=\"$1\",target=\"$LABEL\"} 0")
  b321_log "problem: $3"
}

# label VALUE: sets LABEL to VALUE escaped for a metric label (no subshell: it runs per job).
LABEL=""
label() {
  LABEL=${1//\\/\\\\}
  LABEL=${LABEL//\"/\\\"}
}

# json_load FILE: the top-level scalars of a JSON file written one key per line (status files,
# registry entries) into the array J, in one pass.
declare -A J=()
json_load() {
  local key value
  J=()
  while IFS=$'\t' read -r key value; do
    J[$key]=$value
  done < <(awk '
    match($0, /^[ \t]*"[A-Za-z0-9_]+"[ \t]*:[ \t]*/) {
      key = substr($0, RSTART, RLENGTH); sub(/^[ \t]*"/, "", key); sub(/"[ \t]*:[ \t]*$/, "", key)
      value = substr($0, RSTART + RLENGTH); sub(/,[ \t]*$/, "", value)
      if (value ~ /^".*"$/) value = substr(value, 2, length(value) - 2)
      gsub(/\t/, " ", value)
      print key "\t" value
    }' "$1")
}

# json_str FILE KEY / json_num FILE KEY: a top-level scalar of a small JSON file (one or many lines).
json_str() {
  sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" -- "$1" | head -n 1
}

json_num() {
  sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\\(-\\{0,1\\}[0-9][0-9.]*\\).*/\\1/p" -- "$1" | head -n 1
}

# hours SECONDS: "13.5 h"
hours() {
  awk -v s="$1" 'BEGIN { printf "%.1f h", s / 3600 }'
}

in_list() {
  local needle=$1 item
  shift
  for item in "$@"; do [ "$item" = "$needle" ] && return 0; done
  return 1
}

check_jobs() {
  local dir=$B321_JOBS_DIR entry job max_age interval grace status result
  local last last_epoch age error ended restore_jobs registered=0
  read -r -a restore_jobs <<< "${MONITOR_RESTORE_JOBS:-}"
  for entry in "$dir"/*.json; do
    [ -e "$entry" ] || continue
    json_load "$entry"
    job=${J[job]:-}
    max_age=${J[maxAgeSeconds]:-}
    REGISTERED[${job:-$(basename -- "$entry" .json)}]=1
    if [ -z "$job" ] || ! [[ $max_age =~ ^[0-9]+$ ]]; then
      bad registry "$entry" "job registry entry $entry is unreadable (reinstall with pulumi up)"
      continue
    fi
    [ "$job" != "$B321_JOB" ] || continue
    registered=$((registered + 1))
    interval=${J[maxIntervalHours]:-?}
    grace=${J[graceHours]:-?}
    status=$B321_STATUS_DIR/$job.json
    label "$job"
    METRICS+=("backup321_job_max_age_seconds{job=\"$LABEL\"} $max_age")
    check_runs "$job"
    if [ ! -f "$status" ]; then
      age=$((NOW - $(stat -c %Y -- "$entry")))
      if [ "$age" -gt "$max_age" ]; then
        bad job "$job" "job $job has never run, although it was installed $(hours "$age") ago and runs every ${interval} h (+ ${grace} h grace); see syslog (tag backup321) and run b321-$job by hand"
      else
        ok job "$job"
      fi
      continue
    fi
    json_load "$status"
    result=${J[result]:-}
    last=${J[last_success]:-}
    error=${J[error]:-}
    ended=${J[ended]:-}
    last_epoch=0
    [ -z "$last" ] || last_epoch=$(date -d "$last" +%s 2>/dev/null || echo 0)
    if [ "$last_epoch" -gt 0 ]; then
      age=$((NOW - last_epoch))
      METRICS+=("backup321_job_last_success_age_seconds{job=\"$LABEL\"} $age")
    else
      # never succeeded: count from when the job was installed
      age=$((NOW - $(stat -c %Y -- "$entry")))
    fi
    if [ "$last_epoch" -gt $((NOW + FUTURE_TOLERANCE_SECONDS)) ]; then
      # A success "in the future" would pass the age check for as long as the clock is wrong.
      bad job "$job" "job $job's last success ($last) is in the future: the clock of this host (or of the run that wrote it) is wrong; check NTP (timedatectl), then run b321-$job by hand"
    elif [ "$result" = failed ] && ! in_list "$job" "${restore_jobs[@]}"; then
      bad job "$job" "job $job failed (run ended $ended): ${error:-no error recorded}"
    elif [ "$age" -gt "$max_age" ]; then
      bad job "$job" "job $job has not succeeded for $(hours "$age") (last success: ${last:-never}), more than its interval of ${interval} h + ${grace} h grace"
    else
      ok job "$job"
    fi
  done
  if [ "$registered" -eq 0 ]; then
    bad registry "$dir" "no backup job is registered in $dir: nothing on this host is watched (run pulumi up, which installs the jobs and their registry entries)"
  fi
}

# check_runs JOB: each run record of JOB whose process is gone (same boot, pid and start time, see
# common.sh) is a run that ended without a result. Its status file still shows the run before it.
# The job's next run that does not fail reports it too, and removes the record.
check_runs() {
  local job=$1 f pid
  for f in "$B321_RUN_DIR/$job".*.json; do
    [ -f "$f" ] || continue
    { [[ ${f##*/} =~ ^(.+)\.([0-9]+)\.json$ ]] && [ "${BASH_REMATCH[1]}" = "$job" ]; } || continue
    pid=${BASH_REMATCH[2]}
    ! b321_run_alive "$f" || continue
    json_load "$f"
    bad run "$job" "job $job: the run started at ${J[started]:-?} (pid $pid) ended without recording a result: it was killed (kill -9, the OOM killer), the host went down, or its status could not be written; the status file still shows the run before it. See syslog (tag backup321) from that time, then run b321-$job by hand"
  done
}

check_pitr() {
  local binlog_dir=${MONITOR_PITR_BINLOG_DIR:-} full_dir=${MONITOR_PITR_FULL_DIR:-}
  [ -n "$binlog_dir" ] && [ -n "$full_dir" ] || return 0
  local grace=${MONITOR_PITR_GRACE_SECONDS:-7200} manifest file pos id start line f
  local -a missing=()
  manifest=$(find "$full_dir" -maxdepth 1 -type f -name '*_full_*.manifest.json' -printf '%T@ %p\n' \
    2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2-)
  if [ -z "$manifest" ]; then
    b321_log "pitr: no full backup manifest in $full_dir yet (the full job's freshness is checked)"
    return 0
  fi
  file=$(json_str "$manifest" binlog_file)
  file=${file##*/}
  pos=$(json_num "$manifest" binlog_position)
  if ! [[ $file =~ ^.+\.[0-9]+$ ]]; then
    bad pitr "$binlog_dir" "the newest full $manifest records no binlog_file, so point-in-time recovery from it is impossible"
    return 0
  fi
  # Its identity, or for an older manifest the latest binlog of that name before the full.
  id=$(json_str "$manifest" binlog_identity)
  if ! start=$(b321_binlog_stamp "$id"); then
    start="~$(date -u -d "@$(json_num "$manifest" consistent_before_epoch)" +%Y%m%dT%H%M%SZ)"
  fi
  while IFS= read -r line; do
    case $line in
      NONE) missing+=("$file") ;;
      GAP\ *) missing+=("${line#GAP }") ;;
    esac
  done < <(for f in "$binlog_dir"/*.zst.enc; do
    [ -f "$f" ] && f=${f##*/} && printf '%s %s\n' "${f%.zst.enc}" "$f"
  done | b321_binlog_chain "$file" "$start")
  if [ "${missing[*]}" = "$file" ] && [ $((NOW - $(stat -c %Y -- "$manifest"))) -le "$grace" ]; then
    # the full is newer than one shipping interval: its first binlog may not be shipped yet
    ok pitr "$binlog_dir"
    return 0
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    bad pitr "$binlog_dir" "point-in-time recovery has a gap: ${missing[*]} missing from $binlog_dir (the newest full ${manifest##*/} starts at $file position ${pos:-?}); a full backup now closes the gap"
  else
    ok pitr "$binlog_dir"
  fi
  label "$binlog_dir"
  METRICS+=("backup321_pitr_binlogs_missing{dir=\"$LABEL\"} ${#missing[@]}")
}

check_restic_locks() {
  local limit=${MONITOR_STALE_LOCK_SECONDS:-43200} repo lock age oldest stale
  for repo in ${MONITOR_RESTIC_REPOS:-}; do
    if [ ! -f "$repo/config" ]; then
      bad restic-lock "$repo" "restic repository $repo is missing (its disk is not mounted, or it was never initialised)"
      continue
    fi
    oldest=0
    stale=()
    for lock in "$repo"/locks/*; do
      [ -f "$lock" ] || continue
      age=$((NOW - $(stat -c %Y -- "$lock")))
      [ "$age" -le "$oldest" ] || oldest=$age
      [ "$age" -le "$limit" ] || stale+=("${lock##*/}")
    done
    label "$repo"
    METRICS+=("backup321_restic_oldest_lock_age_seconds{repo=\"$LABEL\"} $oldest")
    if [ ${#stale[@]} -gt 0 ]; then
      bad restic-lock "$repo" "restic repository $repo has a lock $(hours "$oldest") old (limit $(hours "$limit")): ${stale[*]}; a crashed run? check with restic list locks, then restic unlock"
    else
      ok restic-lock "$repo"
    fi
  done
}

check_mounts() {
  local threshold=${MONITOR_DISK_FULL_PERCENT:-85} dir pct
  for dir in ${MONITOR_MOUNTS:-}; do
    if ! mountpoint -q -- "$dir"; then
      bad mount "$dir" "$dir is not mounted: is the USB SSD plugged in and in /etc/fstab by UUID?"
      continue
    fi
    pct=$(df -P -- "$dir" | awk 'NR == 2 { sub("%", "", $5); print $5 }')
    label "$dir"
    METRICS+=("backup321_disk_used_percent{mountpoint=\"$LABEL\"} ${pct:-0}")
    if [ "${pct:-0}" -gt "$threshold" ]; then
      bad disk-full "$dir" "$dir is ${pct}% full, above the threshold of ${threshold}%: prune, or add space before backups fail"
    else
      ok disk-full "$dir"
    fi
  done
}

check_smart() {
  local dev real parent out rc
  for dev in ${MONITOR_SMART_DEVICES:-}; do
    if [ ! -e "$dev" ]; then
      bad smart "$dev" "disk $dev is missing: is the USB SSD plugged in?"
      continue
    fi
    if ! command -v smartctl >/dev/null 2>&1; then
      bad smart "$dev" "cannot check the health of $dev: smartctl is not installed (apt-get install smartmontools)"
      continue
    fi
    real=$(readlink -f -- "$dev")
    parent=$(lsblk -no PKNAME -- "$real" 2>/dev/null | head -n 1 || true)
    [ -z "$parent" ] || real=/dev/$parent
    rc=0
    out=$(smartctl -H -- "$real" 2>&1) || rc=$?
    if [ $((rc & 6)) -ne 0 ]; then
      # many USB bridges need the SAT pass-through
      rc=0
      out=$(smartctl -H -d sat -- "$real" 2>&1) || rc=$?
    fi
    label "$dev"
    METRICS+=("backup321_smart_exit_code{device=\"$LABEL\"} $rc")
    if [ $((rc & 24)) -ne 0 ]; then
      bad smart "$dev" "disk $dev ($real) is failing according to SMART (smartctl exit $rc): $(printf '%s' "$out" | grep -i -m 1 'result\|status' || true); replace it"
    elif [ $((rc & 6)) -ne 0 ]; then
      bad smart "$dev" "the SMART health of $dev ($real) cannot be read (smartctl exit $rc): $(printf '%s' "$out" | tail -n 1)"
    else
      ok smart "$dev"
    fi
  done
}

check_restore_tests() {
  local rto job status result secs error e
  local -A job_rto=()
  for e in ${MONITOR_RESTORE_RTO_SECONDS:-}; do job_rto[${e%%=*}]=${e#*=}; done
  for job in ${MONITOR_RESTORE_JOBS:-}; do
    rto=${job_rto[$job]:-${MONITOR_RTO_SECONDS:-}}
    status=$B321_STATUS_DIR/$job.json
    [ -f "$status" ] || continue # never ran: the job check says when that is late
    result=$(json_str "$status" result)
    error=$(json_str "$status" error)
    secs=$(json_num "$status" restore_seconds)
    if [ "$result" = failed ]; then
      bad restore-test "$job" "the last restore test ($job) failed: ${error:-no error recorded}"
      continue
    fi
    if [ -z "$secs" ]; then
      bad restore-test "$job" "the last restore test ($job) did not record restore_seconds, so the RTO is unproven"
      continue
    fi
    label "$job"
    METRICS+=("backup321_restore_seconds{job=\"$LABEL\"} $secs")
    if [ -n "$rto" ] && [ "${secs%.*}" -gt "$rto" ]; then
      bad restore-test "$job" "the last restore test ($job) took $(hours "${secs%.*}") (${secs} s), more than the RTO of $(hours "$rto")"
    else
      ok restore-test "$job"
    fi
  done
}

# The replica the fulls are taken on: a stopped or lagging replica means the next full is refused
# (or, between fulls, that a failover to it would lose data), so it is an alert before that.
check_replica() {
  local sock=${MONITOR_REPLICA_SOCKET:-} max=${MONITOR_REPLICA_MAX_LAG_SECONDS:-} out line
  [ -n "$sock" ] || return 0
  local -A rs=()
  if ! out=$(mariadb --no-defaults "--socket=$sock" -uroot -E -e "SHOW SLAVE STATUS" 2>&1); then
    bad replica "$sock" "the replica on $sock does not answer: $(tr '\n' ' ' <<<"$out")"
    return 0
  fi
  while IFS= read -r line; do
    [[ $line =~ ^\ *([A-Za-z_]+):\ ?(.*)$ ]] && rs[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  done <<<"$out"
  local io=${rs[Slave_IO_Running]:-} sql=${rs[Slave_SQL_Running]:-} lag=${rs[Seconds_Behind_Master]:-}
  local err=${rs[Last_SQL_Error]:-${rs[Last_IO_Error]:-}}
  if [ "${#rs[@]}" -eq 0 ]; then
    bad replica "$sock" "the server on $sock is not a replica (SHOW SLAVE STATUS is empty): no full can be taken there"
  elif [ "$io" != Yes ] || [ "$sql" != Yes ]; then
    bad replica "$sock" "the replica on $sock is not replicating (Slave_IO_Running=$io, Slave_SQL_Running=$sql${err:+, last error: $err})"
  elif ! [[ $lag =~ ^[0-9]+$ ]]; then
    bad replica "$sock" "the replica on $sock has no known lag (Seconds_Behind_Master=$lag)"
  else
    METRICS+=("backup321_replica_lag_seconds $lag")
    if [ -n "$max" ] && [ "$lag" -gt "$max" ]; then
      bad replica "$sock" "the replica on $sock lags $lag s behind the primary, more than the limit of $max s (mariadb.replica.maxLagSeconds)"
    else
      ok replica "$sock"
    fi
  fi
}

# The binlog stream (mariadb.stream): what its watchdog (mariadb-stream-watch.sh) checks every
# minute, checked here too, so a stream whose watchdog no longer runs is still watched.
check_stream() {
  local max=${MONITOR_STREAM_MAX_LAG_SECONDS:-} stale_after=${MONITOR_STREAM_STALE_SECONDS:-60}
  local status=$B321_STATUS_DIR/mariadb-stream.json ended age since lag
  [ -n "$max" ] || return 0
  if [ ! -f "$status" ]; then
    bad stream mariadb-stream "the binlog stream has never reported ($status is missing): is its service (backup321-mariadb-stream) running?"
    return 0
  fi
  json_load "$status"
  ended=${J[ended]:-}
  age=$((NOW - $(date -d "${ended:-@0}" +%s 2>/dev/null || echo 0)))
  if [ "${J[result]:-}" = failed ]; then
    bad stream mariadb-stream "the binlog stream is down since $ended: ${J[error]:-}"
    return 0
  fi
  if [ "$age" -gt "$stale_after" ]; then
    bad stream mariadb-stream "the binlog stream has not reported for $age s (last at $ended): its process is gone or hung"
    return 0
  fi
  since=$(json_num "$status" covered_epoch)
  [[ $since =~ ^[0-9]+$ ]] || since=$(date -d "${J[started]:-@0}" +%s 2>/dev/null || echo 0)
  lag=$((NOW - since))
  METRICS+=("backup321_stream_lag_seconds $lag")
  if [ "$lag" -gt "$max" ]; then
    bad stream mariadb-stream "the binlog stream lags the primary by $lag s, more than the limit of $max s (mariadb.stream.maxLagSeconds)"
  else
    ok stream mariadb-stream
  fi
}

# pbs_tasks: "worker_type<TAB>worker_id<TAB>endtime<TAB>status<TAB>upid" of each task in the PBS
# task list on stdin (compact JSON, one flat object per task; endtime empty while it runs).
pbs_tasks() {
  { grep -o '{[^{}]*}' || true; } | awk '
    function f(k,   m) {
      if (match($0, "\"" k "\": *\"[^\"]*\"")) {
        m = substr($0, RSTART, RLENGTH); sub(/^"[^"]*": *"/, "", m); sub(/"$/, "", m); return m
      }
      if (match($0, "\"" k "\": *[0-9]+")) {
        m = substr($0, RSTART, RLENGTH); sub(/^"[^"]*": */, "", m); return m
      }
      return ""
    }
    { gsub(/\t/, " "); print f("worker_type") "\t" f("worker_id") "\t" f("endtime") "\t" f("status") "\t" f("upid") }'
}

check_pbs_verify() {
  local -a prefix=() items=()
  read -r -a items <<< "${MONITOR_PBS_VERIFY:-}"
  [ "${#items[@]}" -gt 0 ] || return 0
  read -r -a prefix <<< "${MONITOR_PBS_PREFIX:-}"
  local out tasks item store job max type id end status upid newest newest_status newest_upid age
  if ! out=$("${prefix[@]}" proxmox-backup-manager task list --all true --limit 1000 --output-format json 2>&1); then
    for item in "${items[@]}"; do
      IFS=: read -r store job max <<< "$item"
      bad pbs-verify "$store" "cannot read PBS's task list to check the verify job $job of datastore $store: $(printf '%s' "$out" | tail -n 1)"
    done
    return 0
  fi
  tasks=$(pbs_tasks <<< "$out")
  for item in "${items[@]}"; do
    IFS=: read -r store job max <<< "$item"
    newest=0
    newest_status=""
    newest_upid=""
    while IFS=$'\t' read -r type id end status upid; do
      { [ "$type" = verificationjob ] && [ "$id" = "$store:$job" ]; } || continue
      # a run still going has no end yet: the previous one is the last result
      { [[ $end =~ ^[0-9]+$ ]] && [ "$end" -gt "$newest" ]; } || continue
      newest=$end
      newest_status=$status
      newest_upid=$upid
    done <<< "$tasks"
    label "$store"
    METRICS+=("backup321_pbs_verify_last_end_timestamp_seconds{datastore=\"$LABEL\"} $newest")
    age=$((NOW - newest))
    if [ "$newest" = 0 ]; then
      bad pbs-verify "$store" "PBS datastore $store has no finished run of its verify job $job in PBS's task list: nothing says its chunks are still readable (is the job there, and its schedule?)"
    elif [ "$newest_status" != OK ]; then
      bad pbs-verify "$store" "the last verify of PBS datastore $store ($job, ended $(date -u -d "@$newest" +%Y-%m-%dT%H:%M:%SZ)) failed: ${newest_status:-no status}; its log: proxmox-backup-manager task log '$newest_upid'"
    elif [ "$age" -gt "$max" ]; then
      bad pbs-verify "$store" "the last verify of PBS datastore $store ($job) ended $(hours "$age") ago, more than $(hours "$max"): the verify job has stopped running (its schedule, the disk, PBS itself?)"
    else
      ok pbs-verify "$store"
    fi
  done
}

# The alert channels themselves: a channel that cannot deliver is an alert that will never arrive.
check_channels() {
  local conf=${B321_ALERT_ENV:-$B321_ETC/alert.env} email webhook
  [ -r "$conf" ] || return 0
  # shellcheck source=/dev/null
  email=$(source "$conf" && printf '%s' "${ALERT_EMAIL:-}")
  # shellcheck source=/dev/null
  webhook=$(source "$conf" && printf '%s' "${ALERT_WEBHOOK_FILE:-}")
  if [ -n "$email" ]; then
    if command -v sendmail >/dev/null 2>&1; then
      ok channel mail
    else
      bad channel mail "alerts cannot be mailed to $email: no sendmail on this host (install a mail transfer agent, e.g. apt-get install msmtp-mta)"
    fi
  fi
  if [ -n "$webhook" ]; then
    if [ -r "$webhook" ] && [ -s "$webhook" ]; then
      ok channel webhook
    else
      bad channel webhook "the alert webhook URL file $webhook is missing or empty (run pulumi up)"
    fi
  fi
}

write_metrics() {
  local dir=$B321_METRICS_DIR file tmp
  b321_metrics_dir
  file=$dir/monitor-checks.prom
  tmp=$(mktemp -- "$file.XXXXXX")
  METRICS+=("backup321_monitor_checks_failed ${#PROBLEMS[@]}")
  METRICS+=("backup321_monitor_last_run_timestamp_seconds $NOW")
  # The text format wants each metric's lines together, after its TYPE line.
  printf '%s\n' "${METRICS[@]}" | LC_ALL=C sort -s -t '{' -k 1,1 |
    awk '{ name = $1; sub(/[{ ].*/, "", name) }
         name != last { print "# TYPE " name " gauge"; last = name }
         { print }' > "$tmp"
  chmod 0644 -- "$tmp"
  mv -f -- "$tmp" "$file"
  local target=${MONITOR_TEXTFILE_DIR:-} f name job
  local -A copied=()
  [ -n "$target" ] || return 0
  mkdir -p -- "$target"
  for f in "$dir"/*.prom; do
    [ -f "$f" ] || continue
    name=${f##*/}
    job=${name%.prom}
    [ -n "${REGISTERED[$job]:-}" ] || [ -f "$B321_ETC/$job.env" ] ||
      [ "$job" = "$B321_JOB" ] || [ "$f" = "$file" ] || continue
    tmp=$(mktemp -- "$target/.backup321.XXXXXX")
    cp -- "$f" "$tmp"
    chmod 0644 -- "$tmp"
    mv -f -- "$tmp" "$target/backup321-$name"
    copied[backup321-$name]=1
  done
  for f in "$target"/backup321-*.prom; do
    { [ -f "$f" ] && [ -z "${copied[${f##*/}]:-}" ]; } || continue
    rm -f -- "$f"
    b321_log "removed $f: its job is no longer on this host"
  done
}

main() {
  b321_start "$@"
  b321_lock monitor
  NOW=$(date +%s)
  check_jobs
  check_pitr
  check_restic_locks
  check_mounts
  check_smart
  check_restore_tests
  check_replica
  check_stream
  check_pbs_verify
  check_channels
  write_metrics
  b321_set checks_total "$CHECKS"
  b321_set checks_failed "${#PROBLEMS[@]}"
  if [ ${#PROBLEMS[@]} -gt 0 ]; then
    local msg p
    msg="${#PROBLEMS[@]} of $CHECKS checks failed on $(hostname):"
    for p in "${PROBLEMS[@]}"; do msg+=$'\n'"- $p"; done
    b321_fail "$msg"
  fi
  local hook=${B321_ALERT:-$B321_LIB/alert.sh}
  if [ -x "$hook" ]; then
    B321_ETC=$B321_ETC "$hook" "$B321_JOB" success "all $CHECKS checks passed on $(hostname)" ||
      b321_warn "the success ping did not go through"
  fi
}

main "$@"
