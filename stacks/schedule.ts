// Facts derived from cron expressions: how long a job may go without running.
import { CronExpressionParser } from "cron-parser";

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const YEAR_START = Date.UTC(2028, 0, 1); // a leap year: monthly and yearly schedules are exact
const YEAR_END = Date.UTC(2029, 0, 8);

const changes = new Map<string, number[]>();

/** Days of 2028 (UTC midnights) after which the zone's UTC offset differs: its clock changes. */
function clockChanges(tz: string): number[] {
  const hit = changes.get(tz);
  if (hit) return hit;
  const fmt = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "longOffset" });
  const offset = (t: number) =>
    fmt.formatToParts(new Date(t)).find((p) => p.type === "timeZoneName")?.value;
  const out: number[] = [];
  let prev = offset(YEAR_START);
  for (let t = YEAR_START + DAY; t < YEAR_END; t += DAY) {
    const o = offset(t);
    if (o !== prev) out.push(t);
    prev = o;
  }
  changes.set(tz, out);
  return out;
}

/**
 * The time windows that show every gap of a set of schedules. One whose day-of-month and month
 * are "*" repeats every week (every day when its day-of-week is "*" too), except at a clock change:
 * a few periods at the start of the year and around each clock change show all its gaps (walking a
 * year of a quarter-hourly schedule is slow). Any other schedule is walked over the whole year.
 * `periods`: how many periods each window spans (enough for the longest chain of copies).
 */
export function scheduleWindows(
  exprs: readonly string[],
  tz: string,
  periods: number,
): [number, number][] {
  const fields = exprs.map((e) => e.trim().split(/\s+/));
  if (!fields.every((f) => f[2] === "*" && f[3] === "*")) return [[YEAR_START, YEAR_END]];
  const days = (fields.every((f) => f[4] === "*") ? 1 : 7) * periods + 1;
  const half = (days / 2) * DAY;
  return [
    [YEAR_START, YEAR_START + days * DAY],
    ...clockChanges(tz).map((t): [number, number] => [t - half, t + half]),
  ];
}

const cache = new Map<string, number[]>();

/** Run times (ms) of a cron expression in [from, to), cached. */
export function runTimesIn(expr: string, tz: string, from: number, to: number): number[] {
  const key = `${expr}|${tz}|${from}|${to}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const it = CronExpressionParser.parse(expr, {
    currentDate: new Date(from - 1),
    endDate: new Date(to),
    tz,
  });
  const out: number[] = [];
  while (it.hasNext()) out.push(it.next().getTime());
  cache.set(key, out);
  return out;
}

const MINUTES_PER_DAY = 24 * 60;
type Fields = ReturnType<typeof CronExpressionParser.parse>["fields"];

/** Does cron run on this (UTC) day? Vixie cron: when both day fields are restricted, either matches. */
function runsOn(day: Date, f: Fields): boolean {
  if (!f.month.values.includes((day.getUTCMonth() + 1) as never)) return false;
  const dom = f.dayOfMonth.values.includes(day.getUTCDate() as never);
  const dow = f.dayOfWeek.values.some((d) => Number(d) % 7 === day.getUTCDay());
  if (f.dayOfMonth.isWildcard && f.dayOfWeek.isWildcard) return true;
  if (f.dayOfMonth.isWildcard) return dow;
  if (f.dayOfWeek.isWildcard) return dom;
  return dom || dow;
}

/**
 * The longest wall-clock gap in minutes. Exact and fast: the times of day a job runs are the same
 * every day it runs, so the gaps are the ones inside a day and the ones between two consecutive
 * run days, checked over a leap year and the next.
 */
function maxWallClockGapMinutes(expr: string): number {
  const f = CronExpressionParser.parse(expr, { tz: "UTC" }).fields;
  const times = f.hour.values
    .flatMap((h) => f.minute.values.map((m) => Number(h) * 60 + Number(m)))
    .sort((a, b) => a - b);
  let max = 0;
  for (let i = 1; i < times.length; i++) max = Math.max(max, times[i] - times[i - 1]);
  let previousDay: number | undefined;
  for (let d = 0; d < 366 + 365; d++) {
    if (!runsOn(new Date(YEAR_START + d * DAY), f)) continue;
    if (previousDay !== undefined) {
      max = Math.max(max, (d - previousDay) * MINUTES_PER_DAY + times[0] - times[times.length - 1]);
    }
    previousDay = d;
  }
  if (previousDay === undefined) throw new Error(`cron "${expr}" never runs`);
  if (max === 0) throw new Error(`cron "${expr}" runs less than once a year`);
  return max;
}

/**
 * The longest gap, in hours, between two consecutive runs of a five-field cron expression in the
 * given time zone. Away from a clock change a gap is its wall-clock length; around each change the
 * real runs are walked, so a daily job shows its 25 h night.
 */
export function maxIntervalHours(expr: string, tz: string): number {
  const wall = maxWallClockGapMinutes(expr) * 60_000;
  let max = wall;
  const reach = wall + DAY;
  for (const t of clockChanges(tz)) {
    const times = runTimesIn(expr, tz, t - reach, t + reach);
    for (let i = 1; i < times.length; i++) max = Math.max(max, times[i] - times[i - 1]);
  }
  return max / HOUR;
}

/**
 * The longest gap, in hours, between two consecutive runs of any of a set of cron expressions (e.g.
 * a full and its increments: the restore points), walked over the windows that show every gap.
 */
export function maxUnionIntervalHours(exprs: readonly string[], tz: string): number {
  if (exprs.length === 1) return maxIntervalHours(exprs[0], tz);
  let max = 0;
  for (const [from, to] of scheduleWindows(exprs, tz, 2)) {
    const times = exprs.flatMap((e) => runTimesIn(e, tz, from, to)).sort((a, b) => a - b);
    for (let i = 1; i < times.length; i++) max = Math.max(max, times[i] - times[i - 1]);
  }
  return max / HOUR;
}
