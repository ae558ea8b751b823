// The Pulumi program as a function: infra/index.ts runs it for the CLI, the lifecycle tests run it
// inline through the Automation API, so both deploy exactly the same resources.
import * as pulumi from "@pulumi/pulumi";
import { loadSite } from "../stacks/config";
import { requiredSecrets } from "../stacks/secrets";
import { BackupSite } from "../components/site";
import { recoveryReport, threeTwoOne as countCopies } from "../stacks/targets";
import { renderRunbook } from "../components/site/runbook";
import { SITE_RESOURCE } from "../components/site/names";
import { planWarnings } from "../stacks/warnings";

/** Loads and validates the site, builds it, and returns the stack outputs. */
export function backupProgram() {
  const { site, secret } = loadSite();
  const secrets = Object.fromEntries(requiredSecrets(site).map(({ key }) => [key, secret(key)]));
  const runbook = renderRunbook(site, pulumi.getStack());
  const backup = new BackupSite(SITE_RESOURCE, { site, secrets, runbook });
  return {
    summary: backup.summary,
    /** PBS client encryption keys by PVE storage id (secret): escrow them, backups are unreadable without. */
    pbsEncryptionKeys: backup.proxmox?.encryptionKeys,
    /** Every MariaDB encryption key by generation (secret): each opens the fulls and binlogs made with it. */
    mariadbEncryptionKeys: backup.mariadb?.encryptionKeys,
    /** Every restic password by repository and generation (secret): each opens the copies made while it was current. */
    resticPasswords: pulumi.secret(
      pulumi.all(
        Object.fromEntries(Object.values(backup.restic).map((r) => [r.repo, r.passwords])),
      ),
    ),
    /** SHA-256 fingerprint of the PBS certificate that PVE pins. */
    pbsFingerprint: backup.pbs?.fingerprint,
    /** Copies (production included), distinct media, offsite and immutable copies. */
    threeTwoOne: countCopies(site),
    /** Worst-case RPO and estimated RTO per scenario, with the targets they are checked against. */
    recovery: recoveryReport(site),
    /** What the model allows but an operator should know (stacks/warnings.ts). */
    warnings: planWarnings(site),
  };
}
