#!/bin/bash
# offsite-drill.sh ENV_FILE: the restore drill of the offsite dumps (an upload read back once is not
# a restore). It finds the newest full under the bucket's dump prefix, downloads it and the
# manifest uploaded with it into scratch space with the dump writer's key (read only: get and list,
# which that key already has), and checks them against what was recorded:
#   - the manifest object's bytes have the sha256 the upload recorded in its metadata;
#   - the manifest names this full, says verified, and was encrypted with the stack's key;
#   - the full has the size and sha256 its manifest recorded (the MariaDB full job's) and the sha256
#     the upload recorded in its metadata;
# then decrypts and decompresses it and prepares it as a restore would, short of loading it into a
# server: a physical full is extracted (mbstream) and `mariadb-backup --prepare`d, a logical one is
# read to its end and must end with the dump's trailer.
# Only hot copies are read: the newest full must be in a class readable without a restore request.
# When the lifecycle has already moved it to an archive class (GLACIER, DEEP_ARCHIVE), the drill
# fails saying so (the upload sends every new full to STANDARD, so a newest full in an archive
# class means fulls stopped reaching the bucket); older fulls are never looked at.
# Records the measured restore time (restore_seconds: download, decrypt and prepare; the monitor
# alerts when it exceeds the RTO, as for the restore test). The scratch copy is removed whatever
# happens.
#
# Env file: OFFSITE_BUCKET OFFSITE_PREFIX OFFSITE_REGION OFFSITE_CREDENTIALS (0600) [OFFSITE_ENDPOINT]
# [OFFSITE_CA_BUNDLE] [OFFSITE_CHECKSUM_CALCULATION], MARIADB_KEY_FILE MARIADB_KEY_FINGERPRINT (the
# stack's key, as the MariaDB jobs have them) [MARIADB_KEYRING], DRILL_SCRATCH.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind drill
b321_start "$@"
# shellcheck source=../../mariadb/scripts/mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"


check_config() {
  local v
  for v in OFFSITE_BUCKET OFFSITE_PREFIX OFFSITE_REGION OFFSITE_CREDENTIALS DRILL_SCRATCH \
    MARIADB_KEY_FILE; do
    [ -n "${!v:-}" ] || b321_fail "$v is missing from the env file"
  done
  [ -r "$OFFSITE_CREDENTIALS" ] || b321_fail "no credentials file at $OFFSITE_CREDENTIALS"
  [ "$(stat -c %a -- "$OFFSITE_CREDENTIALS")" = 600 ] ||
    b321_fail "$OFFSITE_CREDENTIALS must be mode 0600"
  b321_aws_env "$OFFSITE_CREDENTIALS" "$OFFSITE_REGION" "${OFFSITE_ENDPOINT:-}" \
    "${OFFSITE_CA_BUNDLE:-}" "${OFFSITE_CHECKSUM_CALCULATION:-}"
}

s3() {
  aws "${B321_AWS_OPTS[@]}" "$@"
}

# aws_error FILE: the last non-empty line of an aws CLI error output.
aws_error() {
  grep -v '^$' -- "$1" | tail -n 1
}

# newest_full: sets NEWEST to the key of the newest full directly under the prefix (by the UTC
# stamp in its name), or to nothing when there is none.
NEWEST=""
newest_full() {
  local err
  err=$SCRATCH/.list.err
  s3 s3api list-objects-v2 --bucket "$OFFSITE_BUCKET" --prefix "$OFFSITE_PREFIX" \
    --query 'Contents[].Key' --output text >"$SCRATCH/.list" 2>"$err" ||
    b321_fail "cannot list s3://$OFFSITE_BUCKET/$OFFSITE_PREFIX: $(aws_error "$err")"
  tr '\t' '\n' <"$SCRATCH/.list" | awk -v p="$OFFSITE_PREFIX" '
    index($0, p) == 1 {
      name = substr($0, length(p) + 1)
      if (name !~ /^[^\/]+_full_[0-9]{8}_[0-9]{6}\.(xb|sql)\.(zst|gz)\.enc$/) next
      stamp = name; sub(/^.*_full_/, "", stamp); sub(/\..*$/, "", stamp)
      if (stamp > best) { best = stamp; out = $0 }
    }
    END { if (out != "") print out }' >"$SCRATCH/.newest"
  NEWEST=$(cat -- "$SCRATCH/.newest")
}

# head_object KEY: sets CLASS to its storage class and META_SHA to the sha256 the upload recorded
# in its metadata ("none" without one).
CLASS=""
META_SHA=""
head_object() {
  local err=$SCRATCH/.head.err
  s3 s3api head-object --bucket "$OFFSITE_BUCKET" --key "$1" \
    --query "join(' ', [StorageClass || 'STANDARD', Metadata.sha256 || 'none'])" --output text \
    >"$SCRATCH/.head" 2>"$err" ||
    b321_fail "cannot read the metadata of s3://$OFFSITE_BUCKET/$1: $(aws_error "$err")"
  read -r CLASS META_SHA <"$SCRATCH/.head"
}

# download KEY FILE
download() {
  local err=$SCRATCH/.get.err
  s3 s3 cp --only-show-errors -- "s3://$OFFSITE_BUCKET/$1" "$2" 2>"$err" ||
    b321_fail "cannot download s3://$OFFSITE_BUCKET/$1: $(aws_error "$err")"
}

# prepare FILE MANIFEST: decrypts and decompresses the full and prepares it as a restore would.
prepare() {
  local file=$1 manifest=$2 name=${1##*/} method dir last
  method=$(mdb_manifest_get "$manifest" method)
  b321_set method "$method"
  case $method in
    physical)
      dir=$SCRATCH/data
      mkdir -- "$dir"
      b321_phase restore
      set +e
      mdb_read_full "$file" | mdb_decrypt | mdb_decompress "$name" | mbstream -x -p 2 -C "$dir"
      mdb_check_pipe "${PIPESTATUS[@]}" -- "reading $name" "decrypt (wrong key or corrupted file?)" decompress "mbstream -x"
      set -e
      grep -q '^backup_type = full-backuped' -- "$dir/xtrabackup_checkpoints" 2>/dev/null ||
        b321_fail "$name from the bucket does not unpack to a complete full backup"
      b321_phase prepare
      mariadb-backup --prepare "--target-dir=$dir" >"$SCRATCH/prepare.log" 2>&1 ||
        b321_fail "mariadb-backup --prepare of $name from the bucket failed: $(tail -n 3 -- "$SCRATCH/prepare.log" | tr '\n' ' ')"
      ;;
    logical)
      b321_phase restore
      set +e
      mdb_read_full "$file" | mdb_decrypt | mdb_decompress "$name" | tail -n 1 >"$SCRATCH/last"
      mdb_check_pipe "${PIPESTATUS[@]}" -- "reading $name" "decrypt (wrong key or corrupted file?)" decompress "reading the dump"
      set -e
      last=$(cat -- "$SCRATCH/last")
      [[ $last == "-- Dump completed"* ]] ||
        b321_fail "$name from the bucket has no '-- Dump completed' trailer (truncated dump)"
      ;;
    *) b321_fail "the manifest of $name names no known method ($method)" ;;
  esac
}

main() {
  local key class name manifest_sum got want t0 t1 secs fp
  check_config
  command -v aws >/dev/null || b321_fail "the aws CLI is missing (apt-get install awscli)"
  mdb_require_key
  b321_scratch "${DRILL_SCRATCH:?DRILL_SCRATCH missing}" offsite-drill
  SCRATCH=$B321_SCRATCH

  b321_phase check
  newest_full
  key=$NEWEST
  [ -n "$key" ] || b321_fail "no full in s3://$OFFSITE_BUCKET/$OFFSITE_PREFIX: nothing to restore"
  name=${key##*/}
  head_object "$key"
  class=$CLASS
  want=$META_SHA
  b321_set key "$key"
  b321_set storage_class "$class"
  case $class in
    GLACIER | DEEP_ARCHIVE)
      b321_fail "the newest full in the bucket, $key, is in $class: it cannot be read without a restore request (hours), and the drill reads hot copies only. The upload sends every new full to STANDARD: is it still running?"
      ;;
  esac

  t0=$(date +%s)
  b321_phase download
  b321_log "downloading $key ($class) and its manifest into $SCRATCH"
  head_object "$key.manifest.json"
  manifest_sum=$META_SHA
  download "$key.manifest.json" "$SCRATCH/$name.manifest.json"
  got=$(b321_sha256 "$SCRATCH/$name.manifest.json")
  [ "$got" = "$manifest_sum" ] ||
    b321_fail "$key.manifest.json from the bucket has sha256 $got, the upload recorded $manifest_sum"
  [ "$(mdb_manifest_get "$SCRATCH/$name.manifest.json" file)" = "$name" ] ||
    b321_fail "$key.manifest.json from the bucket names another file"
  [ "$(mdb_manifest_get "$SCRATCH/$name.manifest.json" verified)" = true ] ||
    b321_fail "$key.manifest.json from the bucket does not say verified"
  fp=$(mdb_manifest_get "$SCRATCH/$name.manifest.json" key_fingerprint)
  [ -z "$fp" ] || mdb_has_key "$fp" ||
    b321_fail "$key was encrypted with a key this host does not hold (fingerprint $fp): pulumi up writes every key of the stack to the ring (RUNBOOK.md, Encryption keys)"
  # a full made before a rotation opens with its own key, from the ring
  mdb_use_key "$fp"

  download "$key" "$SCRATCH/$name"
  b321_phase verify
  got=$(b321_sha256 "$SCRATCH/$name")
  [ "$got" = "$(mdb_manifest_get "$SCRATCH/$name.manifest.json" sha256)" ] ||
    b321_fail "$key from the bucket has sha256 $got, its manifest recorded $(mdb_manifest_get "$SCRATCH/$name.manifest.json" sha256)"
  [ "$got" = "$want" ] ||
    b321_fail "$key from the bucket has sha256 $got, the upload recorded $want"
  [ "$(stat -c %s -- "$SCRATCH/$name")" = "$(mdb_manifest_get "$SCRATCH/$name.manifest.json" bytes)" ] ||
    b321_fail "$key from the bucket has $(stat -c %s -- "$SCRATCH/$name") bytes, its manifest recorded $(mdb_manifest_get "$SCRATCH/$name.manifest.json" bytes)"
  b321_set sha256 "$got"
  b321_set bytes "$(stat -c %s -- "$SCRATCH/$name")"

  prepare "$SCRATCH/$name" "$SCRATCH/$name.manifest.json"
  t1=$(date +%s)
  secs=$((t1 - t0))
  b321_set restore_seconds "$secs"
  b321_log "offsite drill passed: $key downloaded, matches its manifest and the upload's sha256, decrypted and prepared in $secs s"
}

main
