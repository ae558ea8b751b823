#!/bin/bash
# nas-drill.sh ENV_FILE: the read-back drill of the NAS copy (a snapshot accepted by the NAS is not
# yet a snapshot read back from it). It pulls the NAS's newest snapshot into scratch space with the
# sync key, through the one read-only path the NAS's forced command gives that key (nas-receive.sh:
# `rsync --server --sender ... . ROOT/latest/`), then checks it against what was recorded when each
# copy was made:
#   - every full in the snapshot has its manifest beside it, and the full has the size and sha256
#     the MariaDB full job recorded there; a manifest that this host still holds must be the same
#     bytes as the snapshot's (so a full and its manifest altered together on the NAS are caught);
#   - every shipped binlog with a <copy>.sha256 (the shipper's, written once it proved the copy)
#     has that sha256.
# A snapshot with no full fails: there would be nothing to restore a database from. Records the
# measured read-back time (restore_seconds, the pull and the checks: the monitor alerts when it
# exceeds the RTO, as for the restore test); the scratch copy is removed whatever happens.
#
# Env file: as nas-sync.sh (NAS_USER NAS_ADDRESS NAS_PORT NAS_PATH NAS_KEY NAS_KNOWN_HOSTS
# NAS_SOURCES [NAS_TIMEOUT]), DRILL_SCRATCH (a directory on this host with room for a snapshot)
# [DRILL_LOCK_WAIT seconds to wait for a running sync, default 3600].
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind drill
b321_start "$@"

SCRATCH=""

remove_scratch() {
  [ -z "$SCRATCH" ] || rm -rf -- "$SCRATCH"
}

nas() {
  "${B321_SSH[@]}" "$NAS_USER@$NAS_ADDRESS" "$@"
}

check_config() {
  local v
  for v in NAS_USER NAS_ADDRESS NAS_PORT NAS_PATH NAS_KEY NAS_KNOWN_HOSTS NAS_SOURCES DRILL_SCRATCH; do
    [ -n "${!v:-}" ] || b321_fail "$v is missing from the env file"
  done
  [ -r "$NAS_KEY" ] || b321_fail "no sync key at $NAS_KEY (pulumi up creates it)"
  [ -s "$NAS_KNOWN_HOSTS" ] || b321_fail "no pinned NAS host key in $NAS_KNOWN_HOSTS"
  b321_ssh_cmd "$NAS_KEY" "$NAS_PORT" "$NAS_KNOWN_HOSTS"
}

# manifest_field MANIFEST KEY: a scalar field of a full's manifest (one field per line, as written).
manifest_field() {
  sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" -- "$1" | head -n 1
}

PROBLEMS=()
problem() {
  PROBLEMS+=("$1")
  b321_log "problem: $1"
}

# check_full MANIFEST SRC: the full beside MANIFEST (in the snapshot) against it; SRC is the
# source directory it came from on this host.
FULLS=0
BYTES=0
check_full() {
  local m=$1 src=$2 full=${1%.manifest.json} name want_sha want_bytes got local_m
  name=${full##*/}
  if [ "$(manifest_field "$m" file)" != "$name" ]; then
    problem "$name.manifest.json on the NAS names another file ($(manifest_field "$m" file))"
    return 0
  fi
  local_m=$src/$name.manifest.json
  if [ -f "$local_m" ] && ! cmp -s -- "$m" "$local_m"; then
    problem "$name.manifest.json on the NAS differs from the one this host wrote when the full was made"
    return 0
  fi
  want_sha=$(manifest_field "$m" sha256)
  want_bytes=$(manifest_field "$m" bytes)
  if [ ! -f "$full" ]; then
    problem "$name is missing from the NAS snapshot (its manifest is there)"
  elif [[ ! $want_sha =~ ^[0-9a-f]{64}$ ]] || [[ ! $want_bytes =~ ^[0-9]+$ ]]; then
    problem "$name.manifest.json on the NAS records no sha256 or size"
  elif got=$(stat -c %s -- "$full") && [ "$got" != "$want_bytes" ]; then
    problem "$name on the NAS has $got bytes, its manifest recorded $want_bytes"
  elif got=$(b321_sha256 "$full") && [ "$got" != "$want_sha" ]; then
    problem "$name on the NAS has sha256 $got, its manifest recorded $want_sha"
  else
    FULLS=$((FULLS + 1))
    BYTES=$((BYTES + want_bytes))
    b321_log "full $name: $want_bytes bytes, sha256 as recorded"
  fi
}

# check_binlog SUMFILE: the shipped copy beside a .sha256 the shipper wrote.
BINLOGS=0
check_binlog() {
  local sumfile=$1 copy=${1%.sha256} name want got
  name=${copy##*/}
  want=$(sed -n '1s/^\([0-9a-f]\{64\}\)  .*/\1/p' -- "$sumfile")
  if [ -z "$want" ]; then
    problem "$name.sha256 on the NAS holds no sha256"
  elif [ ! -f "$copy" ]; then
    problem "$name is missing from the NAS snapshot (its .sha256 is there)"
  elif got=$(b321_sha256 "$copy") && [ "$got" != "$want" ]; then
    problem "shipped binlog $name on the NAS has sha256 $got, the shipper recorded $want"
  else
    BINLOGS=$((BINLOGS + 1))
    BYTES=$((BYTES + $(stat -c %s -- "$copy")))
  fi
}

main() {
  local sources=() src latest t0 t1 rc f secs
  check_config
  read -r -a sources <<<"$NAS_SOURCES"
  # no sync moves ROOT/latest while the snapshot is read
  b321_lock nas-sync "${DRILL_LOCK_WAIT:-3600}"
  latest=$(nas latest) || b321_fail "cannot reach the NAS $NAS_ADDRESS:$NAS_PORT as $NAS_USER"
  [[ $latest =~ ^[0-9]{8}-[0-9]{6}$ ]] ||
    b321_fail "the NAS has no snapshot to read back (it answered '$latest')"
  b321_set snapshot "$latest"
  mkdir -p -- "$DRILL_SCRATCH"
  SCRATCH=$(mktemp -d -- "$DRILL_SCRATCH/nas-drill.XXXXXX") ||
    b321_fail "cannot create a scratch directory in $DRILL_SCRATCH"
  b321_cleanup remove_scratch
  b321_watch_space "$DRILL_SCRATCH"

  b321_log "reading back snapshot $latest from $NAS_ADDRESS:$NAS_PATH into $SCRATCH"
  t0=$(date +%s)
  rc=0
  # exactly the read-only command line nas-receive.sh accepts (rsync --server --sender ... ROOT/latest/)
  timeout "${NAS_TIMEOUT:-3600}" rsync -a --timeout=600 -e "${B321_SSH[*]}" -- \
    "$NAS_USER@$NAS_ADDRESS:$NAS_PATH/latest/" "$SCRATCH/" >&2 || rc=$?
  [ "$rc" -eq 0 ] || b321_fail "reading snapshot $latest back from the NAS failed (rsync exit $rc)"

  for src in "${sources[@]}"; do
    [[ $src == /* ]] || b321_fail "source $src is not an absolute path"
    if [ ! -d "$SCRATCH$src" ]; then
      problem "the NAS snapshot $latest has no $src"
      continue
    fi
    while IFS= read -r -d '' f; do
      check_full "$f" "$src"
    done < <(find "$SCRATCH$src" -type f -name '*.manifest.json' -print0 | sort -z)
    while IFS= read -r -d '' f; do
      check_binlog "$f"
    done < <(find "$SCRATCH$src" -type f -name '*.enc.sha256' -print0 | sort -z)
  done
  t1=$(date +%s)
  secs=$((t1 - t0))
  b321_set fulls "$FULLS"
  b321_set binlogs "$BINLOGS"
  b321_set bytes "$BYTES"
  b321_set restore_seconds "$secs"
  if [ "${#PROBLEMS[@]}" -gt 0 ]; then
    local msg="NAS snapshot $latest does not match what was recorded when its copies were made: ${PROBLEMS[0]}"
    [ "${#PROBLEMS[@]}" -eq 1 ] || msg+=" (and $((${#PROBLEMS[@]} - 1)) more problem(s), in the log)"
    b321_fail "$msg"
  fi
  [ "$FULLS" -gt 0 ] ||
    b321_fail "NAS snapshot $latest holds no full with its manifest under ${sources[*]}: no database could be restored from it"
  b321_log "read-back drill passed: snapshot $latest, $FULLS full(s) and $BINLOGS shipped binlog(s) ($BYTES bytes) match what was recorded, read back in $secs s"
}

main
