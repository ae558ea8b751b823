// Building blocks shared by every section of the site model: names, cron expressions, retention.
import { z } from "zod";
import { CronExpressionParser } from "cron-parser";

/** A name used in file names, resource names and cron file names: lower-case, digits, dash. */
export const name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    "must be lower-case letters, digits, '-' or '_' (e.g. docker-srv)",
  );

/**
 * An absolute path without shell metacharacters (it ends up quoted in env files and scripts) and
 * without "." or ".." segments (a forced command's root must not be escaped).
 */
export const absPath = z
  .string()
  .regex(
    /^\/[A-Za-z0-9._\/@+-]*$/,
    "must be an absolute path of letters, digits and ._/@+- (e.g. /mnt/usb)",
  )
  .refine((p) => !p.split("/").some((seg) => seg === "." || seg === ".."), {
    message: "must not contain '.' or '..' segments (write the path it means, e.g. /mnt/usb)",
  });

/** A host name or IP address: it reaches ssh, URLs and PVE storage definitions. */
export const address = z
  .string()
  .regex(/^[A-Za-z0-9.:-]+$/, "must be an IP address or host name (e.g. 192.168.10.20)");

/** An IANA time zone, as cron's CRON_TZ and date(1) read it. */
export const timezone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat("en", { timeZone: tz });
      return /^[A-Za-z0-9_+/-]+$/.test(tz);
    } catch {
      return false;
    }
  },
  { message: "must be an IANA time zone (e.g. Europe/Paris, or UTC)" },
);

/** An S3 key prefix: plain path segments, no wildcard (an IAM policy grants <prefix>*). */
export const keyPrefix = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*\/?$/,
    "must be a key prefix of letters, digits and ._- segments, ending in / (e.g. database/)",
  );

const cronField = /^[0-9*,/-]+$|^[A-Za-z]{3}([,-][A-Za-z]{3})*$/;

/** Why a cron expression is not usable in /etc/cron.d, or undefined when it is. */
export function cronProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) {
    return `has ${fields.length} field(s) (five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * 0")`;
  }
  const bad = fields.find((f) => !cronField.test(f));
  if (bad !== undefined) {
    return `field "${bad}" is not valid cron syntax (digits, *, ranges a-b, lists a,b and steps */n)`;
  }
  try {
    CronExpressionParser.parse(fields.join(" "), { tz: "UTC" });
  } catch (e) {
    return `${(e as Error).message} (five fields: minute hour day-of-month month day-of-week)`;
  }
  return undefined;
}

/** A five-field cron expression as /etc/cron.d understands it. */
export const cron = z.string().superRefine((expr, ctx) => {
  const problem = cronProblem(expr);
  if (problem) ctx.addIssue({ code: "custom", message: `"${expr}" ${problem}` });
});

const keep = z.number().int().positive("must be a positive whole number (e.g. 5)").optional();

/** How many backups a tier keeps, restic/PBS style. At least one keep-* is required. */
export const retentionPolicy = z
  .strictObject({
    keepLast: keep,
    keepHourly: keep,
    keepDaily: keep,
    keepWeekly: keep,
    keepMonthly: keep,
    keepYearly: keep,
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), {
    message:
      "keeps nothing (set at least one of keepLast, keepDaily, keepWeekly, ...: e.g. keepDaily: 5)",
  });

export type RetentionPolicy = z.infer<typeof retentionPolicy>;

/** The keep-* options of a retention tier in PBS/PVE order, as [option, count] pairs. */
export function keepOptions(policy: RetentionPolicy): [string, number][] {
  const order: [keyof RetentionPolicy, string][] = [
    ["keepLast", "keep-last"],
    ["keepHourly", "keep-hourly"],
    ["keepDaily", "keep-daily"],
    ["keepWeekly", "keep-weekly"],
    ["keepMonthly", "keep-monthly"],
    ["keepYearly", "keep-yearly"],
  ];
  return order.flatMap(([k, opt]) => (policy[k] === undefined ? [] : [[opt, policy[k]]]));
}
