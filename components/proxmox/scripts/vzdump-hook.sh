#!/bin/bash
# vzdump-hook.sh PHASE [MODE VMID]: the node-wide vzdump hook script of backup321 (`script:` in
# /etc/vzdump.conf). At job-init and job-start it refuses a run whose target is one of backup321's
# PBS storages (GUARDED_STORAGES) while that storage has no encryption key on this node
# (/etc/pve/priv/storage/<storage>.enc): without it PVE would back up unencrypted without a word.
# vzdump aborts the job (and reports its failure) when the hook exits non-zero. Every other storage
# (local dumps, other PBS storages) and every other phase passes: the hook runs for every backup on
# the node, so it must never stand in the way of the ones that are not backup321's.
# vzdump sets STOREID to the job's storage (unset for a dump directory).
#
# Why /etc/vzdump.conf and not the job's own `script` option: PVE lets only root@pam set `script`
# on a job ("Only root may set this option.", PVE/API2/Backup.pm assert_param_permission_common),
# and the provider logs in with an API token, which is never root@pam. The node-wide default is
# written over SSH (root) instead, and vzdump applies it to every job that sets no script itself.
#
# vzdump-hook.sh install CONF: puts `script: <this file>` into CONF (/etc/vzdump.conf) under a
#   marker comment; refuses when CONF already names another hook script (chain it from there).
# vzdump-hook.sh remove CONF: takes out that line, and only while it still names this file.
set -Eeuo pipefail

# Rendered by pulumi up (components/proxmox/render.ts): the storage ids whose key is checked.
GUARDED_STORAGES=""

MARKER="# backup321: the key guard of its PBS storages (pulumi up manages the next line)"

guarded() {
  local id
  for id in $GUARDED_STORAGES; do
    [ "$id" != "$1" ] || return 0
  done
  return 1
}

check_key() {
  local key
  # A dump directory or a storage backup321 does not manage: not ours to judge.
  if [ -z "${STOREID:-}" ] || ! guarded "$STOREID"; then
    return 0
  fi
  key=${B321_PVE_DIR:-/etc/pve}/priv/storage/$STOREID.enc
  if [ ! -s "$key" ]; then
    echo "backup321: $key is missing: refusing an unencrypted backup to $STOREID (re-apply its encryption key with pulumi up)" >&2
    logger -t backup321 -p user.err -- "vzdump to $STOREID refused: encryption key $key missing" || true
    exit 1
  fi
}

self_path() {
  readlink -f -- "${BASH_SOURCE[0]}"
}

install_conf() {
  local conf=$1 self current tmp
  self=$(self_path)
  [ -e "$conf" ] || : > "$conf"
  current=$(sed -n 's/^script:[[:space:]]*//p' -- "$conf" | tail -n 1)
  if [ "$current" = "$self" ]; then
    return 0
  fi
  if [ -n "$current" ]; then
    echo "backup321: $conf already sets script: $current; backup321's key guard needs its own hook there (call $current from $self, or remove that line) before pulumi up can continue" >&2
    exit 1
  fi
  tmp=$(mktemp -- "$conf.b321.XXXXXX")
  grep -vxF -- "$MARKER" "$conf" > "$tmp" || true
  printf '%s\nscript: %s\n' "$MARKER" "$self" >> "$tmp"
  chmod --reference="$conf" -- "$tmp"
  mv -f -- "$tmp" "$conf"
  echo "backup321: $conf runs $self before every backup" >&2
}

remove_conf() {
  local conf=$1 self tmp
  self=$(self_path)
  [ -e "$conf" ] || return 0
  tmp=$(mktemp -- "$conf.b321.XXXXXX")
  grep -vxF -e "$MARKER" -e "script: $self" -- "$conf" > "$tmp" || true
  chmod --reference="$conf" -- "$tmp"
  mv -f -- "$tmp" "$conf"
}

main() {
  local phase=${1:-}
  case "$phase" in
    job-init | job-start) check_key ;;
    install) install_conf "${2:?usage: $0 install CONF}" ;;
    remove) remove_conf "${2:?usage: $0 remove CONF}" ;;
    *) ;;
  esac
}

main "$@"
