#!/bin/bash
# backup321 full receiver, on the primary: the forced command of the replica's handoff key
# (root's authorized_keys: restrict,command="mariadb-receive.sh BACKUP_DIR KEEP MIN_INTERVAL
# INCR_DAYS").
# With mariadb.replica the fulls are taken on the replica; each verified one is handed here, so the
# primary keeps fulls and shipped binlogs side by side as without a replica: PITR, the NAS sync,
# the upload and the monitor's PITR-chain check read them where they always did. The key can only:
#   list             print the complete fulls here, oldest first
#   rsync --server   receive a full and its manifest into BACKUP_DIR/.incoming/, with exactly the
#                    server command line mariadb-full.sh's rsync sends
#   accept NAME      check NAME against its manifest (name, size, sha256, verified), move it into
#                    BACKUP_DIR (the file first, its manifest last: a full counts once the manifest
#                    is there), keep the KEEP newest. An increment (<prefix>_incr_...) is accepted
#                    only when its full is here; a full's increments go together once the newest of
#                    them is INCR_DAYS days old or the full is gone, and a full stays while they do
# A stolen key cannot push the good fulls out quickly: a full is accepted only when it is newer
# than every full here, and at most one per MIN_INTERVAL minutes (by this host's clock), so the
# KEEP fulls here before a flood go one per MIN_INTERVAL at most. Increments are held to the same
# rules among themselves (newer than every increment here, one per MIN_INTERVAL).
set -Eeuo pipefail

usage="usage: mariadb-receive.sh BACKUP_DIR KEEP MIN_INTERVAL [INCR_DAYS]"
dir=${1:?$usage}
keep=${2:?$usage}
min_interval=${3:?$usage}
incr_days=${4:-}
cmd=${SSH_ORIGINAL_COMMAND:-}
incoming=$dir/.incoming
for n in "$keep" "$min_interval" ${incr_days:+"$incr_days"}; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "$usage" >&2 && exit 2; }
done
[ "$keep" -ge 1 ] || { echo "$usage" >&2 && exit 2; }
umask 077

refuse() {
  echo "backup321 mariadb-receive: refused: $1" >&2
  exit 1
}

# The names mariadb-full.sh gives: <prefix>_<full|incr>_<UTC stamp>.<xb|sql>.<zst|gz>.enc
is_backup_name() {
  [[ $1 =~ ^[A-Za-z0-9_-]+_(full|incr)_[0-9]{8}_[0-9]{6}\.(xb|sql)\.(zst|gz)\.enc$ ]]
}

kind_of() {
  [[ $1 =~ _(full|incr)_[0-9]{8}_[0-9]{6}\. ]] && printf '%s\n' "${BASH_REMATCH[1]}"
}

stamp_of() {
  [[ $1 =~ _(full|incr)_([0-9]{8}_[0-9]{6})\. ]] && printf '%s\n' "${BASH_REMATCH[2]}"
}

# backups [KIND]: the complete fulls (or increments: incr) here, a manifest beside each file,
# oldest first by their stamp.
backups() {
  local kind=${1:-full} m f
  for m in "$dir"/*_"$kind"_*.enc.manifest.json; do
    [ -f "$m" ] || continue
    f=${m%.manifest.json}
    f=${f##*/}
    { is_backup_name "$f" && [ -f "$dir/$f" ]; } || continue
    printf '%s %s\n' "$(stamp_of "$f")" "$f"
  done | LC_ALL=C sort | cut -d' ' -f2
}

fulls() {
  backups full
}

manifest_get() {
  sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" -- "$1" | head -n 1
}

list() {
  # leftovers of interrupted transfers go after a day
  [ ! -d "$incoming" ] || find "$incoming" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf -- {} +
  fulls
}

# Exactly: rsync --server -te.<caps> --timeout=N . BACKUP_DIR/.incoming/
receive() {
  local -a w
  read -r -a w <<<"$cmd"
  [ ${#w[@]} -eq 6 ] || refuse "rsync command line of ${#w[@]} words"
  [[ ${w[2]} =~ ^-te\.[A-Za-z]+$ ]] || refuse "rsync options ${w[2]}"
  [[ ${w[3]} =~ ^--timeout=[0-9]+$ ]] || refuse "rsync option ${w[3]}"
  [ "${w[4]}" = . ] || refuse "rsync argument ${w[4]}"
  [ "${w[5]}" = "$incoming/" ] || refuse "destination ${w[5]}"
  install -d -m 0700 -- "$dir" "$incoming"
  # --munge-links: a symlink sent is stored inert, never followed by accept
  exec rsync --server --munge-links "${w[2]}" "${w[3]}" . "$incoming/"
}

accept() {
  local name=$1 f m newest want got kind base="" last
  is_backup_name "$name" || refuse "name $name"
  kind=$(kind_of "$name")
  f=$incoming/$name
  m=$f.manifest.json
  { [ -f "$f" ] && [ ! -L "$f" ] && [ -f "$m" ] && [ ! -L "$m" ]; } ||
    refuse "$name and its manifest were not both received"
  if [ -f "$dir/$name.manifest.json" ]; then
    rm -f -- "$f" "$m"
    printf 'accepted %s (already here)\n' "$name"
    return 0
  fi
  # what was received leaves .incoming whatever the answer
  trap 'rm -f -- "$f" "$m"' EXIT
  [ "$(manifest_get "$m" file)" = "$name" ] || refuse "the manifest of $name names another file"
  [ "$(manifest_get "$m" verified)" = true ] || refuse "the manifest of $name does not say verified"
  want=$(manifest_get "$m" bytes)
  got=$(stat -c %s -- "$f")
  [ "$want" = "$got" ] || refuse "$name has $got bytes, its manifest recorded ${want:-none}"
  want=$(manifest_get "$m" sha256)
  got=$(sha256sum -- "$f" | cut -d' ' -f1)
  { [ -n "$want" ] && [ "$want" = "$got" ]; } || refuse "$name has sha256 $got, its manifest recorded ${want:-none}"
  if [ "$kind" = incr ]; then
    base=$(manifest_get "$m" base_full)
    { is_backup_name "$base" && [ "$(kind_of "$base")" = full ] && [ -f "$dir/$base.manifest.json" ] &&
      [ -f "$dir/$base" ]; } || refuse "the increment $name builds on ${base:-no full}, which is not here"
  fi
  newest=$(backups "$kind" | tail -n 1)
  if [ -n "$newest" ] && [[ ! "$(stamp_of "$name")" > "$(stamp_of "$newest")" ]]; then
    refuse "$name is not newer than $newest, the newest $kind here"
  fi
  # by this host's clock (rsync -t gives the files the replica's times)
  last=$dir/.last-accepted${base:+-incr}
  if [ "$min_interval" -gt 0 ] && [ -f "$last" ] && [ -n "$(find "$last" -mmin -"$min_interval")" ]; then
    refuse "too frequent: a $kind was accepted here less than $min_interval minutes ago"
  fi
  chmod 0600 -- "$f" "$m"
  mv -f -- "$f" "$dir/$name"
  mv -f -- "$m" "$dir/$name.manifest.json"
  trap - EXIT
  touch -- "$last"
  printf 'accepted %s\n' "$name"
  retention "$name"
}

# retention JUST_ACCEPTED: a full's increments go together once the newest of them is INCR_DAYS days
# old (by its file's time: the replica's clock, which rsync -t kept; without INCR_DAYS, never by
# age) or their full is gone, never the
# one just accepted; then the KEEP newest complete fulls stay, and an older one while increments of
# it do.
retention() {
  local just=$1 f base i
  local -A stale=() kept=()
  while IFS= read -r f; do
    base=$(manifest_get "$dir/$f.manifest.json" base_full)
    if [ -f "$dir/$base.manifest.json" ] &&
      { [ -z "$incr_days" ] || [ -z "$(find "$dir/$f" -mtime +"$((incr_days - 1))")" ]; }; then
      stale[$base]=""
    else
      stale[$base]=${stale[$base]-1}
    fi
  done < <(backups incr)
  while IFS= read -r f; do
    base=$(manifest_get "$dir/$f.manifest.json" base_full)
    if [ -n "${stale[$base]:-}" ] && [ "$f" != "$just" ]; then
      rm -f -- "$dir/$f.manifest.json" "$dir/$f"
      printf 'removed %s\n' "$f"
    else
      kept[$base]=1
    fi
  done < <(backups incr)
  local -a all
  mapfile -t all < <(fulls)
  for ((i = 0; i < ${#all[@]} - keep; i++)); do
    [ -z "${kept[${all[$i]}]:-}" ] || continue
    rm -f -- "$dir/${all[$i]}.manifest.json" "$dir/${all[$i]}"
    printf 'removed %s\n' "${all[$i]}"
  done
}

case $cmd in
  list) list ;;
  "accept "*) accept "${cmd#accept }" ;;
  "rsync --server "*) receive ;;
  *) refuse "command '${cmd%% *}'" ;;
esac
