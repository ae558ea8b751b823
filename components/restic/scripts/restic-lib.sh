#!/bin/bash
# Shared by the restic job scripts (sourced after common.sh). Configured by the job's env file:
#   REPO_NAME REPO_URL REPO_PASSWORD_FILE REPO_S3_CREDENTIALS REPO_CACERT REPO_MOUNT
#   FROM_NAME FROM_URL FROM_PASSWORD_FILE FROM_MOUNT  (the source of restic copy)
#   RESTIC_BIN RESTIC_CACHE RESTIC_HOST
# Secrets stay in 0600 files: the password through --password-file, the S3 keys in an AWS shared
# credentials file that restic reads itself (AWS_SHARED_CREDENTIALS_FILE names the file): no key in
# argv, in an environment (/proc/<pid>/environ, core dumps) or in the output.

RESTIC_ARGS=()

# restic_setup: checks the configuration and the secret files, builds the common restic flags.
restic_setup() {
  : "${REPO_NAME:?REPO_NAME missing}" "${REPO_URL:?REPO_URL missing}"
  : "${REPO_PASSWORD_FILE:?REPO_PASSWORD_FILE missing}"
  RESTIC_BIN=${RESTIC_BIN:-restic}
  command -v "$RESTIC_BIN" >/dev/null 2>&1 || b321_fail "restic is not installed ($RESTIC_BIN)"
  [ -r "$REPO_PASSWORD_FILE" ] || b321_fail "cannot read the password file $REPO_PASSWORD_FILE"
  if [ -n "${REPO_S3_CREDENTIALS:-}" ]; then
    [ -r "$REPO_S3_CREDENTIALS" ] || b321_fail "cannot read the S3 credentials $REPO_S3_CREDENTIALS"
    [ "$(stat -c %a -- "$REPO_S3_CREDENTIALS")" = 600 ] ||
      b321_fail "$REPO_S3_CREDENTIALS must be mode 0600 (pulumi up writes it so)"
    grep -q '^aws_secret_access_key = ' "$REPO_S3_CREDENTIALS" ||
      b321_fail "$REPO_S3_CREDENTIALS is not an AWS credentials file with a [default] key (pulumi up writes it)"
  fi
  RESTIC_ARGS=(--repo "$REPO_URL" --password-file "$REPO_PASSWORD_FILE"
    --cache-dir "${RESTIC_CACHE:-$B321_STATE/cache/restic}")
  if [ -n "${REPO_CACERT:-}" ]; then
    RESTIC_ARGS+=(--cacert "$REPO_CACERT")
  fi
}

# restic_run ARGS...: restic on this job's repository. Keys in the environment would win over the
# file (restic tries them first), so none get through.
restic_run() {
  if [ -n "${REPO_S3_CREDENTIALS:-}" ]; then
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
      AWS_SHARED_CREDENTIALS_FILE="$REPO_S3_CREDENTIALS" AWS_PROFILE=default \
      "$RESTIC_BIN" "${RESTIC_ARGS[@]}" "$@"
  else
    "$RESTIC_BIN" "${RESTIC_ARGS[@]}" "$@"
  fi
}

# restic_require_mounts: a repository (or copy source) on a disk is never touched unless mounted,
# so an unplugged USB SSD can never fill the root file system.
restic_require_mounts() {
  if [ -n "${REPO_MOUNT:-}" ]; then
    b321_require_mount "$REPO_MOUNT"
  fi
  if [ -n "${FROM_MOUNT:-}" ]; then
    b321_require_mount "$FROM_MOUNT"
  fi
}

# restic_s3_denied FILE: true when restic's error output is S3 refusing the key (AccessDenied,
# InvalidAccessKeyId): restic prints the S3 error's message ("Access Denied.", "The AWS Access Key
# Id you provided does not exist in our records.") and, depending on the call, its code.
restic_s3_denied() {
  grep -qE 'AccessDenied|Access Denied|InvalidAccessKeyId|Access Key Id you provided does not exist' -- "$1"
}

# restic_probe [denied-ok]: sets RESTIC_REPO_STATE to present or missing (or, with denied-ok,
# denied when S3 refuses the key: RESTIC_PROBE_ERROR says how); fails on anything else (wrong
# password, endpoint unreachable).
RESTIC_REPO_STATE=""
# shellcheck disable=SC2034 # read by restic-init.sh
RESTIC_PROBE_ERROR=""
# shellcheck disable=SC2120 # restic-init.sh passes denied-ok
restic_probe() {
  local err rc=0 why
  err=$(mktemp)
  restic_run cat config > /dev/null 2> "$err" || rc=$?
  if [ "$rc" -eq 0 ]; then
    RESTIC_REPO_STATE=present
  elif [ "${1:-}" = denied-ok ] && restic_s3_denied "$err"; then
    RESTIC_REPO_STATE=denied
    # shellcheck disable=SC2034 # read by restic-init.sh
    RESTIC_PROBE_ERROR=$(grep -v '^$' -- "$err" | head -n 3 | tr '\n' ' ')
  # ("The AWS Access Key Id ... does not exist" is a refused key, not a missing repository)
  elif ! restic_s3_denied "$err" &&
    grep -q 'Is there a repository at the following location' -- "$err" &&
    grep -qiE 'no such file or directory|does not exist|NoSuchKey' -- "$err"; then
    RESTIC_REPO_STATE=missing
  else
    why=$(grep -v '^$' -- "$err" | head -n 3 | tr '\n' ' ')
    rm -f -- "$err"
    b321_fail "cannot open the repository $REPO_NAME ($REPO_URL): $why"
  fi
  rm -f -- "$err"
}

# restic_require_repo: fails unless the repository exists and the password opens it.
restic_require_repo() {
  restic_probe
  [ "$RESTIC_REPO_STATE" = present ] ||
    b321_fail "repository $REPO_NAME ($REPO_URL) is not initialised (run pulumi up)"
}

restic_lock_count() {
  restic_run --no-lock list locks 2> /dev/null | grep -c . || true
}

# restic_unlock_stale: removes stale locks (crashed runs; restic keeps live ones) and warns, since
# a stale lock means an earlier run died.
restic_unlock_stale() {
  local before after
  before=$(restic_lock_count)
  [ "$before" -gt 0 ] || return 0
  restic_run unlock >&2 || b321_fail "restic unlock failed on $REPO_NAME"
  after=$(restic_lock_count)
  b321_set stale_locks_removed "$((before - after))"
  if [ "$before" -gt "$after" ]; then
    b321_warn "removed $((before - after)) stale restic lock(s) from $REPO_NAME (an earlier run died)"
  fi
  if [ "$after" -gt 0 ]; then
    b321_fail "$REPO_NAME is locked by a live restic process ($after lock(s)); not touching it"
  fi
}

# restic_forget_prune: applies the tier's keep policy per host and tag set, then prunes.
restic_forget_prune() {
  local -a keep
  read -r -a keep <<< "${FORGET_ARGS:?FORGET_ARGS missing}"
  restic_unlock_stale
  restic_run forget --group-by host,tags "${keep[@]}" --prune >&2 ||
    b321_fail "restic forget/prune failed on $REPO_NAME"
  b321_set snapshots "$(restic_run --no-lock snapshots --json | grep -o '"short_id"' | wc -l)"
}

# restic_json_field FILE KEY: a number or string field of the last summary line restic --json printed.
restic_json_field() {
  local file=$1 key=$2
  grep '"message_type":"summary"' -- "$file" | tail -n 1 |
    sed -n "s/.*\"$key\":\"\\{0,1\\}\\([^,\"}]*\\).*/\\1/p"
}

# restic_retired_keys_file: where a rotation lists the ids of the keys it replaced, one per line.
restic_retired_keys_file() {
  printf '%s\n' "$B321_STATE/restic-$REPO_NAME.retired-key"
}

# restic_retire_old_keys: after a complete snapshot made with the current password, proves the
# repository whole (restic check: every index, pack header and snapshot tree), then removes the
# keys a rotation replaced. A failed check keeps them and fails the job: the old password still
# opens the repository until the new one has made a verified backup.
restic_retire_old_keys() {
  local list id removed=0
  list=$(restic_retired_keys_file)
  [ -s "$list" ] || return 0
  restic_run check >&2 ||
    b321_fail "restic check failed on $REPO_NAME after the rotation's first backup: the old key stays"
  while read -r id; do
    [[ $id =~ ^[0-9a-f]+$ ]] || continue
    # already gone (removed by hand, or by an earlier run that died before updating the list)
    restic_run key list --json | tr '{' '\n' | grep -q "\"id\":\"$id\"" || continue
    restic_run key remove "$id" >&2 ||
      b321_fail "the old key ${id:0:8} of $REPO_NAME still opens it: remove it with restic key remove $id"
    removed=$((removed + 1))
  done < "$list"
  rm -f -- "$list"
  b321_set old_keys_removed "$removed"
  b321_log "$removed old key(s) of $REPO_NAME removed after a verified backup with the new password"
}
