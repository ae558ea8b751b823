// Who to call when backups fail or a restore starts, and the application that writes to the
// database: RUNBOOK.md stops it before a restore, starts and checks it after, and alerts name the
// people to call.
import { z } from "zod";

export const contact = z
  .strictObject({
    name: z.string().min(2, "must name the person (e.g. Oumayma Lafridi)"),
    /** What they do in an incident (e.g. IT manager, DBA). */
    role: z.string().min(2, "must say what they do in an incident (e.g. DBA)"),
    /** A number that answers at 3 a.m. */
    phone: z
      .string()
      .regex(/^\+?[0-9][0-9 .()-]{5,}$/, "must be a phone number (e.g. +212 6 12 34 56 78)")
      .optional(),
    email: z.string().email("must be an e-mail address").optional(),
  })
  .refine((c) => c.phone !== undefined || c.email !== undefined, {
    message: "gives no way to reach them (add phone: or email:)",
  });
export type Contact = z.infer<typeof contact>;

/** "Name (role, phone, email)": how RUNBOOK.md and the alerts name a contact. */
export function contactLine(c: Contact): string {
  return `${c.name} (${[c.role, c.phone, c.email].filter(Boolean).join(", ")})`;
}

export const application = z.strictObject({
  /** Where the application runs: what to ssh to (a host of hosts: or any other, e.g. root@192.168.10.50). */
  host: z.string().min(1),
  /** Stops everything that writes to the database (e.g. systemctl stop apache2). */
  stop: z.string().min(1),
  /** Starts it again (e.g. systemctl start apache2). */
  start: z.string().min(1),
  /** A URL that answers (HTTP 2xx or 3xx) while the application is up. */
  healthUrl: z.string().url("must be a URL (e.g. https://intranet.atlastech.ma/login)"),
  /** What a person checks once it is up (e.g. log in as admin, open the last order). Defaults to none. */
  check: z.string().min(1).optional(),
});
export type Application = z.infer<typeof application>;
