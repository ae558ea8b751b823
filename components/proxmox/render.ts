// Pure functions for the Proxmox VE side: cron → PVE calendar events, retention → prune-backups,
// the PBS encryption key file, the snapshot job's env.
import type { RetentionPolicy } from "../../stacks/primitives";

const DOW = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

type Field = "minute" | "hour" | "day" | "month" | "weekday";

function value(field: Field, v: string): string {
  const lower = v.toLowerCase();
  if (field === "weekday") {
    if (/^[0-7]$/.test(v)) return DOW[Number(v)];
    if (DOW.includes(lower)) return lower;
  } else if (field === "month" && MONTHS.includes(lower)) {
    return String(MONTHS.indexOf(lower) + 1);
  } else if (/^[0-9]+$/.test(v)) {
    const n = String(Number(v));
    return field === "minute" || field === "hour" ? n.padStart(2, "0") : n;
  }
  throw new Error(`"${v}" is not a valid ${field}`);
}

function part(field: Field, p: string): string {
  const step = /^(\*|[0-9]+)\/([0-9]+)$/.exec(p);
  if (step) {
    if (field === "weekday")
      throw new Error(`a step in the weekday field ("${p}") has no PVE form`);
    const start =
      step[1] === "*" ? (field === "day" || field === "month" ? 1 : 0) : Number(step[1]);
    value(field, String(start));
    return `${start}/${Number(step[2])}`;
  }
  const range = /^([A-Za-z0-9]+)-([A-Za-z0-9]+)$/.exec(p);
  if (range) return `${value(field, range[1])}..${value(field, range[2])}`;
  if (p.includes("/")) throw new Error(`"${p}": a step over a range has no PVE form`);
  return value(field, p);
}

function convert(field: Field, f: string): string {
  if (f === "*") return "*";
  return f
    .split(",")
    .map((p) => part(field, p))
    .join(",");
}

/**
 * A five-field cron expression as a PVE/PBS calendar event ("[WEEKDAY] [MONTH-DAY] HOUR:MINUTE"),
 * the schedule format of vzdump jobs. Throws on cron forms that have no exact equivalent.
 */
export function cronToCalendarEvent(expr: string): string {
  const f = expr.trim().split(/\s+/);
  if (f.length !== 5) throw new Error(`"${expr}" must have five fields`);
  const [minute, hour, day, month, weekday] = f;
  if (day !== "*" && weekday !== "*") {
    throw new Error(
      `"${expr}" restricts both day of month and weekday (cron runs on either, PVE on both): keep one`,
    );
  }
  const out: string[] = [];
  if (weekday !== "*") out.push(convert("weekday", weekday));
  if (day !== "*" || month !== "*") out.push(`${convert("month", month)}-${convert("day", day)}`);
  out.push(`${convert("hour", hour)}:${convert("minute", minute)}`);
  return out.join(" ");
}

/** Why a cron expression cannot be a vzdump schedule, or undefined when it can. */
export function calendarProblem(expr: string): string | undefined {
  try {
    cronToCalendarEvent(expr);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

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

/** The vzdump job's prune-backups map (strings, as the provider wants them): {"keep-daily": "5"}. */
export function pruneBackups(policy: RetentionPolicy): Record<string, string> {
  return Object.fromEntries(keepOptions(policy).map(([k, v]) => [k, String(v)]));
}

/**
 * A Proxmox Backup client key file without a passphrase (kdf null), as `proxmox-backup-client key
 * create --kdf none` writes it: the 32 random key bytes base64-encoded. `created` is informational;
 * it is fixed so the file (and the storage using it) never changes between runs.
 */
export function pbsKeyFile(keyBase64: string): string {
  const bytes = Buffer.from(keyBase64, "base64");
  if (bytes.length !== 32)
    throw new Error(`a PBS encryption key has 32 bytes, not ${bytes.length}`);
  const created = "1970-01-01T00:00:00Z";
  return JSON.stringify({
    kdf: null,
    created,
    modified: created,
    data: bytes.toString("base64"),
  });
}

/** The PVE storage id of a PBS datastore. */
export function pbsStorageId(datastore: string): string {
  return `pbs-${datastore}`;
}

/** Where PVE keeps a PBS storage's encryption key; missing means backups go out unencrypted. */
export function pveKeyFilePath(storageId: string, pveDir = "/etc/pve"): string {
  return `${pveDir}/priv/storage/${storageId}.enc`;
}
