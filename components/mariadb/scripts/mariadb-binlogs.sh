#!/bin/bash
# Binlog shipping (source MariaDB §16.10.3, without its bugs): FLUSH BINARY LOGS first, then
# copy only closed binlogs, each compressed and encrypted like the fulls and named by its identity
# (common.sh: a rebuilt server reuses the names, never the identities), and verified (the copy
# decrypts to the source's sha256, the source parses with mariadb-binlog) before it is renamed into
# place with its <copy>.sha256. Shipped copies are kept back to the oldest kept full's binlog, and
# at least MARIADB_BINLOG_KEEP_DAYS days: point-in-time recovery works from every kept full.
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
SHIPPED_ID=""

# ship SRC: copies one closed binlog to DEST, verified. SHIPPED_SIZE: its size, 0 when already
# there; SHIPPED_ID: its identity.
ship() {
  local src=$1 name id dst size sha
  name=${src##*/}
  id=$(b321_binlog_identity "$src") || b321_fail "$src has no binlog header: not a binlog"
  SHIPPED_ID=$id
  dst=$DEST/$id.zst.enc
  if [ -f "$dst" ] && [ -f "$dst.sha256" ]; then
    SHIPPED_SIZE=0
    return 0
  fi
  size=$(stat -c %s -- "$src")
  sha=$(b321_sha256 "$src")
  mariadb-binlog -- "$src" >/dev/null 2>"$DEST/.mariadb-binlog.err" ||
    b321_fail "$name does not parse: $(head -n 2 -- "$DEST/.mariadb-binlog.err" | tr '\n' ' ')"
  rm -f -- "$DEST/.mariadb-binlog.err"
  set +e
  zstd -q -c -- "$src" | mdb_encrypt >"$dst.b321-partial"
  mdb_check_pipe "${PIPESTATUS[@]}" -- "compressing $name" "encrypting $name"
  set -e
  [ "$(mdb_decrypt "$dst.b321-partial" | zstd -d -q -c | sha256sum | cut -d' ' -f1)" = "$sha" ] ||
    b321_fail "the encrypted copy of $name does not decrypt to the binlog (sha256 $sha)"
  printf '%s  %s\n' "$(b321_sha256 "$dst.b321-partial")" "${dst##*/}" >"$dst.sha256.b321-partial"
  mv -- "$dst.b321-partial" "$dst"
  mv -- "$dst.sha256.b321-partial" "$dst.sha256"
  SHIPPED_SIZE=$size
}

# prune: removes shipped binlogs that started before the oldest kept full's binlog AND are older
# than the configured days. Never one a kept full needs, whatever its name; with no full yet, or
# when that full's binlog cannot be found, nothing is removed.
prune() {
  local oldest name start first f s removed=0
  # Every full counts here, intact or not (the full and restore-test jobs check them): keeping a
  # few binlogs too many is cheap, and reading every full each hour is not.
  oldest=$(mdb_fulls | head -n 1)
  [ -z "$oldest" ] || read -r name start < <(mdb_binlog_start "$oldest.manifest.json")
  if [[ ${start:-} == "~"* ]]; then
    first=$(mdb_binlog_candidates | b321_binlog_chain "$name" "$start" | head -n 1)
    start=""
    if [ "$first" != NONE ]; then
      f=${first#* }
      [[ $f == *.zst.enc ]] || f=$(b321_binlog_identity "$f") || f=""
      start=$(b321_binlog_stamp "$f") || start=""
    fi
  fi
  if [ -z "${start:-}" ]; then
    b321_set pruned 0
    return 0
  fi
  for f in "$DEST"/*.zst.enc; do
    [ -f "$f" ] || continue
    s=$(b321_binlog_stamp "$f") || continue
    [[ $s < $start ]] || continue
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
  local i f s name shipped=0 bytes=0 newest="" newest_start="" newest_id="" first_start
  # A gap: the server dropped binlogs the shipper never copied (PITR cannot cross it). The newest
  # copy by start time, not by number: an older history's higher numbers are no gap.
  for f in "$DEST/$base".*.zst.enc; do
    s=$(b321_binlog_stamp "$f") || continue
    [[ $s < $newest_start ]] || { newest_start=$s; newest=${f##*/}; }
  done
  for ((i = 0; i < ${#logs[@]} - 1; i++)); do
    name=${logs[$i]}
    [[ $name == "$base".* ]] || b321_fail "binlog $name does not match $MARIADB_BINLOG_BASENAME"
    ship "$dir/$name"
    newest_id=$SHIPPED_ID
    if [ "$SHIPPED_SIZE" != 0 ]; then
      shipped=$((shipped + 1))
      bytes=$((bytes + SHIPPED_SIZE))
    fi
  done
  b321_set shipped "$shipped"
  b321_set bytes "$bytes"
  b321_set newest "$newest_id"
  b321_log "shipped $shipped binlog(s), $bytes bytes; newest closed $newest_id"
  prune
  [ -n "$newest" ] || return 0
  # The server's oldest binlog, in the same history as the newest copy (it started later), must
  # follow that copy's number.
  [[ ${newest%.zst.enc} =~ $B321_BINLOG_ID_RE ]]
  name=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
  first_start=$(b321_binlog_stamp "$(b321_binlog_identity "$dir/${logs[0]}")") || first_start=""
  if ! [[ $first_start < $newest_start ]] &&
    [ "$(mdb_binlog_seq "${logs[0]}")" -gt $(($(mdb_binlog_seq "$name") + 1)) ]; then
    b321_fail "binlogs after $name were purged by the server before being shipped: point-in-time recovery has a gap until the next full (raise binlogExpireDays or ship more often)"
  fi
}

main
