// Plan-time warnings: what the model allows but an operator should know before relying on it.
// Printed by the offline plan and exported as the stack output `warnings`.
import type { Site } from "./schema";

export function planWarnings(site: Site): string[] {
  const out: string[] = [];
  const m = site.monitoring;
  if (m.email.length === 0 && !m.webhookSecret)
    out.push(
      "alerts go to syslog only (backup321:site.monitoring has no email and no webhookSecret): a host without a running syslog daemon (rsyslog, or journald's forwarding) loses every alert, and nobody is paged; set monitoring.email or monitoring.webhookSecret",
    );
  if (!site.escrow)
    out.push(
      "RUNBOOK.md cannot say where the stack passphrase is kept (backup321:site.escrow is not set): without the passphrase no secret of the stack, and so no encrypted backup, can be read; set escrow to where it is kept offline (e.g. sealed envelope in the office safe)",
    );
  if (!site.stateBackend)
    out.push(
      "RUNBOOK.md cannot say where the Pulumi state is (backup321:site.stateBackend is not set): without it a rebuild cannot read the stack; set it to the URL `pulumi login` takes (e.g. s3://ops-pulumi-state)",
    );
  if (site.contacts.length === 0)
    out.push(
      "RUNBOOK.md and the alerts name nobody to call (backup321:site.contacts is empty): at 3 a.m. the person reading them must know who decides and who restores; add contacts with name, role and phone",
    );
  if (site.mariadb && !site.application)
    out.push(
      "RUNBOOK.md cannot stop the application before a database restore (backup321:site.application is not set): writes that land during the swap are lost; set application with host, stop, start and healthUrl",
    );
  site.hosts.forEach((h, i) => {
    if (h.disarmed)
      out.push(
        `${h.name} is disarmed (backup321:site.hosts[${i}].disarmed): none of its jobs is scheduled and its monitor does not run; set it back to false once its restore is done`,
      );
  });
  return out;
}
