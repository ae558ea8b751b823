#!/bin/bash
# restic-copy.sh ENV_FILE: copies the snapshots of FROM_URL missing from this repository (both
# locked, both disks mounted), then applies this repository's keep policy. The repository was
# created with the source's chunker parameters, so copied data deduplicates. A backup of the source
# still running delays the copy (up to COPY_LOCK_WAIT seconds) rather than losing the week.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
source "${BASH_SOURCE[0]%/*}/restic-lib.sh"

raw_size() {
  restic_run --no-lock stats --mode raw-data --json | sed -n 's/.*"total_size":\([0-9]*\).*/\1/p'
}

main() {
  b321_start "$@"
  restic_setup
  : "${FROM_URL:?FROM_URL missing}" "${FROM_PASSWORD_FILE:?FROM_PASSWORD_FILE missing}"
  b321_lock "restic-$REPO_NAME"
  b321_lock "restic-${FROM_NAME:?FROM_NAME missing}" "${COPY_LOCK_WAIT:-0}"
  restic_require_mounts
  restic_require_repo
  [ -r "$FROM_PASSWORD_FILE" ] || b321_fail "cannot read the password file $FROM_PASSWORD_FILE"
  local before after
  before=$(raw_size)
  restic_run copy --from-repo "$FROM_URL" --from-password-file "$FROM_PASSWORD_FILE" >&2 ||
    b321_fail "restic copy from $FROM_NAME to $REPO_NAME failed"
  after=$(raw_size)
  b321_set bytes "$((after - before))"
  b321_set repository_bytes "$after"
  restic_forget_prune
  restic_retire_old_keys
}

main "$@"
