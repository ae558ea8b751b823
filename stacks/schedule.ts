// Facts derived from cron expressions: how long a job may go without running.
import { CronExpressionParser } from "cron-parser";

const MINUTES_PER_DAY = 24 * 60;

/** Does cron run on this (UTC) day? Vixie cron: when both day fields are restricted, either matches. */
function runsOn(day: Date, f: ReturnType<typeof CronExpressionParser.parse>["fields"]): boolean {
  if (!f.month.values.includes((day.getUTCMonth() + 1) as never)) return false;
  const dom = f.dayOfMonth.values.includes(day.getUTCDate() as never);
  const dow = f.dayOfWeek.values.some((d) => Number(d) % 7 === day.getUTCDay());
  if (f.dayOfMonth.isWildcard && f.dayOfWeek.isWildcard) return true;
  if (f.dayOfMonth.isWildcard) return dow;
  if (f.dayOfWeek.isWildcard) return dom;
  return dom || dow;
}

/**
 * The longest gap, in hours, between two consecutive runs of a five-field cron expression, in
 * wall-clock time (a DST shift moves it by an hour at most). Exact: the times of day a job runs
 * are the same every day it runs, so the gaps are the ones inside a day and the ones between two
 * consecutive run days, checked over a whole leap year plus a week.
 */
export function maxIntervalHours(expr: string): number {
  const f = CronExpressionParser.parse(expr, { tz: "UTC" }).fields;
  const times = f.hour.values
    .flatMap((h) => f.minute.values.map((m) => Number(h) * 60 + Number(m)))
    .sort((a, b) => a - b);
  let maxMinutes = 0;
  for (let i = 1; i < times.length; i++) maxMinutes = Math.max(maxMinutes, times[i] - times[i - 1]);
  const first = times[0];
  const last = times[times.length - 1];
  let previousDay: number | undefined;
  for (let d = 0; d < 366 + 7 + 366; d++) {
    const day = new Date(Date.UTC(2028, 0, 1 + d));
    if (!runsOn(day, f)) continue;
    if (previousDay !== undefined) {
      maxMinutes = Math.max(maxMinutes, (d - previousDay) * MINUTES_PER_DAY + first - last);
    }
    previousDay = d;
  }
  if (previousDay === undefined) throw new Error(`cron "${expr}" never runs`);
  // One run a day at most, on a single day a year (e.g. "0 0 29 2 *" runs once in 4 years).
  if (maxMinutes === 0) throw new Error(`cron "${expr}" runs less than once a year`);
  return maxMinutes / 60;
}
