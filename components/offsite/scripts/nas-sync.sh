#!/bin/bash
# backup321 NAS sync (source MariaDB §16.10.7, without its --delete): copies the source directories to
# a new dated snapshot on the NAS, <path>/<YYYYmmdd-HHMMSS>, over SSH with this host's own key.
# Unchanged files are hard links into the previous snapshot (--link-dest), so every snapshot is
# complete and costs only what changed; a file deleted or encrypted at the source changes only the
# new snapshot, never the older ones. The NAS side is a forced command (nas-receive.sh): it accepts
# exactly this script's rsync command line, names the finished snapshot by its own clock, refuses an
# empty one or one sent too soon after the last (ROOT/.refused on the NAS), moves the "latest" link
# and keeps its own count of snapshots.
#
# Env file: NAS_USER NAS_ADDRESS NAS_PORT NAS_PATH NAS_KEY NAS_KNOWN_HOSTS NAS_SOURCES (space-
# separated absolute paths) [NAS_EXCLUDES: space-separated rsync exclude patterns, never copied, e.g.
# the binlog stream's live/ and *.b321-partial] [NAS_TIMEOUT seconds, default 3600 per rsync run].
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_start "$@"


nas() {
  "${B321_SSH[@]}" "$NAS_USER@$NAS_ADDRESS" "$@"
}

check_config() {
  local v
  for v in NAS_USER NAS_ADDRESS NAS_PORT NAS_PATH NAS_KEY NAS_KNOWN_HOSTS NAS_SOURCES; do
    [ -n "${!v:-}" ] || b321_fail "$v is missing from the env file"
  done
  [ -r "$NAS_KEY" ] || b321_fail "no sync key at $NAS_KEY (pulumi up creates it)"
  [ -s "$NAS_KNOWN_HOSTS" ] || b321_fail "no pinned NAS host key in $NAS_KNOWN_HOSTS"
  b321_ssh_cmd "$NAS_KEY" "$NAS_PORT" "$NAS_KNOWN_HOSTS"
}

main() {
  local sources=() excludes=() src stamp latest stats sent rc out snapshot refused x
  check_config
  b321_lock nas-sync
  read -r -a sources <<< "$NAS_SOURCES"
  [ ${#sources[@]} -gt 0 ] || b321_fail "NAS_SOURCES lists no directory"
  for src in "${sources[@]}"; do
    [[ $src == /* ]] || b321_fail "source $src is not an absolute path"
    [ -d "$src" ] || b321_fail "source $src is not a directory (is the backup disk mounted?)"
  done
  stamp=$(date -u +%Y%m%d-%H%M%S)
  latest=$(nas latest) || b321_fail "cannot reach the NAS $NAS_ADDRESS:$NAS_PORT as $NAS_USER"
  # nas-receive.sh accepts exactly the server command line these options make: change both together.
  local args=(-a --relative --stats --timeout=600 -e "${B321_SSH[*]}")
  # excludes filter on this side only: the server command line stays the one nas-receive.sh accepts
  read -r -a excludes <<< "${NAS_EXCLUDES:-}"
  for x in "${excludes[@]}"; do args+=("--exclude=$x"); done
  if [ -n "$latest" ]; then
    [[ $latest =~ ^[0-9]{8}-[0-9]{6}$ ]] || b321_fail "the NAS answered '$latest' for its latest snapshot"
    args+=("--link-dest=$NAS_PATH/$latest")
  fi
  # $stamp names only the upload ($stamp.partial); the NAS names the snapshot when it accepts it.
  b321_log "upload $stamp to $NAS_ADDRESS:$NAS_PATH${latest:+ (unchanged files linked to $latest)}"
  rc=0
  stats=$(timeout "${NAS_TIMEOUT:-3600}" rsync "${args[@]}" -- "${sources[@]}" \
    "$NAS_USER@$NAS_ADDRESS:$NAS_PATH/$stamp.partial/") || rc=$?
  [ "$rc" -eq 0 ] || b321_fail "rsync to the NAS exited with $rc (the snapshot stays $stamp.partial and is removed by the next run)"
  sent=$(sed -n 's/^Total transferred file size: \([0-9,]*\) bytes.*/\1/p' <<< "$stats" | tr -d ,)
  out=$(nas "finish $stamp" 2>&1) || b321_fail "the NAS did not accept upload $stamp: ${out//$'\n'/ }"
  snapshot=$(sed -n 's/^snapshot \([0-9]\{8\}-[0-9]\{6\}\) complete$/\1/p' <<< "$out")
  [ -n "$snapshot" ] || b321_fail "the NAS answered '${out//$'\n'/ }' to finish $stamp"
  # refusals since the last snapshot: someone else used this key, or this host sent too often
  refused=$(sed -n 's/^warning: //p' <<< "$out")
  [ -z "$refused" ] || b321_warn "the NAS $refused"
  b321_set snapshot "$snapshot"
  b321_set bytes "${sent:-0}"
  b321_log "snapshot $snapshot complete (${sent:-0} bytes transferred)"
}

main
