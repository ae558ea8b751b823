// Facts derived from cron expressions: how long a job may go without running.
import { CronExpressionParser } from "cron-parser";

const HOUR = 3600_000;

/**
 * The longest gap, in hours, between two consecutive runs of a five-field cron expression,
 * measured over a whole (leap) year of runs so monthly and weekday schedules are exact.
 */
export function maxIntervalHours(expr: string, tz = "UTC"): number {
  const start = new Date(Date.UTC(2028, 0, 1));
  const end = new Date(Date.UTC(2029, 0, 8));
  const it = CronExpressionParser.parse(expr, { currentDate: start, endDate: end, tz });
  let prev: number | undefined;
  let max = 0;
  while (it.hasNext()) {
    const t = it.next().getTime();
    if (prev !== undefined) max = Math.max(max, t - prev);
    prev = t;
  }
  if (prev === undefined) throw new Error(`cron "${expr}" never runs`);
  // A schedule that runs once a year or less has its gap measured to the same time next year.
  return (max === 0 ? 366 * 24 * HOUR : max) / HOUR;
}
