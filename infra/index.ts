// The Pulumi program: load and validate the site, build it, export what was installed where.
import * as pulumi from "@pulumi/pulumi";
import { loadSite } from "../stacks/config";
import { requiredSecrets } from "../stacks/secrets";
import { BackupSite } from "../components/site";
import { recoveryReport, threeTwoOne as countCopies } from "../stacks/targets";
import { renderRunbook } from "../stacks/runbook";

const { site, secret } = loadSite();
const secrets = Object.fromEntries(requiredSecrets(site).map(({ key }) => [key, secret(key)]));
const runbook = renderRunbook(site, pulumi.getStack());
const backup = new BackupSite("backup321", { site, secrets, runbook });

export const summary = backup.summary;
/** PBS client encryption keys by PVE storage id (secret): escrow them, backups are unreadable without. */
export const pbsEncryptionKeys = backup.proxmox?.encryptionKeys;
/** SHA-256 fingerprint of the PBS certificate that PVE pins. */
export const pbsFingerprint = backup.pbs?.fingerprint;
/** Copies (production included), distinct media, offsite and immutable copies. */
export const threeTwoOne = countCopies(site);
/** Worst-case RPO and estimated RTO per scenario, with the targets they are checked against. */
export const recovery = recoveryReport(site);
