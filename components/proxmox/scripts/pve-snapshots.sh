#!/bin/bash
# pve-snapshots.sh ENV_FILE: copy 1 of the 3-2-1 plan, local rollback points. Run by cron on the
# Proxmox VE node: snapshots each listed VM (qm) and container (pct) under one recognisable name,
# b321-YYYYmmdd-HHMMSS (UTC), then keeps the newest SNAP_KEEP snapshots of that form per guest.
# Snapshots it did not make (other names) are never touched. Every guest is tried; if one fails the
# run fails (and alerts) after the others are done. Per-guest results go to the status file.
# Env: SNAP_NODE, SNAP_VMS and SNAP_CONTAINERS (space-separated ids), SNAP_KEEP.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"

OWN_NAME='^b321-[0-9]{8}-[0-9]{6}$'
GUEST_ERR=""

# own_snapshots KIND ID: this job's snapshots of the guest as "SNAPTIME NAME" lines, oldest first by
# the snapshot's own time (a name made under a wrong clock must not decide what is newest).
own_snapshots() {
  local api=$1 id=$2 json
  json=$(pvesh get "/nodes/$SNAP_NODE/$api/$id/snapshot" --output-format json) || return 1
  # One object per line; each carries its name and snaptime, in whatever key order.
  tr '{' '\n' <<< "$json" | awk '
    match($0, /"name" *: *"[^"]*"/) {
      name = substr($0, RSTART, RLENGTH); sub(/^"name" *: *"/, "", name); sub(/"$/, "", name)
      time = 0
      if (match($0, /"snaptime" *: *[0-9]+/)) { time = substr($0, RSTART, RLENGTH); sub(/.*: */, "", time) }
      print time, name
    }' | { grep -E -- " ${OWN_NAME#^}" || true; } | sort -k1,1n -k2,2
}

last_line() {
  local text=$1
  text=${text%$'\n'}
  printf '%s' "${text##*$'\n'}"
}

# warn_future KIND ID OWN: a snapshot dated after now was taken under a wrong clock; it holds a
# slot of the rotation until someone deletes it.
warn_future() {
  local kind=$1 id=$2 own=$3 now time snap
  now=$(date +%s)
  while read -r time snap; do
    [ "$time" -le $((now + 300)) ] ||
      b321_warn "$kind $id: snapshot $snap is dated in the future ($(date -u -d "@$time" +%FT%TZ)): the clock was wrong when it was taken; delete it if it is not needed"
  done <<< "$own"
}

# snapshot_guest KIND ID NAME: snapshot, check it is listed, then rotate. Sets GUEST_ERR on failure.
snapshot_guest() {
  local kind=$1 id=$2 name=$3 tool api out own count old deleted=0
  case "$kind" in
    vm) tool=qm api=qemu ;;
    ct) tool=pct api=lxc ;;
  esac
  if ! out=$("$tool" snapshot "$id" "$name" --description "backup321 scheduled snapshot" 2>&1); then
    GUEST_ERR="$tool snapshot failed: $(last_line "$out")"
    return 1
  fi
  if ! own=$(own_snapshots "$api" "$id"); then
    GUEST_ERR="cannot list snapshots"
    return 1
  fi
  if ! grep -q -- " $name\$" <<< "$own"; then
    GUEST_ERR="$name is not listed after $tool snapshot"
    return 1
  fi
  count=$(grep -c . <<< "$own")
  warn_future "$kind" "$id" "$own"
  if [ "$count" -gt "$SNAP_KEEP" ]; then
    # The oldest first, never the one just taken (however the others are dated).
    while IFS= read -r old; do
      if ! out=$("$tool" delsnapshot "$id" "$old" 2>&1); then
        GUEST_ERR="$tool delsnapshot $old failed: $(last_line "$out")"
        return 1
      fi
      deleted=$((deleted + 1))
    done < <(cut -d' ' -f2 <<< "$own" | grep -vxF -- "$name" | head -n "$((count - SNAP_KEEP))")
  fi
  b321_set "${kind}_${id}_kept" "$((count - deleted))"
  b321_set "${kind}_${id}_deleted" "$deleted"
  b321_log "$kind $id: snapshot $name, kept $((count - deleted)), deleted $deleted"
}

main() {
  b321_start "$@"
  b321_lock pve-snapshots
  : "${SNAP_NODE:?}" "${SNAP_KEEP:?}"
  [[ $SNAP_KEEP =~ ^[1-9][0-9]*$ ]] || b321_fail "SNAP_KEEP must be a positive number"
  local name kind id ok=0 failed=()
  name=b321-$(date -u +%Y%m%d-%H%M%S)
  b321_set snapshot "$name"
  for kind in vm ct; do
    local ids=$SNAP_VMS
    [ "$kind" = vm ] || ids=$SNAP_CONTAINERS
    for id in $ids; do
      GUEST_ERR=""
      if snapshot_guest "$kind" "$id" "$name"; then
        b321_set "${kind}_${id}" ok
        ok=$((ok + 1))
      else
        b321_set "${kind}_${id}" "failed: $GUEST_ERR"
        b321_log "$kind $id: FAILED: $GUEST_ERR"
        failed+=("$kind $id ($GUEST_ERR)")
      fi
    done
  done
  b321_set guests_ok "$ok"
  b321_set guests_failed "${#failed[@]}"
  if [ ${#failed[@]} -gt 0 ]; then
    local IFS=';'
    b321_fail "snapshot failed for ${#failed[@]} guest(s): ${failed[*]}"
  fi
}

main "$@"
