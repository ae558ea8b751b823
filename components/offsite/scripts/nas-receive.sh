#!/bin/sh
# backup321 NAS receiver: the forced command of the source host's sync key on the NAS
# (authorized_keys: restrict,command="nas-receive.sh ROOT KEEP MIN_AGE MIN_INTERVAL"). That key can
# only:
#   latest           print the newest snapshot's name (empty when none)
#   rsync --server   receive into a new ROOT/<id>.partial/, with exactly the server command line
#                    nas-sync.sh's rsync sends (hard links from a snapshot under ROOT allowed)
#   finish <id>      accept <id>.partial as a snapshot named by the NAS's clock, point ROOT/latest at
#                    it, keep the KEEP newest
#   rsync --server --sender
#                    send ROOT/latest/ back, read-only (a rebuilt source host restores from it)
# The sender decides nothing about retention: the NAS names each snapshot with its own UTC time at
# finish, refuses an empty snapshot (no non-empty file) and a second one less than MIN_INTERVAL
# minutes after the last accepted one, removes only accepted snapshots beyond the KEEP newest, and
# never one accepted less than MIN_AGE minutes ago. So a compromised sender can add at most one
# snapshot per MIN_INTERVAL, and KEEP real snapshots always remain.
# Every refusal is appended (NAS time, reason) to ROOT/.refused, the file a NAS-side alert watches;
# the next accepted snapshot also tells the sender how many were refused since the last one, so a
# stolen key used from elsewhere shows as a warning of the source host's own job.
#
# nas-receive.sh --read-only ROOT: the forced command of a reader's key (a standby host's disaster-
# recovery drill): only `latest` and the read-only sender path; receive and finish are refused and
# recorded in ROOT/.refused like every other refusal.
set -eu

usage="usage: nas-receive.sh ROOT KEEP MIN_AGE MIN_INTERVAL | nas-receive.sh --read-only ROOT"
read_only=""
if [ "${1:-}" = --read-only ]; then
  [ $# -eq 2 ] || { echo "$usage" >&2 && exit 2; }
  read_only=1
  set -- "$2" 1
fi
root=${1:?$usage}
keep=${2:?$usage}
min_age=${3:-2880}
min_interval=${4:-30}
cmd=${SSH_ORIGINAL_COMMAND:-}
for n in "$keep" "$min_age" "$min_interval"; do
  case $n in '' | *[!0-9]*) echo "$usage" >&2 && exit 2 ;; esac
done

# record REASON: appended to ROOT/.refused (the last 100 kept; what the sender sent is printable).
record() {
  [ -d "$root" ] || return 0
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) refused: $(printf '%s' "$1" | tr -c '[:print:]' '?' | cut -c 1-300)"
  if ! { { tail -n 99 -- "$root/.refused" 2>/dev/null || true; printf '%s\n' "$line"; } >"$root/.refused.$$" &&
    mv -f -- "$root/.refused.$$" "$root/.refused"; }; then
    rm -f -- "$root/.refused.$$"
  fi
  n=$(unreported)
  echo $((n + 1)) >"$root/.refused-unreported" || true
}

# unreported: refusals since the last accepted snapshot.
unreported() {
  n=$(cat -- "$root/.refused-unreported" 2>/dev/null || true)
  case $n in '' | *[!0-9]*) n=0 ;; esac
  echo "$n"
}

refuse() {
  record "$1"
  echo "backup321 nas-receive: refused: $1" >&2
  exit 1
}

is_stamp() {
  case $1 in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]) return 0 ;;
    *) return 1 ;;
  esac
}

latest() {
  if [ -L "$root/latest" ]; then
    target=$(readlink -- "$root/latest")
    target=${target##*/}
    if is_stamp "$target" && [ -d "$root/$target" ]; then
      printf '%s\n' "$target"
    fi
  fi
}

# too_frequent: a snapshot was accepted less than MIN_INTERVAL minutes ago (by the NAS's clock).
too_frequent() {
  [ "$min_interval" -gt 0 ] && [ -d "$root/.finished" ] &&
    [ -n "$(find "$root/.finished" -type f -mmin -"$min_interval" | head -n 1)" ]
}

# check_options FLAGS OPTIONS TIMEOUT: OPTIONS is FLAGS followed by the client's capability letters
# only, TIMEOUT is --timeout=<seconds>.
check_options() {
  case ${2#"$1"} in
    "$2" | "" | *[!A-Za-z]*) refuse "rsync options $2" ;;
  esac
  case ${3#--timeout=} in
    "$3" | "" | *[!0-9]*) refuse "rsync option $3" ;;
  esac
}

# Exactly what nas-sync.sh's rsync (-a --relative --stats --timeout=N [--link-dest=S]) sends:
#   rsync --server -logDtprRe.<caps> --timeout=N --stats [--link-dest ROOT/<snapshot>] . ROOT/<id>.partial/
# (<caps>: the client's capability letters). Nothing else: no other option, short or long.
receive() {
  set -f
  # shellcheck disable=SC2086  # the command is split into words on purpose; globbing is off
  set -- $cmd
  set +f
  [ $# -eq 7 ] || [ $# -eq 9 ] || refuse "rsync command line of $# words"
  { [ "$1" = rsync ] && [ "$2" = --server ]; } || refuse "not an rsync server command"
  check_options -logDtprRe. "$3" "$4"
  [ "$5" = --stats ] || refuse "rsync option $5"
  flags=$3 timeout=$4
  link=""
  if [ $# -eq 9 ]; then
    [ "$6" = --link-dest ] || refuse "rsync option $6"
    link=${7%/}
    { is_stamp "${link#"$root"/}" && [ "$link" = "$root/${link#"$root"/}" ] && [ -d "$link" ] &&
      [ ! -L "$link" ]; } || refuse "link-dest $7"
    shift 2
  fi
  [ "$6" = . ] || refuse "rsync argument $6"
  dest=$7
  id=${dest#"$root"/}
  id=${id%.partial/}
  { is_stamp "$id" && [ "$dest" = "$root/$id.partial/" ]; } || refuse "destination $dest"
  ! too_frequent || refuse "too frequent: a snapshot was accepted less than $min_interval minutes ago"
  mkdir -p -- "$root"
  # A fresh directory for every receive: an existing one may hold hard links into a finished
  # snapshot (--link-dest), whose mode or times a second transfer would change in place.
  mkdir -- "$root/$id.partial" 2>/dev/null || refuse "$id.partial exists (every receive starts afresh)"
  # Only the words checked above. --munge-links (as rrsync does): a symlink sent by the host is
  # stored inert, so a later file of the same transfer cannot be written through it outside ROOT.
  # --no-inc-recursive: one file list, sorted and rid of duplicates, so no file is received twice
  # (the second time in place, over a hard link).
  exec rsync --server --munge-links --no-inc-recursive "$flags" "$timeout" --stats ${link:+--link-dest "$link"} . "$dest"
}

# old_enough NAME: accepted at least MIN_AGE minutes ago (by the NAS's clock).
old_enough() {
  [ "$min_age" -eq 0 ] && return 0
  [ -e "$root/.finished/$1" ] || return 0
  [ -n "$(find "$root/.finished/$1" -mmin +"$min_age")" ]
}

unlock() {
  rmdir -- "$root/.finish.lock" 2>/dev/null || true
}

finish() {
  id=$1
  is_stamp "$id" || refuse "snapshot name $id"
  [ -d "$root/$id.partial" ] || refuse "no $id.partial"
  # One finish at a time (a lock left by a NAS crash goes after an hour).
  if ! mkdir -- "$root/.finish.lock" 2>/dev/null; then
    [ -z "$(find "$root/.finish.lock" -prune -mmin +60)" ] || rmdir -- "$root/.finish.lock"
    mkdir -- "$root/.finish.lock" 2>/dev/null || refuse "another finish is running"
  fi
  trap unlock EXIT
  trap 'exit 1' HUP INT TERM
  if too_frequent; then
    rm -rf -- "${root:?}/$id.partial"
    refuse "too frequent: $id arrived less than $min_interval minutes after the last accepted snapshot"
  fi
  if [ -z "$(find "$root/$id.partial" -type f -size +0c | head -n 1)" ]; then
    rm -rf -- "${root:?}/$id.partial"
    refuse "empty snapshot $id (no file with content)"
  fi
  stamp=$(date -u +%Y%m%d-%H%M%S)
  [ ! -e "$root/$stamp" ] || refuse "snapshot $stamp exists (one per second)"
  mv -- "$root/$id.partial" "$root/$stamp"
  mkdir -p -- "$root/.finished"
  touch -- "$root/.finished/$stamp"
  ln -sfn -- "$stamp" "$root/latest"
  # Retention: the KEEP newest accepted snapshots stay (the one just made is the newest); older
  # ones accepted at least MIN_AGE ago, and stale .partial directories of interrupted runs, go.
  count=0
  # shellcheck disable=SC2012  # snapshot names are digits and a dash only
  for d in $(cd -- "$root" && ls -1d -- [0-9]*-[0-9]* 2>/dev/null | sort -r); do
    case $d in
      *.partial) rm -rf -- "${root:?}/$d" ;;
      *)
        is_stamp "$d" || continue
        count=$((count + 1))
        if [ "$count" -gt "$keep" ] && [ "$d" != "$stamp" ] && old_enough "$d"; then
          rm -rf -- "${root:?}/$d"
          rm -f -- "$root/.finished/$d"
        fi
        ;;
    esac
  done
  printf 'snapshot %s complete\n' "$stamp"
  n=$(unreported)
  rm -f -- "$root/.refused-unreported"
  [ "$n" -eq 0 ] || printf 'warning: refused %s upload(s) since the last snapshot (see %s/.refused on the NAS)\n' "$n" "$root"
}

# Reading back the newest snapshot, for a rebuilt source host (RUNBOOK.md): exactly what
# `rsync -a --timeout=N <nas>:ROOT/latest/ DIR/` sends, read-only (--sender):
#   rsync --server --sender -logDtpre.<caps> --timeout=N . ROOT/latest/
# The key can read only what its own host sent, and nothing older than the newest snapshot.
send() {
  set -f
  # shellcheck disable=SC2086  # the command is split into words on purpose; globbing is off
  set -- $cmd
  set +f
  [ $# -eq 7 ] || refuse "rsync command line of $# words"
  if [ "$1" != rsync ] || [ "$2" != --server ] || [ "$3" != --sender ]; then
    refuse "not an rsync sender command"
  fi
  check_options -logDtpre. "$4" "$5"
  if [ "$6" != . ] || [ "$7" != "$root/latest/" ]; then
    refuse "rsync source $6 $7"
  fi
  [ -n "$(latest)" ] || refuse "no snapshot to read"
  exec rsync --server --sender "$4" "$5" . "$root/latest/"
}

if [ -n "$read_only" ]; then
  case $cmd in
    latest) latest ;;
    "rsync --server --sender "*) send ;;
    *) refuse "read-only key: command '$(printf '%s' "$cmd" | cut -c 1-80)'" ;;
  esac
  exit 0
fi

case $cmd in
  latest) latest ;;
  "finish "*) finish "${cmd#finish }" ;;
  "rsync --server --sender "*) send ;;
  "rsync --server "*) receive ;;
  *) refuse "command '${cmd%% *}'" ;;
esac
