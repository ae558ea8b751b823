// What the plan promises: the worst-case RPO and an estimated restore time (RTO) for each kind of
// loss, computed from the schedules, the copies and the declared sizes; and the 3-2-1 count.
// Pure: the checks, the plan summary, the stack outputs and the runbook all read these numbers.
import { runTimesIn, scheduleWindows } from "./schedule";
import type { Site } from "./schema";

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

export interface ScenarioReport {
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
  /** Data classes with no copy surviving this scenario. */
  readonly unprotected: readonly RpoItem["what"][];
}

export interface RecoveryReport {
  /** A host, a guest or the database is lost; the copies on the site's other media remain. */
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
export function chainRpoHours(stages: readonly string[], tz = "UTC"): number {
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

interface Chain {
  readonly what: RpoItem["what"];
  readonly via: string[];
  readonly schedules: string[];
}

function worstItem(site: Site, chains: readonly Chain[], what: RpoItem["what"]): RpoItem[] {
  const items = chains
    .filter((c) => c.what === what)
    .map((c) => ({
      what,
      via: c.via.join(" → "),
      hours: round2(chainRpoHours(c.schedules, site.timezone)),
    }));
  if (items.length === 0) return [];
  // Every chain of the class holds data the others may not: the class loses as much as its worst chain.
  return [items.reduce((a, b) => (b.hours > a.hours ? b : a))];
}

/** The data classes a site protects (each needs a copy in every scenario). */
function protectedClasses(site: Site): RpoItem["what"][] {
  const out: RpoItem["what"][] = [];
  if (site.proxmox && site.proxmox.jobs.length > 0) out.push("guests");
  if (site.restic.repositories.some((r) => !r.copyFrom && r.paths.length > 0)) out.push("files");
  if (site.mariadb) out.push("database");
  return out;
}

function mariadbSyncedToNas(site: Site): boolean {
  const { nas } = site.offsite;
  const m = site.mariadb;
  if (!nas || !m) return false;
  if ((nas.from ?? m.host) !== m.host) return false;
  const sources = nas.sources ?? [m.backupDir, m.binlogBackupDir];
  return sources.some((s) => within(m.binlogBackupDir, s));
}

function onSiteChains(site: Site): Chain[] {
  const chains: Chain[] = [];
  for (const j of site.proxmox?.jobs ?? []) {
    chains.push({ what: "guests", via: [`vzdump "${j.id}"`], schedules: [j.schedule] });
  }
  // Every repository that backs up paths itself (a cloud one survives a host loss too).
  for (const r of site.restic.repositories) {
    if (!r.copyFrom && r.paths.length > 0)
      chains.push({ what: "files", via: [`restic "${r.name}"`], schedules: [r.schedule] });
  }
  const m = site.mariadb;
  const nas = site.offsite.nas;
  if (m) {
    // Shipped binlogs sit on the database host; the NAS copy is the one that survives the host.
    chains.push(
      mariadbSyncedToNas(site) && nas
        ? {
            what: "database",
            via: ["binlog shipping", `NAS sync to ${nas.host}`],
            schedules: [m.schedules.binlogs, nas.schedule],
          }
        : {
            what: "database",
            via: ["binlog shipping (kept on the database host only)"],
            schedules: [m.schedules.binlogs],
          },
    );
  }
  return chains;
}

function siteLossChains(site: Site): Chain[] {
  const chains: Chain[] = [];
  const repos = site.restic.repositories;
  for (const r of repos.filter((x) => x.kind === "s3")) {
    const src = r.copyFrom ? repos.find((x) => x.name === r.copyFrom) : undefined;
    const paths = src ? src.paths : r.paths;
    const head = src
      ? { via: [`restic "${src.name}"`, `restic copy "${r.name}"`], schedules: [src.schedule] }
      : { via: [`restic "${r.name}"`], schedules: [] as string[] };
    const tail = [...head.schedules, r.schedule];
    if (paths.length > 0) chains.push({ what: "files", via: head.via, schedules: tail });
    // A PBS datastore inside the repository's paths carries the guests offsite too.
    for (const j of site.proxmox?.jobs ?? []) {
      const ds = site.pbs?.datastores.find((d) => d.name === j.datastore);
      if (ds && paths.some((p) => within(ds.path, p)))
        chains.push({
          what: "guests",
          via: [`vzdump "${j.id}"`, ...head.via],
          schedules: [j.schedule, ...tail],
        });
    }
  }
  const m = site.mariadb;
  const upload = site.offsite.upload;
  if (m && upload && site.offsite.bucket) {
    // On the database host the upload also sends every shipped binlog: the bucket is behind by at
    // most a shipping gap plus an upload gap. From another host it only has the fulls.
    chains.push(
      (upload.host ?? m.host) === m.host
        ? {
            what: "database",
            via: ["binlog shipping", "dump upload"],
            schedules: [m.schedules.binlogs, upload.schedule],
          }
        : {
            what: "database",
            via: ["full backup", "dump upload"],
            schedules: [m.schedules.full, upload.schedule],
          },
    );
  }
  return chains;
}

interface Sized {
  readonly databaseGb?: number;
  readonly guestsGb?: number;
  readonly filesGb?: number;
  readonly localMBps: number;
  readonly cloudMBps: number;
}

const hoursToMove = (gb: number, mbps: number): number => (gb * 1000) / mbps / 3600;

function dbMBps(site: Site): number {
  return site.mariadb?.method === "logical" ? ASSUMED.logicalDbMBps : ASSUMED.physicalDbMBps;
}

/** Restore of one class from the local copies: read from the backup disk, plus the fixed cost. */
function localRestore(site: Site, s: Sized, what: RpoItem["what"]): RtoItem | undefined {
  const gb = { guests: s.guestsGb, files: s.filesGb, database: s.databaseGb }[what];
  if (gb === undefined) return undefined;
  const speed = what === "database" ? dbMBps(site) : s.localMBps;
  return {
    what,
    how: `${gb} GB at ${speed} MB/s + ${ASSUMED.restoreOverheadHours} h`,
    hours: round2(hoursToMove(gb, speed) + ASSUMED.restoreOverheadHours),
  };
}

function scenario(
  site: Site,
  chains: readonly Chain[],
  target: { rpoHours: number; rtoHours: number },
  rto: (classes: readonly RpoItem["what"][]) => { items: RtoItem[]; hours?: number },
): ScenarioReport {
  const classes = protectedClasses(site);
  const rpo = classes.flatMap((c) => worstItem(site, chains, c));
  const covered = new Set(rpo.map((r) => r.what));
  const r = rto(classes);
  return {
    rpo,
    worstRpoHours: Math.max(0, ...rpo.map((x) => x.hours)),
    rpoTargetHours: target.rpoHours,
    rpoAllowanceHours: dstShiftHours(site.timezone),
    rto: r.items,
    rtoHours: r.hours,
    rtoTargetHours: target.rtoHours,
    unprotected: classes.filter((c) => !covered.has(c)),
  };
}

export function recoveryReport(site: Site): RecoveryReport {
  const s = site.sizes;
  const targets = { rpoHours: site.targets.rpoHours, rtoHours: site.targets.rtoHours };
  // On site: one thing fails at a time; the slowest single restore is the estimate.
  const onSite = scenario(site, onSiteChains(site), targets, (classes) => {
    if (!s) return { items: [] };
    const items = classes.flatMap((c) => localRestore(site, s, c) ?? []);
    if (items.length < classes.length) return { items };
    return { items, hours: round2(Math.max(0, ...items.map((i) => i.hours))) };
  });
  const offsite = siteLossChains(site);
  if (offsite.length === 0) return { onSite };
  // Site lost: rebuild, download everything offsite, then restore everything, one after the other.
  const siteLoss = scenario(site, offsite, site.targets.siteLoss ?? targets, (classes) => {
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
  });
  return { onSite, siteLoss };
}

/** The 3-2-1 count: copies (production included), distinct media, offsite and immutable copies. */
export interface ThreeTwoOne {
  readonly copies: number;
  readonly media: number;
  readonly offsite: number;
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
  readonly immutable: boolean;
  /** What it holds, sorted. */
  readonly holds: readonly string[];
}

export function threeTwoOne(site: Site): ThreeTwoOne {
  const locs = new Map<string, Omit<Location, "holds"> & { holds: Set<string> }>();
  const add = (
    id: string,
    medium: Location["medium"],
    holds: string,
    offsite = false,
    immutable = false,
  ) => {
    const l = locs.get(id) ?? { id, medium, offsite, immutable, holds: new Set<string>() };
    l.holds.add(holds);
    locs.set(id, l);
  };
  for (const d of site.pbs?.datastores ?? []) {
    if (d.disk) add(`disk:${d.disk.uuid}`, "removable disk", `PBS datastore ${d.name}`);
    else add(`host:${site.pbs?.host}`, "host disk", `PBS datastore ${d.name}`);
  }
  const bucket = site.offsite.bucket;
  const locked = bucket?.objectLock !== undefined;
  for (const r of site.restic.repositories) {
    if (r.kind === "s3" && bucket)
      add(`s3:${bucket.name}`, "object storage", `restic ${r.name}`, true, locked);
    else if (r.disk) add(`disk:${r.disk.uuid}`, "removable disk", `restic ${r.name}`);
    else add(`host:${r.host}`, "host disk", `restic ${r.name}`);
  }
  const m = site.mariadb;
  if (m) add(`host:${m.host}`, "host disk", "database fulls and binlogs");
  if (site.offsite.nas) add(`nas:${site.offsite.nas.host}`, "NAS", "dated snapshots");
  if (site.offsite.upload && bucket)
    add(`s3:${bucket.name}`, "object storage", "database dumps", true, locked);
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

/** A few lines for the plan summary and the PR comment (kept short: comments are cut at 64 KiB). */
export function renderTargetsSummary(site: Site): string {
  const r = recoveryReport(site);
  const t = threeTwoOne(site);
  const fmt = (h: number | undefined) =>
    h === undefined ? "not estimated (declare sizes:)" : `${h} h`;
  const lines = [
    `Recovery (targets: RPO ${r.onSite.rpoTargetHours} h, RTO ${r.onSite.rtoTargetHours} h):`,
    `  host lost:  RPO ${r.onSite.worstRpoHours} h, RTO ${fmt(r.onSite.rtoHours)}`,
  ];
  for (const i of r.onSite.rpo) lines.push(`    ${i.what}: ${i.hours} h via ${i.via}`);
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
    `3-2-1: ${t.copies} copies, ${t.media} media, ${t.offsite} offsite, ${t.immutable} immutable (${t.satisfied ? "satisfied" : "NOT satisfied"})`,
  );
  return lines.join("\n");
}
