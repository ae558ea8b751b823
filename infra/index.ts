// The Pulumi program: load and validate the site, build it, export what was installed where.
import { loadSite } from "../stacks/config";
import { requiredSecrets } from "../stacks/secrets";
import { BackupSite } from "../components/site";

const { site, secret } = loadSite();
const secrets = Object.fromEntries(requiredSecrets(site).map(({ key }) => [key, secret(key)]));
const backup = new BackupSite("backup321", { site, secrets });

export const summary = backup.summary;
/** PBS client encryption keys by PVE storage id (secret): escrow them, backups are unreadable without. */
export const pbsEncryptionKeys = backup.proxmox?.encryptionKeys;
/** SHA-256 fingerprint of the PBS certificate that PVE pins. */
export const pbsFingerprint = backup.pbs?.fingerprint;
