#!/bin/bash
# restic-init.sh ENV_FILE: creates the repository when it does not exist yet (run by pulumi up).
# An existing repository is left alone (its password must open it). A copy target is created with
# its source's chunker parameters, so `restic copy` deduplicates.
set -Eeuo pipefail
source "${BASH_SOURCE[0]%/*}/common.sh"
source "${BASH_SOURCE[0]%/*}/restic-lib.sh"

main() {
  b321_start "$@"
  restic_setup
  b321_lock "restic-$REPO_NAME"
  restic_require_mounts
  restic_probe
  if [ "$RESTIC_REPO_STATE" = present ]; then
    b321_log "repository $REPO_NAME already exists at $REPO_URL"
    b321_set created false
    return 0
  fi
  if [ -n "${FROM_URL:-}" ]; then
    restic_run init --from-repo "$FROM_URL" --from-password-file "$FROM_PASSWORD_FILE" \
      --copy-chunker-params >&2 || b321_fail "restic init of $REPO_NAME (from $FROM_NAME) failed"
  else
    restic_run init >&2 || b321_fail "restic init of $REPO_NAME failed"
  fi
  restic_require_repo
  b321_set created true
}

main "$@"
