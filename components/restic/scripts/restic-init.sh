#!/bin/bash
# restic-init.sh ENV_FILE: creates the repository when it does not exist yet (run by pulumi up).
# An existing repository is left alone (its password must open it). A copy target is created with
# its source's chunker parameters, so `restic copy` deduplicates.
# restic-init.sh ENV_FILE rotate NEW_PASSWORD_FILE: a password rotation (pulumi up's update of the
# password file): adds a key for the new password, proves it opens the repository, installs the new
# password file, and leaves the old key to the next backup (or copy), which removes it only once a
# snapshot made with the new password has passed restic check (restic_retire_old_keys). So the file
# on disk opens the repository at every step, and the old password keeps opening it until the new
# one has proved itself. The data is never re-encrypted: restic keys wrap the same master key.
#
# On the first deploy the IAM key, its policy and the bucket are seconds old: S3 may refuse the key
# (AccessDenied, InvalidAccessKeyId) until IAM has propagated. init retries those two answers, every
# INIT_ACCESS_RETRY_SECONDS (default 10), for at most INIT_ACCESS_WAIT_SECONDS (default 300), then
# fails with S3's answer. Any other error fails at once.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind setup
source "${BASH_SOURCE[0]%/*}/restic-lib.sh"

rotate() {
  local new=$1 old_id tmp
  [ -r "$new" ] || b321_fail "cannot read the new password file $new"
  restic_probe
  if [ "$RESTIC_REPO_STATE" = missing ]; then
    b321_log "repository $REPO_NAME does not exist yet: nothing to rotate"
    return 0
  fi
  if cmp -s -- "$new" "$REPO_PASSWORD_FILE"; then
    b321_log "password of $REPO_NAME already installed"
    return 0
  fi
  old_id=$(restic_run key list --json | tr '{' '\n' | grep '"current":true' |
    sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
  [ -n "$old_id" ] || b321_fail "cannot tell which key of $REPO_NAME the current password opens"
  restic_run key add --new-password-file "$new" >&2 || b321_fail "restic key add failed on $REPO_NAME"
  RESTIC_ARGS=(--repo "$REPO_URL" --password-file "$new" "${RESTIC_ARGS[@]:4}")
  restic_run cat config > /dev/null || b321_fail "the new password does not open $REPO_NAME"
  # Listed before the file moves: a crash after it still leaves the old key to retire. Appended:
  # two rotations without a backup between them leave two old keys.
  printf '%s\n' "$old_id" >> "$(restic_retired_keys_file)"
  tmp=$(mktemp -- "$REPO_PASSWORD_FILE.b321.XXXXXX")
  cat -- "$new" > "$tmp"
  chmod 0600 -- "$tmp"
  mv -f -- "$tmp" "$REPO_PASSWORD_FILE"
  b321_set rotated true
  b321_log "password of $REPO_NAME rotated: the old key ${old_id:0:8} goes after the next verified backup"
}

# create_repository: restic init, or the copy target's init with its source's chunker parameters.
# Fails unless S3 refused the key (then returns 3, for a retry).
create_repository() {
  local err rc=0
  err=$(mktemp)
  if [ -n "${FROM_URL:-}" ]; then
    restic_run init --from-repo "$FROM_URL" --from-password-file "$FROM_PASSWORD_FILE" \
      --copy-chunker-params 2> "$err" >&2 || rc=$?
  else
    restic_run init 2> "$err" >&2 || rc=$?
  fi
  cat -- "$err" >&2
  if [ "$rc" -ne 0 ] && restic_s3_denied "$err"; then
    RESTIC_PROBE_ERROR=$(grep -v '^$' -- "$err" | head -n 3 | tr '\n' ' ')
    rm -f -- "$err"
    return 3
  fi
  rm -f -- "$err"
  [ "$rc" -eq 0 ] || {
    [ -n "${FROM_URL:-}" ] && b321_fail "restic init of $REPO_NAME (from $FROM_NAME) failed"
    b321_fail "restic init of $REPO_NAME failed"
  }
}

# init_when_allowed: probe, and init a missing repository, retrying while S3 refuses the key.
# Sets CREATED to true or false.
CREATED=false
init_when_allowed() {
  local wait=${INIT_ACCESS_WAIT_SECONDS:-300} step=${INIT_ACCESS_RETRY_SECONDS:-10} start=$SECONDS
  local rc tries=0
  [[ $wait =~ ^[0-9]+$ && $step =~ ^[0-9]+$ ]] ||
    b321_fail "INIT_ACCESS_WAIT_SECONDS and INIT_ACCESS_RETRY_SECONDS must be whole seconds"
  while :; do
    restic_probe denied-ok
    case "$RESTIC_REPO_STATE" in
      present) return 0 ;;
      missing)
        rc=0
        create_repository || rc=$?
        if [ "$rc" -eq 0 ]; then
          CREATED=true
          return 0
        fi
        ;;
    esac
    tries=$((tries + 1))
    if ((SECONDS - start + step > wait)); then
      b321_fail "S3 still refuses the key of $REPO_NAME after ${wait}s (IAM propagation takes seconds to minutes; check the user's policy and the bucket policy): $RESTIC_PROBE_ERROR"
    fi
    b321_log "S3 refused the key of $REPO_NAME (a new IAM key or policy may not have propagated yet), try $tries: retrying in ${step}s: $RESTIC_PROBE_ERROR"
    sleep "$step"
  done
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
  init_when_allowed
  if [ "$CREATED" = false ]; then
    b321_log "repository $REPO_NAME already exists at $REPO_URL"
    b321_set created false
    return 0
  fi
  restic_require_repo
  b321_set created true
}

main "$@"
