#!/bin/bash
# Binlog shipping (source MariaDB §16.10.3, without its bugs): FLUSH BINARY LOGS first, then
# copy only closed binlogs, each verified (size, sha256, parses with mariadb-binlog) before it is
# renamed into place. Shipped copies are kept back to the oldest kept full's binlog, and at least
# MARIADB_BINLOG_KEEP_DAYS days: point-in-time recovery works from every kept full.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_start "$@"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"

DEST=$MARIADB_BINLOG_BACKUP_DIR

binlogs_cleanup() {
  rm -f -- "$DEST"/*.b321-partial 2>/dev/null || true
}

SHIPPED_SIZE=0

# ship SRC: copies one closed binlog to DEST, verified. SHIPPED_SIZE: its size, 0 when already there.
ship() {
  local src=$1 name dst size sha
  name=${src##*/}
  dst=$DEST/$name
  size=$(stat -c %s -- "$src")
  if [ -f "$dst" ] && [ -f "$dst.sha256" ] && [ "$(stat -c %s -- "$dst")" = "$size" ]; then
    SHIPPED_SIZE=0
    return 0
  fi
  cp -- "$src" "$dst.b321-partial"
  [ "$(stat -c %s -- "$dst.b321-partial")" = "$size" ] || b321_fail "copy of $name is truncated"
  sha=$(b321_sha256 "$src")
  [ "$(b321_sha256 "$dst.b321-partial")" = "$sha" ] || b321_fail "copy of $name differs from the source"
  mariadb-binlog -- "$dst.b321-partial" >/dev/null 2>"$DEST/.mariadb-binlog.err" ||
    b321_fail "copy of $name does not parse: $(head -n 2 -- "$DEST/.mariadb-binlog.err" | tr '\n' ' ')"
  rm -f -- "$DEST/.mariadb-binlog.err"
  printf '%s  %s\n' "$sha" "$name" >"$dst.sha256"
  mv -- "$dst.b321-partial" "$dst"
  SHIPPED_SIZE=$size
}

# prune: removes shipped binlogs older than the oldest kept full's binlog AND older than the
# configured days. Never one a kept full needs; with no full yet, nothing is removed.
prune() {
  local oldest need f name seq removed=0
  # Every full counts here, intact or not (the full and restore-test jobs check them): keeping a
  # few binlogs too many is cheap, and reading every full each hour is not.
  oldest=$(mdb_fulls | head -n 1)
  if [ -z "$oldest" ]; then
    b321_set pruned 0
    return 0
  fi
  need=$(mdb_binlog_seq "$(mdb_manifest_get "$oldest.manifest.json" binlog_file)")
  for f in "$DEST/${MARIADB_BINLOG_BASENAME##*/}".[0-9]*; do
    [ -f "$f" ] || continue
    name=${f##*/}
    [[ $name =~ \.[0-9]+$ ]] || continue
    seq=$(mdb_binlog_seq "$name")
    [ "$seq" -lt "$need" ] || continue
    [ -n "$(find "$f" -maxdepth 0 -mtime "+$MARIADB_BINLOG_KEEP_DAYS")" ] || continue
    rm -f -- "$f.sha256" "$f"
    removed=$((removed + 1))
  done
  b321_set pruned "$removed"
}

main() {
  b321_lock mariadb-binlogs
  b321_cleanup binlogs_cleanup
  mdb_require_server
  install -d -m 0700 -- "$DEST"
  b321_watch_space "$DEST"
  # Flush first: every binlog but the new active one is then closed and safe to copy.
  mdb_sql "FLUSH BINARY LOGS" || b321_fail "FLUSH BINARY LOGS failed"
  local -a logs
  mapfile -t logs < <(mdb_sql "SHOW BINARY LOGS" | cut -f1)
  [ "${#logs[@]}" -ge 2 ] || b321_fail "SHOW BINARY LOGS lists ${#logs[@]} binlog(s) after a flush (is log_bin on?)"
  local dir=${MARIADB_BINLOG_BASENAME%/*} base=${MARIADB_BINLOG_BASENAME##*/}
  local i f name shipped=0 bytes=0 newest_shipped="" first_seq
  # A gap: the server dropped binlogs the shipper never copied (PITR cannot cross it).
  for f in "$DEST/$base".[0-9]*; do
    [ -f "$f" ] && [[ $f =~ \.[0-9]+$ ]] && newest_shipped=${f##*/}
  done
  first_seq=$(mdb_binlog_seq "${logs[0]}")
  for ((i = 0; i < ${#logs[@]} - 1; i++)); do
    name=${logs[$i]}
    [[ $name == "$base".* ]] || b321_fail "binlog $name does not match $MARIADB_BINLOG_BASENAME"
    ship "$dir/$name"
    if [ "$SHIPPED_SIZE" != 0 ]; then
      shipped=$((shipped + 1))
      bytes=$((bytes + SHIPPED_SIZE))
    fi
  done
  b321_set shipped "$shipped"
  b321_set bytes "$bytes"
  b321_set newest "${logs[-2]}"
  b321_log "shipped $shipped binlog(s), $bytes bytes; newest closed ${logs[-2]}"
  prune
  if [ -n "$newest_shipped" ] && [ "$first_seq" -gt $(($(mdb_binlog_seq "$newest_shipped") + 1)) ]; then
    b321_fail "binlogs after $newest_shipped were purged by the server before being shipped: point-in-time recovery has a gap until the next full (raise binlogExpireDays or ship more often)"
  fi
}

main
