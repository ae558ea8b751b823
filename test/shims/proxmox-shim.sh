#!/bin/bash
# Test stand-in for the Proxmox CLIs (qm, pct, pvesh, pvesm, qmrestore, proxmox-backup-manager),
# installed as symlinks named after each tool in <root>/bin. Records every call in <root>/calls.log, one JSON array
# [tool, args...] per line and answers like the real CLIs, with compact JSON for
# --output-format json, keeping its state as JSON files in <root>/state (jq).
# Each answer cites the source it imitates: proxmox-backup 3.2.4 (github.com/proxmox/proxmox-backup,
# tag v3.2.4) and pve-manager / qemu-server / pve-container / pve-guest-common (git.proxmox.com).
# The CLI framing of errors ("Error: parameter verification errors" and the exit code) is done by
# proxmox-router (github.com/proxmox/proxmox, proxmox-router/src/cli), whose source could not be
# read here: those texts follow the error strings proxmox-schema is known to produce.
# Guests: <root>/state/guests/<qemu|lxc>-<id>.json holds the snapshots in creation order; beside it
# <...>.lock names the guest's lock (e.g. backup) and <...>.nosnap says its storage cannot snapshot.
# Failure injection: <root>/state/fail-<tool>-<id> makes `<tool> snapshot <id>` fail with its text
# while snapshotting the volumes (after the checks).
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
# typed, --delete values collected in "__delete"), POS the positional arguments. OUTPUT_FORMAT
# gets --output-format's value ("" when absent).
POS=()
OPTS='{}'
OUTPUT_FORMAT=""
parse_opts() {
  local json='{}' key val
  POS=()
  OUTPUT_FORMAT=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --output-format) OUTPUT_FORMAT=${2:-}; shift 2 ;;
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

# PBS's task list, oldest first: <state>/tasks.json.
TASKS=$STATE/tasks.json
tasks_state() {
  [ -s "$TASKS" ] || echo '[]' > "$TASKS"
  cat -- "$TASKS"
}

# add_task TYPE ID START END STATUS: a finished task, with its UPID as PBS prints it
# (pbs-api-types/src/upid.rs: UPID:node:pid:pstart:task_id:starttime:type:id:user:, hex fields,
# ':' in the id escaped as \x3a).
add_task() {
  local type=$1 id=$2 start=$3 end=$4 status=$5 upid tmp
  upid=$(printf 'UPID:localhost:%08X:%08X:%08X:%08X:%s:%s:root@pam:' "$$" 1 0 "$start" "$type" "${id//:/\\x3a}")
  tmp=$(mktemp -- "$TASKS.XXXXXX")
  tasks_state | jq -c --arg u "$upid" --arg t "$type" --arg i "$id" --argjson s "$start" \
    --argjson e "$end" --arg st "$status" --argjson pid "$$" \
    '. + [{upid: $u, node: "localhost", pid: $pid, pstart: 1, starttime: $s, worker_type: $t,
      worker_id: $i, user: "root@pam", endtime: $e, status: $st}]' > "$tmp"
  mv -f -- "$tmp" "$TASKS"
}

pbs_list() {
  pbs_state | jq -c --arg c "$1" '.[$c]'
}

# A parameter the API method does not declare: proxmox-schema refuses every additional property
# ("schema does not allow additional properties") and the CLI exits non-zero before calling the
# method. Only the list commands of proxmox_backup_manager declare output-format (e.g.
# src/bin/proxmox_backup_manager/user.rs: list_users and list_tokens add "output-format";
# generate-token is CliCommand::new(&api2::access::user::API_METHOD_GENERATE_TOKEN), whose
# parameters in src/api2/access/user.rs are userid, token-name, comment, enable, expire, digest).
refuse_param() {
  printf 'Error: parameter verification errors\n\nparameter '"'"'%s'"'"': schema does not allow additional properties\n' "$1" >&2
  exit 255
}

# The roles PBS knows (pbs-api-types/src/acl.rs, enum Role); acl update parses its role argument
# as that enum, so any other name is refused.
ROLES=" Admin Audit NoAccess DatastoreAdmin DatastoreReader DatastoreBackup DatastorePowerUser DatastoreAudit RemoteAudit RemoteAdmin RemoteSyncOperator TapeAudit TapeAdmin TapeOperator TapeReader "

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
    "datastore update")
      # src/api2/config/datastore.rs update_datastore parses maintenance-mode as the property
      # string MaintenanceMode (pbs-api-types/src/maintenance.rs, default_key "type") and
      # DataStoreConfig::set_maintenance_mode (pbs-api-types/src/datastore.rs) stores it printed
      # back as a property string: `--maintenance-mode offline` is listed as "type=offline".
      local mode
      mode=$(jq -r '."maintenance-mode" // empty' <<< "$opts")
      if [ -n "$mode" ]; then
        [[ $mode == type=* ]] || mode="type=$mode"
        [[ $mode =~ ^type=(read-only|offline|delete)(,message=.*)?$ ]] ||
          die "Error: parameter verification errors"$'\n\n'"parameter 'maintenance-mode': value '${mode#type=}' is not defined in the enumeration."
        opts=$(jq -c --arg m "$mode" '."maintenance-mode" = $m' <<< "$opts")
      fi
      apply_update datastores name "${POS[0]}" "$opts" ;;
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
    # run_job (src/bin/proxmox-backup-manager.rs) posts admin/verify/<id>/run and shows the task;
    # do_verification_job (src/server/verify_job.rs) names the task worker_type "verificationjob",
    # worker_id "<store>:<job id>", and fails it with "verification failed - please check the log
    # for details" when a snapshot does not verify. <state>/fail-verify-<id> makes it fail so.
    "verify-job run")
      local store status=OK now
      store=$(pbs_state | jq -r --arg id "${POS[0]}" '."verify-jobs"[] | select(.id == $id) | .store')
      [ -n "$store" ] || die "job '${POS[0]}' does not exist."
      [ ! -e "$STATE/fail-verify-${POS[0]}" ] ||
        status="verification failed - please check the log for details"
      now=$(date +%s)
      add_task verificationjob "$store:${POS[0]}" "$now" "$now" "$status"
      echo "Starting datastore verify job '$store:${POS[0]}'"
      [ "$status" = OK ] || die "TASK ERROR: $status"
      echo "TASK OK" ;;
    # task_list (src/bin/proxmox-backup-manager.rs): GET nodes/localhost/tasks with running = !all,
    # start 0, limit (default 50); list_tasks (src/api2/node/tasks.rs) gives the newest first,
    # TaskListItem fields (upid, node, pid, pstart, starttime, worker_type, worker_id, user, and
    # endtime and status once the task has ended).
    "task list")
      local limit all
      limit=$(jq -r '.limit // 50' <<< "$opts")
      all=$(jq -r '.all // false' <<< "$opts")
      tasks_state | jq -c --argjson n "$limit" --argjson all "$all" \
        '[.[] | select($all or (has("endtime") | not))] | sort_by(-.starttime) | .[:$n]' ;;
    "prune-job remove" | "verify-job remove")
      pbs_state | jq -c --arg c "${group}s" --arg id "${POS[0]}" '.[$c] |= map(select(.id != $id))' | pbs_save ;;
    # api2::access::user::list_users returns the User structs of pbs-api-types/src/user.rs, whose
    # optional fields (enable, expire, comment, ...) are skip_serializing_if = "Option::is_none":
    # a field never set is absent, not defaulted.
    "user list") pbs_list users ;;
    "user create")
      pbs_state | jq -e --arg u "${POS[0]}" 'any(.users[]; .userid == $u)' >/dev/null &&
        die "user '${POS[0]}' already exists."
      pbs_state | jq -c --arg u "${POS[0]}" --argjson o "$opts" '.users += [{userid: $u} + $o]' | pbs_save ;;
    "user remove")
      pbs_state | jq -c --arg u "${POS[0]}" \
        '.users |= map(select(.userid != $u)) | .tokens |= map(select(startswith($u + "!") | not))' | pbs_save ;;
    # list_tokens (src/api2/access/user.rs) returns ApiToken structs: tokenid, and only the
    # optional fields that are set (none here).
    "user list-tokens")
      pbs_state | jq -c --arg u "${POS[0]}" '[.tokens[] | select(startswith($u + "!")) | {tokenid: .}]' ;;
    "user generate-token")
      local id="${POS[0]}!${POS[1]}" secret
      [ -z "$OUTPUT_FORMAT" ] || refuse_param output-format
      pbs_state | jq -e --arg u "${POS[0]}" 'any(.users[]; .userid == $u)' >/dev/null ||
        die "user '${POS[0]}' does not exist."
      pbs_state | jq -e --arg t "$id" 'any(.tokens[]; . == $t)' >/dev/null &&
        die "token '$id' already exists."
      secret=$(cat /proc/sys/kernel/random/uuid)
      pbs_state | jq -c --arg t "$id" '.tokens += [$t]' | pbs_save
      # The method returns {tokenid, value}; the CLI prints a non-null result of a plain API method
      # as "Result: " and pretty JSON (docs/user-management.rst, "generate-token john@pbs client1":
      # `Result: {` / `  "tokenid": "john@pbs!client1",` / `  "value": "d63e..."` / `}`).
      printf 'Result: %s\n' "$(jq -n --arg t "$id" --arg v "$secret" '{tokenid: $t, value: $v}')" ;;
    "user delete-token")
      pbs_state | jq -c --arg t "${POS[0]}!${POS[1]}" '.tokens |= map(select(. != $t))' | pbs_save ;;
    "acl list") pbs_list acl ;;
    "acl update")
      local path=${POS[0]} role=${POS[1]} auth del
      [[ $ROLES == *" $role "* ]] ||
        die "Error: parameter verification errors"$'\n\n'"parameter 'role': value '$role' is not defined in the enumeration."
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
    # src/bin/proxmox_backup_manager/cert.rs cert_info: Subject (pbs-tools/src/cert.rs
    # x509name_to_string, "O = ..., OU = ..., CN = ..." as src/config/mod.rs
    # update_self_signed_cert builds it), one indented line per subject alt name ("    DNS:...",
    # "    IP:[..]", the bytes in Rust's {:?}; the self-signed certificate has 127.0.0.1, ::1,
    # localhost, the node name and the FQDN in that order), Issuer, Validity, the sha256 fingerprint as lower-case hex pairs, key type/bits.
    "cert info")
      printf 'Subject: O = Proxmox Backup Server, OU = 1A2B3C4D, CN = pbs.example\n    IP:[127, 0, 0, 1]\n    IP:[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]\n    DNS:localhost\n    DNS:pbs\n    DNS:pbs.example\nIssuer: O = Proxmox Backup Server, OU = 1A2B3C4D, CN = pbs.example\nValidity:\n    Not Before: Jan  1 00:00:00 2026 GMT\n    Not After : Jan  1 00:00:00 2126 GMT\nFingerprint (sha256): %s\nPublic key type: rsaEncryption\nPublic key bits: 4096\n' \
        "$(cat -- "$STATE/fingerprint" 2>/dev/null || echo 'ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89')" ;;
    *) die "proxmox-backup-manager shim: unsupported '$group $action'" ;;
  esac
}

# ---- qm, pct, pvesh ---------------------------------------------------------------------------

guest_file() {
  printf '%s/guests/%s-%s.json' "$STATE" "$1" "$2"
}

guest_main() {
  local kind=$1 cmd=${2:-} id=${3:-} name=${4:-} file desc="" type
  # a restore creates the guest when it is gone
  if [ "$cmd" = restore ]; then
    restore_guest "$kind" "$id" "$name"
    return
  fi
  file=$(guest_file "$kind" "$id")
  [ -e "$file" ] || die "Configuration file 'nodes/pve/$([ "$kind" = qemu ] && echo qemu-server || echo lxc)/$id.conf' does not exist"
  # guest_type: QemuConfig.pm "VM", pve-container's LXC/Config.pm "CT"
  type=$([ "$kind" = qemu ] && echo VM || echo CT)
  case "$cmd" in
    snapshot)
      [ $# -ge 6 ] && [ "$5" = --description ] && desc=$6
      [[ $name =~ ^[A-Za-z][A-Za-z0-9_-]{1,39}$ ]] || die "invalid format - invalid configuration ID '$name'"
      # pve-guest-common src/PVE/AbstractConfig.pm __snapshot_prepare, in its order: check_lock
      # ("<guest_type> is locked (<lock>)"), the name ("snapshot name '<name>' already used"),
      # has_feature('snapshot') ("snapshot feature is not available"); each dies at once.
      [ ! -s "${file%.json}.lock" ] || die "$type is locked ($(cat -- "${file%.json}.lock"))"
      jq -e --arg n "$name" 'any(.[]; .name == $n)' "$file" >/dev/null && die "snapshot name '$name' already used"
      [ ! -e "${file%.json}.nosnap" ] || die "snapshot feature is not available"
      # snapshot_create: an error while snapshotting the volumes warns "snapshot create failed:
      # starting cleanup", removes the half-made snapshot and dies with the error.
      if [ -e "$STATE/fail-$TOOL-$id" ]; then
        printf 'snapshot create failed: starting cleanup\n' >&2
        die "$(cat -- "$STATE/fail-$TOOL-$id")"
      fi
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
    # qm/pct status: "status: running" or "status: stopped" (PVE::CLI::qm / pct status).
    status)
      if [ -e "${file%.json}.running" ]; then echo "status: running"; else echo "status: stopped"; fi ;;
    start)
      [ ! -e "${file%.json}.running" ] || die "$type $id already running"
      : > "${file%.json}.running" ;;
    stop) rm -f -- "${file%.json}.running" ;;
    # AbstractConfig.pm snapshot_rollback: check_lock, "snapshot '<name>' does not exist", then the
    # guest is stopped (no vmstate here) and its disks rolled back; newer snapshots are kept.
    rollback)
      [ ! -s "${file%.json}.lock" ] || die "$type is locked ($(cat -- "${file%.json}.lock"))"
      jq -e --arg n "$name" 'any(.[]; .name == $n)' "$file" >/dev/null || die "snapshot '$name' does not exist"
      rm -f -- "${file%.json}.running"
      printf '%s\n' "$name" > "${file%.json}.rolledback" ;;
    *) die "$TOOL shim: unsupported '$cmd'" ;;
  esac
}

# restore_guest KIND ID ARCHIVE (qmrestore ARCHIVE ID --force 1, pct restore ID ARCHIVE --force 1;
# qemu-server API2/Qemu.pm and pve-container API2/LXC.pm create_vm with a restore): the archive
# must be a volume of the storage and the guest stopped; its config is replaced (snapshots gone).
restore_guest() {
  local kind=$1 id=$2 archive=$3 file
  file=$(guest_file "$kind" "$id")
  jq -e --arg v "$archive" 'any(.[]; .volid == $v)' "$STATE/storage.json" > /dev/null 2>&1 ||
    die "volume '$archive' does not exist"
  [ ! -e "${file%.json}.running" ] || die "unable to restore $([ "$kind" = qemu ] && echo VM || echo CT) $id - $([ "$kind" = qemu ] && echo VM || echo CT) is running"
  echo '[]' > "$file"
  printf '%s\n' "$archive" > "${file%.json}.restored"
}

# pvesm list STORAGE --vmid ID (PVE/CLI/pvesm.pm print_content): a header, then one line per
# volume sorted by volid: Volid, Format, Type, Size, VMID.
pvesm_main() {
  { [ "${1:-}" = list ] && [ "${3:-}" = --vmid ]; } || die "pvesm shim: only list STORAGE --vmid ID"
  local storage=$2 vmid=$4
  printf '%-60s %-8s %-10s %12s %s\n' Volid Format Type Size VMID
  jq -r --arg s "$storage:" --arg id "$vmid" '
    [.[] | select((.volid | startswith($s)) and (.vmid | tostring) == $id)] | sort_by(.volid)[]
    | [.volid, .format, "backup", (.size | tostring), (.vmid | tostring)] | @tsv' \
    "$STATE/storage.json" 2> /dev/null | awk -F'\t' '{ printf "%-60s %-8s %-10s %12s %s\n", $1, $2, $3, $4, $5 }'
}

pvesh_main() {
  local verb=$1 path=$2 kind id file what digest
  [ "$verb" = get ] || die "pvesh shim: only get is supported"
  [[ $path =~ ^/nodes/[^/]+/(qemu|lxc)/([0-9]+)/(snapshot|feature)$ ]] || die "pvesh shim: unsupported path $path"
  kind=${BASH_REMATCH[1]}
  id=${BASH_REMATCH[2]}
  what=${BASH_REMATCH[3]}
  file=$(guest_file "$kind" "$id")
  [ -e "$file" ] || die "Configuration file 'nodes/pve/$([ "$kind" = qemu ] && echo qemu-server || echo lxc)/$id.conf' does not exist"
  if [ "$what" = feature ]; then
    # qemu-server src/PVE/API2/Qemu.pm vm_feature: {hasFeature, nodes}; pve-container
    # src/PVE/API2/LXC.pm vm_feature: {hasFeature} only (nodes is commented out). has_feature
    # returns 1 or 0, which pvesh prints as numbers.
    { [ "${3:-}" = --feature ] && [ "${4:-}" = snapshot ]; } || die "pvesh shim: only --feature snapshot"
    local has=1
    [ ! -e "${file%.json}.nosnap" ] || has=0
    if [ "$kind" = qemu ]; then
      jq -cn --argjson h "$has" '{hasFeature: $h, nodes: ["pve"]}'
    else
      jq -cn --argjson h "$has" '{hasFeature: $h}'
    fi
    return 0
  fi
  # qemu-server src/PVE/API2/Qemu.pm snapshot_list and pve-container src/PVE/API2/LXC/Snapshot.pm
  # list: one item per snapshot in `keys %$snaphash` order (Perl's hash order: arbitrary; here the
  # reverse of creation) with name, snaptime, description, vmstate (0/1, qemu only), parent and
  # snapstate when set; then the "current" entry, last, with the config's digest, running and
  # its parent.
  digest=$(sha1sum -- "$file" | cut -d' ' -f1)
  jq -c --arg k "$kind" --arg d "$digest" '
    (. as $s | [ $s | to_entries[] | {name: .value.name, snaptime: (.value.snaptime // 0)}
        + (if $k == "qemu" then {vmstate: (if .value.vmstate then 1 else 0 end)} else {} end)
        + {description: (.value.description // "")}
        + (if .key > 0 then {parent: $s[.key - 1].name} else {} end)
        + (if .value.snapstate then {snapstate: .value.snapstate} else {} end) ] | reverse)
    + [{name: "current", digest: $d, running: 0, description: "You are here!"}
        + (if length > 0 then {parent: .[-1].name} else {} end)]' "$file"
}

case "$TOOL" in
  proxmox-backup-manager) pbs_main "$@" ;;
  qm) guest_main qemu "$@" ;;
  pct) guest_main lxc "$@" ;;
  pvesh) pvesh_main "$@" ;;
  pvesm) pvesm_main "$@" ;;
  qmrestore) [ "${3:-}" = --force ] || die "qmrestore shim: only ARCHIVE VMID --force 1"
    restore_guest qemu "$2" "$1" ;;
  *) die "unknown tool $TOOL" ;;
esac
