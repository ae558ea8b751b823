#!/bin/bash
# pbs-setup.sh apply|remove|fingerprint ENV_FILE: the PBS side of one datastore, run by `pulumi up`
# over SSH. Idempotent: apply reads PBS's configuration first and creates or updates only what
# differs; a second run issues no create. remove drops configuration only: the chunk store on disk
# is never deleted (`datastore remove` without --destroy-data), and neither is the fstab entry.
#
# apply: fstab line by UUID (nofail, short device timeout) and the mount; refuses to touch PBS when
# the disk is not mounted. Then the datastore (GC schedule), a prune job with the tier's keep-*
# options, a verify job (skip verified, re-verify after N days), the user and its API token with
# DatastoreBackup on this datastore only. The token secret that PBS prints once goes straight to a
# 0600 file (PBS_TOKEN_FILE), never to stdout.
set -Eeuo pipefail
# shellcheck source=pbs-lib.sh
source "${BASH_SOURCE[0]%/*}/pbs-lib.sh"

log() {
  printf 'pbs-setup[%s]: %s\n' "$PBS_DATASTORE" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

job_id() {
  printf 'b321-%s' "$PBS_DATASTORE"
}

fstab_line() {
  printf 'UUID=%s %s %s defaults,nofail,x-systemd.device-timeout=10s 0 2' \
    "$PBS_UUID" "$PBS_MOUNT" "${PBS_FSTYPE:-ext4}"
}

# The disk's fstab entry, by UUID, after a marker comment; any older entry for the UUID is replaced.
ensure_fstab() {
  local fstab=${PBS_FSTAB:-/etc/fstab} want marker tmp
  want=$(fstab_line)
  marker="# backup321: USB disk $PBS_UUID (pulumi up manages the next line)"
  [ -e "$fstab" ] || : > "$fstab"
  if grep -qxF -- "$want" "$fstab" && grep -qxF -- "$marker" "$fstab"; then
    return 0
  fi
  tmp=$(mktemp -- "$fstab.b321.XXXXXX")
  grep -vF -e "UUID=$PBS_UUID " -e "$marker" -- "$fstab" > "$tmp" || true
  printf '%s\n%s\n' "$marker" "$want" >> "$tmp"
  chmod --reference="$fstab" -- "$tmp"
  mv -f -- "$tmp" "$fstab"
  log "fstab: $want"
}

ensure_mounted() {
  [ -n "${PBS_MOUNT:-}" ] || return 0
  ensure_fstab
  mkdir -p -- "$PBS_MOUNT"
  if ! mountpoint -q -- "$PBS_MOUNT"; then
    mount -T "${PBS_FSTAB:-/etc/fstab}" -- "$PBS_MOUNT" >&2 || true
  fi
  mountpoint -q -- "$PBS_MOUNT" ||
    die "$PBS_MOUNT is not mounted (plug in the disk UUID=$PBS_UUID): nothing written, so the datastore cannot end up on the root file system"
}

ensure_datastore() {
  local list current gc
  list=$(pbm datastore list --output-format json)
  current=$(json_find name "$PBS_DATASTORE" <<< "$list")
  if [ -z "$current" ]; then
    pbm datastore create "$PBS_DATASTORE" "$PBS_PATH" --gc-schedule "$PBS_GC_SCHEDULE" >&2
    log "datastore created at $PBS_PATH"
    return 0
  fi
  [ "$(json_field path <<< "$current")" = "$PBS_PATH" ] ||
    die "datastore exists at $(json_field path <<< "$current"), not $PBS_PATH (move it by hand, or set its path in the site model)"
  gc=$(json_field gc-schedule <<< "$current")
  if [ "$gc" != "$PBS_GC_SCHEDULE" ]; then
    pbm datastore update "$PBS_DATASTORE" --gc-schedule "$PBS_GC_SCHEDULE" >&2
    log "gc-schedule: '$gc' -> '$PBS_GC_SCHEDULE'"
  fi
}

KEEPS=(keep-last keep-hourly keep-daily keep-weekly keep-monthly keep-yearly)

# The wanted count for a keep-* option, from PBS_KEEP ("keep-daily=5 keep-weekly=4"), or "".
wanted_keep() {
  local opt=$1 kv
  for kv in $PBS_KEEP; do
    if [ "${kv%%=*}" = "$opt" ]; then
      printf '%s' "${kv#*=}"
      return 0
    fi
  done
}

ensure_prune_job() {
  local id current opt want have
  local -a args=() del=()
  id=$(job_id)
  current=$(pbm prune-job list --output-format json | json_find id "$id")
  for opt in "${KEEPS[@]}"; do
    want=$(wanted_keep "$opt")
    have=$(json_field "$opt" <<< "$current")
    if [ -n "$want" ] && { [ -z "$current" ] || [ "$want" != "$have" ]; }; then
      args+=("--$opt" "$want")
    elif [ -z "$want" ] && [ -n "$have" ]; then
      del+=(--delete "$opt")
    fi
  done
  if [ -z "$current" ]; then
    pbm prune-job create "$id" --store "$PBS_DATASTORE" --schedule "$PBS_PRUNE_SCHEDULE" "${args[@]}" >&2
    log "prune job $id created"
    return 0
  fi
  [ "$(json_field schedule <<< "$current")" = "$PBS_PRUNE_SCHEDULE" ] ||
    args+=(--schedule "$PBS_PRUNE_SCHEDULE")
  if [ ${#args[@]} -gt 0 ] || [ ${#del[@]} -gt 0 ]; then
    pbm prune-job update "$id" "${args[@]}" "${del[@]}" >&2
    log "prune job $id updated"
  fi
}

ensure_verify_job() {
  local id current
  local -a args=()
  id=$(job_id)
  current=$(pbm verify-job list --output-format json | json_find id "$id")
  if [ -z "$current" ]; then
    pbm verify-job create "$id" --store "$PBS_DATASTORE" --schedule "$PBS_VERIFY_SCHEDULE" \
      --ignore-verified true --outdated-after "$PBS_REVERIFY_DAYS" >&2
    log "verify job $id created"
    return 0
  fi
  [ "$(json_field schedule <<< "$current")" = "$PBS_VERIFY_SCHEDULE" ] ||
    args+=(--schedule "$PBS_VERIFY_SCHEDULE")
  [ "$(json_field ignore-verified <<< "$current")" = true ] || args+=(--ignore-verified true)
  [ "$(json_field outdated-after <<< "$current")" = "$PBS_REVERIFY_DAYS" ] ||
    args+=(--outdated-after "$PBS_REVERIFY_DAYS")
  if [ ${#args[@]} -gt 0 ]; then
    pbm verify-job update "$id" "${args[@]}" >&2
    log "verify job $id updated"
  fi
}

ensure_user() {
  if ! pbm user list --output-format json | grep -qF -- "\"userid\":\"$PBS_USER\""; then
    pbm user create "$PBS_USER" --comment "backup321: Proxmox VE backups" >&2
    log "user $PBS_USER created"
  fi
}

token_exists() {
  pbm user list-tokens "$PBS_USER" --output-format json | grep -qF -- "\"tokenid\":\"$PBS_USER!$PBS_TOKEN\""
}

# PBS shows a token's secret once: it goes to a 0600 file; a token whose secret was lost is renewed.
ensure_token() {
  local out secret tmp
  if token_exists && [ -s "$PBS_TOKEN_FILE" ]; then
    return 0
  fi
  if token_exists; then
    log "token $PBS_USER!$PBS_TOKEN exists but its secret file is missing: renewing it"
    pbm user delete-token "$PBS_USER" "$PBS_TOKEN" >&2
  fi
  # generate-token has no --output-format (PBS refuses it): it prints "Result: " and the token as
  # pretty JSON, one "key": "value" per line, which json_field reads line by line.
  out=$(pbm user generate-token "$PBS_USER" "$PBS_TOKEN")
  secret=$(json_field value <<< "$out")
  [ -n "$secret" ] || die "generate-token printed no token value"
  install -d -m 0700 -- "${PBS_TOKEN_FILE%/*}"
  tmp=$(umask 077 && mktemp -- "$PBS_TOKEN_FILE.partial.XXXXXX")
  printf '%s' "$secret" > "$tmp"
  mv -f -- "$tmp" "$PBS_TOKEN_FILE"
  log "token $PBS_USER!$PBS_TOKEN created (secret in $PBS_TOKEN_FILE)"
}

ensure_acl() {
  local path="/datastore/$PBS_DATASTORE" id list
  list=$(pbm acl list --output-format json | json_objects)
  for id in "$PBS_USER" "$PBS_USER!$PBS_TOKEN"; do
    if ! grep -F -- "\"path\":\"$path\"" <<< "$list" | grep -F -- "\"ugid\":\"$id\"" |
      grep -qF -- '"roleid":"DatastoreBackup"'; then
      pbm acl update "$path" DatastoreBackup --auth-id "$id" >&2
      log "acl: DatastoreBackup on $path for $id"
    fi
  done
}

apply() {
  ensure_mounted
  ensure_datastore
  ensure_prune_job
  ensure_verify_job
  ensure_user
  ensure_token
  ensure_acl
  log "in place"
}

remove() {
  local id path="/datastore/$PBS_DATASTORE" prune verify acl users tokens stores auth
  id=$(job_id)
  # Every read first: a failing PBS fails the destroy instead of being taken for "already gone".
  prune=$(pbm prune-job list --output-format json)
  verify=$(pbm verify-job list --output-format json)
  acl=$(pbm acl list --output-format json)
  users=$(pbm user list --output-format json)
  stores=$(pbm datastore list --output-format json)
  if [ -n "$(json_find id "$id" <<< "$prune")" ]; then
    pbm prune-job remove "$id" >&2
  fi
  if [ -n "$(json_find id "$id" <<< "$verify")" ]; then
    pbm verify-job remove "$id" >&2
  fi
  for auth in "$PBS_USER!$PBS_TOKEN" "$PBS_USER"; do
    if json_objects <<< "$acl" | grep -F -- "\"path\":\"$path\"" | grep -qF -- "\"ugid\":\"$auth\""; then
      pbm acl update "$path" DatastoreBackup --auth-id "$auth" --delete true >&2
    fi
  done
  if grep -qF -- "\"userid\":\"$PBS_USER\"" <<< "$users"; then
    tokens=$(pbm user list-tokens "$PBS_USER" --output-format json)
    if grep -qF -- "\"tokenid\":\"$PBS_USER!$PBS_TOKEN\"" <<< "$tokens"; then
      pbm user delete-token "$PBS_USER" "$PBS_TOKEN" >&2
      tokens=$(pbm user list-tokens "$PBS_USER" --output-format json)
    fi
    # The user is shared by the datastores: it goes with the last token.
    if ! grep -qF '"tokenid"' <<< "$tokens"; then
      pbm user remove "$PBS_USER" >&2
    fi
  fi
  rm -f -- "$PBS_TOKEN_FILE"
  if [ -n "$(json_find name "$PBS_DATASTORE" <<< "$stores")" ]; then
    # Configuration only: the chunk store under PBS_PATH stays (no --destroy-data).
    pbm datastore remove "$PBS_DATASTORE" >&2
  fi
  log "removed from PBS; the data under $PBS_PATH is kept"
}

# The SHA-256 fingerprint of PBS's TLS certificate, which PVE pins.
fingerprint() {
  local fp
  fp=$(pbm cert info | sed -n 's/^Fingerprint (sha256): *//p' | head -n 1)
  [[ $fp =~ ^([0-9a-f]{2}:){31}[0-9a-f]{2}$ ]] || die "cert info printed no SHA-256 fingerprint"
  printf '%s\n' "$fp"
}

main() {
  local action=${1:-} env_file=${2:-}
  [ -r "$env_file" ] || { echo "usage: $0 apply|remove|fingerprint ENV_FILE" >&2; exit 2; }
  # shellcheck source=/dev/null
  source "$env_file"
  case "$action" in
    apply) apply ;;
    remove) remove ;;
    fingerprint) fingerprint ;;
    *) echo "usage: $0 apply|remove|fingerprint ENV_FILE" >&2; exit 2 ;;
  esac
}

main "$@"
