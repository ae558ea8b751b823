#!/bin/bash
# Full backup of MariaDB (source MariaDB §16.10.2, without its bugs): physical (mariadb-backup
# stream) or logical (mariadb-dump with binlog coordinates and GTID), compressed, encrypted with
# openssl enc -aes-256-cbc -pbkdf2 and a key file. Written to *.partial, verified end to end
# (decrypt, decompress, dump trailer or xbstream integrity; a physical one in the pass that writes
# it, backup_physical), then renamed, with a manifest beside it.
# Old fulls are removed by count, only after this verified one, never the newest good; a full that
# no longer matches its manifest is never counted as good (nor removed: see retention).
#
# Row counts in the manifest: exact COUNT(*) per table taken in a consistent snapshot right after
# the backup, together with that snapshot's binlog position (binlog_snapshot_file/position). The
# backup itself is consistent at its own binlog position, a little earlier; the restore test
# replays the binlog events between the two positions before comparing, so the comparison is exact
# for both methods without slowing the backup down with a restore.
#
# On a replica (MARIADB_REPLICA_MAX_LAG set, mariadb.replica): the run refuses a replica that is
# stopped, broken or lagging more than that (mdb_replica_check), then stops its SQL thread
# (mdb_replica_freeze), counts the rows and takes the backup while the data stands still, and
# restarts it. The manifest's binlog coordinates are then the PRIMARY's (where the replica stopped
# applying), which PITR replays from the primary's shipped binlogs; the counts are taken at the same
# point. The primary sees nothing of it: no session, no lock, no FLUSH. The verified full is then
# handed to the primary (handoff, MARIADB_HANDOFF_* set), whose mariadb-receive.sh checks it against
# its manifest and keeps it beside the shipped binlogs: PITR, the NAS sync and the upload find it
# there as without a replica. A full the primary did not accept fails the run (it stays here).
#
# Increments (MARIADB_BACKUP_LEVEL=incremental, run by mariadb-incremental.sh): the same job, but
# mariadb-backup copies only the pages changed since the newest intact physical full (its to_lsn,
# recorded in its manifest), named <prefix>_incr_<stamp>, verified and hashed the same way, with the
# full it builds on in its manifest (base_full). Each increment builds on the full, not on the
# increment before it: a restore reads the full and one increment, never a chain of them, and a
# corrupt increment costs its own day only. Without a physical full that records its to_lsn (none
# yet, or made before increments), the run takes a full instead and says so.
# Retention counts chains: increments are removed when the newest of their full's increments is
# older than MARIADB_INCREMENT_KEEP_DAYS (unset: only with their full), and a full is never removed
# while an increment of it stays.
set -Eeuo pipefail
# shellcheck source=../../host/scripts/common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"
b321_start "$@"
# shellcheck source=mariadb-lib.sh
source "${BASH_SOURCE[0]%/*}/mariadb-lib.sh"

WORK=""
PARTIAL=""
PIPES=""
# An increment's full (file name) and the LSN it starts from; empty for a full.
BASE_FULL=""
BASE_LSN=""
FULL_INSTEAD=""

full_cleanup() {
  [ -z "$PARTIAL" ] || rm -f -- "$PARTIAL" "$PARTIAL.manifest.json"
  [ -z "$WORK" ] || rm -rf -- "$WORK"
  [ -z "$PIPES" ] || rm -rf -- "$PIPES"
}

# backup_physical OUT NAME: mariadb-backup --stream=xbstream | compress | encrypt > OUT, verified in
# the same pass. tee hands the very bytes written to OUT to two readers: the check (decrypt,
# decompress, then xbstream_check: every chunk's checksum, every file complete, the files
# mariadb-backup streams last kept in $WORK/verify) and a sha256. Once OUT is complete, its sha256
# read back from disk must equal that one: the bytes on disk are exactly the bytes that decrypted,
# decompressed and checked, which is what reading the file a second time proved, without the second
# pass or room to unpack it. Writes $WORK/info (verify_unpacked) and $WORK/check.sha.
backup_physical() {
  local out=$1 name=$2 dir=$WORK/verify datadir check hash hashrc=0 code
  datadir=$(mdb_sql "SELECT @@datadir")
  local -a replica=() written=() checked=() level=()
  [ -z "$BASE_LSN" ] || level=("--incremental-lsn=$BASE_LSN")
  # The backup also carries the primary's coordinates (xtrabackup_slave_info), for whoever builds
  # a new replica from it; the SQL thread is already stopped (mdb_replica_freeze).
  [ -z "${MARIADB_REPLICA_MAX_LAG:-}" ] || replica=(--slave-info)
  mkdir -p -- "$dir"
  # The fifos on the state dir's local file system (the backup dir may be a mount that has none),
  # private; a run killed without its trap leaves them to the next run's cleanup of leftovers.
  PIPES=$(mktemp -d -- "$B321_STATE/full-pipes.XXXXXX")
  mkfifo -m 0600 -- "$PIPES/check" "$PIPES/sha"
  (
    set +e
    mdb_decrypt <"$PIPES/check" | mdb_decompress "$name" |
      xbstream_check "$dir" xtrabackup_checkpoints xtrabackup_info xtrabackup_binlog_info \
        xtrabackup_slave_info >"$WORK/raw.bytes" 2>"$WORK/check.log"
    echo "${PIPESTATUS[*]}" >"$WORK/check.rc"
  ) &
  check=$!
  openssl dgst -sha256 -r <"$PIPES/sha" >"$WORK/check.sha" &
  hash=$!
  set +e
  mdb_client mariadb-backup --backup --stream=xbstream --binlog-info=ON --parallel=2 "--datadir=$datadir" \
    "--target-dir=$WORK/xb" "${level[@]}" "${replica[@]}" 2>"$WORK/tool.log" |
    mdb_compress | mdb_encrypt | tee -- "$PIPES/check" "$PIPES/sha" >"$out"
  written=("${PIPESTATUS[@]}")
  # Had tee not opened a fifo, its reader would wait for a writer forever: open and close each
  # once (read-write never blocks), so that reader sees the end of what it got.
  : <>"$PIPES/check" <>"$PIPES/sha"
  wait "$check"
  wait "$hash" || hashrc=$?
  set -e
  read -r -a checked 2>/dev/null <"$WORK/check.rc" || checked=(255 255 255)
  # A stage that failed by itself is named first; one killed by SIGPIPE (141) only stopped because
  # a reader after it did (the check, when the stream does not decrypt, decompress or check).
  for code in "${written[@]}"; do
    [ "$code" = 0 ] || [ "$code" = 141 ] ||
      mdb_check_pipe "${written[@]}" -- mariadb-backup compress encrypt "writing $out"
  done
  # The check failed by itself (decrypt and decompress went on, or stopped writing to it): its reason.
  if [ "${checked[2]}" != 0 ] && [[ ${checked[0]} =~ ^(0|141)$ && ${checked[1]} =~ ^(0|141)$ ]]; then
    b321_fail "verify: the xbstream check failed (exit ${checked[2]}): $(tail -n 3 -- "$WORK/check.log" | tr '\n' ' ')"
  fi
  mdb_check_pipe "${checked[@]}" -- "verify: decrypt" "verify: decompress" "verify: xbstream check"
  [ "$hashrc" = 0 ] || b321_fail "verify: sha256 of the written stream failed (exit $hashrc)"
  mdb_check_pipe "${written[@]}" -- mariadb-backup compress encrypt "writing $out"
  grep -q 'completed OK!' -- "$WORK/tool.log" ||
    b321_fail "mariadb-backup did not complete: $(tail -n 3 -- "$WORK/tool.log" | tr '\n' ' ')"
  verify_unpacked "$dir"
}

# xbstream_check DIR NAME...: reads an xbstream on stdin as mbstream -x reads it, without writing
# what it unpacks: each chunk's magic, type and CRC32 (the checksum mbstream checks), each file's
# chunks in order and ended by its EOF chunk, the stream ending between chunks. The files NAME (the
# small ones mariadb-backup streams last) are written to DIR. Prints the stream's size in bytes.
# perl comes with mariadb-server (Debian), and Compress::Raw::Zlib's crc32 with perl.
# shellcheck disable=SC2016  # a perl program, not shell
XBSTREAM_CHECK='
use strict;
use warnings;
use Compress::Raw::Zlib ();
my ($dir, @keep) = @ARGV;
my %keep = map { $_ => "" } @keep;
my (%size, %done);
my ($stream, $chunks) = (0, 0);
binmode STDIN;
sub take {
  my ($n, $what, $end_ok) = @_;
  my $buf = "";
  while (length($buf) < $n) {
    my $r = read(STDIN, $buf, $n - length($buf), length($buf));
    die "reading the stream: $!\n" unless defined $r;
    return $buf if $r == 0 && $end_ok && $buf eq "";
    die "the stream ends inside a $what after $stream bytes (truncated)\n" if $r == 0;
  }
  $stream += $n;
  return $buf;
}
while (1) {
  my $head = take(14, "chunk header", 1);
  last if $head eq "";
  my ($magic, $flags, $type, $plen) = unpack("a8 C a1 V", $head);
  die "chunk $chunks: no XBSTCK01 magic (not an xbstream, or corrupted)\n" unless $magic eq "XBSTCK01";
  die "chunk $chunks: path length $plen\n" if $plen == 0 || $plen > 4096;
  my $path = take($plen, "chunk header");
  die "chunk $chunks: path $path leaves the target directory\n" if $path =~ m{^/|(^|/)\.\.(/|$)};
  die "chunk $chunks ($path): data after the end of its file\n" if $done{$path};
  if ($type eq "E") {
    $done{$path} = 1;
    $size{$path} //= 0;
    if (exists $keep{$path}) {
      open(my $f, ">", "$dir/$path") or die "$dir/$path: $!\n";
      print $f $keep{$path} or die "$dir/$path: $!\n";
      close($f) or die "$dir/$path: $!\n";
    }
  } elsif ($type eq "P") {
    my ($len, $offset, $sum) = unpack("Q< Q< V", take(20, "chunk header"));
    my $have = $size{$path} // 0;
    die "chunk $chunks ($path): offset $offset, its file has $have bytes (out of order)\n" unless $offset == $have;
    my ($crc, $left) = (0, $len);
    while ($left > 0) {
      my $data = take($left < 8388608 ? $left : 8388608, "chunk");
      $crc = Compress::Raw::Zlib::crc32($data, $crc);
      $keep{$path} .= $data if exists $keep{$path};
      $left -= length($data);
    }
    die "chunk $chunks ($path): checksum mismatch (corrupted)\n" unless $crc == $sum;
    $size{$path} = $have + $len;
  } else {
    die sprintf("chunk %d (%s): unknown chunk type 0x%02x\n", $chunks, $path, ord($type));
  }
  $chunks++;
}
die "empty stream\n" unless $chunks;
my @open = grep { !$done{$_} } sort keys %size;
die "the stream ends before the end of @open (truncated)\n" if @open;
print "$stream\n";
'
xbstream_check() {
  perl -e "$XBSTREAM_CHECK" -- "$@"
}

# verify_unpacked DIR: the files mariadb-backup streams last are there (a complete full, or an
# increment from BASE_LSN), then DIR goes. Writes "raw_bytes binlog_file binlog_pos gtid" to
# $WORK/info (raw_bytes: the stream's size) and "from_lsn to_lsn" to $WORK/lsn.
verify_unpacked() {
  local dir=$1 f raw bfile bpos gtid type=full-backuped from to
  local -a last=(xtrabackup_binlog_info)
  [ -z "${MARIADB_REPLICA_MAX_LAG:-}" ] || last=(xtrabackup_slave_info)
  for f in xtrabackup_checkpoints xtrabackup_info "${last[@]}"; do
    [ -s "$dir/$f" ] || b321_fail "verify: $f missing from the stream (truncated backup)"
  done
  [ -z "$BASE_LSN" ] || type=incremental
  grep -qx "backup_type = $type" -- "$dir/xtrabackup_checkpoints" ||
    b321_fail "verify: the stream is not a complete ${type%-backuped} backup ($(head -n 1 -- "$dir/xtrabackup_checkpoints"))"
  from=$(sed -n 's/^from_lsn = \([0-9]*\)$/\1/p' -- "$dir/xtrabackup_checkpoints")
  to=$(sed -n 's/^to_lsn = \([0-9]*\)$/\1/p' -- "$dir/xtrabackup_checkpoints")
  [[ $from =~ ^[0-9]+$ && $to =~ ^[0-9]+$ ]] || b321_fail "verify: xtrabackup_checkpoints records no LSNs"
  [ -z "$BASE_LSN" ] || [ "$from" = "$BASE_LSN" ] ||
    b321_fail "verify: the increment starts at LSN $from, not at its full's $BASE_LSN"
  printf '%s %s\n' "$from" "$to" >"$WORK/lsn"
  raw=$(cat -- "$WORK/raw.bytes")
  [[ $raw =~ ^[0-9]+$ ]] || b321_fail "verify: the xbstream check gave no size ($raw)"
  if [ -n "${MARIADB_REPLICA_MAX_LAG:-}" ]; then
    # The primary's coordinates where the replica stood still; the stream must agree on the GTID.
    grep -qF -- "gtid_slave_pos = '$MDB_PRIMARY_GTID'" "$dir/xtrabackup_slave_info" ||
      b321_fail "verify: the backup's slave info ($(tr '\n' ' ' <"$dir/xtrabackup_slave_info")) is not the GTID the replica stopped at ($MDB_PRIMARY_GTID)"
    bfile=$MDB_PRIMARY_FILE bpos=$MDB_PRIMARY_POS gtid=$MDB_PRIMARY_GTID
  else
    read -r bfile bpos gtid <"$dir/xtrabackup_binlog_info"
  fi
  rm -rf -- "$dir"
  printf '%s %s %s %s\n' "$raw" "$bfile" "$bpos" "${gtid:-}" >"$WORK/info"
}

# backup_logical OUT: mariadb-dump in one snapshot with binlog coordinates and GTID. One database
# is dumped without --databases: exactly the seed's .sql.gz.enc format (restorable under any name).
backup_logical() {
  local out=$1
  local -a dbs
  read -r -a dbs <<<"$MARIADB_DATABASES"
  [ "${#dbs[@]}" -eq 1 ] || dbs=(--databases "${dbs[@]}")
  set +e
  # On a replica: the primary's coordinates (--dump-slave) instead of the replica's own binlog's.
  local coords=--master-data=2
  [ -z "${MARIADB_REPLICA_MAX_LAG:-}" ] || coords=--dump-slave=2
  mdb_client mariadb-dump --single-transaction --routines --triggers --events --hex-blob \
    "$coords" --gtid "${dbs[@]}" 2>"$WORK/tool.log" | mdb_compress | mdb_encrypt >"$out"
  mdb_check_pipe "${PIPESTATUS[@]}" -- mariadb-dump compress encrypt
  set -e
}

# verify_logical FILE NAME: decrypt and decompress the whole file (the CRC or frame checksum is at
# the end), require the dump's trailer, and read the binlog coordinates. Writes $WORK/info as above.
verify_logical() {
  local file=$1 name=$2 out=$WORK/verify.txt raw last change gtid bfile bpos
  set +e
  mdb_decrypt "$file" | mdb_decompress "$name" | LC_ALL=C awk '
    { n += length($0) + 1; last = $0 }
    !c && /^-- CHANGE MASTER (.. )?TO MASTER_LOG_FILE=/ { c = $0 }
    !g && /^-- SET GLOBAL gtid_slave_pos=/ { g = $0 }
    END { print n; print last; print c; print g }' >"$out"
  mdb_check_pipe "${PIPESTATUS[@]}" -- "verify: decrypt" "verify: decompress" "verify: read"
  set -e
  { read -r raw; IFS= read -r last; IFS= read -r change; IFS= read -r gtid; } <"$out"
  [[ $last == "-- Dump completed"* ]] || b321_fail "verify: the dump has no '-- Dump completed' trailer (truncated dump)"
  bfile=$(sed -n "s/.*MASTER_LOG_FILE='\([^']*\)'.*/\1/p" <<<"$change")
  bpos=$(sed -n "s/.*MASTER_LOG_POS=\([0-9]*\).*/\1/p" <<<"$change")
  gtid=$(sed -n "s/.*gtid_slave_pos='\([^']*\)'.*/\1/p" <<<"$gtid")
  { [ -n "$bfile" ] && [ -n "$bpos" ]; } || b321_fail "verify: the dump records no binlog coordinates"
  # On a replica (--dump-slave): the primary's, which must be where the replica stood still.
  [ -z "${MARIADB_REPLICA_MAX_LAG:-}" ] || [ "$bfile:$bpos" = "$MDB_PRIMARY_FILE:$MDB_PRIMARY_POS" ] ||
    b321_fail "verify: the dump records the primary's $bfile:$bpos, the replica stood still at $MDB_PRIMARY_FILE:$MDB_PRIMARY_POS"
  printf '%s %s %s %s\n' "$raw" "$bfile" "$bpos" "$gtid" >"$WORK/info"
}

# count_rows OUT: exact row counts in one consistent snapshot, preceded by its binlog position.
count_rows() {
  local out=$1 list="" db
  for db in $MARIADB_DATABASES; do list+="${list:+,}'$db'"; done
  local -a tables
  mapfile -t tables < <(mdb_sql "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN ($list) ORDER BY 1")
  [ "${#tables[@]}" -gt 0 ] || b321_fail "no table found in $MARIADB_DATABASES"
  {
    echo "START TRANSACTION WITH CONSISTENT SNAPSHOT;"
    if [ -n "${MARIADB_REPLICA_MAX_LAG:-}" ]; then
      # Frozen replica: the snapshot is at the primary's coordinates it stood still at.
      printf "SELECT 'binlog_snapshot_file', '%s';\n" "$MDB_PRIMARY_FILE"
      printf "SELECT 'binlog_snapshot_position', %d;\n" "$MDB_PRIMARY_POS"
    else
      echo "SHOW STATUS LIKE 'binlog_snapshot_file';"
      echo "SHOW STATUS LIKE 'binlog_snapshot_position';"
    fi
    mdb_count_sql "${tables[@]}"
    echo "COMMIT;"
  } | mdb_client mariadb -N -B | sed 's/^Binlog_snapshot_/binlog_snapshot_/' >"$out" ||
    b321_fail "counting rows failed"
}

# write_manifest OUT NAME SHA BYTES RAW BFILE BPOS GTID COUNTS STARTED CONSISTENT DURATION: the
# manifest beside the full or increment (its fields: components/host/file-contracts.ts
# MANIFEST_FIELDS). A physical one records its to_lsn (an increment of it starts there); an
# increment its base_full and from_lsn too.
# binlog_identity: the identity of binlog_file (common.sh), which PITR and pruning follow.
# key_fingerprint: mdb_key_fingerprint of the key that encrypted the full (the stack's, checked by
# mdb_require_key), so a full made with another key is skipped, and named, before a restore needs it.
write_manifest() {
  local out=$1 name=$2 sha=$3 bytes=$4 raw=$5 bfile=$6 bpos=$7 gtid=$8 counts=$9
  local started=${10} consistent=${11} duration=${12}
  local cfile cpos kfp bid="" sid="" from="" to="" format=full
  kfp=$(mdb_key_fingerprint) || b321_fail "cannot read $MARIADB_KEY_FILE"
  [ ! -f "$WORK/lsn" ] || read -r from to <"$WORK/lsn"
  [ -z "$BASE_FULL" ] || format=incremental
  # The binlog's identity, not only its name: a rebuilt server reuses the names (common.sh). On a
  # replica, bfile is the primary's, whose header is not here (a same-named binlog here is the
  # replica's own): the primary's server_id stands in for it (mdb_of_server).
  if [ -n "${MARIADB_REPLICA_MAX_LAG:-}" ]; then
    sid=$MDB_PRIMARY_ID
  else
    bid=$(b321_binlog_identity "${MARIADB_BINLOG_BASENAME%/*}/$bfile") ||
      b321_warn "cannot read the header of the binlog $bfile in ${MARIADB_BINLOG_BASENAME%/*} (is MARIADB_BINLOG_BASENAME the server's log_bin basename?): PITR will find it by name and time"
  fi
  cfile=$(awk '$1 == "binlog_snapshot_file" { print $2 }' "$counts")
  cpos=$(awk '$1 == "binlog_snapshot_position" { print $2 }' "$counts")
  { [ -n "$cfile" ] && [ -n "$cpos" ]; } || b321_fail "the count snapshot has no binlog position"
  {
    echo "{"
    echo "  \"format\": \"backup321-mariadb-$format/1\","
    echo "  \"file\": \"$name\","
    if [ -n "$BASE_FULL" ]; then
      echo "  \"base_full\": \"$BASE_FULL\","
      echo "  \"from_lsn\": $from,"
    fi
    [ -z "$to" ] || echo "  \"to_lsn\": $to,"
    echo "  \"verified\": true,"
    echo "  \"method\": \"$MARIADB_METHOD\","
    echo "  \"compression\": \"$MARIADB_COMPRESSION\","
    echo "  \"encryption\": \"openssl enc -aes-256-cbc -pbkdf2\","
    echo "  \"key_fingerprint\": \"$kfp\","
    echo "  \"databases\": \"$MARIADB_DATABASES\","
    echo "  \"sha256\": \"$sha\","
    echo "  \"bytes\": $bytes,"
    echo "  \"raw_bytes\": $raw,"
    echo "  \"started\": \"$started\","
    echo "  \"consistent_before_epoch\": $consistent,"
    echo "  \"duration_seconds\": $duration,"
    echo "  \"binlog_file\": \"$bfile\","
    echo "  \"binlog_position\": $bpos,"
    echo "  \"binlog_identity\": \"$bid\","
    [ -z "$sid" ] || echo "  \"binlog_server_id\": $sid,"
    echo "  \"gtid\": \"$gtid\","
    echo "  \"counted_binlog_file\": \"$cfile\","
    echo "  \"counted_binlog_position\": $cpos,"
    echo "  \"tables\": {"
    awk '$1 != "binlog_snapshot_file" && $1 != "binlog_snapshot_position" {
      printf "%s    \"%s\": %s", sep, $1, $2; sep = ",\n" } END { print "" }' "$counts"
    echo "  }"
    echo "}"
  } >"$out"
}

# retention KEEP NEWEST: chains first, then fulls. A full's increments go together, once the newest
# of them is older than MARIADB_INCREMENT_KEEP_DAYS, or once their full is gone (nothing can
# restore them); never NEWEST. Then intact fulls beyond the newest KEEP are removed, except one an
# increment still builds on, and never NEWEST. A full that is not intact (mdb_scan_fulls) is
# neither counted nor removed: the run warns naming it, and it stays for inspection without pushing
# a good one out.
retention() {
  local keep=$1 newest=$2 i removed=0 f base
  [ "$keep" -ge 1 ] || b321_fail "MARIADB_KEEP_FULLS must be at least 1"
  mdb_scan_fulls "$newest"
  local -a good=("${MDB_GOOD_FULLS[@]}")
  local -A kept_base=() newest_of=() gone=()
  local days=${MARIADB_INCREMENT_KEEP_DAYS:-} now
  now=$(date +%s)
  while IFS= read -r f; do
    base=$(mdb_manifest_get "$f.manifest.json" base_full)
    newest_of[$base]=$(mdb_manifest_get "$f.manifest.json" consistent_before_epoch)
  done < <(mdb_increments)
  for base in "${!newest_of[@]}"; do
    if [ ! -f "$MARIADB_BACKUP_DIR/$base.manifest.json" ] ||
      { [ -n "$days" ] && [ $((now - ${newest_of[$base]:-0})) -gt $((days * 86400)) ]; }; then
      gone[$base]=1
    fi
  done
  while IFS= read -r f; do
    base=$(mdb_manifest_get "$f.manifest.json" base_full)
    if [ -n "${gone[$base]:-}" ] && [ "$f" != "$newest" ]; then
      b321_log "retention: removing ${f##*/} (increment of $base)"
      rm -f -- "$f.manifest.json" "$f"
      removed=$((removed + 1))
    else
      kept_base[$base]=1
    fi
  done < <(mdb_increments)
  for ((i = 0; i < ${#good[@]} - keep; i++)); do
    [ "${good[$i]}" != "$newest" ] || continue
    if [ -n "${kept_base[${good[$i]##*/}]:-}" ]; then
      b321_log "retention: keeping ${good[$i]##*/}: increments of it are kept"
      continue
    fi
    b321_log "retention: removing ${good[$i]##*/}"
    rm -f -- "${good[$i]}.manifest.json"
    rm -f -- "${good[$i]}"
    removed=$((removed + 1))
  done
  b321_set removed "$removed"
}

# increment_base: BASE_FULL and BASE_LSN, the newest intact full when it is physical and records
# its to_lsn; both empty otherwise (the run then takes a full). Only the newest full is a base: an
# increment of an older one would hold more and restore nothing newer.
increment_base() {
  local f why lsn
  BASE_FULL="" BASE_LSN=""
  f=$(mdb_fulls | tail -n 1)
  if [ -z "$f" ]; then
    FULL_INSTEAD="there is no full yet"
    return 0
  fi
  why=$(mdb_full_problem "$f")
  if [ -n "$why" ]; then
    b321_warn "$f: $why: skipped (kept for inspection); a full is taken instead of an increment"
    FULL_INSTEAD="the newest full ${f##*/} is not intact"
    return 0
  fi
  lsn=$(mdb_manifest_get "$f.manifest.json" to_lsn)
  if [ "$(mdb_manifest_get "$f.manifest.json" method)" != physical ] || ! [[ $lsn =~ ^[0-9]+$ ]]; then
    FULL_INSTEAD="the newest full ${f##*/} records no to_lsn (logical, or made before increments)"
    return 0
  fi
  BASE_FULL=${f##*/} BASE_LSN=$lsn
}

# handoff FULL: sends FULL and its manifest to the primary (mariadb-receive.sh, the forced command
# of this host's handoff key there) and has it accepted. rsync's options and the receiver's checks
# go together: change both.
handoff() {
  local full=$1 name=${1##*/} v out
  for v in MARIADB_HANDOFF_USER MARIADB_HANDOFF_ADDRESS MARIADB_HANDOFF_PORT MARIADB_HANDOFF_DIR \
    MARIADB_HANDOFF_KEY MARIADB_HANDOFF_KNOWN_HOSTS; do
    [ -n "${!v:-}" ] || b321_fail "$v is missing from the env file"
  done
  [ -r "$MARIADB_HANDOFF_KEY" ] || b321_fail "no handoff key at $MARIADB_HANDOFF_KEY (pulumi up creates it)"
  b321_ssh_cmd "$MARIADB_HANDOFF_KEY" "$MARIADB_HANDOFF_PORT" "$MARIADB_HANDOFF_KNOWN_HOSTS"
  local to=$MARIADB_HANDOFF_USER@$MARIADB_HANDOFF_ADDRESS
  local kept="$name is verified and kept here, but the primary's PITR, NAS sync and upload still have only the previous full"
  b321_log "handing $name to the primary $MARIADB_HANDOFF_ADDRESS"
  timeout "${MARIADB_HANDOFF_TIMEOUT:-3600}" rsync -t --timeout=600 -e "${B321_SSH[*]}" -- \
    "$full" "$full.manifest.json" "$to:$MARIADB_HANDOFF_DIR/.incoming/" ||
    b321_fail "sending the full to the primary $MARIADB_HANDOFF_ADDRESS failed: $kept"
  out=$("${B321_SSH[@]}" "$to" "accept $name" 2>&1) ||
    b321_fail "the primary $MARIADB_HANDOFF_ADDRESS did not accept the full (${out//$'\n'/ }): $kept"
  grep -qxF -- "accepted $name" <<<"$out" || grep -qxF -- "accepted $name (already here)" <<<"$out" ||
    b321_fail "the primary $MARIADB_HANDOFF_ADDRESS answered '${out//$'\n'/ }' to accept $name: $kept"
  b321_set handed_to "$MARIADB_HANDOFF_ADDRESS"
  b321_log "the primary accepted $name"
}

main() {
  b321_lock mariadb-full
  b321_cleanup full_cleanup
  mdb_require_server
  mdb_require_key
  [ -z "${MARIADB_REPLICA_MAX_LAG:-}" ] || mdb_replica_check "$MARIADB_REPLICA_MAX_LAG"
  install -d -m 0700 -- "$MARIADB_BACKUP_DIR"
  b321_watch_space "$MARIADB_BACKUP_DIR"
  # Leftovers of a run killed without its trap (kill -9, OOM killer): ours, since we hold the lock.
  rm -rf -- "$MARIADB_BACKUP_DIR"/*.partial "$MARIADB_BACKUP_DIR"/*.partial.manifest.json \
    "$MARIADB_BACKUP_DIR"/.b321-full.* "$B321_STATE"/full-pipes.*
  local ext cext stamp name final started t0 t1 consistent raw bfile bpos gtid sha bytes shapid
  local kind=full
  if [ "${MARIADB_BACKUP_LEVEL:-full}" = incremental ]; then
    [ "$MARIADB_METHOD" = physical ] ||
      b321_fail "increments need the physical method: set mariadb.method to physical, or remove mariadb.schedules.incremental"
    increment_base
    if [ -n "$BASE_FULL" ]; then
      kind=incr
      b321_set base_full "$BASE_FULL"
    else
      b321_log "taking a full instead of an increment: $FULL_INSTEAD"
      b321_set full_instead "$FULL_INSTEAD"
    fi
  fi
  b321_set level "${kind/incr/incremental}"
  case $MARIADB_METHOD in
    physical) ext=xb ;;
    logical) ext=sql ;;
    *) b321_fail "unknown method $MARIADB_METHOD (physical or logical)" ;;
  esac
  case $MARIADB_COMPRESSION in
    zstd) cext=zst ;;
    gzip) cext=gz ;;
    *) b321_fail "unknown compression $MARIADB_COMPRESSION (zstd or gzip)" ;;
  esac
  # A full is named by its second: a run right after another (by hand after cron, under the same
  # lock) waits for the next second rather than fail on the name.
  local try
  for try in 1 2 3; do
    stamp=$(date -u +%Y%m%d_%H%M%S)
    name=${MARIADB_PREFIX}_${kind}_${stamp}.${ext}.${cext}.enc
    final=$MARIADB_BACKUP_DIR/$name
    [ -e "$final" ] || break
    [ "$try" -lt 3 ] || b321_fail "$final already exists"
    sleep 1
  done
  WORK=$(mktemp -d -- "$MARIADB_BACKUP_DIR/.b321-full.XXXXXX")
  PARTIAL=$final.partial
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  t0=$(date +%s)
  b321_log "backing up ($MARIADB_METHOD, $MARIADB_COMPRESSION${BASE_FULL:+, pages changed since $BASE_FULL}) to $name.partial"
  if [ -n "${MARIADB_REPLICA_MAX_LAG:-}" ]; then
    # Counted first, then backed up, both while the replica stands still: the same point. The
    # primary's binlogs are flushed and shipped by its own binlog job; the replica's are not ours.
    mdb_replica_freeze
    consistent=$(date +%s)
    count_rows "$WORK/counts.txt"
    "backup_$MARIADB_METHOD" "$PARTIAL" "$name"
    mdb_replica_thaw || b321_fail "the backup is done but START SLAVE SQL_THREAD failed: the replica is not applying the primary's changes (START SLAVE on it)"
    b321_sha256 "$PARTIAL" >"$WORK/disk.sha" &
    shapid=$!
  else
    "backup_$MARIADB_METHOD" "$PARTIAL" "$name"
    consistent=$(date +%s)
    # The file is read back while the rows are counted: neither waits for the other.
    b321_sha256 "$PARTIAL" >"$WORK/disk.sha" &
    shapid=$!
    count_rows "$WORK/counts.txt"
    mdb_sql "FLUSH BINARY LOGS" || b321_fail "FLUSH BINARY LOGS failed"
  fi
  # A physical full was verified while it was written (backup_physical); a dump is read again.
  if [ "$MARIADB_METHOD" = logical ]; then
    b321_log "verifying $name.partial"
    verify_logical "$PARTIAL" "$name"
  fi
  read -r raw bfile bpos gtid <"$WORK/info"
  wait "$shapid" || b321_fail "reading $PARTIAL back for its sha256 failed"
  sha=$(cat -- "$WORK/disk.sha")
  [[ $sha =~ ^[0-9a-f]{64}$ ]] || b321_fail "reading $PARTIAL back for its sha256 failed ($sha)"
  if [ "$MARIADB_METHOD" = physical ]; then
    # The bytes on disk are the bytes that were checked as they were written.
    [ "$sha" = "$(cut -d' ' -f1 <"$WORK/check.sha")" ] ||
      b321_fail "verify: $PARTIAL on disk (sha256 $sha) is not what was written and checked ($(cut -d' ' -f1 <"$WORK/check.sha"))"
  fi
  bytes=$(stat -c %s -- "$PARTIAL")
  t1=$(date +%s)
  write_manifest "$PARTIAL.manifest.json" "$name" "$sha" "$bytes" "$raw" "$bfile" "$bpos" \
    "${gtid:-}" "$WORK/counts.txt" "$started" "$consistent" "$((t1 - t0))"
  mv -- "$PARTIAL" "$final"
  mv -- "$PARTIAL.manifest.json" "$final.manifest.json"
  b321_log "verified $name ($bytes bytes, binlog $bfile:$bpos)"
  b321_set file "$final"
  b321_set bytes "$bytes"
  b321_set raw_bytes "$raw"
  b321_set method "$MARIADB_METHOD"
  b321_set binlog_file "$bfile"
  b321_set binlog_position "$bpos"
  b321_set tables "$(grep -vc '^binlog_snapshot_' "$WORK/counts.txt")"
  retention "$MARIADB_KEEP_FULLS" "$final"
  [ -z "${MARIADB_HANDOFF_ADDRESS:-}" ] || handoff "$final"
}

main
