// Pure functions for the Proxmox VE side: retention → prune-backups, the PBS encryption key file,
// the snapshot job's env. (Cron → calendar events is in stacks/calendar.ts: the model checks it.)
import { keepOptions, type RetentionPolicy } from "../../stacks/primitives";

/** The vzdump job's prune-backups map (strings, as the provider wants them): {"keep-daily": "5"}. */
export function pruneBackups(policy: RetentionPolicy): Record<string, string> {
  return Object.fromEntries(keepOptions(policy).map(([k, v]) => [k, String(v)]));
}

/**
 * A Proxmox Backup client key file without a passphrase (kdf null), as `proxmox-backup-client key
 * create --kdf none` writes it: the 32 random key bytes base64-encoded. `created` is informational;
 * it is fixed so the file (and the storage using it) never changes between runs.
 */
export function pbsKeyFile(keyBase64: string): string {
  const bytes = Buffer.from(keyBase64, "base64");
  if (bytes.length !== 32)
    throw new Error(`a PBS encryption key has 32 bytes, not ${bytes.length}`);
  const created = "1970-01-01T00:00:00Z";
  return JSON.stringify({
    kdf: null,
    created,
    modified: created,
    data: bytes.toString("base64"),
  });
}

/** The PVE storage id of a PBS datastore. */
export function pbsStorageId(datastore: string): string {
  return `pbs-${datastore}`;
}

/** Where PVE keeps a PBS storage's encryption key; missing means backups go out unencrypted. */
export function pveKeyFilePath(storageId: string, pveDir = "/etc/pve"): string {
  return `${pveDir}/priv/storage/${storageId}.enc`;
}
