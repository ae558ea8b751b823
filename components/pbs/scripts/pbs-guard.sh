#!/bin/bash
# pbs-guard.sh ENV_FILE: run by cron every few minutes on the PBS host. PBS schedules its own GC,
# prune and verify jobs and receives backups from PVE at any time: when the datastore's disk is not
# mounted, none of them may write (a missing USB SSD must never fill the root file system). The
# guard puts the datastore in maintenance mode "offline" (PBS then refuses every job and backup on
# it), fails and alerts; once the disk is back it lifts the maintenance mode it set, and only that.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind check
# shellcheck source=pbs-lib.sh
source "${BASH_SOURCE[0]%/*}/pbs-lib.sh"

marker() {
  printf '%s/pbs-guard/%s.offline' "$B321_STATE" "$PBS_DATASTORE"
}

take_offline() {
  local current
  current=$(pbm datastore list --output-format json | json_find name "$PBS_DATASTORE")
  [ -n "$current" ] || b321_fail "datastore $PBS_DATASTORE is not configured in PBS"
  if [[ $(json_field maintenance-mode <<< "$current") != *offline* ]]; then
    mkdir -p -- "${B321_STATE}/pbs-guard"
    : > "$(marker)"
    pbm datastore update "$PBS_DATASTORE" --maintenance-mode offline
    b321_log "datastore $PBS_DATASTORE set offline"
  fi
}

bring_online() {
  [ -e "$(marker)" ] || return 0
  pbm datastore update "$PBS_DATASTORE" --delete maintenance-mode
  rm -f -- "$(marker)"
  b321_log "disk back: datastore $PBS_DATASTORE online again"
  b321_set recovered 1
}

main() {
  b321_start "$@"
  b321_lock "pbs-$PBS_DATASTORE"
  b321_set datastore "$PBS_DATASTORE"
  if ! disk_mounted; then
    b321_set mounted 0
    take_offline
    b321_fail "$PBS_MOUNT is not mounted: datastore $PBS_DATASTORE is offline until the USB SSD is back (UUID ${PBS_UUID:-?})"
  fi
  b321_set mounted 1
  if [ ! -d "$PBS_PATH/.chunks" ]; then
    take_offline
    b321_fail "$PBS_PATH/.chunks is missing although ${PBS_MOUNT:-the disk} is mounted (wrong disk?): datastore $PBS_DATASTORE is offline"
  fi
  bring_online
  check_space
}

# The USB SSD filling up stops backups: warn (and alert) below PBS_MIN_FREE_PERCENT free.
check_space() {
  local used avail free_pct
  used=$(df -B1 --output=used -- "$PBS_PATH" | tail -n 1 | tr -d ' ')
  avail=$(df -B1 --output=avail -- "$PBS_PATH" | tail -n 1 | tr -d ' ')
  free_pct=$((avail * 100 / (used + avail)))
  b321_set used_bytes "$used"
  b321_set avail_bytes "$avail"
  b321_set free_percent "$free_pct"
  if [ "$free_pct" -lt "${PBS_MIN_FREE_PERCENT:-10}" ]; then
    b321_warn "datastore $PBS_DATASTORE has only $free_pct% free (below ${PBS_MIN_FREE_PERCENT:-10}%): prune, GC or a bigger disk"
  fi
}

main "$@"
