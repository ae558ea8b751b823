// Cron expressions as Proxmox VE / PBS calendar events: vzdump schedules are written in that
// format, and a cron form without an exact equivalent is a model error.

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

/** The longest gap between runs of each PBS calendar shortcut, in hours (the longest month, year...). */
const SHORTCUT_HOURS: Readonly<Record<string, number>> = {
  minutely: 1 / 60,
  hourly: 1,
  daily: 24,
  weekly: 7 * 24,
  monthly: 31 * 24,
  quarterly: 92 * 24,
  semiannually: 184 * 24,
  yearly: 366 * 24,
  annually: 366 * 24,
};
const DAY_NAME = "(?:mon|tue|wed|thu|fri|sat|sun)";
const WEEKDAYS = new RegExp(
  `^${DAY_NAME}(?:\\.\\.${DAY_NAME})?(?:,${DAY_NAME}(?:\\.\\.${DAY_NAME})?)*$`,
);
const TIME = /^[0-9*,./]+:[0-9*,./]+(?::[0-9*,./]+)?$/;

/**
 * An upper bound of the longest gap, in hours, between two runs of a PBS calendar event: exact for
 * the shortcuts ("daily", "weekly"...), a day for a time alone ("02:30", "*:00"), a week for
 * weekdays with or without a time ("sat 03:00", "mon..fri"). Undefined for any other form (a date
 * part): the model must then say how old a result may get.
 */
export function calendarMaxIntervalHours(event: string): number | undefined {
  const e = event.trim().toLowerCase();
  if (e in SHORTCUT_HOURS) return SHORTCUT_HOURS[e];
  const parts = e.split(/\s+/);
  if (parts.length === 1 && TIME.test(parts[0])) return 24;
  if (parts.length === 1 && WEEKDAYS.test(parts[0])) return 7 * 24;
  if (parts.length === 2 && WEEKDAYS.test(parts[0]) && TIME.test(parts[1])) return 7 * 24;
  return undefined;
}
