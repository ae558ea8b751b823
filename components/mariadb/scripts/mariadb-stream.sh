#!/bin/bash
# Continuous binlog streaming, run on a host other than the database host under a supervised service
# (components/host Service: systemd, or b321-supervise.sh where there is none). One run is one
# connection: `mariadb-binlog --read-from-remote-server --raw --stop-never` copies the primary's
# binlogs event by event into <dir>/live/ as the primary writes them, with its own replication user
# (REPLICATION SLAVE, BINLOG MONITOR; password in the 0600 option file MARIADB_STREAM_CNF, never
# argv or env), over TLS when the server offers it (with MARIADB_STREAM_SSL_CA: required and the
# server's certificate verified). The run ends when the stream does (the primary restarts or is
# gone, the stream host's disk fills): its status is failed, it alerts, and the supervisor starts the
# next run, which resumes.
#
# Files, in MARIADB_STREAM_DIR (0700):
#   live/<name>            the raw binlogs being streamed. Only the newest can be open: a binlog is
#                          closed once a newer one exists (mariadb-binlog closes a file before it
#                          opens the next).
#   <identity>.zst.enc     each closed binlog sealed as the shipper seals its copies (mariadb-lib.sh:
#   <identity>.zst.enc.sha256   zstd, then openssl with the stack's key; identity from its header:
#                          common.sh), checked to decrypt to the raw file, then the raw file goes.
#                          A sealed file is never written again: a raw file whose sealed copy is
#                          there already must be the same bytes (else the run fails naming both).
# Sealed files older than MARIADB_STREAM_KEEP_DAYS days (by their file time) are removed with their
# .sha256, after each seal; never the newest sealed one.
# Resuming: the newest raw file (possibly partial: a killed run, a lost connection) is fetched again
# from its start, over itself; with no raw file left, the binlog after the newest sealed one (it
# must still be on the primary: otherwise the stream has a gap, and the run fails saying so); on a
# first run, the oldest binlog the primary has. So nothing is skipped and no event is written twice.
#
# Point-in-time recovery with the database host gone reads these files as its binlogs: an env file
# with MARIADB_BINLOG_BACKUP_DIR=<dir> and MARIADB_BINLOG_BASENAME=<dir>/live/<basename> (the open
# file, plain, up to its last streamed event; the sealed ones, decrypted) with the fulls from the
# NAS or the bucket (RUNBOOK.md).
#
# While it streams, the run samples the primary's position (SHOW MASTER STATUS) every
# MARIADB_STREAM_SAMPLE_SECONDS (2) and rewrites its status every MARIADB_STREAM_STATUS_SECONDS (10):
# result success, state streaming, covered_epoch (everything the primary had written at that time is
# on this host), lag_seconds (now - covered_epoch). mariadb-stream-watch.sh reads it every minute.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_start "$@"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"

# SIGTERM is how its service manager stops it (systemctl stop, b321-supervise.sh stop, an update):
# a clean end, not a failure (no alert); the watchdog calls a stream that stays stopped down.
STOPPING=0
trap 'STOPPING=1' TERM

DIR=$MARIADB_STREAM_DIR
LIVE=$DIR/live
BASE=$MARIADB_STREAM_BASENAME
MB_PID=""
MB_ERR=""
CONN=()

# The exit trap runs it (b321_cleanup). shellcheck: main never returns (a stream only ends in a
# failure), so a function called only from the trap looks unreachable.
# shellcheck disable=SC2317
stream_cleanup() {
  if [ -n "$MB_PID" ]; then
    kill -TERM "$MB_PID" 2>/dev/null || true
    wait "$MB_PID" 2>/dev/null || true
    MB_PID=""
  fi
  rm -f -- "$DIR"/*.b321-partial 2>/dev/null || true
}

# stream_sql SQL: SQL on the primary as the stream user (tab-separated rows, no header).
stream_sql() {
  mariadb "--defaults-extra-file=$MARIADB_STREAM_CNF" "${CONN[@]}" -N -B -e "$1"
}

# raw_files: the raw binlogs in live/, "seq path" lines, oldest first.
raw_files() {
  local f
  for f in "$LIVE/$BASE".[0-9]*; do
    [[ -f $f && $f =~ \.([0-9]+)$ ]] || continue
    printf '%d %s\n' "$((10#${BASH_REMATCH[1]}))" "$f"
  done | sort -n
}

SEALED_BYTES=0
SEALED=0

# seal RAW: a closed raw binlog becomes <identity>.zst.enc (+ .sha256), verified, and RAW goes.
seal() {
  local raw=$1 name id dst sha got
  name=${raw##*/}
  id=$(b321_binlog_identity "$raw") || b321_fail "$raw has no binlog header: not a binlog"
  dst=$DIR/$id.zst.enc
  sha=$(b321_sha256 "$raw")
  if [ -f "$dst" ] && [ -f "$dst.sha256" ]; then
    got=$(mdb_decrypt "$dst" | zstd -d -q -c | sha256sum | cut -d' ' -f1) || got=""
    [ "$got" = "$sha" ] ||
      b321_fail "$raw differs from its sealed copy $dst (sha256 $sha, sealed $got): a closed binlog is never rewritten; compare them by hand"
    rm -f -- "$raw"
    return 0
  fi
  mdb_seal_binlog "$raw" "$dst" "the streamed $name" "$sha"
  rm -f -- "$raw"
  SEALED=$((SEALED + 1))
  SEALED_BYTES=$((SEALED_BYTES + $(stat -c %s -- "$dst")))
  b321_log "sealed $name as ${dst##*/}"
}

# seal_closed: every raw file but the newest is closed: seal them, oldest first; then prune.
seal_closed() {
  local -a files=()
  local i
  mapfile -t files < <(raw_files | cut -d' ' -f2-)
  for ((i = 0; i < ${#files[@]} - 1; i++)); do seal "${files[$i]}"; done
  [ "${#files[@]}" -lt 2 ] || prune
}

# prune: sealed files older than MARIADB_STREAM_KEEP_DAYS go (with their .sha256), never the newest.
prune() {
  local days=${MARIADB_STREAM_KEEP_DAYS:-} newest f
  [[ $days =~ ^[0-9]+$ ]] || return 0
  newest=$(find "$DIR" -maxdepth 1 -name '*.zst.enc' -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
  while IFS= read -r f; do
    { [ -n "$f" ] && [ "$f" != "$newest" ]; } || continue
    rm -f -- "$f.sha256" "$f"
    b321_log "removed ${f##*/}: older than $days days"
  done < <(find "$DIR" -maxdepth 1 -name '*.zst.enc' -mtime "+$days" -print)
}

# resume_point: what a run before this one left in live/ (it was killed, its disk filled): each
# closed file that parses is sealed; the first one that does not (cut short mid-event by a full disk
# or a crash) becomes the newest, to be fetched again from its start with every binlog after it.
resume_point() {
  local -a files=()
  local i
  mapfile -t files < <(raw_files | cut -d' ' -f2-)
  for ((i = 0; i < ${#files[@]} - 1; i++)); do
    if mariadb-binlog -- "${files[$i]}" >/dev/null 2>&1; then
      seal "${files[$i]}"
    else
      b321_log "the streamed ${files[$i]##*/} is cut short (a full disk? a crash?): fetching it again from its start, and the $((${#files[@]} - i - 1)) after it"
      rm -f -- "${files[@]:i+1}"
      return 0
    fi
  done
}

# start_file: the binlog the run starts streaming from (see the header).
start_file() {
  local newest seq="" stamp="" f s next first
  newest=$(raw_files | tail -n 1 | cut -d' ' -f2-)
  if [ -n "$newest" ]; then
    printf '%s\n' "${newest##*/}"
    return 0
  fi
  for f in "$DIR/$BASE".*.zst.enc; do
    [ -f "$f" ] || continue
    [[ ${f##*/} =~ ^.+\.([0-9]+)\.([0-9]{8}T[0-9]{6}Z)\.s[0-9]+\.zst\.enc$ ]] || continue
    s=${BASH_REMATCH[2]}
    [[ $s < $stamp ]] || { stamp=$s; seq=$((10#${BASH_REMATCH[1]})); }
  done
  local -a logs=()
  local out
  out=$(stream_sql "SHOW BINARY LOGS" 2>&1) ||
    b321_fail "SHOW BINARY LOGS failed on the primary (does the stream user have BINLOG MONITOR?): $out"
  mapfile -t logs < <(cut -f1 <<<"$out")
  [ "${#logs[@]}" -gt 0 ] || b321_fail "the primary lists no binlog (is log_bin on?)"
  if [ -z "$seq" ]; then
    printf '%s\n' "${logs[0]}"
    return 0
  fi
  next=$(printf '%s.%06d' "$BASE" $((seq + 1)))
  for f in "${logs[@]}"; do
    [ "$f" != "$next" ] || { printf '%s\n' "$next"; return 0; }
  done
  first=${logs[0]}
  b321_fail "the primary no longer has $next, the binlog after the last one streamed here (its oldest is $first): the stream has a gap until the next full; move $DIR aside to start a new stream from $first"
}

# Position samples of the primary: "seq pos epoch", oldest first.
SAMPLES=()
COVERED=""

# sample: the primary's current binlog position, kept with the time it was read.
sample() {
  local out file pos now
  out=$(stream_sql "SHOW MASTER STATUS" 2>/dev/null) || return 0
  IFS=$'\t' read -r file pos _ <<<"$out"
  [[ $pos =~ ^[0-9]+$ && $file =~ \.([0-9]+)$ ]] || return 0
  printf -v now '%(%s)T' -1
  SAMPLES+=("$((10#${BASH_REMATCH[1]})) $pos $now")
}

# covered: COVERED becomes the time of the newest sample the streamed files hold (everything the
# primary had written then is here); the samples up to it are dropped.
covered() {
  local newest seq size i s p t keep=-1
  newest=$(raw_files | tail -n 1)
  [ -n "$newest" ] || return 0
  seq=${newest%% *}
  size=$(stat -c %s -- "${newest#* }" 2>/dev/null) || return 0
  for i in "${!SAMPLES[@]}"; do
    read -r s p t <<<"${SAMPLES[$i]}"
    if [ "$seq" -gt "$s" ] || { [ "$seq" = "$s" ] && [ "$size" -ge "$p" ]; }; then
      COVERED=$t
      keep=$i
    fi
  done
  SAMPLES=("${SAMPLES[@]:keep+1}")
}

# running_status: the status file says the stream is up, and how far it covers the primary.
running_status() {
  local now newest
  printf -v now '%(%s)T' -1
  newest=$(raw_files | tail -n 1 | cut -d' ' -f2-)
  b321_set state streaming
  b321_set file "${newest##*/}"
  b321_set position "$(stat -c %s -- "$newest" 2>/dev/null || echo 0)"
  b321_set sealed "$SEALED"
  b321_set bytes "$SEALED_BYTES"
  if [ -n "$COVERED" ]; then
    b321_set covered_epoch "$COVERED"
    b321_set lag_seconds $((now - COVERED))
  fi
  b321_write_status 0 success || true
}

main() {
  local start tls every=${MARIADB_STREAM_STATUS_SECONDS:-10} tick=${MARIADB_STREAM_SAMPLE_SECONDS:-2}
  b321_lock mariadb-stream
  b321_cleanup stream_cleanup
  mdb_require_key
  [ -s "$MARIADB_STREAM_CNF" ] || b321_fail "$MARIADB_STREAM_CNF is missing or empty (run pulumi up to install it)"
  CONN=("--host=$MARIADB_STREAM_ADDRESS" "--port=$MARIADB_STREAM_PORT")
  if [ -n "${MARIADB_STREAM_SSL_CA:-}" ]; then
    CONN+=("--ssl-ca=$MARIADB_STREAM_SSL_CA" --ssl-verify-server-cert)
  fi
  install -d -m 0700 -- "$DIR" "$LIVE"
  b321_watch_space "$DIR"
  resume_point
  local err
  err=$(stream_sql "SHOW STATUS LIKE 'Ssl_cipher'" 2>&1) ||
    b321_fail "cannot reach the primary at $MARIADB_STREAM_ADDRESS:$MARIADB_STREAM_PORT as the stream user: $err"
  tls=$(cut -f2 <<<"$err")
  b321_set tls "${tls:-none}"
  [ -n "$tls" ] || b321_log "the primary offers no TLS: the binlogs travel unencrypted (give it a certificate, and mariadb.stream a CA)"
  start=$(start_file)
  b321_set started_from "$start"
  b321_log "streaming from $start (${tls:-no TLS}) into $LIVE"
  MB_ERR=$DIR/.stream.err
  mariadb-binlog "--defaults-extra-file=$MARIADB_STREAM_CNF" "${CONN[@]}" --read-from-remote-server \
    --raw --stop-never "--stop-never-slave-server-id=$MARIADB_STREAM_SERVER_ID" \
    "--result-file=$LIVE/" -- "$start" </dev/null 2>"$MB_ERR" &
  MB_PID=$!
  local last=0 now
  while [ "$STOPPING" = 0 ] && kill -0 "$MB_PID" 2>/dev/null; do
    seal_closed
    sample
    covered
    printf -v now '%(%s)T' -1
    if [ $((now - last)) -ge "$every" ]; then
      running_status
      last=$now
    fi
    sleep "$tick" & wait $! || true
  done
  b321_set state stopped
  if [ "$STOPPING" = 1 ]; then
    stream_cleanup
    seal_closed
    b321_log "stopped by SIGTERM (its service was stopped or restarted)"
    return 0
  fi
  local rc=0
  wait "$MB_PID" || rc=$?
  MB_PID=""
  seal_closed
  b321_fail "the stream stopped (mariadb-binlog exited with $rc: $(tail -n 3 -- "$MB_ERR" | tr '\n' ' ')); the supervisor starts it again"
}

main
