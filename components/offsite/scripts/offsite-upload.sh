#!/bin/bash
# backup321 dump upload (source MariaDB §16.10.7, without its traps): sends the newest VERIFIED full
# backup and its manifest (and the newest increment of it, with its own) to the bucket's dump
# prefix, then proves the copy: its size from
# head-object, and the object read back and hashed (the sha256 in its metadata is only what this
# job wrote there). An object found already there counts once this host has read it back: a marker
# per key in <state>/offsite-verified/ records that read-back, and a key without one is read again. Uploads go to STANDARD: the bucket's lifecycle
# moves dumps to Glacier later, so recent dumps stay readable for restore tests (docs/pitfalls.md).
# A full counts only with its <file>.manifest.json (written by the full backup after it verified
# the file) whose "sha256" matches the file. Already uploaded with the same checksum: nothing sent.
# Then every binlog the shipper verified (its compressed and encrypted copy, named by the binlog's
# identity, with the <copy>.sha256 the shipper wrote after proving it decrypts to the binlog; never
# a *.b321-partial) goes as it is to <prefix>binlogs/<copy name>, so a day's changes leave the site
# daily without a new full, and this host needs no key to read them. An object already there with
# the same bytes is proved and skipped; one with other bytes is never overwritten: the run fails.
# The binlog stream's sealed files (mariadb-stream.sh, on the stream host: sealed the same way, with
# the same <copy>.sha256; never its live/ files nor a *.b321-partial) go the same way to
# <prefix>binlog-stream/<copy name>, so the bucket's dump lifecycle expires them with the fulls.
# On a host with no fulls (the stream host), OFFSITE_BACKUP_DIR is left out and only binlogs go.
# Fulls weekly plus binlogs daily is the seed's design: a fresh full adds its whole size again to any
# chunk-deduplicating store, the binlogs a few %.
# With OFFSITE_LOCK_MODE and OFFSITE_LOCK_DAYS (the bucket has Object Lock), every object this
# writes or finds already there is locked: its retention, set on the exact version head-object
# proved, must reach OFFSITE_LOCK_DAYS from now (rounded up to midnight UTC); a shorter or missing
# one is set (objects uploaded before the lock was on), then read back with get-object-retention.
# The writer can lengthen a retention but never shorten it nor change its mode (it has no
# s3:BypassGovernanceRetention), so an existing mode is kept.
#
# Env file: OFFSITE_BUCKET OFFSITE_PREFIX OFFSITE_REGION OFFSITE_CREDENTIALS (0600 AWS credentials
# file) [OFFSITE_BACKUP_DIR: the fulls; at least one of it, OFFSITE_BINLOG_DIR and OFFSITE_STREAM_DIR]
# [OFFSITE_SSE AES256|aws:kms] [OFFSITE_KMS_KEY_ID] [OFFSITE_ENDPOINT]
# [OFFSITE_CA_BUNDLE] [OFFSITE_CHECKSUM_CALCULATION when_supported|when_required]
# [OFFSITE_READ_BACK 1|0, default 1] [OFFSITE_MAX_AGE_HOURS: warn when the newest verified full is
# older, default 192: a run that only finds last month's full has nothing new to send]
# [OFFSITE_BINLOG_DIR: the shipper's directory; binlogs are sent only when set, with
# OFFSITE_BINLOG_BASENAME (mysql-bin)]
# [OFFSITE_STREAM_DIR: the binlog stream's directory; its sealed files are sent only when set, with
# OFFSITE_BINLOG_BASENAME]
# [OFFSITE_LOCK_MODE GOVERNANCE|COMPLIANCE with OFFSITE_LOCK_DAYS: Object Lock retention].
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_start "$@"


check_config() {
  local v
  for v in OFFSITE_BUCKET OFFSITE_PREFIX OFFSITE_REGION OFFSITE_CREDENTIALS; do
    [ -n "${!v:-}" ] || b321_fail "$v is missing from the env file"
  done
  [ -n "${OFFSITE_BACKUP_DIR:-}${OFFSITE_BINLOG_DIR:-}${OFFSITE_STREAM_DIR:-}" ] ||
    b321_fail "the env file names nothing to send: OFFSITE_BACKUP_DIR, OFFSITE_BINLOG_DIR or OFFSITE_STREAM_DIR"
  [ -r "$OFFSITE_CREDENTIALS" ] || b321_fail "no credentials file at $OFFSITE_CREDENTIALS"
  [ "$(stat -c %a -- "$OFFSITE_CREDENTIALS")" = 600 ] ||
    b321_fail "$OFFSITE_CREDENTIALS must be mode 0600"
  [ -z "${OFFSITE_BACKUP_DIR:-}" ] || [ -d "$OFFSITE_BACKUP_DIR" ] ||
    b321_fail "$OFFSITE_BACKUP_DIR is not a directory"
  if [ -n "${OFFSITE_BINLOG_DIR:-}${OFFSITE_STREAM_DIR:-}" ]; then
    [ -n "${OFFSITE_BINLOG_BASENAME:-}" ] || b321_fail "OFFSITE_BINLOG_BASENAME is missing from the env file"
  fi
  if [ -n "${OFFSITE_LOCK_MODE:-}${OFFSITE_LOCK_DAYS:-}" ]; then
    [[ ${OFFSITE_LOCK_MODE:-} =~ ^(GOVERNANCE|COMPLIANCE)$ ]] ||
      b321_fail "OFFSITE_LOCK_MODE must be GOVERNANCE or COMPLIANCE, not '${OFFSITE_LOCK_MODE:-}'"
    [[ ${OFFSITE_LOCK_DAYS:-} =~ ^[1-9][0-9]*$ ]] ||
      b321_fail "OFFSITE_LOCK_DAYS must be a positive number of days, not '${OFFSITE_LOCK_DAYS:-}'"
  fi
  b321_aws_env "$OFFSITE_CREDENTIALS" "$OFFSITE_REGION" "${OFFSITE_ENDPOINT:-}" \
    "${OFFSITE_CA_BUNDLE:-}" "${OFFSITE_CHECKSUM_CALCULATION:-}"
}

# manifest_sha256 FILE: the "sha256" recorded in a manifest (64 hex digits), or nothing.
manifest_sha256() {
  sed -n 's/.*"sha256"[[:space:]]*:[[:space:]]*"\([0-9a-f]\{64\}\)".*/\1/p' -- "$1" | head -n 1
}

# newest_verified [KIND [FULL]]: prints the newest full (KIND incr: increment, of the full named
# FULL) that has a manifest (by the manifest's time).
newest_verified() {
  local kind=${1:-full} of=${2:-}
  local manifest full
  while IFS= read -r manifest; do
    full=${manifest%.manifest.json}
    [ -z "$of" ] || grep -qF -- "\"base_full\": \"$of\"" "$manifest" || continue
    if [ -f "$full" ] && [ -n "$(manifest_sha256 "$manifest")" ]; then
      printf '%s\n' "$full"
      return 0
    fi
    b321_warn "skipping $manifest: no readable full or sha256 beside it"
  done < <(find "$OFFSITE_BACKUP_DIR" -maxdepth 1 -type f -name "*_${kind}_*.manifest.json" \
    -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
  return 1
}

# head_object KEY: sets REMOTE to "<size> <sha256 metadata> <storage class>" and REMOTE_VERSION to the current version's id ("null" without versioning), or both
# to "" when the object is not there; any other error (access denied, TLS, network) fails the run.
REMOTE=""
REMOTE_VERSION=""
HEAD_FORBIDDEN=0
head_object() {
  local err out
  err=$(mktemp)
  if out=$(aws "${B321_AWS_OPTS[@]}" s3api head-object --bucket "$OFFSITE_BUCKET" --key "$1" \
    --query "join(' ', [to_string(ContentLength), Metadata.sha256 || 'none', StorageClass || 'STANDARD', VersionId || 'null'])" \
    --output text 2> "$err"); then
    rm -f -- "$err"
    REMOTE=${out% *}
    REMOTE_VERSION=${out##* }
    return 0
  fi
  REMOTE=""
  REMOTE_VERSION=""
  if grep -q -e '(404)' -e 'Not Found' -- "$err"; then
    rm -f -- "$err"
    return 0
  fi
  # S3 answers 403, not 404, for a missing key to a writer that cannot list it: taken as absent,
  # and the upload that follows proves (or refutes) the writer's access.
  if grep -q -e '(403)' -e 'Forbidden' -- "$err"; then
    rm -f -- "$err"
    HEAD_FORBIDDEN=1
    b321_log "s3://$OFFSITE_BUCKET/$1: HEAD forbidden, taken as absent"
    return 0
  fi
  local why
  why=$(tail -n 1 -- "$err")
  rm -f -- "$err"
  b321_fail "cannot check s3://$OFFSITE_BUCKET/$1: $why"
}

LOCK_UNTIL=""
LOCK_SET=0
LOCK_PROVEN=0
LOCKED_UNTIL=""

# lock_until: the retain-until date every object must reach, OFFSITE_LOCK_DAYS from now rounded
# up to midnight UTC (so the runs of one day ask for the same date and find it already set).
lock_until() {
  local t=$(($(date -u +%s) + OFFSITE_LOCK_DAYS * 86400))
  date -u -d "@$(((t + 86399) / 86400 * 86400))" +%Y-%m-%dT%H:%M:%SZ
}

# get_retention KEY VERSION: sets RETENTION to "<mode> <retain-until>" of that version, or "" when
# it has none (NoSuchObjectLockConfiguration); any other error fails the run.
RETENTION=""
get_retention() {
  local err out why
  err=$(mktemp)
  if out=$(aws "${B321_AWS_OPTS[@]}" s3api get-object-retention --bucket "$OFFSITE_BUCKET" \
    --key "$1" --version-id "$2" --query "[Retention.Mode, Retention.RetainUntilDate]" \
    --output text 2> "$err"); then
    rm -f -- "$err"
    read -r RETENTION <<< "$out"
    RETENTION=${RETENTION//$'\t'/ }
    return 0
  fi
  RETENTION=""
  if grep -q -e NoSuchObjectLockConfiguration -- "$err"; then
    rm -f -- "$err"
    return 0
  fi
  why=$(grep -v '^$' -- "$err" | tail -n 1)
  rm -f -- "$err"
  b321_fail "cannot read the retention of s3://$OFFSITE_BUCKET/$1 (version $2): $why"
}

# retention_reaches: does RETENTION hold the object at least until LOCK_UNTIL?
retention_reaches() {
  local until=${RETENTION#* } epoch
  [ -n "$RETENTION" ] || return 1
  epoch=$(date -u -d "$until" +%s 2> /dev/null) || return 1
  [ "$epoch" -ge "$(date -u -d "$LOCK_UNTIL" +%s)" ]
}

# lock_object KEY VERSION: Object Lock retention on that version (the one head_object proved) until
# at least LOCK_UNTIL, set when missing or shorter, then proved by reading it back. Sets
# LOCKED_UNTIL to the date read back. Nothing without OFFSITE_LOCK_MODE.
lock_object() {
  local key=$1 version=$2 mode=${OFFSITE_LOCK_MODE:-} err why
  [ -n "${OFFSITE_LOCK_MODE:-}" ] || return 0
  { [ -n "$version" ] && [ "$version" != null ] && [ "$version" != None ]; } ||
    b321_fail "s3://$OFFSITE_BUCKET/$key has no version id, so it cannot be locked (is versioning on?)"
  get_retention "$key" "$version"
  if ! retention_reaches; then
    # the writer cannot change a retention's mode (that needs s3:BypassGovernanceRetention)
    [ -z "$RETENTION" ] || mode=${RETENTION%% *}
    err=$(mktemp)
    if ! aws "${B321_AWS_OPTS[@]}" s3api put-object-retention --bucket "$OFFSITE_BUCKET" --key "$key" \
      --version-id "$version" --retention "Mode=$mode,RetainUntilDate=$LOCK_UNTIL" > /dev/null 2> "$err"; then
      why=$(grep -v '^$' -- "$err" | tail -n 1)
      rm -f -- "$err"
      b321_fail "could not lock s3://$OFFSITE_BUCKET/$key (version $version) in $mode until $LOCK_UNTIL: $why"
    fi
    rm -f -- "$err"
    LOCK_SET=$((LOCK_SET + 1))
    get_retention "$key" "$version"
    retention_reaches ||
      b321_fail "s3://$OFFSITE_BUCKET/$key (version $version) reads back retention '${RETENTION:-none}' after locking, expected $mode until $LOCK_UNTIL or later"
  fi
  mode=${RETENTION%% *}
  [ "$mode" = "$OFFSITE_LOCK_MODE" ] || [ "$mode" = COMPLIANCE ] ||
    b321_warn "s3://$OFFSITE_BUCKET/$key is locked in $mode, not $OFFSITE_LOCK_MODE: only a user with s3:BypassGovernanceRetention can change its mode"
  LOCK_PROVEN=$((LOCK_PROVEN + 1))
  LOCKED_UNTIL=$(date -u -d "${RETENTION#* }" +%Y-%m-%dT%H:%M:%SZ)
}

# read_back KEY SHA256 SIZE VERSION: downloads the object and hashes it, unless this host already
# did for that version (its marker in VERIFIED_DIR); then records the marker. OFFSITE_READ_BACK=0
# turns read-backs off (each object is then proven by its HEAD alone).
VERIFIED_DIR=""
READ_BACK=0
read_back() {
  local key=$1 sum=$2 size=$3 version=$4 marker back
  [ "${OFFSITE_READ_BACK:-1}" = 1 ] || return 0
  marker=$VERIFIED_DIR/$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
  [ "$(cat -- "$marker" 2>/dev/null)" != "$key $size $sum $version" ] || return 0
  back=$(aws "${B321_AWS_OPTS[@]}" s3 cp --only-show-errors -- "s3://$OFFSITE_BUCKET/$key" - | sha256sum | cut -d' ' -f1) ||
    b321_fail "could not read s3://$OFFSITE_BUCKET/$key back"
  [ "$back" = "$sum" ] ||
    b321_fail "s3://$OFFSITE_BUCKET/$key read back has sha256 $back, expected $sum (the object's bytes differ from what was uploaded)"
  READ_BACK=$((READ_BACK + 1))
  printf '%s\n' "$key $size $sum $version" | b321_replace "$marker" ||
    b321_fail "could not record the read-back of $key in $marker"
}

# upload FILE KEY SHA256: puts the file unless the same bytes are already there, then proves it;
# returns 1 when they were. An object of that key with other bytes is never overwritten (a key
# names one full, manifest or binlog identity, so one of the two is not what it claims): the run
# fails naming both.
upload() {
  local file=$1 key=$2 sum=$3 size sse=(--sse "${OFFSITE_SSE:-AES256}")
  size=$(stat -c %s -- "$file")
  head_object "$key"
  if [[ $REMOTE == "$size $sum "* ]]; then
    b321_log "s3://$OFFSITE_BUCKET/$key is already there ($size bytes, sha256 $sum)"
    read_back "$key" "$sum" "$size" "$REMOTE_VERSION"
    lock_object "$key" "$REMOTE_VERSION"
    return 1
  fi
  [ -z "$REMOTE" ] ||
    b321_fail "s3://$OFFSITE_BUCKET/$key exists with other bytes (size, sha256 and class: $REMOTE) than $file ($size, $sum): it is never overwritten; compare the two, keep the good one, and remove the other by hand"
  [ "${OFFSITE_SSE:-AES256}" != aws:kms ] || [ -z "${OFFSITE_KMS_KEY_ID:-}" ] ||
    sse+=(--sse-kms-key-id "$OFFSITE_KMS_KEY_ID")
  aws "${B321_AWS_OPTS[@]}" s3 cp --only-show-errors "${sse[@]}" --storage-class STANDARD \
    --metadata "sha256=$sum" -- "$file" "s3://$OFFSITE_BUCKET/$key" ||
    b321_fail "upload of $file to s3://$OFFSITE_BUCKET/$key failed$([ "$HEAD_FORBIDDEN" = 0 ] || echo " (and its HEAD was forbidden: check the writer's key and policy)")"
  head_object "$key"
  [ "$REMOTE" = "$size $sum STANDARD" ] ||
    b321_fail "s3://$OFFSITE_BUCKET/$key after upload is '$REMOTE', expected '$size $sum STANDARD'"
  read_back "$key" "$sum" "$size" "$REMOTE_VERSION"
  lock_object "$key" "$REMOTE_VERSION"
  return 0
}


# note_binlog_lock: counts a proven binlog lock and keeps the earliest date (upload_binlogs' locals).
note_binlog_lock() {
  [ -n "${OFFSITE_LOCK_MODE:-}" ] || return 0
  locked=$((locked + 1))
  if [ -z "$earliest" ] || [ "$(date -u -d "$LOCKED_UNTIL" +%s)" -lt "$(date -u -d "$earliest" +%s)" ]; then
    earliest=$LOCKED_UNTIL
  fi
}

# upload_binlogs DIR FOLDER FIELD WHAT WHO: every sealed binlog in DIR (the shipper's copies, or the
# stream's sealed files: both written by mdb_seal_binlog, <copy> then <copy>.sha256) not yet in the
# bucket, oldest first, to <prefix>FOLDER/<copy name>. Adds the bytes sent to SENT and counts them in
# the status as FIELD_uploaded, FIELD_present (FIELD_locked, FIELD_locked_until); WHAT and WHO name
# the copies and their writer in messages ("shipped" and "shipper", "streamed" and "stream").
SENT=0
upload_binlogs() {
  local dir=$1 folder=$2 field=$3 what=$4 who=$5
  local f name sum actual key uploaded=0 present=0 locked=0 earliest=""
  [ -d "$dir" ] || b321_fail "$dir is not a directory"
  for f in "$dir/$OFFSITE_BINLOG_BASENAME".*.zst.enc; do
    name=${f##*/}
    { b321_binlog_stamp "$name" >/dev/null && [ -f "$f" ]; } || continue
    # No .sha256 yet: the $who has not verified it (it writes the sum just before the rename).
    [ -f "$f.sha256" ] || continue
    # The $who's prune may remove an old one (already uploaded) while this runs: skip it then.
    if ! sum=$(sed -n '1s/^\([0-9a-f]\{64\}\)  .*/\1/p' -- "$f.sha256") ||
      ! actual=$(b321_sha256 "$f"); then
      { [ -e "$f" ] && [ -e "$f.sha256" ]; } || continue
      b321_fail "cannot read the $what binlog $f"
    fi
    [ -n "$sum" ] || b321_fail "$f.sha256 holds no sha256"
    [ "$actual" = "$sum" ] ||
      b321_fail "$what binlog $f has sha256 $actual but the $who verified $sum (changed since it was verified)"
    key=${OFFSITE_PREFIX}$folder/$name
    if upload "$f" "$key" "$sum"; then
      SENT=$((SENT + $(stat -c %s -- "$f")))
      uploaded=$((uploaded + 1))
    else
      present=$((present + 1))
    fi
    note_binlog_lock
  done
  b321_set "${field}_uploaded" "$uploaded"
  b321_set "${field}_present" "$present"
  if [ -n "${OFFSITE_LOCK_MODE:-}" ]; then
    b321_set "${field}_locked" "$locked"
    [ -z "$earliest" ] || b321_set "${field}_locked_until" "$earliest"
  fi
  b321_log "$uploaded $what binlog(s) uploaded to s3://$OFFSITE_BUCKET/${OFFSITE_PREFIX}$folder/, $present already there"
}

# upload_backup FILE: FILE (a verified full or increment) and then its manifest to the dump prefix,
# each proved. The file's sha256 must still be its manifest's. Adds the bytes sent to SENT; sets
# BACKUP_SHA and, with a lock, FILE_LOCKED_UNTIL and MANIFEST_LOCKED_UNTIL.
BACKUP_SHA=""
FILE_LOCKED_UNTIL=""
MANIFEST_LOCKED_UNTIL=""
upload_backup() {
  local file=$1 manifest=$1.manifest.json actual msize key
  BACKUP_SHA=$(manifest_sha256 "$manifest")
  actual=$(b321_sha256 "$file")
  [ "$actual" = "$BACKUP_SHA" ] ||
    b321_fail "$file has sha256 $actual but its manifest says $BACKUP_SHA (changed since it was verified)"
  key=${OFFSITE_PREFIX}${file##*/}
  if upload "$file" "$key" "$BACKUP_SHA"; then
    SENT=$((SENT + $(stat -c %s -- "$file")))
  fi
  FILE_LOCKED_UNTIL=${LOCKED_UNTIL:-}
  if upload "$manifest" "$key.manifest.json" "$(b321_sha256 "$manifest")"; then
    msize=$(stat -c %s -- "$manifest")
    SENT=$((SENT + msize))
  fi
  MANIFEST_LOCKED_UNTIL=${LOCKED_UNTIL:-}
  b321_log "s3://$OFFSITE_BUCKET/$key verified"
}

# upload_full: the newest verified full and its manifest, then the full's newest increment with
# its own: with the full, it is all a restore reads (each holds the changes since the full), and
# the older ones went on the days they were new.
upload_full() {
  local full manifest incr
  full=$(newest_verified) || b321_fail "no verified full backup in $OFFSITE_BACKUP_DIR (a full counts once its .manifest.json is written)"
  manifest=$full.manifest.json
  local age_hours=$((($(date +%s) - $(stat -c %Y -- "$manifest")) / 3600))
  b321_set full_age_hours "$age_hours"
  [ "$age_hours" -le "${OFFSITE_MAX_AGE_HOURS:-192}" ] ||
    b321_warn "the newest verified full, ${full##*/}, is $age_hours h old (more than ${OFFSITE_MAX_AGE_HOURS:-192} h): are fulls still running?"
  b321_set file "$full"
  b321_set key "${OFFSITE_PREFIX}${full##*/}"
  upload_backup "$full"
  if [ -n "${OFFSITE_LOCK_MODE:-}" ]; then
    b321_set full_locked_until "$FILE_LOCKED_UNTIL"
    b321_set manifest_locked_until "$MANIFEST_LOCKED_UNTIL"
  fi
  b321_set sha256 "$BACKUP_SHA"
  if incr=$(newest_verified incr "${full##*/}"); then
    upload_backup "$incr"
    b321_set increment "$incr"
  fi
}

main() {
  check_config
  command -v aws > /dev/null || b321_fail "the aws CLI is missing (apt-get install awscli)"
  b321_lock offsite-upload
  VERIFIED_DIR=$B321_STATE/offsite-verified
  mkdir -p -- "$VERIFIED_DIR"
  if [ -n "${OFFSITE_LOCK_MODE:-}" ]; then
    LOCK_UNTIL=$(lock_until)
    b321_set lock_mode "$OFFSITE_LOCK_MODE"
    b321_set lock_until "$LOCK_UNTIL"
  fi
  [ -z "${OFFSITE_BACKUP_DIR:-}" ] || upload_full
  [ -z "${OFFSITE_BINLOG_DIR:-}" ] || upload_binlogs "$OFFSITE_BINLOG_DIR" binlogs binlogs shipped shipper
  [ -z "${OFFSITE_STREAM_DIR:-}" ] || upload_binlogs "$OFFSITE_STREAM_DIR" binlog-stream stream streamed stream
  if [ -n "${OFFSITE_LOCK_MODE:-}" ]; then
    b321_set lock_set "$LOCK_SET"
    b321_set lock_proven "$LOCK_PROVEN"
    b321_log "$LOCK_PROVEN object(s) locked in $OFFSITE_LOCK_MODE until $LOCK_UNTIL or later ($LOCK_SET set by this run)"
  fi
  b321_set bytes "$SENT"
  b321_set read_back "$READ_BACK"
  b321_log "$SENT bytes sent, $READ_BACK object(s) read back"
}

main
