// What the plan promises: the worst-case RPO and an estimated restore time (RTO) for each kind of
// loss, computed from the schedules, the copies and the declared sizes; and the 3-2-1 count.
// Pure: the checks, the plan summary, the stack outputs and the runbook all read these numbers.
import { hostTimezone, nasFrom, nasSources, uploadHost } from "./defaults";
import { maxUnionIntervalHours, runTimesIn, scheduleWindows } from "./schedule";
import type { Site } from "./schema";
import type { Disk, Pbs } from "./model/pbs";
import type { ResticRepository } from "./model/restic";
import { dumpLock, type ObjectLock } from "./model/offsite";
import { fullsHost } from "./model/mariadb";
import type { Sizes } from "./model/recovery";

const HOUR = 3600_000;

/**
 * Assumptions of the restore-time estimate (hours and MB/s), conservative on purpose. The speeds
 * of the local disk and the cloud link come from `sizes:`; these are the rest.
 */
export const ASSUMED = {
  /** Rolling a guest back to a local snapshot. */
  rollbackHours: 0.25,
  /** Fixed cost of one restore: finding the right backup, starting it, checking the result. */
  restoreOverheadHours: 0.5,
  /** Reinstalling a host from an empty machine (OS, Proxmox/PBS, restic, the stack's secrets). */
  rebuildHours: 2,
  /** mariadb-backup --prepare and --copy-back, MB/s. */
  physicalDbMBps: 50,
  /** Importing a logical dump (indexes rebuilt), MB/s. */
  logicalDbMBps: 5,
  /** Replaying binlogs (mariadb-binlog | mariadb, one thread), MB of binlog per second. */
  binlogReplayMBps: 10,
} as const;

/** One data class: how much of it can be lost, and through which copies it comes back. */
export interface RpoItem {
  readonly what: "guests" | "files" | "database";
  /** The chain of copies, e.g. `vzdump "daily-pbs" → restic "usb" → restic "cloud"`. */
  readonly via: string;
  readonly hours: number;
}

export interface RtoItem {
  readonly what: string;
  /** How the time was estimated. */
  readonly how: string;
  readonly hours: number;
}

/**
 * host lost: a host is lost with everything on its own disks; only copies elsewhere count.
 * data lost: a guest, files or the database are lost and their host remains (targets.hostLoss: none).
 * site lost: only the offsite copies remain.
 */
export type Scenario = "host lost" | "data lost" | "site lost";

/** Data that no copy brings back in a scenario. */
export interface Unprotected {
  readonly what: RpoItem["what"];
  /** Which data, e.g. `the files of restic "local"`. */
  readonly data: string;
  /** Its copies, all lost in the scenario, e.g. `restic "local" on host:localhost`. */
  readonly copies: readonly string[];
}

export interface ScenarioReport {
  readonly scenario: Scenario;
  readonly rpo: readonly RpoItem[];
  readonly worstRpoHours: number;
  readonly rpoTargetHours: number;
  /** Extra hours allowed over the RPO target: the daylight-saving shift of the site's time zone. */
  readonly rpoAllowanceHours: number;
  /** Restore steps; empty when sizes are not declared. */
  readonly rto: readonly RtoItem[];
  /** undefined when sizes are not declared (nothing to estimate from). */
  readonly rtoHours?: number;
  readonly rtoTargetHours: number;
  /** Data with no copy surviving this scenario. */
  readonly unprotected: readonly Unprotected[];
}

export interface RecoveryReport {
  /** A host is lost (or, with targets.hostLoss: none, data on a host that remains). */
  readonly onSite: ScenarioReport;
  /** The whole site is lost; only offsite copies remain. undefined when the site has none. */
  readonly siteLoss?: ScenarioReport;
}

/**
 * Worst-case data loss, in hours, of a chain of copies: stage 0 captures the data when it runs;
 * every later stage copies what the stage before it had finished before it started (runs in the
 * same minute do not count). The result is the longest time, just before a run of the last stage,
 * since the data it holds was captured. One stage: the longest gap between two runs.
 */
export function chainRpoHours(stages: readonly string[], tz: string): number {
  if (stages.length === 0) throw new Error("a chain needs at least one schedule");
  let worst = 0;
  // A chain is at worst the sum of its stages' gaps, each at most a period: warm-up plus that.
  for (const [from, to] of scheduleWindows(stages, tz, 2 * stages.length + 1)) {
    worst = Math.max(worst, chainWorstIn(stages, tz, from, to));
  }
  if (worst === 0) return 366 * 24; // runs once a year or less: measured to the same time next year
  return worst / HOUR;
}

function chainWorstIn(stages: readonly string[], tz: string, from: number, to: number): number {
  // captured[i]: when the data held after the i-th run of the current stage was captured.
  let runs = runTimesIn(stages[0], tz, from, to);
  let captured: (number | undefined)[] = runs;
  for (const expr of stages.slice(1)) {
    const next = runTimesIn(expr, tz, from, to);
    const prevRuns = runs;
    const prevCaptured = captured;
    let j = -1;
    captured = next.map((t) => {
      while (j + 1 < prevRuns.length && prevRuns[j + 1] < t) j++;
      return j >= 0 ? prevCaptured[j] : undefined;
    });
    runs = next;
  }
  let worst = 0;
  for (let i = 0; i + 1 < runs.length; i++) {
    const c = captured[i];
    if (c !== undefined) worst = Math.max(worst, runs[i + 1] - c);
  }
  return worst;
}

/**
 * Hours the clocks of a time zone move at a daylight-saving change (0 for UTC). A job that runs
 * every day at 01:00 local time has one 25 h gap a year: reported as is, and allowed by the checks.
 */
export function dstShiftHours(tz: string): number {
  const offsets = Array.from({ length: 12 }, (_, month) => {
    const d = new Date(Date.UTC(2028, month, 15, 12));
    const name = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "longOffset" })
      .formatToParts(d)
      .find((p) => p.type === "timeZoneName")?.value;
    const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name ?? "");
    return m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  });
  return (Math.max(...offsets) - Math.min(...offsets)) / 60;
}

const round2 = (h: number): number => Math.round(h * 100) / 100;

/** Is `inner` the directory `outer` or below it? */
function within(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith("/") ? outer : `${outer}/`);
}

/** Where a copy lives; the ids are those of the 3-2-1 count. */
interface Place {
  /** host:<name>, disk:<uuid>, nas:<host>, s3:<bucket>. */
  readonly id: string;
  readonly medium: Location["medium"];
  readonly offsite: boolean;
  readonly immutable: boolean;
  /** The host whose loss takes the copy with it; none for a removable disk (it moves to another host) or the bucket. */
  readonly host?: string;
}

const hostDisk = (host: string): Place => ({
  id: `host:${host}`,
  medium: "host disk",
  offsite: false,
  immutable: false,
  host,
});

const removableDisk = (d: Disk): Place => ({
  id: `disk:${d.uuid}`,
  medium: "removable disk",
  offsite: false,
  immutable: false,
});

const nasShare = (host: string): Place => ({
  id: `nas:${host}`,
  medium: "NAS",
  offsite: false,
  immutable: false,
  host,
});

/** The bucket. Not immutable as a whole: restic's prefix is never locked (restic prunes). */
function bucketOf(site: Site): Place | undefined {
  const b = site.offsite.bucket;
  if (!b) return undefined;
  return { id: `s3:${b.name}`, medium: "object storage", offsite: true, immutable: false };
}

function repositoryPlace(site: Site, r: ResticRepository): Place {
  const bucket = bucketOf(site);
  if (r.kind === "s3" && bucket) return bucket;
  return r.disk ? removableDisk(r.disk) : hostDisk(r.host);
}

function datastorePlace(pbs: Pbs, d: Pbs["datastores"][number]): Place {
  return d.disk ? removableDisk(d.disk) : hostDisk(pbs.host);
}

/** A chain of copies of one piece of data, from its host to the place of its last copy. */
interface Chain {
  readonly what: RpoItem["what"];
  /** The data copied: chains of the same data are alternatives, the freshest surviving one counts. */
  readonly data: string;
  /** The host the data lives on. */
  readonly from: string;
  readonly via: readonly string[];
  readonly schedules: readonly string[];
  /** A copy made continuously: its worst-case loss in hours, instead of one from schedules. */
  readonly continuousHours?: number;
  readonly place: Place;
}

type Hop = Pick<Chain, "via" | "schedules" | "place">;

/** What a repository backs up lands in it, then in every repository filled from it by restic copy. */
function resticHops(
  site: Site,
  r: ResticRepository,
  label = `restic "${r.name}"`,
  seen = new Set<string>(),
): Hop[] {
  seen.add(r.name);
  const copies = site.restic.repositories.filter((c) => c.copyFrom === r.name && !seen.has(c.name));
  return [
    { via: [label], schedules: [r.schedule], place: repositoryPlace(site, r) },
    ...copies
      .flatMap((c) => resticHops(site, c, `restic copy "${c.name}"`, seen))
      .map((h) => ({ ...h, via: [label, ...h.via], schedules: [r.schedule, ...h.schedules] })),
  ];
}

/** Repositories that back up paths themselves (not filled by restic copy). */
const backupRepositories = (site: Site): ResticRepository[] =>
  site.restic.repositories.filter((r) => !r.copyFrom && r.paths.length > 0);

function guestChains(site: Site): Chain[] {
  const { proxmox, pbs } = site;
  if (!proxmox || !pbs) return [];
  return proxmox.jobs.flatMap((j) => {
    const ds = pbs.datastores.find((d) => d.name === j.datastore);
    if (!ds) return [];
    const vzdump = `vzdump "${j.id}"`;
    const base = { what: "guests" as const, data: `the guests of ${vzdump}`, from: proxmox.host };
    // A datastore inside a repository's paths is carried on by restic.
    const carriers = backupRepositories(site).filter(
      (r) => r.host === pbs.host && r.paths.some((p) => within(ds.path, p)),
    );
    return [
      { ...base, via: [vzdump], schedules: [j.schedule], place: datastorePlace(pbs, ds) },
      ...carriers
        .flatMap((r) => resticHops(site, r))
        .map((h) => ({
          ...base,
          ...h,
          via: [vzdump, ...h.via],
          schedules: [j.schedule, ...h.schedules],
        })),
    ];
  });
}

function fileChains(site: Site): Chain[] {
  return backupRepositories(site).flatMap((r) =>
    resticHops(site, r).map((h) => ({
      what: "files" as const,
      data: `the files of restic "${r.name}"`,
      from: r.host,
      ...h,
    })),
  );
}

function databaseChains(site: Site): Chain[] {
  const m = site.mariadb;
  if (!m) return [];
  const base = { what: "database" as const, data: "the database", from: m.host };
  const shipped = { via: ["binlog shipping"], schedules: [m.schedules.binlogs] };
  const chains: Chain[] = [{ ...base, ...shipped, place: hostDisk(m.host) }];
  const { nas, upload } = site.offsite;
  if (nas && mariadbSyncedToNas(site))
    chains.push({
      ...base,
      via: [...shipped.via, `NAS sync to ${nas.host}`],
      schedules: [...shipped.schedules, nas.schedule],
      place: nasShare(nas.host),
    });
  const bucket = bucketOf(site);
  // On the database host the upload also sends every shipped binlog: the bucket is behind by at
  // most a shipping gap plus an upload gap. From another host it only has the fulls.
  if (upload && bucket)
    chains.push(
      uploadHost(site) === m.host
        ? {
            ...base,
            via: [...shipped.via, "dump upload"],
            schedules: [...shipped.schedules, upload.schedule],
            place: bucket,
          }
        : {
            ...base,
            via: ["full backup", "dump upload"],
            schedules: [m.schedules.full, upload.schedule],
            place: bucket,
          },
    );
  // The stream: everything but its lag is on another host. It brings the database back only with
  // a full that survives too (the NAS's, the bucket's or the replica's), so it counts only then.
  const fullsElsewhere =
    chains.some((c) => c.place.host !== m.host) ||
    (m.replica !== undefined && m.replica.host !== m.host);
  if (m.stream && m.stream.host !== m.host && fullsElsewhere) {
    const stream = `binlog stream to ${m.stream.host}`;
    chains.push({
      ...base,
      via: [stream],
      schedules: [],
      continuousHours: m.stream.maxLagSeconds / 3600,
      place: hostDisk(m.stream.host),
    });
    // Its sealed files go on to the bucket and the NAS from the stream host (they join the fulls
    // there). A streamed binlog is sealed only once closed, and the shipping run's FLUSH BINARY LOGS
    // is what closes it: those copies are as old as the shipped ones, never fresher. They survive
    // the database host's upload or sync failing, but lower no RPO.
    const sealed = { ...base, schedules: [m.schedules.binlogs] };
    if (upload && bucket)
      chains.push({
        ...sealed,
        via: [stream, "dump upload"],
        schedules: [...sealed.schedules, upload.schedule],
        place: bucket,
      });
    if (nas && mariadbSyncedToNas(site))
      chains.push({
        ...sealed,
        via: [stream, `NAS sync to ${nas.host}`],
        schedules: [...sealed.schedules, nas.schedule],
        place: nasShare(nas.host),
      });
  }
  return chains;
}

/** Every chain of copies of the site, wherever it ends. */
function copyChains(site: Site): Chain[] {
  return [...guestChains(site), ...fileChains(site), ...databaseChains(site)];
}

/** The data classes a site protects (each needs a copy in every scenario). */
function protectedClasses(site: Site): RpoItem["what"][] {
  const out: RpoItem["what"][] = [];
  if (site.proxmox && site.proxmox.jobs.length > 0) out.push("guests");
  if (backupRepositories(site).length > 0) out.push("files");
  if (site.mariadb) out.push("database");
  return out;
}

function mariadbSyncedToNas(site: Site): boolean {
  const { nas } = site.offsite;
  const m = site.mariadb;
  if (!nas || !m) return false;
  if (nasFrom(site) !== m.host) return false;
  return nasSources(site).some((s) => within(m.binlogBackupDir, s));
}

/** Which copies survive a scenario. */
const SURVIVES: Record<Scenario, (c: Chain) => boolean> = {
  // A copy on the lost host never counts.
  "host lost": (c) => c.place.host !== c.from,
  "data lost": () => true,
  "site lost": (c) => c.place.offsite,
};

interface ClassOutcome {
  readonly rpo: RpoItem[];
  readonly unprotected: Unprotected[];
}

/** Each piece of data comes back through its freshest surviving copy; the class loses as much as its worst piece. */
function classOutcome(
  site: Site,
  chains: readonly Chain[],
  what: RpoItem["what"],
  scenario: Scenario,
): ClassOutcome {
  const mine = chains.filter((c) => c.what === what);
  if (mine.length === 0)
    return { rpo: [], unprotected: [{ what, data: `the ${what}`, copies: [] }] };
  const best: RpoItem[] = [];
  const unprotected: Unprotected[] = [];
  for (const data of new Set(mine.map((c) => c.data))) {
    const copies = mine.filter((c) => c.data === data);
    const alive = copies.filter(SURVIVES[scenario]).map((c) => ({
      what,
      via: c.via.join(" → "),
      hours: round2(c.continuousHours ?? chainRpoHours(c.schedules, site.timezone)),
    }));
    if (alive.length > 0) best.push(alive.reduce((a, b) => (b.hours < a.hours ? b : a)));
    else
      unprotected.push({
        what,
        data,
        copies: copies.map((c) => `${c.via.join(" → ")} on ${c.place.id}`),
      });
  }
  const rpo = best.length > 0 ? [best.reduce((a, b) => (b.hours > a.hours ? b : a))] : [];
  return { rpo, unprotected };
}

const hoursToMove = (gb: number, mbps: number): number => (gb * 1000) / mbps / 3600;

function dbMBps(site: Site): number {
  return site.mariadb?.method === "logical" ? ASSUMED.logicalDbMBps : ASSUMED.physicalDbMBps;
}

/** Restore of one class from the local copies: read from the backup disk, plus the fixed cost. */
function localRestore(site: Site, s: Sizes, what: RpoItem["what"]): RtoItem | undefined {
  const gb = { guests: s.guestsGb, files: s.filesGb, database: s.databaseGb }[what];
  if (gb === undefined) return undefined;
  const speed = what === "database" ? dbMBps(site) : s.localMBps;
  const replay = what === "database" ? binlogReplay(site, s) : undefined;
  return {
    what,
    how: `${gb} GB at ${speed} MB/s${replay ? ` + ${replay.how}` : ""} + ${ASSUMED.restoreOverheadHours} h`,
    hours: round2(hoursToMove(gb, speed) + (replay?.hours ?? 0) + ASSUMED.restoreOverheadHours),
  };
}

/**
 * The worst replay of a point-in-time recovery: the binlogs of the longest gap between two restore
 * points (fulls, and increments when scheduled: a restore reads the full and one increment, then
 * replays only what came after it). Unknown without sizes.binlogGbPerDay.
 */
function binlogReplay(site: Site, s: Sizes): { how: string; hours: number } | undefined {
  const m = site.mariadb;
  if (!m || s.binlogGbPerDay === undefined) return undefined;
  const points = [m.schedules.full, ...(m.schedules.incremental ? [m.schedules.incremental] : [])];
  const gap = maxUnionIntervalHours(points, hostTimezone(site, fullsHost(m)));
  const gb = round2((s.binlogGbPerDay * gap) / 24);
  return {
    how: `${gb} GB of binlogs (${round2(gap)} h since the last ${m.schedules.incremental ? "full or increment" : "full"}) at ${ASSUMED.binlogReplayMBps} MB/s`,
    hours: hoursToMove(gb, ASSUMED.binlogReplayMBps),
  };
}

function scenario(
  site: Site,
  kind: Scenario,
  chains: readonly Chain[],
  target: { rpoHours: number; rtoHours: number },
  rto: (classes: readonly RpoItem["what"][]) => { items: RtoItem[]; hours?: number },
): ScenarioReport {
  const classes = protectedClasses(site);
  const outcomes = classes.map((c) => classOutcome(site, chains, c, kind));
  const rpo = outcomes.flatMap((o) => o.rpo);
  const r = rto(classes);
  return {
    scenario: kind,
    rpo,
    worstRpoHours: Math.max(0, ...rpo.map((x) => x.hours)),
    rpoTargetHours: target.rpoHours,
    rpoAllowanceHours: dstShiftHours(site.timezone),
    rto: r.items,
    rtoHours: r.hours,
    rtoTargetHours: target.rtoHours,
    unprotected: outcomes.flatMap((o) => o.unprotected),
  };
}

export function recoveryReport(site: Site): RecoveryReport {
  const s = site.sizes;
  const targets = { rpoHours: site.targets.rpoHours, rtoHours: site.targets.rtoHours };
  const chains = copyChains(site);
  const onSiteKind = site.targets.hostLoss === "none" ? "data lost" : "host lost";
  // On site: one thing fails at a time; the slowest single restore is the estimate.
  const onSite = scenario(site, onSiteKind, chains, targets, (classes) => {
    if (!s) return { items: [] };
    const items = classes.flatMap((c) => localRestore(site, s, c) ?? []);
    if (items.length < classes.length) return { items };
    return { items, hours: round2(Math.max(0, ...items.map((i) => i.hours))) };
  });
  if (!chains.some(SURVIVES["site lost"])) return { onSite };
  // Site lost: rebuild, download everything offsite, then restore everything, one after the other.
  const siteLoss = scenario(
    site,
    "site lost",
    chains,
    site.targets.siteLoss ?? targets,
    (classes) => {
      if (!s) return { items: [] };
      const sized = classes.map((c) => ({
        c,
        gb: { guests: s.guestsGb, files: s.filesGb, database: s.databaseGb }[c],
      }));
      if (sized.some((x) => x.gb === undefined)) return { items: [] };
      const total = sized.reduce((a, x) => a + (x.gb ?? 0), 0);
      const items: RtoItem[] = [
        { what: "rebuild hosts", how: "assumed", hours: ASSUMED.rebuildHours },
        {
          what: "download",
          how: `${round2(total)} GB at ${s.cloudMBps} MB/s`,
          hours: round2(hoursToMove(total, s.cloudMBps)),
        },
        ...classes.flatMap((c) => localRestore(site, s, c) ?? []),
      ];
      return { items, hours: round2(items.reduce((a, i) => a + i.hours, 0)) };
    },
  );
  return { onSite, siteLoss };
}

/** The 3-2-1 count: copies (production included), distinct media, offsite and immutable copies. */
export interface ThreeTwoOne {
  readonly copies: number;
  readonly media: number;
  readonly offsite: number;
  /** Locations holding an immutable copy (see each location's lock). */
  readonly immutable: number;
  /** At least 3 copies on 2 media with 1 offsite. */
  readonly satisfied: boolean;
  readonly locations: readonly Location[];
}

export interface Location {
  /** Stable id: host:<name>, disk:<uuid>, nas:<host>, s3:<bucket>. */
  readonly id: string;
  readonly medium: "host disk" | "removable disk" | "NAS" | "object storage";
  readonly offsite: boolean;
  /** It holds an immutable copy: what, and for how long, in lock. */
  readonly immutable: boolean;
  /** What it holds, sorted. */
  readonly holds: readonly string[];
  /** The copy locked against deletion and overwrite, and how (the dumps' Object Lock). */
  readonly lock?: ObjectLock & { readonly holds: string };
}

/** "database dumps, 35 days GOVERNANCE": what a location holds immutable, and for how long. */
export function lockText(l: Location): string {
  return l.lock ? `${l.lock.holds}, ${l.lock.days} days ${l.lock.mode}` : "no";
}

export function threeTwoOne(site: Site): ThreeTwoOne {
  const locs = new Map<
    string,
    Omit<Location, "holds" | "immutable" | "lock"> & {
      holds: Set<string>;
      immutable: boolean;
      lock?: Location["lock"];
    }
  >();
  const add = ({ id, medium, offsite, immutable }: Place, holds: string) => {
    const l = locs.get(id) ?? { id, medium, offsite, immutable, holds: new Set<string>() };
    l.holds.add(holds);
    locs.set(id, l);
  };
  const pbs = site.pbs;
  if (pbs) for (const d of pbs.datastores) add(datastorePlace(pbs, d), `PBS datastore ${d.name}`);
  for (const r of site.restic.repositories) add(repositoryPlace(site, r), `restic ${r.name}`);
  const m = site.mariadb;
  if (m) add(hostDisk(m.host), "database fulls and binlogs");
  // the binlog stream's sealed files, sent on by its host (components/site)
  const stream = m?.stream && m.stream.host !== m.host ? "database binlog stream" : undefined;
  if (site.offsite.nas) {
    add(nasShare(site.offsite.nas.host), "dated snapshots");
    if (stream) add(nasShare(site.offsite.nas.host), stream);
  }
  const bucket = bucketOf(site);
  if (site.offsite.upload && bucket) {
    add(bucket, "database dumps");
    if (stream) add(bucket, stream);
    const lock = dumpLock(site.offsite.bucket!);
    if (lock)
      Object.assign(locs.get(bucket.id)!, {
        immutable: true,
        lock: { ...lock, holds: "database dumps" },
      });
  }
  const locations = [...locs.values()]
    .map((l) => ({ ...l, holds: [...l.holds].sort() }))
    .sort((a, b) => a.id.localeCompare(b.id));
  const copies = 1 + locations.length; // production counts as the first copy
  const media = new Set(["host disk", ...locations.map((l) => l.medium)]).size;
  const offsite = locations.filter((l) => l.offsite).length;
  const immutable = locations.filter((l) => l.immutable).length;
  return {
    copies,
    media,
    offsite,
    immutable,
    satisfied: copies >= 3 && media >= 2 && offsite >= 1,
    locations,
  };
}

/** " (database dumps in s3:bucket, 35 days GOVERNANCE)": which copies are immutable, or "". */
export function immutableText(t: ThreeTwoOne): string {
  const locked = t.locations
    .filter((l) => l.lock)
    .map((l) => `${l.lock!.holds} in ${l.id}, ${l.lock!.days} days ${l.lock!.mode}`);
  return locked.length > 0 ? ` (${locked.join("; ")})` : "";
}

/** What the plan summary and the runbook say of a lost host under targets.hostLoss: none. */
export const HOST_LOSS_NOT_PROMISED =
  "not promised (targets.hostLoss: none): what is only on that host is lost with it";

/** A few lines for the plan summary and the PR comment (kept short: comments are cut at 64 KiB). */
export function renderTargetsSummary(site: Site): string {
  const r = recoveryReport(site);
  const t = threeTwoOne(site);
  const fmt = (h: number | undefined) =>
    h === undefined ? "not estimated (declare sizes:)" : `${h} h`;
  const lines = [
    `Recovery (targets: RPO ${r.onSite.rpoTargetHours} h, RTO ${r.onSite.rtoTargetHours} h):`,
    `  ${r.onSite.scenario}:  RPO ${r.onSite.worstRpoHours} h, RTO ${fmt(r.onSite.rtoHours)}`,
  ];
  for (const i of r.onSite.rpo) lines.push(`    ${i.what}: ${i.hours} h via ${i.via}`);
  if (r.onSite.scenario === "data lost") lines.push(`  host lost:  ${HOST_LOSS_NOT_PROMISED}`);
  if (r.siteLoss) {
    lines.push(
      `  site lost:  RPO ${r.siteLoss.worstRpoHours} h (target ${r.siteLoss.rpoTargetHours} h), RTO ${fmt(r.siteLoss.rtoHours)} (target ${r.siteLoss.rtoTargetHours} h)`,
    );
    for (const i of r.siteLoss.rpo) lines.push(`    ${i.what}: ${i.hours} h via ${i.via}`);
  } else {
    lines.push("  site lost:  no offsite copy");
  }
  if (r.onSite.rpoAllowanceHours > 0)
    lines.push(
      `  (${site.timezone} changes clocks by ${r.onSite.rpoAllowanceHours} h: that much over an RPO target is allowed)`,
    );
  lines.push(
    `3-2-1: ${t.copies} copies, ${t.media} media, ${t.offsite} offsite, ${t.immutable} immutable${immutableText(t)} (${t.satisfied ? "satisfied" : "NOT satisfied"})`,
  );
  const b = site.offsite.bucket;
  if (b && site.offsite.upload && !dumpLock(b))
    lines.push(
      `  Object Lock off (offsite.bucket.objectLock: false): the offsite dumps can be overwritten by their writer and come back only as versions, for ${b.noncurrentDays} days`,
    );
  return lines.join("\n");
}
