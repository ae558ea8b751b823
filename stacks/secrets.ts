// The stack secrets a site needs (config keys under backup321:), and why: the program reads them,
// the offline plan fills placeholders for them, the README lists them.
import type { Site } from "./schema";

export interface SecretNeed {
  readonly key: string;
  readonly why: string;
}

export function requiredSecrets(site: Site): SecretNeed[] {
  const needs = new Map<string, string>();
  for (const h of site.hosts) needs.set(h.sshKeySecret, `SSH private key for ${h.name}`);
  if (site.proxmox)
    needs.set(site.proxmox.apiTokenSecret, "Proxmox VE API token (user@realm!id=secret)");
  if (site.monitoring.webhookSecret) needs.set(site.monitoring.webhookSecret, "alert webhook URL");
  return [...needs].map(([key, why]) => ({ key, why })).sort((a, b) => a.key.localeCompare(b.key));
}
