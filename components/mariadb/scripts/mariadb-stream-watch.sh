#!/bin/bash
# The binlog stream's watchdog, run every minute by cron on the stream host (the stream's own env
# file): it fails, and so alerts within a minute, when the stream (mariadb-stream.sh) is down, has
# stopped reporting, or lags the primary by more than MARIADB_STREAM_MAX_LAG seconds
# (mariadb.stream.maxLagSeconds). It reads the stream's status file, which a healthy stream
# rewrites every MARIADB_STREAM_STATUS_SECONDS:
#   missing                      down, unless the deploy (this job's env file) is younger than the
#                                stale limit below: a stream just deployed may not have reported;
#   result failed                the stream's last run ended (the primary restarted or is gone, a
#                                full disk...): down, with the stream's own error;
#   older than MARIADB_STREAM_STALE_SECONDS (3 status periods + 20 s)
#                                its process is gone without its trap (kill -9, a reboot) or hung:
#                                down, whatever the file says;
#   lag                          now - covered_epoch (everything the primary had written then is on
#                                this host; before the run's first catch-up, since it started).
# The lag is measured against the primary's own position (the stream samples SHOW MASTER STATUS):
# a stream that runs but receives nothing while the primary writes (a stuck connection, a
# primary it cannot reach) lags, and alerts.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind check
b321_start "$@"

# field FILE KEY: a field of a status file (one per line, as common.sh writes it).
field() {
  sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" -- "$1" | head -n 1
}

main() {
  local env_file=$1 status=$B321_STATUS_DIR/mariadb-stream.json max=$MARIADB_STREAM_MAX_LAG
  local period=${MARIADB_STREAM_STATUS_SECONDS:-10} stale result ended age covered started lag now
  local deployed
  stale=${MARIADB_STREAM_STALE_SECONDS:-$((3 * period + 20))}
  printf -v now '%(%s)T' -1
  if [ ! -f "$status" ]; then
    # Not reported yet. Just deployed (this job's env file is as old as the deploy), the service may
    # still be starting: it has the time a healthy stream has to report, and lags at most since then.
    deployed=$(stat -c %Y -- "$env_file")
    age=$((now - deployed))
    [ "$age" -le "$stale" ] ||
      b321_fail "the binlog stream has never reported ($status is missing, deployed $age s ago): is its service (backup321-mariadb-stream) running?"
    b321_set stream_age_seconds "$age"
    b321_set lag_seconds "$age"
    b321_log "the binlog stream has not reported yet: deployed $age s ago, it has $stale s"
    return 0
  fi
  result=$(field "$status" result)
  ended=$(field "$status" ended)
  age=$((now - $(date -d "${ended:-@0}" +%s)))
  b321_set stream_age_seconds "$age"
  if [ "$result" = failed ]; then
    b321_fail "the binlog stream is down since $ended: $(field "$status" error)"
  fi
  [ "$age" -le "$stale" ] ||
    b321_fail "the binlog stream has not reported for $age s (last at $ended, every $period s when healthy): its process is gone or hung, and the binlogs written since are only on the primary"
  covered=$(field "$status" covered_epoch)
  if [[ $covered =~ ^[0-9]+$ ]]; then
    lag=$((now - covered))
  else
    started=$(field "$status" started)
    lag=$((now - $(date -d "${started:-@0}" +%s)))
  fi
  b321_set lag_seconds "$lag"
  [ "$lag" -le "$max" ] ||
    b321_fail "the binlog stream lags the primary by $lag s, more than the limit of $max s (mariadb.stream.maxLagSeconds): what the primary wrote since $(date -u -d "@$((now - lag))" +%Y-%m-%dT%H:%M:%SZ) is on the primary alone"
  b321_log "the binlog stream is up, $lag s behind the primary at most"
}

main "$1"
