#!/bin/bash
# restic-init.sh ENV_FILE: creates the repository when it does not exist yet (run by pulumi up).
# An existing repository is left alone (its password must open it). A copy target is created with
# its source's chunker parameters, so `restic copy` deduplicates.
# restic-init.sh ENV_FILE rotate NEW_PASSWORD_FILE: a password rotation (pulumi up's update of the
# password file): adds a key for the new password, proves it opens the repository, installs the new
# password file, and only then removes the old key, so the file on disk opens the repository at
# every step. The data is never re-encrypted: restic keys wrap the same master key. A key whose
# removal failed is remembered and removed by the next rotation run.
set -Eeuo pipefail
source "${BASH_SOURCE[0]%/*}/common.sh"
source "${BASH_SOURCE[0]%/*}/restic-lib.sh"

# retire_pending: removes the old key a previous rotation could not remove.
retire_pending() {
  local pending=$B321_STATE/restic-$REPO_NAME.retired-key id
  [ -s "$pending" ] || return 0
  id=$(cat "$pending")
  if restic_run key list --json | tr '{' '\n' | grep "\"id\":\"$id\"" | grep -q '"current":false'; then
    restic_run key remove "$id" >&2 ||
      b321_fail "the old key ${id:0:8} of $REPO_NAME still opens it: remove it with restic key remove $id"
  fi
  rm -f -- "$pending"
  b321_log "old key ${id:0:8} of $REPO_NAME removed"
}

rotate() {
  local new=$1 old_id tmp
  [ -r "$new" ] || b321_fail "cannot read the new password file $new"
  restic_probe
  if [ "$RESTIC_REPO_STATE" = missing ]; then
    b321_log "repository $REPO_NAME does not exist yet: nothing to rotate"
    return 0
  fi
  if cmp -s -- "$new" "$REPO_PASSWORD_FILE"; then
    retire_pending
    return 0
  fi
  old_id=$(restic_run key list --json | tr '{' '\n' | grep '"current":true' |
    sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
  [ -n "$old_id" ] || b321_fail "cannot tell which key of $REPO_NAME the current password opens"
  restic_run key add --new-password-file "$new" >&2 || b321_fail "restic key add failed on $REPO_NAME"
  RESTIC_ARGS=(--repo "$REPO_URL" --password-file "$new" "${RESTIC_ARGS[@]:4}")
  restic_run cat config > /dev/null || b321_fail "the new password does not open $REPO_NAME"
  # From here the new password is the one on disk: a crash leaves a file that opens the repository.
  printf '%s\n' "$old_id" > "$B321_STATE/restic-$REPO_NAME.retired-key"
  tmp=$(mktemp -- "$REPO_PASSWORD_FILE.b321.XXXXXX")
  cat -- "$new" > "$tmp"
  chmod 0600 -- "$tmp"
  mv -f -- "$tmp" "$REPO_PASSWORD_FILE"
  b321_set rotated true
  retire_pending
  b321_log "password of $REPO_NAME rotated (old key ${old_id:0:8} removed)"
}

main() {
  b321_start "$1"
  if [ "${2:-}" = rotate ]; then
    restic_setup
    b321_lock "restic-$REPO_NAME"
    restic_require_mounts
    rotate "${3:?usage: restic-init.sh ENV_FILE rotate NEW_PASSWORD_FILE}"
    return 0
  fi
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
