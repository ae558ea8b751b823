#!/bin/bash
# Shared by the PBS scripts: run proxmox-backup-manager (through the configured prefix when PBS runs
# in a container), read its compact JSON output without jq, and check the datastore's disk.
# Configured by the env file: PBS_PREFIX (plain words, e.g. "docker exec pbs"), PBS_DATASTORE,
# PBS_PATH, PBS_MOUNT (empty when the datastore has no disk of its own).

# pbm ARGS...: proxmox-backup-manager ARGS, inside the container when PBS_PREFIX says so.
pbm() {
  local -a prefix=()
  read -r -a prefix <<< "${PBS_PREFIX:-}"
  "${prefix[@]}" proxmox-backup-manager "$@"
}

# json_objects: one flat JSON object per line from a list (nested objects are not read).
json_objects() {
  grep -o '{[^{}]*}' || true
}

# json_field KEY: the value of KEY in the one-line object on stdin ("" when absent); strings unquoted.
json_field() {
  local key=$1
  sed -n -e "s/.*\"$key\" *: *\"\([^\"]*\)\".*/\1/p" -e "t" \
    -e "s/.*\"$key\" *: *\([^,}\" ]*\).*/\1/p" | head -n 1
}

# json_find KEY VALUE: the object of the list on stdin whose KEY is VALUE ("" when none).
json_find() {
  local key=$1 want=$2 obj
  while IFS= read -r obj; do
    if [ "$(json_field "$key" <<< "$obj")" = "$want" ]; then
      printf '%s\n' "$obj"
      return 0
    fi
  done < <(json_objects)
}

# disk_mounted: true when the datastore has no disk of its own, or its disk is mounted.
disk_mounted() {
  [ -z "${PBS_MOUNT:-}" ] || mountpoint -q -- "$PBS_MOUNT"
}
