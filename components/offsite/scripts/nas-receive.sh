#!/bin/sh
# backup321 NAS receiver: the forced command of the source host's sync key on the NAS
# (authorized_keys: restrict,command="nas-receive.sh ROOT KEEP MIN_AGE"). That key can only:
#   latest           print the newest complete snapshot's name (empty when none)
#   rsync --server   receive into ROOT/<stamp>.partial/ (hard links from an older snapshot allowed)
#   finish <stamp>   rename <stamp>.partial to <stamp>, point ROOT/latest at it, keep the KEEP newest
# It cannot read, change or delete older snapshots: retention is decided here, not by the sender,
# and no snapshot finished less than MIN_AGE minutes ago is ever removed, so a compromised sender
# that floods the NAS with new snapshots cannot push the good ones out (the disk fills instead).
set -eu

root=${1:?usage: nas-receive.sh ROOT KEEP MIN_AGE}
keep=${2:?usage: nas-receive.sh ROOT KEEP MIN_AGE}
min_age=${3:-2880}
cmd=${SSH_ORIGINAL_COMMAND:-}

refuse() {
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

# --link-dest only to a complete snapshot under ROOT.
link_dest() {
  ld=${1%/}
  is_stamp "${ld#"$root"/}" && [ "$ld" = "$root/${ld#"$root"/}" ] && [ -d "$ld" ] || refuse "link-dest $1"
}

# Only a receiving rsync into a fresh .partial directory, with no option that deletes or rewrites
# files in place; --link-dest only to a complete snapshot under ROOT.
receive() {
  set -f
  # shellcheck disable=SC2086  # the command is split into words on purpose; globbing is off
  set -- $cmd
  set +f
  [ "$1" = rsync ] && [ "$2" = --server ] || refuse "not an rsync server command"
  n=$#
  i=0
  dest=""
  link_next=0
  for arg in "$@"; do
    i=$((i + 1))
    if [ "$link_next" = 1 ]; then
      link_dest "$arg"
      link_next=0
      continue
    fi
    if [ "$i" -eq "$n" ]; then
      dest=$arg
      continue
    fi
    case $arg in
      rsync | --server | .) ;;
      --sender | --inplace | --append* | --remove-source-files | --delete* | --del | --backup* | --copy-dest* | --compare-dest*)
        refuse "option $arg" ;;
      --link-dest) link_next=1 ;;
      --link-dest=*) link_dest "${arg#--link-dest=}" ;;
      --timeout=[0-9]* | --stats) ;;
      --*) refuse "option $arg" ;;
      -*) ;;
      *) refuse "argument $arg" ;;
    esac
  done
  stamp=${dest%/}
  stamp=${stamp#"$root"/}
  stamp=${stamp%.partial}
  is_stamp "$stamp" && [ "${dest%/}" = "$root/$stamp.partial" ] || refuse "destination $dest"
  [ ! -e "$root/$stamp" ] || refuse "snapshot $stamp exists"
  mkdir -p -- "$root"
  # --munge-links (as rrsync does): a symlink sent by the host is stored inert, so a later file
  # of the same transfer cannot be written through it outside ROOT.
  shift 2
  exec rsync --server --munge-links "$@"
}

# old_enough STAMP: finished at least MIN_AGE minutes ago (by the NAS's clock).
old_enough() {
  [ "$min_age" -eq 0 ] && return 0
  [ -e "$root/.finished/$1" ] || return 0
  [ -n "$(find "$root/.finished/$1" -mmin +"$min_age")" ]
}

finish() {
  stamp=$1
  is_stamp "$stamp" || refuse "snapshot name $stamp"
  # a name from the future would sort after every real snapshot for ever
  [ "$(echo "$stamp" | tr -d -)" -le "$(($(date -u +%Y%m%d%H%M%S) + 1000000))" ] || refuse "snapshot $stamp is in the future"
  [ -d "$root/$stamp.partial" ] || refuse "no $stamp.partial"
  [ ! -e "$root/$stamp" ] || refuse "snapshot $stamp exists"
  mv -- "$root/$stamp.partial" "$root/$stamp"
  mkdir -p -- "$root/.finished"
  touch -- "$root/.finished/$stamp"
  ln -sfn -- "$stamp" "$root/latest"
  # Retention: the KEEP newest complete snapshots stay (the one just made is the newest); older
  # ones and stale .partial directories of interrupted runs go.
  count=0
  for d in $(cd -- "$root" && ls -1d -- [0-9]*-[0-9]* 2>/dev/null | sort -r); do
    case $d in
      *.partial) [ "$d" = "$stamp.partial" ] || rm -rf -- "${root:?}/$d" ;;
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
}

case $cmd in
  latest) latest ;;
  "finish "*) finish "${cmd#finish }" ;;
  "rsync --server "*) receive ;;
  *) refuse "command '${cmd%% *}'" ;;
esac
