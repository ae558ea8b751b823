#!/bin/bash
# nas-drill.sh ENV_FILE: the read-back drill of the NAS copy (a snapshot accepted by the NAS is not
# yet a snapshot read back from it). It pulls the NAS's newest snapshot into scratch space with the
# sync key, through the one read-only path the NAS's forced command gives that key (nas-receive.sh:
# `rsync --server --sender ... . ROOT/latest/`), then checks it against what was recorded when each
# copy was made:
#   - every full and increment in the snapshot has its manifest beside it, and the file has the size
#     and sha256 the MariaDB job recorded there; a manifest that this host still holds must be the same
#     bytes as the snapshot's (so a full and its manifest altered together on the NAS are caught);
#   - every shipped or streamed binlog with a <copy>.sha256 (written once the copy was proved)
#     has that sha256.
# A snapshot with no full fails: there would be nothing to restore a database from. Records the
# measured read-back time (restore_seconds, the pull and the checks: the monitor alerts when it
# exceeds the RTO, as for the restore test); the scratch copy is removed whatever happens.
#
# Env file: as nas-sync.sh (NAS_USER NAS_ADDRESS NAS_PORT NAS_PATH NAS_KEY NAS_KNOWN_HOSTS
# NAS_SOURCES [NAS_TIMEOUT]), DRILL_SCRATCH (a directory on this host with room for a snapshot)
# [DRILL_LOCK_WAIT seconds to wait for a running sync, default 3600].
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_kind drill
b321_start "$@"

# shellcheck source=nas-pull.sh
source "${BASH_SOURCE[0]%/*}/nas-pull.sh"


main() {
  local secs
  nas_check_config DRILL_SCRATCH
  # no sync moves ROOT/latest while the snapshot is read
  b321_lock nas-sync "${DRILL_LOCK_WAIT:-3600}"
  nas_latest
  b321_scratch "$DRILL_SCRATCH" nas-drill
  b321_time_restore
  nas_pull "$B321_SCRATCH"
  nas_verify "$B321_SCRATCH"
  secs=$(($(date +%s) - B321_RESTORE_T0))
  b321_log "read-back drill passed: snapshot $NAS_LATEST, $NAS_FULLS full(s), $NAS_INCREMENTS increment(s) and $NAS_BINLOGS binlog(s) ($NAS_BYTES bytes) match what was recorded, read back in $secs s"
}

main
