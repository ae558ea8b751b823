#!/bin/bash
# Point-in-time recovery (source MariaDB §16.10.5), run by hand as b321-mariadb-pitr:
#   b321-mariadb-pitr --until "YYYY-MM-DD HH:MM:SS" [--tz Europe/Paris]
#                     (--target-datadir DIR | --target-socket SOCKET [--replace]) [--full NAME]
# Restores the newest intact full consistent before --until with its newest intact increment
# before then (a physical full's), then replays the shipped binlogs (and the server's own, for those
# not shipped yet) from the binlog position of the last of them up to --until, read in the given
# time zone (default: the site's). A corrupt increment is named in a warning and the recovery falls
# back to an older increment, or to the full and every binlog after it. The result holds every
# change made before --until.
#   --target-datadir DIR   a new (or empty) directory: a complete instance (physical or logical) is
#                          built beside it in DIR.partial, shut down cleanly, and only then renamed
#                          to DIR; start a server on it (datadir=DIR). A failed or interrupted run
#                          leaves nothing at DIR (after a kill -9, DIR.partial: remove it). With
#                          nothing to replay after the full (or increment), no server is started:
#                          the prepared datadir is the recovery.
#   --target-socket SOCK   a running server, reached as root by unix_socket: a logical full of the
#                          listed databases is loaded there (refused if they exist, unless --replace).
#   --full NAME            restore that full (a file name in the backup dir) instead of the newest,
#                          with its newest intact increment before --until.
# A full that does not match its manifest (size, sha256, key) is never restored: without --full, the
# newest intact one before it is used instead (the log says so, the run warns naming the bad one).
# The live server is never a target. A wrong command line exits 2 with no status and no alert.
# Its status records each phase's seconds (phase_<name>_seconds: check, restore, binlogs (read while
# the backups unpack), prepare, then start and replay when there is something to replay, finish)
# and the last one reached (phase); the log shows the restore's and the replay's progress.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind restore
b321_start "$@"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"

WORK_DIR=""

# pitr_cleanup: the scratch server stops, and a datadir still being built goes with its side files:
# a failed PITR must leave nothing a server could be started on as if it were complete.
pitr_cleanup() {
  mdb_stop_scratch
  [ -z "$WORK_DIR" ] ||
    rm -rf -- "$WORK_DIR" "$WORK_DIR.run" "$WORK_DIR.incr" "$WORK_DIR.prepare.log" "$WORK_DIR.install.log"
}

# usage WHY: a wrong command line (see b321_usage: no failed status, no alert).
usage() {
  b321_usage "$1; b321-mariadb-pitr --until 'YYYY-MM-DD HH:MM:SS' [--tz ZONE] (--target-datadir DIR | --target-socket SOCKET [--replace]) [--full NAME]"
}

# check_target DIR: DIR is new, or an empty directory that is not a mount point (the datadir is
# built in DIR.partial on the same file system and renamed over it).
check_target() {
  local dir=$1
  if [ -e "$dir" ]; then
    { [ -d "$dir" ] && [ -z "$(ls -A -- "$dir")" ]; } ||
      b321_fail "$dir is not empty (restore into a new or empty directory)"
    ! mountpoint -q -- "$dir" || b321_fail "$dir is a mount point: give a directory inside it"
  fi
  [ ! -e "$dir.partial" ] || b321_fail "$dir.partial is left from an interrupted PITR: remove it first"
}

# same_dir A B: true when A and B are the same directory.
same_dir() {
  [ -e "$1" ] && [ -e "$2" ] && [ "$(realpath -- "$1")" = "$(realpath -- "$2")" ]
}

# pick [FULL]: into file, the full to restore (FULL, the name given with --full, else the newest
# intact one consistent before --until), and its increment into MDB_PICKED_INCR. Called again when
# the restore found the one picked corrupt (mdb_unpack_failed).
pick() {
  if [ -n "$1" ]; then
    file=$MARIADB_BACKUP_DIR/$1
    local why
    why=$(mdb_full_problem "$file" "$MDB_SHA_IN_PASS")
    [ -z "$why" ] || b321_fail "$file: $why: name another full with --full, or leave it out for the newest intact one"
    mdb_pick_increment "$file" "$until_epoch"
  else
    mdb_pick_full "$until_epoch"
    file=$MDB_PICKED
    [ -n "$file" ] || mdb_no_intact_full "consistent before $until ($tz)"
  fi
}

main() {
  local until="" tz=${MARIADB_TZ:-UTC} target_dir="" target_socket="" replace=0 full=""
  while [ $# -gt 0 ]; do
    case $1 in
      --until) until=${2:-}; shift 2 || usage "$1 needs a value" ;;
      --full) full=${2:-}; shift 2 || usage "$1 needs a value" ;;
      --tz) tz=${2:-}; shift 2 || usage "$1 needs a value" ;;
      --target-datadir) target_dir=${2:-}; shift 2 || usage "$1 needs a value" ;;
      --target-socket) target_socket=${2:-}; shift 2 || usage "$1 needs a value" ;;
      --replace) replace=1; shift ;;
      *) usage "unknown argument '$1'" ;;
    esac
  done
  local until_epoch file manifest method databases live_datadir=""
  [[ $until =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}$ ]] ||
    usage "--until must be 'YYYY-MM-DD HH:MM:SS' (got '$until')"
  [ "$tz" = UTC ] || [ -f "/usr/share/zoneinfo/$tz" ] ||
    usage "unknown time zone '$tz' (an IANA name, e.g. Europe/Paris)"
  until_epoch=$(TZ=$tz date -d "$until" +%s 2>/dev/null) || usage "cannot read '$until' in $tz"
  if [ -n "$target_dir" ] && [ -n "$target_socket" ] || [ -z "$target_dir$target_socket" ]; then
    usage "give exactly one of --target-datadir or --target-socket"
  fi
  if [ -n "$target_dir" ]; then
    [[ $target_dir == /* ]] || usage "--target-datadir must be an absolute path"
    target_dir=$(realpath -ms -- "$target_dir")
    [ "$target_dir" != / ] || usage "--target-datadir cannot be /"
  fi
  if [ -n "$full" ]; then
    { [[ $full != */* ]] && [ -f "$MARIADB_BACKUP_DIR/$full.manifest.json" ]; } ||
      usage "no full named $full in $MARIADB_BACKUP_DIR (give the file name of one with a .manifest.json beside it)"
    mdb_consistent_before "$MARIADB_BACKUP_DIR/$full" "$until_epoch" ||
      usage "$full is not consistent before $until ($tz): name an older full"
  fi
  b321_lock mariadb-restore
  b321_cleanup pitr_cleanup
  b321_phase check
  mdb_require_key
  # Into a datadir, the full (and increment) restored is hashed from the bytes its unpack reads.
  [ -z "$target_dir" ] || MDB_SHA_IN_PASS=1
  pick "$full"
  manifest=$file.manifest.json
  method=$(mdb_manifest_get "$manifest" method)
  databases=$(mdb_manifest_get "$manifest" databases)
  b321_set file "$file"
  b321_set until "$until $tz"
  b321_log "restoring ${file##*/}${MDB_PICKED_INCR:+ and its increment ${MDB_PICKED_INCR##*/}} then replaying binlogs up to $until ($tz)"
  live_datadir=$(mdb_sql "SELECT @@datadir" 2>/dev/null || true)
  # shellcheck disable=SC2034  # read by mdb_replay
  MDB_REPLAY_TZ=$tz
  local t0 t1
  t0=$(date +%s)
  if [ -n "$target_dir" ]; then
    [ -z "$live_datadir" ] || ! same_dir "$target_dir" "$live_datadir" ||
      b321_fail "$target_dir is the live server's datadir: restore elsewhere"
    check_target "$target_dir"
    WORK_DIR=$target_dir.partial
    mdb_pitr_build "$file" "$WORK_DIR" "--stop-datetime=$until" "" lazy
    while mdb_unpack_failed "$file"; do
      pick "$full"
      b321_set file "$file"
      mdb_pitr_build "$file" "$WORK_DIR" "--stop-datetime=$until" "" lazy
    done
  else
    [ "$method" = logical ] ||
      b321_fail "${file##*/} is a physical full: it restores a whole instance (use --target-datadir)"
    { [ "$target_socket" != "$MARIADB_SOCKET" ] && ! same_dir "$target_socket" "$MARIADB_SOCKET"; } ||
      b321_fail "$target_socket is the live server: restore elsewhere"
    mdb_check_sha "$file"
    b321_phase restore
    local db
    for db in $databases; do
      if [ -n "$(mariadb --no-defaults "--socket=$target_socket" -uroot -N -B -e "SHOW DATABASES LIKE '$db'")" ]; then
        [ "$replace" = 1 ] || b321_fail "database $db exists on $target_socket (add --replace to drop it)"
        mariadb --no-defaults "--socket=$target_socket" -uroot -e "DROP DATABASE \`$db\`"
      fi
    done
    mdb_load_dump "$file" "$databases" "$target_socket"
    mdb_replay_scope "$file"
    mdb_replay "$target_socket" "$manifest" "--stop-datetime=$until"
  fi
  t1=$(date +%s)
  b321_set restore_seconds "$((t1 - t0))"
  if [ -n "$target_dir" ]; then
    b321_phase finish
    mdb_stop_scratch
    chown -R -- "${MARIADB_SERVER_USER:-mysql}:" "$WORK_DIR"
    # Complete and shut down: only now does it get the target's name (replacing an empty dir).
    mv -T -- "$WORK_DIR" "$target_dir" || b321_fail "cannot rename $WORK_DIR to $target_dir"
    b321_log "done: $target_dir holds the databases as of $until ($tz); start a server with datadir=$target_dir"
  else
    b321_log "done: $databases on $target_socket as of $until ($tz)"
  fi
}

main "${@:2}"
