#!/bin/bash
# backup321 dump upload (seeds/004 §16.10.7, without its traps): sends the newest VERIFIED full
# backup and its manifest to the bucket's dump prefix, then proves the copy: size and sha256 from
# head-object, and the object read back and hashed. Uploads go to STANDARD: the bucket's lifecycle
# moves dumps to Glacier later, so recent dumps stay readable for restore tests (PITFALLS.md).
# A full counts only with its <file>.manifest.json (written by the full backup after it verified
# the file) whose "sha256" matches the file. Already uploaded with the same checksum: nothing sent.
# Then every binlog the shipper verified (a closed copy with its <name>.sha256 beside it, the sum
# matching; never a *.b321-partial nor the server's active binlog, which the shipper never copies)
# goes to <prefix>binlogs/<name>.zst.enc, compressed and encrypted like the fulls (the shipped copies
# are plain), so a day's changes leave the site daily without a new full. The encrypted copy is
# proved to decrypt to the verified sum before it is sent; the object carries both sums and a binlog
# whose plain sum is already there is skipped. Fulls weekly plus binlogs daily is the seed's design:
# a fresh full adds its whole size again to any chunk-deduplicating store, the binlogs a few %.
#
# Env file: OFFSITE_BUCKET OFFSITE_PREFIX OFFSITE_REGION OFFSITE_CREDENTIALS (0600 AWS credentials
# file) OFFSITE_BACKUP_DIR [OFFSITE_SSE AES256|aws:kms] [OFFSITE_KMS_KEY_ID] [OFFSITE_ENDPOINT]
# [OFFSITE_CA_BUNDLE] [OFFSITE_CHECKSUM_CALCULATION when_supported|when_required]
# [OFFSITE_READ_BACK 1|0, default 1] [OFFSITE_MAX_AGE_HOURS: warn when the newest verified full is
# older, default 192: a run that only finds last month's full has nothing new to send]
# [OFFSITE_BINLOG_DIR: the shipper's directory; binlogs are sent only when set, with
# OFFSITE_BINLOG_KEY_FILE (0600, the fulls' openssl key) and OFFSITE_BINLOG_BASENAME (mysql-bin)].
set -Eeuo pipefail
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_start "$@"

aws_opts=()

check_config() {
  local v
  for v in OFFSITE_BUCKET OFFSITE_PREFIX OFFSITE_REGION OFFSITE_CREDENTIALS OFFSITE_BACKUP_DIR; do
    [ -n "${!v:-}" ] || b321_fail "$v is missing from the env file"
  done
  [ -r "$OFFSITE_CREDENTIALS" ] || b321_fail "no credentials file at $OFFSITE_CREDENTIALS"
  [ "$(stat -c %a -- "$OFFSITE_CREDENTIALS")" = 600 ] ||
    b321_fail "$OFFSITE_CREDENTIALS must be mode 0600"
  [ -d "$OFFSITE_BACKUP_DIR" ] || b321_fail "$OFFSITE_BACKUP_DIR is not a directory"
  if [ -n "${OFFSITE_BINLOG_DIR:-}" ]; then
    [ -n "${OFFSITE_BINLOG_BASENAME:-}" ] || b321_fail "OFFSITE_BINLOG_BASENAME is missing from the env file"
    [ -s "${OFFSITE_BINLOG_KEY_FILE:-}" ] ||
      b321_fail "OFFSITE_BINLOG_KEY_FILE is missing or empty: binlogs never leave the site unencrypted"
    [ "$(stat -c %a -- "$OFFSITE_BINLOG_KEY_FILE")" = 600 ] ||
      b321_fail "$OFFSITE_BINLOG_KEY_FILE must be mode 0600"
    command -v zstd > /dev/null || b321_fail "zstd is missing (apt-get install zstd)"
  fi
  # Credentials only from the 0600 file: nothing from the environment or ~/.aws.
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
  export AWS_SHARED_CREDENTIALS_FILE=$OFFSITE_CREDENTIALS AWS_CONFIG_FILE=/dev/null
  export AWS_DEFAULT_REGION=$OFFSITE_REGION AWS_EC2_METADATA_DISABLED=true
  export AWS_REQUEST_CHECKSUM_CALCULATION=${OFFSITE_CHECKSUM_CALCULATION:-when_supported}
  aws_opts=()
  [ -z "${OFFSITE_ENDPOINT:-}" ] || aws_opts+=(--endpoint-url "$OFFSITE_ENDPOINT")
  [ -z "${OFFSITE_CA_BUNDLE:-}" ] || aws_opts+=(--ca-bundle "$OFFSITE_CA_BUNDLE")
}

# manifest_sha256 FILE: the "sha256" recorded in a manifest (64 hex digits), or nothing.
manifest_sha256() {
  sed -n 's/.*"sha256"[[:space:]]*:[[:space:]]*"\([0-9a-f]\{64\}\)".*/\1/p' -- "$1" | head -n 1
}

# newest_verified: prints the newest full that has a manifest (by the manifest's time).
newest_verified() {
  local manifest full
  while IFS= read -r manifest; do
    full=${manifest%.manifest.json}
    if [ -f "$full" ] && [ -n "$(manifest_sha256 "$manifest")" ]; then
      printf '%s\n' "$full"
      return 0
    fi
    b321_warn "skipping $manifest: no readable full or sha256 beside it"
  done < <(find "$OFFSITE_BACKUP_DIR" -maxdepth 1 -type f -name '*.manifest.json' \
    -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
  return 1
}

# head_object KEY: sets REMOTE to "<size> <sha256 metadata> <storage class> <plain-sha256
# metadata>", or "" when the object is not there; any other error (access denied, TLS, network)
# fails the run.
REMOTE=""
head_object() {
  local err
  err=$(mktemp)
  if REMOTE=$(aws "${aws_opts[@]}" s3api head-object --bucket "$OFFSITE_BUCKET" --key "$1" \
    --query "join(' ', [to_string(ContentLength), Metadata.sha256 || 'none', StorageClass || 'STANDARD', Metadata.\"plain-sha256\" || 'none'])" \
    --output text 2> "$err"); then
    rm -f -- "$err"
    return 0
  fi
  REMOTE=""
  if grep -q -e '(404)' -e 'Not Found' -- "$err"; then
    rm -f -- "$err"
    return 0
  fi
  local why
  why=$(tail -n 1 -- "$err")
  rm -f -- "$err"
  b321_fail "cannot check s3://$OFFSITE_BUCKET/$1: $why"
}

# upload FILE KEY SHA256 [PLAIN_SHA256]: puts the file unless the same bytes are already there
# (checked by the caller for binlogs), then proves it.
upload() {
  local file=$1 key=$2 sum=$3 plain=${4:-} size sse=(--sse "${OFFSITE_SSE:-AES256}")
  local meta="sha256=$sum"
  [ -z "$plain" ] || meta+=",plain-sha256=$plain"
  size=$(stat -c %s -- "$file")
  if [ -z "$plain" ]; then
    head_object "$key"
    if [[ $REMOTE == "$size $sum "* ]]; then
      b321_log "s3://$OFFSITE_BUCKET/$key is already there ($size bytes, sha256 $sum)"
      return 1
    fi
  fi
  [ "${OFFSITE_SSE:-AES256}" != aws:kms ] || [ -z "${OFFSITE_KMS_KEY_ID:-}" ] ||
    sse+=(--sse-kms-key-id "$OFFSITE_KMS_KEY_ID")
  aws "${aws_opts[@]}" s3 cp --only-show-errors "${sse[@]}" --storage-class STANDARD \
    --metadata "$meta" -- "$file" "s3://$OFFSITE_BUCKET/$key" ||
    b321_fail "upload of $file to s3://$OFFSITE_BUCKET/$key failed"
  head_object "$key"
  [ "$REMOTE" = "$size $sum STANDARD ${plain:-none}" ] ||
    b321_fail "s3://$OFFSITE_BUCKET/$key after upload is '$REMOTE', expected '$size $sum STANDARD ${plain:-none}'"
  if [ "${OFFSITE_READ_BACK:-1}" = 1 ]; then
    local back
    back=$(aws "${aws_opts[@]}" s3 cp --only-show-errors -- "s3://$OFFSITE_BUCKET/$key" - | sha256sum | cut -d' ' -f1) ||
      b321_fail "could not read s3://$OFFSITE_BUCKET/$key back"
    [ "$back" = "$sum" ] ||
      b321_fail "s3://$OFFSITE_BUCKET/$key read back has sha256 $back, expected $sum"
  fi
  return 0
}

WORK=""
upload_cleanup() {
  [ -z "$WORK" ] || rm -rf -- "$WORK"
}

# upload_binlogs: every verified shipped binlog not yet in the bucket, oldest first. Sets SENT to
# the bytes sent and counts binlogs in the status.
SENT=0
upload_binlogs() {
  local f name plain actual key enc esum back uploaded=0 present=0
  [ -d "$OFFSITE_BINLOG_DIR" ] || b321_fail "$OFFSITE_BINLOG_DIR is not a directory"
  WORK=$(mktemp -d)
  for f in "$OFFSITE_BINLOG_DIR/$OFFSITE_BINLOG_BASENAME".[0-9]*; do
    name=${f##*/}
    [[ $name =~ \.[0-9]+$ ]] && [ -f "$f" ] || continue
    # No .sha256 yet: the shipper has not verified it (it writes the sum just before the rename).
    [ -f "$f.sha256" ] || continue
    # The shipper's prune may remove an old one (already uploaded) while this runs: skip it then.
    if ! plain=$(sed -n '1s/^\([0-9a-f]\{64\}\)  .*/\1/p' -- "$f.sha256") ||
      ! actual=$(b321_sha256 "$f"); then
      [ -e "$f" ] && [ -e "$f.sha256" ] || continue
      b321_fail "cannot read the shipped binlog $f"
    fi
    [ -n "$plain" ] || b321_fail "$f.sha256 holds no sha256"
    [ "$actual" = "$plain" ] ||
      b321_fail "shipped binlog $f has sha256 $actual but the shipper verified $plain (changed since it was verified)"
    key=${OFFSITE_PREFIX}binlogs/$name.zst.enc
    head_object "$key"
    # There with the same plain sum, in whatever storage class the lifecycle moved it to.
    if [[ $REMOTE == *" $plain" ]]; then
      present=$((present + 1))
      continue
    fi
    enc=$WORK/$name.zst.enc
    zstd -q -c -- "$f" | openssl enc -aes-256-cbc -salt -pbkdf2 -pass "file:$OFFSITE_BINLOG_KEY_FILE" > "$enc" ||
      b321_fail "could not compress and encrypt $f"
    back=$(openssl enc -aes-256-cbc -d -pbkdf2 -pass "file:$OFFSITE_BINLOG_KEY_FILE" -in "$enc" | zstd -d -q -c | sha256sum | cut -d' ' -f1)
    [ "$back" = "$plain" ] || b321_fail "the encrypted copy of $f does not decrypt to the verified binlog"
    esum=$(b321_sha256 "$enc")
    upload "$enc" "$key" "$esum" "$plain"
    SENT=$((SENT + $(stat -c %s -- "$enc")))
    uploaded=$((uploaded + 1))
    rm -f -- "$enc"
  done
  b321_set binlogs_uploaded "$uploaded"
  b321_set binlogs_present "$present"
  b321_log "$uploaded binlog(s) uploaded to s3://$OFFSITE_BUCKET/${OFFSITE_PREFIX}binlogs/, $present already there"
}

main() {
  local full manifest sum actual key sent=0 msize
  check_config
  command -v aws > /dev/null || b321_fail "the aws CLI is missing (apt-get install awscli)"
  b321_lock offsite-upload
  b321_cleanup upload_cleanup
  full=$(newest_verified) || b321_fail "no verified full backup in $OFFSITE_BACKUP_DIR (a full counts once its .manifest.json is written)"
  manifest=$full.manifest.json
  local age_hours=$((($(date +%s) - $(stat -c %Y -- "$manifest")) / 3600))
  b321_set full_age_hours "$age_hours"
  [ "$age_hours" -le "${OFFSITE_MAX_AGE_HOURS:-192}" ] ||
    b321_warn "the newest verified full, ${full##*/}, is $age_hours h old (more than ${OFFSITE_MAX_AGE_HOURS:-192} h): are fulls still running?"
  sum=$(manifest_sha256 "$manifest")
  actual=$(b321_sha256 "$full")
  [ "$actual" = "$sum" ] ||
    b321_fail "$full has sha256 $actual but its manifest says $sum (changed since it was verified)"
  key=${OFFSITE_PREFIX}${full##*/}
  b321_set file "$full"
  b321_set key "$key"
  if upload "$full" "$key" "$sum"; then
    sent=$(stat -c %s -- "$full")
  fi
  if upload "$manifest" "$key.manifest.json" "$(b321_sha256 "$manifest")"; then
    msize=$(stat -c %s -- "$manifest")
    sent=$((sent + msize))
  fi
  b321_set sha256 "$sum"
  b321_log "s3://$OFFSITE_BUCKET/$key verified"
  [ -z "${OFFSITE_BINLOG_DIR:-}" ] || upload_binlogs
  b321_set bytes "$((sent + SENT))"
  b321_log "$((sent + SENT)) bytes sent"
}

main
