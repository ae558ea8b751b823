#!/bin/bash
# Installs the Debian packages the integration tests and benchmarks use, when any is missing.
# Real services, not fakes: MariaDB 10.11, mariadb-backup, restic, OpenSSH, rsync, zstd, pigz,
# openssl, shellcheck, cron, the aws CLI (used by the dump upload against s3rver), sudo (the
# lifecycle suite reaches one host as a sudo user).
set -Eeuo pipefail

packages=(mariadb-server mariadb-client mariadb-backup restic openssl zstd pigz rsync
  openssh-server openssh-client shellcheck cron awscli curl util-linux procps ca-certificates sudo faketime jq)
commands=(mariadbd mariadb mariadb-backup mariadb-binlog restic openssl zstd pzstd pigz rsync
  sshd ssh shellcheck cron aws curl flock logger mountpoint sudo faketime jq)

missing=()
for c in "${commands[@]}"; do
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup-host: missing ${missing[*]}; installing Debian packages" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: run as root, or install: apt-get install ${packages[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
mkdir -p /run/sshd
