// Alert channels and the monitor schedule.
import { z } from "zod";
import { absPath, cron } from "../primitives";

export const monitoring = z
  .strictObject({
    /** How often every host checks its jobs. Defaults to hourly. */
    schedule: cron.default("0 * * * *"),
    /** Addresses mailed on an alert (sendmail). */
    email: z.array(z.string().email("must be an e-mail address")).default([]),
    /** Stack config key holding a webhook URL (ntfy, Healthchecks); a secret, since the URL is the credential. */
    webhookSecret: z.string().optional(),
    /**
     * How the webhook is called. json: alerts and success pings are JSON POSTs to the URL (ntfy, a
     * generic receiver). healthchecks: success pings POST to the URL, alerts to <URL>/fail.
     * Defaults to json.
     */
    webhookStyle: z.enum(["json", "healthchecks"]).default("json"),
    /**
     * Ping the webhook after a monitor run that found nothing wrong, so a dead-man's switch
     * (Healthchecks) alerts when the pings stop. Turn off for ntfy (one message per run). Defaults to true.
     */
    pingOnSuccess: z.boolean().default(true),
    /** node_exporter textfile collector directory the monitor copies the .prom files to. Defaults to none. */
    textfileDir: absPath.optional(),
    /** Alert when the USB SSD is fuller than this percentage. Defaults to 85. */
    diskFullPercent: z.number().int().min(1).max(100).default(85),
    /** Alert on a restic lock older than this many hours. Defaults to 12. */
    staleLockHours: z.number().positive().default(12),
  })
  .prefault({});
export type Monitoring = z.infer<typeof monitoring>;
