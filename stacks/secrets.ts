// The stack secrets a site needs (config keys under backup321:), and why: the program reads them,
// the offline plan fills placeholders for them, the README lists them.
import type { Site } from "./schema";

export interface SecretNeed {
  readonly key: string;
  readonly why: string;
}

/** Stack secrets holding the S3 key pair of restic's s3 repositories. */
export const RESTIC_S3_SECRETS = {
  accessKeyId: "resticS3AccessKeyId",
  secretAccessKey: "resticS3SecretAccessKey",
} as const;

export function requiredSecrets(site: Site): SecretNeed[] {
  const needs = new Map<string, string>();
  for (const h of site.hosts) needs.set(h.sshKeySecret, `SSH private key for ${h.name}`);
  if (site.proxmox)
    needs.set(site.proxmox.apiTokenSecret, "Proxmox VE API token (user@realm!id=secret)");
  // A repository in the managed bucket uses the bucket's own restic writer key; only one on
  // another S3 service (its own endpoint) needs keys from the stack.
  if (site.restic.repositories.some((r) => r.kind === "s3" && r.endpoint !== undefined)) {
    needs.set(RESTIC_S3_SECRETS.accessKeyId, "access key id restic uses for the bucket");
    needs.set(RESTIC_S3_SECRETS.secretAccessKey, "secret access key restic uses for the bucket");
  }
  if (site.monitoring.webhookSecret) needs.set(site.monitoring.webhookSecret, "alert webhook URL");
  return [...needs].map(([key, why]) => ({ key, why })).sort((a, b) => a.key.localeCompare(b.key));
}
