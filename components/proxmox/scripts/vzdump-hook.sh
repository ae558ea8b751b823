#!/bin/bash
# vzdump-hook.sh PHASE [MODE VMID]: the hook script of backup321's vzdump jobs (job option
# `script`). At job-start it refuses to run the job when the target PBS storage has no encryption
# key on this node (/etc/pve/priv/storage/<storage>.enc): without it PVE would back up unencrypted
# without a word. vzdump aborts the job (and mails its failure) when the hook exits non-zero.
# vzdump sets STOREID to the job's storage. Other phases pass.
set -Eeuo pipefail

main() {
  local phase=${1:-} key
  case "$phase" in
    job-init | job-start)
      [ -n "${STOREID:-}" ] || { echo "backup321: STOREID is not set by vzdump" >&2; exit 1; }
      key=${B321_PVE_DIR:-/etc/pve}/priv/storage/$STOREID.enc
      if [ ! -s "$key" ]; then
        echo "backup321: $key is missing: refusing an unencrypted backup to $STOREID (re-apply its encryption key with pulumi up)" >&2
        logger -t backup321 -p user.err -- "vzdump to $STOREID refused: encryption key $key missing" || true
        exit 1
      fi
      ;;
    *) ;;
  esac
}

main "$@"
