#!/bin/bash
# Test stand-in for the Proxmox CLIs (qm, pct, pvesh, proxmox-backup-manager), installed as symlinks
# named after each tool in <root>/bin. Records every call in <root>/calls.log, one JSON array
# [tool, args...] per line and answers like the documented CLIs, with compact JSON for
# --output-format json, keeping its state as JSON files in <root>/state (jq).
# Failure injection: <root>/state/fail-<tool>-<id> makes `<tool> snapshot <id>` fail.
set -Eeuo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/state
TOOL=$(basename -- "$0")
mkdir -p -- "$STATE"
printf '%s\037' "$TOOL" "$@" | jq -Rsc 'split("\u001f")[:-1]' >> "$ROOT/calls.log"

die() {
  printf '%s\n' "$*" >&2
  exit 255
}

# ---- proxmox-backup-manager -------------------------------------------------------------------

PBS=$STATE/pbs.json

pbs_state() {
  [ -s "$PBS" ] || echo '{"datastores":[],"prune-jobs":[],"verify-jobs":[],"users":[],"tokens":[],"acl":[]}' > "$PBS"
  cat -- "$PBS"
}

pbs_save() {
  local tmp
  tmp=$(mktemp -- "$PBS.XXXXXX")
  cat > "$tmp"
  mv -f -- "$tmp" "$PBS"
}

# parse_opts ARGS...: OPTS gets the --key value pairs as a JSON object (numbers and booleans
# typed, --delete values collected in "__delete"), POS the positional arguments.
POS=()
OPTS='{}'
parse_opts() {
  local json='{}' key val
  POS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --output-format) shift 2 ;;
      --*)
        key=${1#--}
        val=${2:-}
        shift 2 || die "option --$key needs a value"
        if [ "$key" = delete ]; then
          json=$(jq -c --arg v "$val" '.__delete += [$v]' <<< "$json")
        elif [[ $val =~ ^[0-9]+$ ]] || [ "$val" = true ] || [ "$val" = false ]; then
          json=$(jq -c --arg k "$key" --argjson v "$val" '.[$k] = $v' <<< "$json")
        else
          json=$(jq -c --arg k "$key" --arg v "$val" '.[$k] = $v' <<< "$json")
        fi
        ;;
      *) POS+=("$1"); shift ;;
    esac
  done
  OPTS=$json
}

# apply_update COLLECTION KEY ID OPTS: merges options into the entry, removes --delete keys.
apply_update() {
  local coll=$1 key=$2 id=$3 opts=$4
  pbs_state | jq -c --arg c "$coll" --arg k "$key" --arg id "$id" --argjson o "$opts" '
    if any(.[$c][]; .[$k] == $id) | not then error("\($c) \($id) does not exist") else . end
    | .[$c] |= map(if .[$k] == $id
        then (. + ($o | del(.__delete))) | delpaths([($o.__delete // [])[] | [.]])
        else . end)' | pbs_save || die "$coll '$id' does not exist"
}

pbs_list() {
  pbs_state | jq -c --arg c "$1" '.[$c]'
}

pbs_main() {
  local group=${1:-} action=${2:-} opts
  shift 2 || true
  parse_opts "$@"
  opts=$OPTS
  case "$group $action" in
    "datastore list") pbs_list datastores ;;
    "datastore show")
      pbs_state | jq -ce --arg n "${POS[0]}" '.datastores[] | select(.name == $n)' ||
        die "datastore '${POS[0]}' does not exist." ;;
    "datastore create")
      local name=${POS[0]} path=${POS[1]}
      pbs_state | jq -e --arg n "$name" 'any(.datastores[]; .name == $n)' >/dev/null &&
        die "datastore '$name' already exists."
      mkdir -p -- "$path/.chunks"
      pbs_state | jq -c --arg n "$name" --arg p "$path" --argjson o "$opts" \
        '.datastores += [{name: $n, path: $p} + $o]' | pbs_save
      echo "Chunkstore create: 1%" ;;
    "datastore update") apply_update datastores name "${POS[0]}" "$opts" ;;
    "datastore remove")
      pbs_state | jq -e --arg n "${POS[0]}" 'any(.datastores[]; .name == $n)' >/dev/null ||
        die "datastore '${POS[0]}' does not exist."
      [ "$(jq -r '."destroy-data" // false' <<< "$opts")" != true ] ||
        rm -rf -- "$(pbs_state | jq -r --arg n "${POS[0]}" '.datastores[] | select(.name == $n) | .path')"
      pbs_state | jq -c --arg n "${POS[0]}" '.datastores |= map(select(.name != $n))' | pbs_save ;;
    "prune-job list") pbs_list prune-jobs ;;
    "verify-job list") pbs_list verify-jobs ;;
    "prune-job create" | "verify-job create")
      local coll=${group}s
      pbs_state | jq -e --arg c "$coll" --arg id "${POS[0]}" 'any(.[$c][]; .id == $id)' >/dev/null &&
        die "job '${POS[0]}' already exists."
      pbs_state | jq -c --arg c "$coll" --arg id "${POS[0]}" --argjson o "$opts" \
        '.[$c] += [{id: $id} + $o]' | pbs_save ;;
    "prune-job update" | "verify-job update") apply_update "${group}s" id "${POS[0]}" "$opts" ;;
    "prune-job remove" | "verify-job remove")
      pbs_state | jq -c --arg c "${group}s" --arg id "${POS[0]}" '.[$c] |= map(select(.id != $id))' | pbs_save ;;
    "user list") pbs_state | jq -c '[.users[] | . + {enable: true}]' ;;
    "user create")
      pbs_state | jq -e --arg u "${POS[0]}" 'any(.users[]; .userid == $u)' >/dev/null &&
        die "user '${POS[0]}' already exists."
      pbs_state | jq -c --arg u "${POS[0]}" --argjson o "$opts" '.users += [{userid: $u} + $o]' | pbs_save ;;
    "user remove")
      pbs_state | jq -c --arg u "${POS[0]}" \
        '.users |= map(select(.userid != $u)) | .tokens |= map(select(startswith($u + "!") | not))' | pbs_save ;;
    "user list-tokens")
      pbs_state | jq -c --arg u "${POS[0]}" '[.tokens[] | select(startswith($u + "!")) | {tokenid: ., enable: true}]' ;;
    "user generate-token")
      local id="${POS[0]}!${POS[1]}" secret
      pbs_state | jq -e --arg u "${POS[0]}" 'any(.users[]; .userid == $u)' >/dev/null ||
        die "user '${POS[0]}' does not exist."
      pbs_state | jq -e --arg t "$id" 'any(.tokens[]; . == $t)' >/dev/null &&
        die "token '$id' already exists."
      secret=$(cat /proc/sys/kernel/random/uuid)
      pbs_state | jq -c --arg t "$id" '.tokens += [$t]' | pbs_save
      jq -cn --arg t "$id" --arg v "$secret" '{tokenid: $t, value: $v}' ;;
    "user delete-token")
      pbs_state | jq -c --arg t "${POS[0]}!${POS[1]}" '.tokens |= map(select(. != $t))' | pbs_save ;;
    "acl list") pbs_list acl ;;
    "acl update")
      local path=${POS[0]} role=${POS[1]} auth del
      auth=$(jq -r '."auth-id"' <<< "$opts")
      del=$(jq -r 'if ((.__delete // []) | index("true")) then "true" else "false" end' <<< "$opts")
      if [ "$del" = true ]; then
        pbs_state | jq -c --arg p "$path" --arg r "$role" --arg a "$auth" \
          '.acl |= map(select((.path == $p and .roleid == $r and .ugid == $a) | not))' | pbs_save
      else
        pbs_state | jq -e --arg a "$auth" 'any(.users[]; .userid == $a) or any(.tokens[]; . == $a)' >/dev/null ||
          die "no such user or token '$auth'"
        pbs_state | jq -c --arg p "$path" --arg r "$role" --arg a "$auth" \
          '.acl |= (map(select((.path == $p and .ugid == $a and .roleid == $r) | not))
            + [{path: $p, ugid: $a, ugid_type: (if ($a | contains("!")) then "token" else "user" end), roleid: $r, propagate: true}])' | pbs_save
      fi ;;
    "cert info")
      printf 'Subject: CN=pbs\nIssuer: CN=pbs\nValidity:\n    Not Before: Jan  1 00:00:00 2026 GMT\n    Not After : Jan  1 00:00:00 2126 GMT\nFingerprint (sha256): %s\nPublic key type: rsaEncryption\nPublic key bits: 4096\n' \
        "$(cat -- "$STATE/fingerprint" 2>/dev/null || echo 'ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89')" ;;
    *) die "proxmox-backup-manager shim: unsupported '$group $action'" ;;
  esac
}

# ---- qm, pct, pvesh ---------------------------------------------------------------------------

guest_file() {
  printf '%s/guests/%s-%s.json' "$STATE" "$1" "$2"
}

guest_main() {
  local kind=$1 cmd=${2:-} id=${3:-} name=${4:-} file desc=""
  file=$(guest_file "$kind" "$id")
  [ -e "$file" ] || die "Configuration file 'nodes/pve/$([ "$kind" = qemu ] && echo qemu-server || echo lxc)/$id.conf' does not exist"
  case "$cmd" in
    snapshot)
      [ $# -ge 6 ] && [ "$5" = --description ] && desc=$6
      [ ! -e "$STATE/fail-$TOOL-$id" ] || die "snapshot create failed: $(cat -- "$STATE/fail-$TOOL-$id")"
      [[ $name =~ ^[A-Za-z][A-Za-z0-9_-]{1,39}$ ]] || die "invalid format - invalid configuration ID '$name'"
      jq -e --arg n "$name" 'any(.[]; .name == $n)' "$file" >/dev/null && die "snapshot name '$name' already used"
      jq -c --arg n "$name" --arg d "$desc" --argjson t "$(date +%s)" \
        '. + [{name: $n, description: $d, snaptime: $t}]' "$file" > "$file.tmp"
      mv -f -- "$file.tmp" "$file" ;;
    delsnapshot)
      jq -e --arg n "$name" 'any(.[]; .name == $n)' "$file" >/dev/null || die "snapshot '$name' does not exist"
      jq -c --arg n "$name" 'map(select(.name != $n))' "$file" > "$file.tmp"
      mv -f -- "$file.tmp" "$file" ;;
    listsnapshot)
      jq -r '.[] | "`-> \(.name)  \(.snaptime | todate)  \(.description)"' "$file"
      echo '    `-> current  You are here!' ;;
    *) die "$TOOL shim: unsupported '$cmd'" ;;
  esac
}

pvesh_main() {
  local verb=$1 path=$2 kind id file
  [ "$verb" = get ] || die "pvesh shim: only get is supported"
  [[ $path =~ ^/nodes/[^/]+/(qemu|lxc)/([0-9]+)/snapshot$ ]] || die "pvesh shim: unsupported path $path"
  kind=${BASH_REMATCH[1]}
  id=${BASH_REMATCH[2]}
  file=$(guest_file "$kind" "$id")
  [ -e "$file" ] || die "Configuration file 'nodes/pve/qemu-server/$id.conf' does not exist"
  jq -c '(. as $s | [ $s | to_entries[] | .value + (if .key > 0 then {parent: $s[.key - 1].name} else {} end) ])
    + [{name: "current", description: "You are here!", running: 0} + (if length > 0 then {parent: .[-1].name} else {} end)]' "$file"
}

case "$TOOL" in
  proxmox-backup-manager) pbs_main "$@" ;;
  qm) guest_main qemu "$@" ;;
  pct) guest_main lxc "$@" ;;
  pvesh) pvesh_main "$@" ;;
  *) die "unknown tool $TOOL" ;;
esac
