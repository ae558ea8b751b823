#!/bin/bash
# mariadb-dr-drill.sh ENV_FILE: the yearly disaster-recovery drill, on a standby host: the database
# host's rebuild from its backups only, timed end to end. It
#   1. pulls the NAS's newest snapshot of the database host's fulls and shipped binlogs into scratch
#      space, with the standby's own key, which the NAS's forced command lets only read
#      (nas-receive.sh --read-only), and checks every full against its manifest and every binlog
#      against its .sha256 (nas-pull.sh, as the NAS drill does);
#   2. runs the real restore test on that copy (mariadb-restore-test.sh: the newest intact full
#      into a scratch instance, the binlogs replayed to the position its rows were counted at, every
#      table's row count compared with the manifest), then the real point-in-time recovery
#      (mariadb-pitr.sh) to the end of the shipped binlogs into a scratch datadir, and starts a
#      server on that datadir once to prove it opens with every database of the manifest;
#   3. records the measured time of all that (restore_seconds: pull, checks, restore, replay,
#      recovery and start), each phase's seconds (pull, verify, test, recover, open) and the
#      bytes read back; the monitor alerts when it fails, is overdue or exceeds the RTO.
# Only the copy on the NAS is used: the restore test and the recovery read the pulled copy, never a
# server's own binlogs (MARIADB_BINLOG_BASENAME points into the empty scratch). Their own status
# files and history stay in the scratch space (this run's status says what they found); the scratch
# space goes whatever happens.
#
# Env file: the MariaDB jobs' (MARIADB_*: the key, its fingerprint, the database host's backup
# directories as the NAS snapshot holds them), the NAS read-back's (NAS_USER NAS_ADDRESS NAS_PORT
# NAS_PATH NAS_KEY NAS_KNOWN_HOSTS NAS_SOURCES [NAS_TIMEOUT]) and DRILL_SCRATCH (a directory on
# this host with room for the snapshot and two restored instances).
set -Eeuo pipefail
DRILL_ENV=${1:-}
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind drill
b321_start "$@"
# shellcheck source=../../offsite/scripts/nas-pull.sh
source "${BASH_SOURCE[0]%/*}/nas-pull.sh"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"


# status_field FILE KEY: a scalar of a status file (one key per line, as common.sh writes it).
status_field() {
  sed -n -e "s/^  \"$2\": \"\(.*\)\",\{0,1\}\$/\1/p" -e "s/^  \"$2\": \([0-9-][0-9.]*\),\{0,1\}\$/\1/p" \
    -- "$1" 2>/dev/null | head -n 1
}

# step NAME SCRIPT [ARGS...]: runs the real MariaDB script on the pulled copy, with an env file made
# from this drill's and pointed at the copy; its status and history go to the scratch space. Its
# restore_seconds is recorded as <NAME>_seconds; its failure fails the drill with its error.
step() {
  local name=$1 script=$2 env state rc=0 st err secs
  shift 2
  env=$SCRATCH/$name.env
  state=$SCRATCH/state-$name
  {
    cat -- "$DRILL_ENV"
    printf '\n# the drill: the copy pulled from the NAS, nothing of this host\n'
    printf 'B321_JOB=%q\n' "$B321_JOB-$name"
    for v in STATUS_DIR METRICS_DIR RUN_DIR HISTORY_DIR; do
      printf 'B321_%s=%q\n' "$v" "$state/${v,,}"
    done
    # the drill alerts once, for the whole rebuild
    printf 'B321_ALERT=%q\n' "$(command -v true)"
    printf 'MARIADB_BACKUP_DIR=%q\n' "$SCRATCH/copy$MARIADB_BACKUP_DIR"
    printf 'MARIADB_BINLOG_BACKUP_DIR=%q\n' "$SCRATCH/copy$MARIADB_BINLOG_BACKUP_DIR"
    printf 'MARIADB_BINLOG_BASENAME=%q\n' "$SCRATCH/no-server-binlogs/none"
    printf 'MARIADB_SCRATCH_DIR=%q\n' "$SCRATCH/$name"
  } >"$env"
  "$B321_LIB/$script" "$env" "$@" || rc=$?
  st=$state/status_dir/$B321_JOB-$name.json
  secs=$(status_field "$st" restore_seconds)
  [[ ! $secs =~ ^[0-9]+$ ]] || b321_set "${name//-/_}_seconds" "$secs"
  if [ "$rc" -ne 0 ]; then
    err=$(status_field "$st" error)
    b321_fail "the $name on the NAS copy failed (${script}, exit $rc): ${err:-see the log}"
  fi
}

# open_restored DIR: a server started once on the recovered datadir, with every database and table
# of the restored full's manifest there.
open_restored() {
  local dir=$1 manifest=$2 t want=0 got list="" db
  mdb_start_scratch "$dir" "$SCRATCH/open-run"
  while read -r t _; do
    [ -n "$t" ] && want=$((want + 1))
  done < <(mdb_manifest_tables "$manifest")
  for db in $(mdb_manifest_get "$manifest" databases); do list+="${list:+,}'$db'"; done
  got=$(mdb_scratch_sql -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN ($list)")
  [ "$got" -ge "$want" ] ||
    b321_fail "the recovered instance opens with $got of the $want tables the full recorded"
  mdb_stop_scratch
  b321_log "the recovered instance opens: $got table(s) in $(mdb_manifest_get "$manifest" databases)"
}

main() {
  local until full manifest
  nas_check_config DRILL_SCRATCH MARIADB_BACKUP_DIR MARIADB_BINLOG_BACKUP_DIR MARIADB_KEY_FILE
  { [ -n "$DRILL_ENV" ] && [ -r "$DRILL_ENV" ]; } || b321_fail "cannot read the env file $DRILL_ENV"
  mdb_require_key
  nas_latest
  # Traversable by the server user: the scratch instances run below it.
  install -d -m 0711 -- "$DRILL_SCRATCH"
  b321_scratch "$DRILL_SCRATCH" dr-drill 0711
  SCRATCH=$B321_SCRATCH
  b321_cleanup mdb_stop_scratch
  b321_time_restore
  b321_phase pull
  mkdir -m 0700 -- "$SCRATCH/copy"
  nas_pull "$SCRATCH/copy"
  b321_phase verify
  nas_verify "$SCRATCH/copy"
  b321_phase test
  step restore-test mariadb-restore-test.sh
  b321_phase recover
  # to the end of the shipped binlogs: every change the copy holds
  until=$(date -u '+%Y-%m-%d %H:%M:%S')
  step pitr mariadb-pitr.sh --until "$until" --tz UTC --target-datadir "$SCRATCH/recovered"
  b321_phase open
  full=$(status_field "$SCRATCH/state-pitr/status_dir/$B321_JOB-pitr.json" file)
  manifest=$full.manifest.json
  [ -f "$manifest" ] || b321_fail "the recovery names no full of the copy ($full)"
  b321_set file "${full##*/}"
  open_restored "$SCRATCH/recovered" "$manifest"
  b321_phase ""
  b321_record_restore_seconds
  b321_log "disaster-recovery drill passed: snapshot $NAS_LATEST rebuilt from the NAS alone (restore test and recovery to $until UTC) in ${B321_FIELDS[restore_seconds]} s"
}

main
