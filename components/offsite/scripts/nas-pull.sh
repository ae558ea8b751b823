#!/bin/bash
# Sourced by the scripts that read the NAS's newest snapshot back (nas-drill.sh on the source host,
# mariadb-dr-drill.sh on a standby), after common.sh: the pull through the one read-only path the
# NAS's forced command gives a key (nas-receive.sh: `rsync --server --sender ... . ROOT/latest/`),
# and the checks of the copy against what was recorded when each copy was made:
#   - every full in the snapshot has its manifest beside it, and the full has the size and sha256
#     the MariaDB full job recorded there; a manifest that this host still holds must be the same
#     bytes as the snapshot's (so a full and its manifest altered together on the NAS are caught);
#   - every shipped binlog with a <copy>.sha256 (the shipper's, written once it proved the copy)
#     has that sha256.
# Env: NAS_USER NAS_ADDRESS NAS_PORT NAS_PATH NAS_KEY NAS_KNOWN_HOSTS NAS_SOURCES [NAS_TIMEOUT].
# shellcheck disable=SC2034  # NAS_* results are read by the scripts that source this file

# nas_check_config [MORE_VARS...]: every NAS variable (and MORE_VARS) is set, the key and the
# pinned host key are there; sets B321_SSH (common.sh).
nas_check_config() {
  local v
  for v in NAS_USER NAS_ADDRESS NAS_PORT NAS_PATH NAS_KEY NAS_KNOWN_HOSTS NAS_SOURCES "$@"; do
    [ -n "${!v:-}" ] || b321_fail "$v is missing from the env file"
  done
  [ -r "$NAS_KEY" ] || b321_fail "no NAS key at $NAS_KEY (pulumi up creates it)"
  [ -s "$NAS_KNOWN_HOSTS" ] || b321_fail "no pinned NAS host key in $NAS_KNOWN_HOSTS"
  b321_ssh_cmd "$NAS_KEY" "$NAS_PORT" "$NAS_KNOWN_HOSTS"
}

# nas_latest: NAS_LATEST, the name of the NAS's newest snapshot (fails when there is none).
NAS_LATEST=""
nas_latest() {
  NAS_LATEST=$("${B321_SSH[@]}" "$NAS_USER@$NAS_ADDRESS" latest) ||
    b321_fail "cannot reach the NAS $NAS_ADDRESS:$NAS_PORT as $NAS_USER"
  [[ $NAS_LATEST =~ ^[0-9]{8}-[0-9]{6}$ ]] ||
    b321_fail "the NAS has no snapshot to read back (it answered '$NAS_LATEST')"
  b321_set snapshot "$NAS_LATEST"
}

# nas_pull DIR: ROOT/latest/ into DIR (an empty directory of this host).
nas_pull() {
  local dir=$1 rc=0
  b321_log "reading back snapshot $NAS_LATEST from $NAS_ADDRESS:$NAS_PATH into $dir"
  # exactly the read-only command line nas-receive.sh accepts (rsync --server --sender ... ROOT/latest/)
  timeout "${NAS_TIMEOUT:-3600}" rsync -a --timeout=600 -e "${B321_SSH[*]}" -- \
    "$NAS_USER@$NAS_ADDRESS:$NAS_PATH/latest/" "$dir/" >&2 || rc=$?
  [ "$rc" -eq 0 ] || b321_fail "reading snapshot $NAS_LATEST back from the NAS failed (rsync exit $rc)"
}

# nas_manifest_field MANIFEST KEY: a scalar field of a full's manifest (one field per line, as written).
nas_manifest_field() {
  sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" -- "$1" | head -n 1
}

NAS_PROBLEMS=()
nas_problem() {
  NAS_PROBLEMS+=("$1")
  b321_log "problem: $1"
}

# nas_check_full MANIFEST SRC: the full (or increment) beside MANIFEST (in the copy) against it;
# SRC is the source directory it came from (this host's copy of the manifest, when it has one, must
# be the same). Increments are counted apart: alone, they restore nothing.
NAS_FULLS=0
NAS_INCREMENTS=0
NAS_BYTES=0
nas_check_full() {
  local m=$1 src=$2 full=${1%.manifest.json} name want_sha want_bytes got local_m
  name=${full##*/}
  if [ "$(nas_manifest_field "$m" file)" != "$name" ]; then
    nas_problem "$name.manifest.json on the NAS names another file ($(nas_manifest_field "$m" file))"
    return 0
  fi
  local_m=$src/$name.manifest.json
  if [ -f "$local_m" ] && ! cmp -s -- "$m" "$local_m"; then
    nas_problem "$name.manifest.json on the NAS differs from the one this host wrote when the full was made"
    return 0
  fi
  want_sha=$(nas_manifest_field "$m" sha256)
  want_bytes=$(nas_manifest_field "$m" bytes)
  if [ ! -f "$full" ]; then
    nas_problem "$name is missing from the NAS snapshot (its manifest is there)"
  elif [[ ! $want_sha =~ ^[0-9a-f]{64}$ ]] || [[ ! $want_bytes =~ ^[0-9]+$ ]]; then
    nas_problem "$name.manifest.json on the NAS records no sha256 or size"
  elif got=$(stat -c %s -- "$full") && [ "$got" != "$want_bytes" ]; then
    nas_problem "$name on the NAS has $got bytes, its manifest recorded $want_bytes"
  elif got=$(b321_sha256 "$full") && [ "$got" != "$want_sha" ]; then
    nas_problem "$name on the NAS has sha256 $got, its manifest recorded $want_sha"
  else
    if [[ $name == *_incr_* ]]; then
      NAS_INCREMENTS=$((NAS_INCREMENTS + 1))
      b321_log "increment $name: $want_bytes bytes, sha256 as recorded"
    else
      NAS_FULLS=$((NAS_FULLS + 1))
      b321_log "full $name: $want_bytes bytes, sha256 as recorded"
    fi
    NAS_BYTES=$((NAS_BYTES + want_bytes))
  fi
}

# nas_check_binlog SUMFILE: the shipped copy beside a .sha256 the shipper wrote.
NAS_BINLOGS=0
nas_check_binlog() {
  local sumfile=$1 copy=${1%.sha256} name want got
  name=${copy##*/}
  want=$(sed -n '1s/^\([0-9a-f]\{64\}\)  .*/\1/p' -- "$sumfile")
  if [ -z "$want" ]; then
    nas_problem "$name.sha256 on the NAS holds no sha256"
  elif [ ! -f "$copy" ]; then
    nas_problem "$name is missing from the NAS snapshot (its .sha256 is there)"
  elif got=$(b321_sha256 "$copy") && [ "$got" != "$want" ]; then
    nas_problem "shipped binlog $name on the NAS has sha256 $got, the shipper recorded $want"
  else
    NAS_BINLOGS=$((NAS_BINLOGS + 1))
    NAS_BYTES=$((NAS_BYTES + $(stat -c %s -- "$copy")))
  fi
}

# nas_verify DIR: every full, increment and shipped (or streamed) binlog of NAS_SOURCES in the copy at DIR against what was
# recorded; records fulls, binlogs and bytes, and fails naming the first problem (all are logged)
# or when the copy holds no full.
nas_verify() {
  local dir=$1 src f sources=()
  read -r -a sources <<<"$NAS_SOURCES"
  for src in "${sources[@]}"; do
    [[ $src == /* ]] || b321_fail "source $src is not an absolute path"
    if [ ! -d "$dir$src" ]; then
      nas_problem "the NAS snapshot $NAS_LATEST has no $src"
      continue
    fi
    while IFS= read -r -d '' f; do
      nas_check_full "$f" "$src"
    done < <(find "$dir$src" -type f -name '*.manifest.json' -print0 | sort -z)
    while IFS= read -r -d '' f; do
      nas_check_binlog "$f"
    done < <(find "$dir$src" -type f -name '*.enc.sha256' -print0 | sort -z)
  done
  b321_set fulls "$NAS_FULLS"
  b321_set increments "$NAS_INCREMENTS"
  b321_set binlogs "$NAS_BINLOGS"
  b321_set bytes "$NAS_BYTES"
  if [ "${#NAS_PROBLEMS[@]}" -gt 0 ]; then
    local msg="NAS snapshot $NAS_LATEST does not match what was recorded when its copies were made: ${NAS_PROBLEMS[0]}"
    [ "${#NAS_PROBLEMS[@]}" -eq 1 ] || msg+=" (and $((${#NAS_PROBLEMS[@]} - 1)) more problem(s), in the log)"
    b321_fail "$msg"
  fi
  [ "$NAS_FULLS" -gt 0 ] ||
    b321_fail "NAS snapshot $NAS_LATEST holds no full with its manifest under ${sources[*]}: no database could be restored from it"
}
