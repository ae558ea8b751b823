// Alert channels and the monitor schedule.
import { z } from "zod";
import { cron } from "../primitives";

export const monitoring = z
  .strictObject({
    /** How often every host checks its jobs. Defaults to hourly. */
    schedule: cron.default("0 * * * *"),
    /** Addresses mailed on an alert (sendmail). */
    email: z.array(z.string().email("must be an e-mail address")).default([]),
    /** Stack config key holding a webhook URL (ntfy, Healthchecks); a secret, since the URL is the credential. */
    webhookSecret: z.string().optional(),
    /** Alert when the USB SSD is fuller than this percentage. Defaults to 85. */
    diskFullPercent: z.number().int().min(1).max(100).default(85),
    /** Alert on a restic lock older than this many hours. Defaults to 12. */
    staleLockHours: z.number().positive().default(12),
  })
  .prefault({});
export type Monitoring = z.infer<typeof monitoring>;
