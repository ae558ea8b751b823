// SSH trust between two hosts a job connects (a source host to the NAS, a replica to its
// primary): the source's own key, made on it; its line in the receiver's authorized_keys, restricted
// to a forced command and marked by a comment; the receiver's host key pinned on the source.
import { shq } from "./render";

/** The comment that marks a source host's key for one purpose in a receiver's authorized_keys. */
export function keyComment(purpose: string, sourceHost: string): string {
  return `backup321-${purpose}@${sourceHost}`;
}

/** A known_hosts line pinning a host key (port 22 is written bare, others as [addr]:port). */
export function knownHostsLine(address: string, port: number, hostKey: string): string {
  const key = hostKey.trim().split(/\s+/).slice(0, 2).join(" ");
  if (!/^(ssh-|ecdsa-)\S+ [A-Za-z0-9+/=]+$/.test(key))
    throw new Error(`host key "${hostKey}" is not a public key line (e.g. ssh-ed25519 AAAA...)`);
  return `${port === 22 ? address : `[${address}]:${port}`} ${key}\n`;
}

/**
 * Installs stdin as the line for this source host in an authorized_keys file, as the file's owner
 * (the NAS has no root): any older line with the same comment is replaced; other keys are kept.
 */
export function installAuthorizedKeyCommand(file: string, comment: string): string {
  const f = shq(file);
  const dir = shq(file.slice(0, file.lastIndexOf("/")) || "/");
  const marker = shq(` ${comment}`);
  return [
    "set -eu",
    "umask 077",
    `mkdir -p -- ${dir}`,
    `touch -- ${f}`,
    `tmp=$(mktemp -- ${f}.b321.XXXXXX)`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `{ grep -v -F -e ${marker} -- ${f} || true; cat; } > "$tmp"`,
    `if cmp -s -- "$tmp" ${f}; then exit 0; fi`,
    `chmod 0600 -- "$tmp"`,
    `mv -f -- "$tmp" ${f}`,
    "trap - EXIT",
  ].join("\n");
}

/** Removes this source host's line from the authorized_keys file; succeeds when it is gone. */
export function removeAuthorizedKeyCommand(file: string, comment: string): string {
  const f = shq(file);
  const marker = shq(` ${comment}`);
  return [
    "set -eu",
    `[ -f ${f} ] || exit 0`,
    `grep -q -F -e ${marker} -- ${f} || exit 0`,
    `tmp=$(mktemp -- ${f}.b321.XXXXXX)`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `grep -v -F -e ${marker} -- ${f} > "$tmp" || true`,
    `chmod 0600 -- "$tmp"`,
    `mv -f -- "$tmp" ${f}`,
    "trap - EXIT",
  ].join("\n");
}

/**
 * Makes the host's own key for one purpose once (ed25519, 0600, no passphrase: cron uses it) and prints
 * only the public half, which is not secret. The private key never leaves the host.
 */
export function ensureKeyCommand(keyFile: string, comment: string): string {
  const k = shq(keyFile);
  const dir = shq(keyFile.slice(0, keyFile.lastIndexOf("/")) || "/");
  return [
    "set -eu",
    "umask 077",
    `install -d -m 0700 -- ${dir}`,
    `if [ ! -s ${k} ]; then rm -f -- ${k} ${shq(`${keyFile}.pub`)}; ssh-keygen -q -t ed25519 -N '' -C ${shq(comment)} -f ${k}; fi`,
    `chmod 0600 -- ${k}`,
    `ssh-keygen -y -f ${k}`,
  ].join("\n");
}

/** Trust-on-first-use when no host key is pinned: scans the receiver's ed25519 key once, from the source host. */
export function scanKnownHostsCommand(file: string, address: string, port: number): string {
  const f = shq(file);
  const dir = shq(file.slice(0, file.lastIndexOf("/")) || "/");
  return [
    "set -eu",
    "umask 077",
    `install -d -m 0700 -- ${dir}`,
    `if [ ! -s ${f} ]; then tmp=$(mktemp -- ${f}.b321.XXXXXX); ssh-keyscan -T 15 -t ed25519 -p ${port} -- ${shq(address)} > "$tmp" 2>/dev/null; [ -s "$tmp" ] || { rm -f -- "$tmp"; echo "backup321: no ed25519 host key from ${address}:${port} (pin it with hostKey:)" >&2; exit 1; }; chmod 0644 -- "$tmp"; mv -f -- "$tmp" ${f}; fi`,
    `cat -- ${f}`,
  ].join("\n");
}
