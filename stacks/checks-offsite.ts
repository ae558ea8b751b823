// Cross-checks of the offsite section: the bucket's prefixes and lifecycle, the writers' scopes and
// the NAS snapshots' reach. The rule that restic data is never archived is resticNeverArchived in
// checks.ts.
import { hostTimezone } from "./defaults";
import type { Check, Problem } from "./problem";
import { CronExpressionParser } from "cron-parser";
import { maxIntervalHours } from "./schedule";
import { dumpLock } from "./model/offsite";
import { defaultGraceHours } from "../components/host/render";

const ARCHIVE = new Set(["GLACIER", "DEEP_ARCHIVE"]);

/** A transition of the dump prefix would also apply to restic data, or restic data to dumps. */
const prefixesApart: Check = (site) => {
  const b = site.offsite.bucket;
  if (!b) return [];
  const out: Problem[] = [];
  if (b.dumpPrefix === "" || b.resticPrefix === "")
    out.push({
      path: `offsite.bucket.${b.dumpPrefix === "" ? "dumpPrefix" : "resticPrefix"}`,
      message:
        'empty, so it covers the whole bucket and the dump lifecycle would reach restic data (a prefix ending in "/", e.g. database/)',
    });
  else if (b.dumpPrefix.startsWith(b.resticPrefix) || b.resticPrefix.startsWith(b.dumpPrefix))
    out.push({
      path: "offsite.bucket.dumpPrefix",
      message: `"${b.dumpPrefix}" overlaps the restic prefix "${b.resticPrefix}", so dumps' Glacier rule would archive restic data (restic issue 4583) (separate prefixes, e.g. database/ and restic/)`,
    });
  return out;
};

/** S3 rejects an expiration that comes before a transition of the same objects. */
const expiryAfterTransitions: Check = (site) => {
  const b = site.offsite.bucket;
  if (!b) return [];
  return (b.transitions ?? []).flatMap((t, i) =>
    t.prefix === b.dumpPrefix && t.days >= b.expireDumpsAfterDays
      ? [
          {
            path: `offsite.bucket.transitions[${i}].days`,
            message: `dumps would move to ${t.storageClass} after ${t.days} days but expire after ${b.expireDumpsAfterDays} (fewer days than expireDumpsAfterDays, or raise it)`,
          },
        ]
      : [],
  );
};

/**
 * The newest full must stay readable without a restore request: a dump archived before the next
 * full exists leaves no hot offsite copy for a restore test or a disaster (docs/pitfalls.md, Glacier).
 * The binlogs uploaded under <dumpPrefix>binlogs/ are younger than the full they extend, so the
 * dumps' rule keeps them hot as long as that full, and expires them no earlier; a rule of their own
 * (any prefix inside the dump prefix) is held to the same bound.
 */
const newestDumpStaysHot: Check = (site) => {
  const b = site.offsite.bucket;
  const m = site.mariadb;
  if (!b || !m || !site.offsite.upload) return [];
  const need = Math.ceil(maxIntervalHours(m.schedules.full, hostTimezone(site, m.host)) / 24) + 1;
  return (b.transitions ?? []).flatMap((t, i) =>
    t.prefix.startsWith(b.dumpPrefix) && ARCHIVE.has(t.storageClass) && t.days < need
      ? [
          {
            path: `offsite.bucket.transitions[${i}].days`,
            message: `${t.prefix === b.dumpPrefix ? "dumps" : `objects under ${t.prefix}`} would move to ${t.storageClass} after ${t.days} day(s), before the next full replaces them, so no offsite dump would be readable without a restore request of hours (at least ${need})`,
          },
        ]
      : [],
  );
};

/**
 * The offsite copies of the fulls the host still keeps must be locked: otherwise an attacker who
 * deletes the local fulls finds their offsite copies unlocked. The host keeps `fulls` fulls, one
 * per full interval, so the oldest is up to fulls × the longest interval old.
 */
const lockCoversLocalFulls: Check = (site) => {
  const b = site.offsite.bucket;
  const lock = b && dumpLock(b);
  const m = site.mariadb;
  if (!lock || !m || !site.offsite.upload) return [];
  const every = maxIntervalHours(m.schedules.full, hostTimezone(site, m.host));
  const need = Math.ceil((m.retention.fulls * every) / 24);
  if (lock.days >= need) return [];
  return [
    {
      path: "offsite.bucket.objectLock.days",
      message: `dumps are locked for ${lock.days} day(s), but the host keeps ${m.retention.fulls} fulls made every ${every} h (${need} days), so an attacker who deletes the local fulls finds their offsite copies unlocked (at least ${need})`,
    },
  ];
};

/**
 * restic's prefix is not locked (restic prunes and removes locks): an object restic's key or an
 * attacker with it overwrites or deletes comes back only as a noncurrent version, so those must
 * outlive the time to notice: the repository's check (or its copy when it has no check) failing or
 * going stale, i.e. its longest interval plus the monitor's grace, and the monitor's own interval.
 */
const noncurrentCoversDetection: Check = (site) => {
  const b = site.offsite.bucket;
  if (!b) return [];
  const monitor = maxIntervalHours(site.monitoring.schedule, site.timezone);
  return site.restic.repositories.flatMap((r) => {
    if (r.kind !== "s3") return [];
    const what = r.check ? "check" : r.copyFrom ? "copy" : "backup";
    const every = maxIntervalHours(r.check?.schedule ?? r.schedule, hostTimezone(site, r.host));
    const grace = defaultGraceHours(every);
    const hours = every + grace + monitor;
    const need = Math.ceil(hours / 24);
    if (b.noncurrentDays >= need) return [];
    return [
      {
        path: "offsite.bucket.noncurrentDays",
        message: `an object of the restic repository "${r.name}" that is overwritten or deleted can be brought back for ${b.noncurrentDays} day(s), but a problem with the repository may go unnoticed for ${hours} h (its ${what} every ${every} h + ${grace} h grace + the monitor every ${monitor} h) (at least ${need})`,
      },
    ];
  });
};

/** Days S3 bills an object in a class at least (early deletion or transition fee), and IA's rule. */
const MIN_DAYS: Record<string, number> = {
  STANDARD_IA: 30,
  ONEZONE_IA: 30,
  GLACIER_IR: 90,
  GLACIER: 90,
  DEEP_ARCHIVE: 180,
};
const IA = new Set(["STANDARD_IA", "ONEZONE_IA"]);
/** S3's transition waterfall: an object only ever moves to a colder class (a higher rank). */
const RANK: Record<string, number> = {
  STANDARD_IA: 1,
  ONEZONE_IA: 2,
  GLACIER_IR: 3,
  GLACIER: 4,
  DEEP_ARCHIVE: 5,
};

/**
 * S3 refuses a move to an IA class before 30 days, and another move within 30 days of it; every
 * class bills a minimum duration (IA 30, GLACIER and GLACIER_IR 90, DEEP_ARCHIVE 180 days), so no
 * object should leave it earlier, by a later transition or by the dumps' expiry (noncurrent versions
 * are never transitioned, so only current ones are counted).
 */
const transitionsPayOff: Check = (site) => {
  const b = site.offsite.bucket;
  if (!b) return [];
  const ts = b.transitions ?? [];
  const out: Problem[] = [];
  const overlap = (x: string, y: string) => x.startsWith(y) || y.startsWith(x);
  ts.forEach((t, i) => {
    const path = `offsite.bucket.transitions[${i}].days`;
    if (IA.has(t.storageClass) && t.days < 30)
      out.push({
        path,
        message: `S3 refuses a move to ${t.storageClass} before 30 days (at least 30)`,
      });
    // the move just before this one, for objects under both prefixes
    const before = ts
      .map((p, j) => ({ p, j }))
      .filter(
        ({ p, j }) =>
          j !== i &&
          p.days < t.days &&
          RANK[p.storageClass] < RANK[t.storageClass] &&
          overlap(p.prefix, t.prefix),
      )
      .sort((x, y) => y.p.days - x.p.days)[0];
    if (before) {
      const min = MIN_DAYS[before.p.storageClass];
      const gap = t.days - before.p.days;
      if (gap < min)
        out.push({
          path,
          message: `objects under ${t.prefix.length > before.p.prefix.length ? t.prefix : before.p.prefix} would move from ${before.p.storageClass} (transitions[${before.j}], day ${before.p.days}) to ${t.storageClass} after ${gap} day(s), but ${IA.has(before.p.storageClass) ? `S3 requires ${min} days in ${before.p.storageClass} first` : `${before.p.storageClass} bills at least ${min} days`} (at least ${before.p.days + min})`,
        });
    }
    // objects under this prefix stay in its class until the dumps expire, unless a later move
    // covers all of them
    const later = ts.some(
      (p) =>
        p.days > t.days &&
        RANK[p.storageClass] > RANK[t.storageClass] &&
        t.prefix.startsWith(p.prefix),
    );
    if (later || !t.prefix.startsWith(b.dumpPrefix)) return;
    const min = MIN_DAYS[t.storageClass];
    const gap = b.expireDumpsAfterDays - t.days;
    if (gap >= 0 && gap < min)
      out.push({
        path,
        message: `${t.prefix === b.dumpPrefix ? "dumps" : `objects under ${t.prefix}`} would expire ${gap} day(s) after moving to ${t.storageClass}, which bills at least ${min} days, so the early deletion fee pays for data that is gone (at most ${b.expireDumpsAfterDays - min}, or expireDumpsAfterDays at least ${t.days + min})`,
      });
  });
  return out;
};

/**
 * The shortest gap, in hours, between two runs over a fortnight (UTC): how far back `keep`
 * snapshots reach at least is (keep - 1) times this. A schedule running less than twice in the
 * fortnight counts as a week apart.
 */
function minGapHours(expr: string): number {
  const start = new Date(Date.UTC(2028, 0, 3));
  const end = new Date(Date.UTC(2028, 0, 17));
  const it = CronExpressionParser.parse(expr, { currentDate: start, endDate: end, tz: "UTC" });
  let prev: number | undefined;
  let min = Infinity;
  while (it.hasNext()) {
    const t = it.next().getTime();
    if (prev !== undefined) min = Math.min(min, t - prev);
    prev = t;
  }
  return min === Infinity ? 7 * 24 : min / 3600_000;
}

/** The point of dated snapshots is that the day before yesterday's copy survives today's bad source. */
const nasKeepsYesterday: Check = (site) => {
  const nas = site.offsite.nas;
  if (!nas) return [];
  const out: Problem[] = [];
  const gap = minGapHours(nas.schedule);
  const need = Math.ceil(48 / gap) + 1;
  if (nas.keep < need)
    out.push({
      path: "offsite.nas.keep",
      message: `${nas.keep} snapshot(s) taken as often as every ${gap} h reach back less than 48 h, so a file deleted or encrypted at the source would be gone from the NAS before anyone notices (at least ${need})`,
    });
  if (!nas.sources && !site.mariadb)
    out.push({
      path: "offsite.nas.sources",
      message:
        "missing, and there is no mariadb section to take the backup directories from (list the directories to copy)",
    });
  return out;
};

/** The offsite drill decrypts the newest full: it runs where the key is, on the MariaDB host. */
const uploadDrillHasKey: Check = (site) => {
  const u = site.offsite.upload;
  const m = site.mariadb;
  if (!u?.drill) return [];
  if (!m || !site.offsite.bucket)
    return [
      {
        path: "offsite.upload.drill",
        message:
          "needs the mariadb and offsite.bucket sections: it restores the fulls the upload sends (remove the drill or add them)",
      },
    ];
  if ((u.host ?? m.host) === m.host) return [];
  return [
    {
      path: "offsite.upload.drill",
      message: `runs on the upload host ${u.host}, which has no MariaDB key to decrypt the fulls (upload from ${m.host}, or remove the drill)`,
    },
  ];
};

export const offsiteChecks: Check[] = [
  uploadDrillHasKey,
  prefixesApart,
  expiryAfterTransitions,
  newestDumpStaysHot,
  nasKeepsYesterday,
  lockCoversLocalFulls,
  noncurrentCoversDetection,
  transitionsPayOff,
];
