// Pure functions for the Proxmox VE side: the PBS encryption key file, storage ids, the vzdump
// hook, the snapshot check. (Cron → calendar events is in stacks/calendar.ts: the model checks it.)
import { shq } from "../host/render";

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

/**
 * The vzdump hook with the storage ids it guards filled in (the line `GUARDED_STORAGES=""`): the
 * hook runs for every backup on the node and checks the key of these storages only.
 */
export function renderVzdumpHook(script: string, storageIds: readonly string[]): string {
  const line = 'GUARDED_STORAGES=""';
  if (!script.includes(`\n${line}\n`)) throw new Error(`the vzdump hook has no ${line} line`);
  for (const id of storageIds)
    if (!/^[a-z][a-z0-9._-]*$/.test(id)) throw new Error(`not a PVE storage id: ${id}`);
  return script.replace(
    `\n${line}\n`,
    `\nGUARDED_STORAGES="${[...storageIds].sort().join(" ")}"\n`,
  );
}

/**
 * The deploy-time check that every guest of the snapshot job is on storage that can snapshot: PVE
 * refuses each snapshot otherwise ("snapshot feature is not available"), so the job would fail on
 * every run. Asks PVE itself (`pvesh get /nodes/<node>/<qemu|lxc>/<id>/feature --feature
 * snapshot`, {"hasFeature":1|0}) and fails naming every guest that cannot.
 */
export function snapshotFeatureCheck(
  node: string,
  vms: readonly number[],
  containers: readonly number[],
): string {
  const guests = [
    ...vms.map((id) => ["vm", "qemu", id] as const),
    ...containers.map((id) => ["ct", "lxc", id] as const),
  ];
  const lines = guests.flatMap(([kind, api, id]) => [
    `out=$(pvesh get ${shq(`/nodes/${node}/${api}/${id}/feature`)} --feature snapshot --output-format json 2>&1) || { echo "backup321: cannot ask PVE whether ${kind} ${id} can snapshot: $out" >&2; exit 1; }`,
    `printf '%s' "$out" | grep -Eq '"hasFeature" *: *(1|true)' || bad="$bad ${kind} ${id}"`,
  ]);
  return [
    'bad=""',
    ...lines,
    `[ -z "$bad" ] || { echo "backup321: snapshots of${"$"}{bad} would fail on every run: PVE says their storage cannot snapshot ('snapshot feature is not available'); move their disks to storage that can (ZFS, LVM-thin, Ceph RBD, qcow2 on a directory) or take them out of proxmox.snapshots" >&2; exit 1; }`,
  ].join("\n");
}
