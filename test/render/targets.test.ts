// The recovery numbers the plan promises: exact values for the seed site, the schedule-chain
// arithmetic (with properties), and the checks that fail a plan breaking a target.
import fc from "fast-check";
import { CronExpressionParser } from "cron-parser";
import { readStackFile } from "../../infra/stackFile";
import { parseSite, SiteError } from "../../stacks/load";
import { siteSchema, type SiteInput } from "../../stacks/schema";
import { maxIntervalHours } from "../../stacks/schedule";
import {
  chainRpoHours,
  dstShiftHours,
  recoveryReport,
  renderTargetsSummary,
  threeTwoOne,
} from "../../stacks/targets";

const stackSite = (stack: string) => parseSite(readStackFile(stack).config["backup321:site"]);

describe("chainRpoHours", () => {
  test.each([
    [["0 1 * * *"], "UTC", 24],
    [["0 1 * * *"], "Europe/Paris", 25], // the autumn clock change makes one 25 h gap
    [["15 * * * *", "45 * * * *"], "UTC", 1.5],
    [["0 3 * * *", "0 4 * * 0"], "UTC", 169],
    [["0 1 * * *", "0 3 * * *", "0 4 * * 0"], "UTC", 171],
    [["0 2 * * 0", "0 5 * * 0"], "UTC", 171],
    // prod's database offsite: hourly shipping, then the daily upload of the shipped binlogs
    [["15 * * * *", "30 5 * * *"], "UTC", 24.25],
    [["15 * * * *", "30 5 * * *"], "Europe/Paris", 25.25],
    // same minute: the copy cannot rely on the run that starts with it
    [["0 4 * * *", "0 4 * * *"], "UTC", 48],
    [["0 3 1 * *"], "UTC", 744],
  ])("%j in %s: %d h", (chain, tz, hours) => {
    expect(chainRpoHours(chain, tz)).toBe(hours);
  });

  const dailyCron = fc
    .tuple(fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 23 }))
    .map(([m, h]) => `${m} ${h} * * *`);
  const weeklyCron = fc
    .tuple(
      fc.integer({ min: 0, max: 59 }),
      fc.integer({ min: 0, max: 23 }),
      fc.integer({ min: 0, max: 6 }),
    )
    .map(([m, h, d]) => `${m} ${h} * * ${d}`);
  const cronArb = fc.oneof(
    fc.integer({ min: 0, max: 59 }).map((m) => `${m} * * * *`),
    dailyCron,
    weeklyCron,
  );

  /** The reference: every run of the whole year, no windows. */
  const fullYear = (stages: string[], tz: string): number => {
    const runs = (e: string) => {
      const it = CronExpressionParser.parse(e, {
        currentDate: new Date(Date.UTC(2028, 0, 1) - 1),
        endDate: new Date(Date.UTC(2029, 0, 8)),
        tz,
      });
      const out: number[] = [];
      while (it.hasNext()) out.push(it.next().getTime());
      return out;
    };
    let prev = runs(stages[0]);
    let cap: (number | undefined)[] = prev;
    for (const e of stages.slice(1)) {
      const next = runs(e);
      cap = next.map((t) => {
        const before = prev.filter((p) => p < t);
        return before.length ? cap[before.length - 1] : undefined;
      });
      prev = next;
    }
    let worst = 0;
    for (let i = 0; i + 1 < prev.length; i++) {
      const c = cap[i];
      if (c !== undefined) worst = Math.max(worst, prev[i + 1] - c);
    }
    return worst / 3600_000;
  };

  const sparseCron = fc.oneof(
    dailyCron,
    weeklyCron,
    fc
      .tuple(fc.integer({ min: 0, max: 59 }), fc.integer({ min: 1, max: 5 }))
      .map(([m, d]) => `${m} */6 * * 1-${d}`),
  );

  test("walking a few windows gives what walking the whole year gives, clock changes included", () => {
    fc.assert(
      fc.property(
        fc.array(sparseCron, { minLength: 1, maxLength: 3 }),
        fc.constantFrom("UTC", "Europe/Paris", "America/New_York"),
        (stages, tz) => chainRpoHours(stages, tz) === fullYear(stages, tz),
      ),
      { numRuns: 30 },
    );
  });

  test("one stage is the longest gap between runs", () => {
    fc.assert(
      fc.property(cronArb, (c) => chainRpoHours([c], "UTC") === maxIntervalHours(c, "UTC")),
      { numRuns: 25 },
    );
  });

  test("a copy is never fresher than its source, nor older than both intervals together", () => {
    fc.assert(
      fc.property(cronArb, cronArb, (a, b) => {
        const chain = chainRpoHours([a, b], "UTC");
        return (
          chain >= maxIntervalHours(a, "UTC") &&
          chain >= maxIntervalHours(b, "UTC") &&
          chain <= maxIntervalHours(a, "UTC") + maxIntervalHours(b, "UTC")
        );
      }),
      { numRuns: 25 },
    );
  });
});

test("dstShiftHours", () => {
  expect(dstShiftHours("UTC")).toBe(0);
  expect(dstShiftHours("Europe/Paris")).toBe(1);
  expect(dstShiftHours("Australia/Lord_Howe")).toBe(0.5);
  expect(dstShiftHours("Asia/Tokyo")).toBe(0);
});

describe("the seed site (prod)", () => {
  const site = stackSite("prod");

  test("worst-case RPO and RTO estimates, per scenario", () => {
    const r = recoveryReport(site);
    // restoring each kind of data takes as long whatever was lost: the site loss adds its steps
    const restores = [
      { what: "guests", how: "150 GB at 100 MB/s + 0.5 h", hours: 0.92 },
      { what: "files", how: "10 GB at 100 MB/s + 0.5 h", hours: 0.53 },
      {
        what: "database",
        how: "5 GB at 50 MB/s + 0.52 GB of binlogs (25 h since the last full or increment) at 10 MB/s + 0.5 h",
        hours: 0.54,
      },
    ];
    expect(r.onSite).toEqual({
      scenario: "host lost",
      rpo: [
        { what: "guests", via: 'vzdump "daily-pbs"', hours: 25 },
        { what: "files", via: 'restic "usb"', hours: 25 },
        // db-srv lost: its binlogs up to the stream's lag limit are on docker-srv
        { what: "database", via: "binlog stream to docker-srv", hours: 0.02 },
      ],
      worstRpoHours: 25,
      rpoTargetHours: 24,
      rpoAllowanceHours: 1,
      rto: restores,
      rtoHours: 0.92,
      rtoTargetHours: 4,
      unprotected: [],
    });
    expect(r.siteLoss).toEqual({
      scenario: "site lost",
      rpo: [
        {
          what: "guests",
          via: 'vzdump "daily-pbs" → restic "usb" → restic copy "cloud"',
          hours: 172,
        },
        { what: "files", via: 'restic "usb" → restic copy "cloud"', hours: 170 },
        { what: "database", via: "binlog shipping → dump upload", hours: 25.25 },
      ],
      worstRpoHours: 172,
      rpoTargetHours: 192,
      rpoAllowanceHours: 1,
      rto: [
        { what: "rebuild hosts", how: "assumed", hours: 2 },
        { what: "download", how: "165 GB at 20 MB/s", hours: 2.29 },
        ...restores,
      ],
      rtoHours: 6.28,
      rtoTargetHours: 24,
      unprotected: [],
    });
  });

  test("3-2-1: five copies on four media, one offsite, the offsite dumps immutable", () => {
    expect(threeTwoOne(site)).toEqual({
      copies: 5,
      media: 4,
      offsite: 1,
      immutable: 1,
      satisfied: true,
      locations: [
        {
          id: "disk:5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b",
          medium: "removable disk",
          offsite: false,
          immutable: false,
          holds: ["PBS datastore usb-ssd", "restic usb"],
        },
        {
          id: "host:db-srv",
          medium: "host disk",
          offsite: false,
          immutable: false,
          holds: ["database fulls and binlogs"],
        },
        {
          id: "nas:nas",
          medium: "NAS",
          offsite: false,
          immutable: false,
          // the binlog stream's sealed files: docker-srv syncs them there too
          holds: ["database binlog stream", "dated snapshots"],
        },
        {
          id: "s3:atlastech-backups",
          medium: "object storage",
          offsite: true,
          immutable: true,
          // ...and uploads them under the dump prefix
          holds: ["database binlog stream", "database dumps", "restic cloud"],
          // restic's prefix is never locked: only the dumps are
          lock: { holds: "database dumps", mode: "GOVERNANCE", days: 35 },
        },
      ],
    });
  });

  test("the stream's sealed files offsite are as old as the shipped ones: where those go too, they lower no RPO", () => {
    // both are closed by the hourly shipping's FLUSH and sent by the same daily upload
    const db = (r: ReturnType<typeof recoveryReport>["siteLoss"]) =>
      r!.rpo.find((i) => i.what === "database");
    expect(db(recoveryReport(site).siteLoss)).toEqual({
      what: "database",
      via: "binlog shipping → dump upload",
      hours: 25.25,
    });
  });

  test("the plan summary lines", () => {
    expect(renderTargetsSummary(site)).toBe(
      [
        "Recovery (targets: RPO 24 h, RTO 4 h):",
        "  host lost:  RPO 25 h, RTO 0.92 h",
        '    guests: 25 h via vzdump "daily-pbs"',
        '    files: 25 h via restic "usb"',
        "    database: 0.02 h via binlog stream to docker-srv",
        "  site lost:  RPO 172 h (target 192 h), RTO 6.28 h (target 24 h)",
        '    guests: 172 h via vzdump "daily-pbs" → restic "usb" → restic copy "cloud"',
        '    files: 170 h via restic "usb" → restic copy "cloud"',
        "    database: 25.25 h via binlog shipping → dump upload",
        "  (Europe/Paris changes clocks by 1 h: that much over an RPO target is allowed)",
        "3-2-1: 5 copies, 4 media, 1 offsite, 1 immutable (database dumps in s3:atlastech-backups, 35 days GOVERNANCE) (satisfied)",
      ].join("\n"),
    );
  });

  test("uploaded from a host without the shipped binlogs, the database offsite is only the weekly full, unless the stream's files go with it", () => {
    const raw = structuredClone(readStackFile("prod").config["backup321:site"]) as SiteInput &
      Record<string, never>;
    raw.hosts!.find((h) => h.name === "docker-srv")!.roles!.push("mariadb");
    raw.offsite!.upload!.host = "docker-srv";
    // its drill decrypts fulls: only where the key is (the check below)
    delete raw.offsite!.upload!.drill;
    // docker-srv is the stream's host: its upload sends the sealed streamed binlogs daily
    expect(recoveryReport(parseSite(raw)).siteLoss?.rpo).toContainEqual({
      what: "database",
      via: "binlog stream to docker-srv → dump upload",
      hours: 25.25,
    });
    delete raw.mariadb!.stream;
    expect(recoveryReport(parseSite(raw)).siteLoss?.rpo).toContainEqual({
      what: "database",
      via: "full backup → dump upload",
      hours: 172.5,
    });
  });

  test("Object Lock makes the offsite dumps immutable, never restic; off, nothing is", () => {
    const raw = readStackFile("prod").config["backup321:site"] as SiteInput;
    const withLock = (objectLock: unknown) =>
      siteSchema.parse({
        ...raw,
        offsite: { ...raw.offsite, bucket: { ...raw.offsite?.bucket, objectLock } },
      });
    const compliance = threeTwoOne(withLock({ mode: "COMPLIANCE", days: 60 }));
    expect(compliance.immutable).toBe(1);
    expect(compliance.locations.find((l) => l.id === "s3:atlastech-backups")?.lock).toEqual({
      holds: "database dumps",
      mode: "COMPLIANCE",
      days: 60,
    });
    const off = withLock(false);
    expect(threeTwoOne(off).immutable).toBe(0);
    expect(threeTwoOne(off).locations.some((l) => l.immutable || l.lock)).toBe(false);
    expect(renderTargetsSummary(off).split("\n").slice(-2)).toEqual([
      "3-2-1: 5 copies, 4 media, 1 offsite, 0 immutable (satisfied)",
      "  Object Lock off (offsite.bucket.objectLock: false): the offsite dumps can be overwritten by their writer and come back only as versions, for 30 days",
    ]);
  });
});

test("dev: one host, no offsite copy, 3-2-1 not satisfied, still plans", () => {
  const site = stackSite("dev");
  expect(recoveryReport(site).siteLoss).toBeUndefined();
  expect(threeTwoOne(site)).toMatchObject({ copies: 2, media: 1, offsite: 0, satisfied: false });
});

test("dev declares that it promises nothing when its host is lost: its targets hold while the host remains", () => {
  const site = stackSite("dev");
  expect(site.targets.hostLoss).toBe("none");
  expect(recoveryReport(site).onSite).toMatchObject({
    scenario: "data lost",
    rpo: [
      { what: "files", via: 'restic "local"', hours: 24 },
      { what: "database", via: "binlog shipping", hours: 0.25 },
    ],
    unprotected: [],
  });
  expect(renderTargetsSummary(site).split("\n").slice(0, 5)).toEqual([
    "Recovery (targets: RPO 24 h, RTO 4 h):",
    "  data lost:  RPO 24 h, RTO not estimated (declare sizes:)",
    '    files: 24 h via restic "local"',
    "    database: 0.25 h via binlog shipping",
    "  host lost:  not promised (targets.hostLoss: none): what is only on that host is lost with it",
  ]);
});

describe("a plan that breaks a target fails with the reason", () => {
  const prod = () =>
    structuredClone(readStackFile("prod").config["backup321:site"]) as SiteInput &
      Record<string, never>;
  /** The problems of the prod site once EDIT has changed it. */
  const problemsAfter = (edit: (raw: ReturnType<typeof prod>) => void) => {
    const raw = prod();
    edit(raw);
    return problems(raw);
  };
  const problems = (raw: unknown) => {
    try {
      parseSite(raw);
      return [];
    } catch (e) {
      if (e instanceof SiteError) return e.problems;
      throw e;
    }
  };

  // One change of the prod site, and the one problem it must raise.
  test.each<[string, (raw: ReturnType<typeof prod>) => void, string, string]>([
    [
      "a weekly PBS backup breaks the 24 h RPO",
      (raw) => {
        raw.proxmox!.jobs![0].schedule = "0 1 * * 0";
      },
      "targets.rpoHours",
      'when a host is lost, up to 169 h of data can be lost (guests: 169 h via vzdump "daily-pbs"), more than the target of 24 h (run those copies more often, or raise targets.rpoHours to at least 169)',
    ],
    [
      "a database with no offsite copy is lost with the site",
      (raw) => {
        delete raw.offsite!.upload;
      },
      "targets.siteLoss.rpoHours",
      "when the site is lost, no copy of the database survives: every copy stays on site (binlog shipping on host:db-srv; binlog shipping → NAS sync to nas on nas:nas; binlog stream to docker-srv on host:docker-srv; binlog stream to docker-srv → NAS sync to nas on nas:nas) (add a copy of it that goes offsite)",
    ],
    [
      "without the NAS, the shipped binlogs on the database host do not count: the daily upload is what survives it",
      (raw) => {
        delete raw.offsite!.nas;
        // the DR drill rebuilds from the NAS: it goes with it
        delete raw.mariadb!.drDrill;
        // and without the stream, which would otherwise be the copy that survives
        delete raw.mariadb!.stream;
      },
      "targets.rpoHours",
      "when a host is lost, up to 25.25 h of data can be lost (database: 25.25 h via binlog shipping → dump upload), more than the target of 24 h (run those copies more often, or raise targets.rpoHours to at least 25.25)",
    ],
  ])("%s", (_title, edit, path, message) => {
    expect(problemsAfter(edit)).toEqual([{ path, message }]);
  });

  test("without a site-loss target, the weekly cloud copy is held to the 24 h RPO", () => {
    const raw = prod();
    delete raw.targets!.siteLoss;
    const p = problems(raw);
    expect(p.map((x) => x.path)).toEqual(["targets.rpoHours", "targets.rtoHours"]);
    expect(p[0].message).toMatch(
      /^when the site is lost, up to 172 h of data can be lost \(guests: 172 h via/,
    );
    expect(p[1].message).toBe(
      "when the site is lost, the restore is estimated at 6.28 h (rebuild hosts 2 h (assumed); download 2.29 h (165 GB at 20 MB/s); guests 0.92 h (150 GB at 100 MB/s + 0.5 h); files 0.53 h (10 GB at 100 MB/s + 0.5 h); database 0.54 h (5 GB at 50 MB/s + 0.52 GB of binlogs (25 h since the last full or increment) at 10 MB/s + 0.5 h)), more than the target of 4 h (restore less data, use faster media, or raise targets.rtoHours to at least 7)",
    );
  });

  test("too much data for the RTO", () => {
    expect(
      problemsAfter((raw) => {
        raw.sizes!.guestsGb = 2000;
      }),
    ).toEqual([
      {
        path: "targets.rtoHours",
        message:
          "when a host is lost, the restore is estimated at 6.06 h (guests 6.06 h (2000 GB at 100 MB/s + 0.5 h); files 0.53 h (10 GB at 100 MB/s + 0.5 h); database 0.54 h (5 GB at 50 MB/s + 0.52 GB of binlogs (25 h since the last full or increment) at 10 MB/s + 0.5 h)), more than the target of 4 h (restore less data, use faster media, or raise targets.rtoHours to at least 7)",
      },
      {
        path: "targets.siteLoss.rtoHours",
        message:
          "when the site is lost, the restore is estimated at 37.12 h (rebuild hosts 2 h (assumed); download 27.99 h (2015 GB at 20 MB/s); guests 6.06 h (2000 GB at 100 MB/s + 0.5 h); files 0.53 h (10 GB at 100 MB/s + 0.5 h); database 0.54 h (5 GB at 50 MB/s + 0.52 GB of binlogs (25 h since the last full or increment) at 10 MB/s + 0.5 h)), more than the target of 24 h (restore less data, use faster media, or raise targets.siteLoss.rtoHours to at least 38)",
      },
    ]);
  });

  test("a copy on the lost host never counts: one host with its own copies breaks the host-lost target", () => {
    const raw = structuredClone(readStackFile("dev").config["backup321:site"]) as SiteInput &
      Record<string, never>;
    delete raw.targets; // the default promise: the targets hold when a host is lost
    const fix =
      "(add a copy that lives off that host: on another host, a removable disk, the NAS or the bucket; or, if the site promises nothing when a host is lost, set targets.hostLoss: none)";
    expect(problems(raw)).toEqual([
      {
        path: "targets.rpoHours",
        message: `when a host is lost, no copy of the files of restic "local" survives: every copy is on the lost host (restic "local" on host:localhost) ${fix}`,
      },
      {
        path: "targets.rpoHours",
        message: `when a host is lost, no copy of the database survives: every copy is on the lost host (binlog shipping on host:localhost) ${fix}`,
      },
    ]);
  });

  test("a PBS datastore on the Proxmox host's own disk is lost with it", () => {
    const raw = prod();
    raw.hosts!.find((h) => h.name === "proxmox-srv")!.roles!.push("pbs");
    raw.pbs!.host = "proxmox-srv";
    raw.pbs!.datastores![0] = { ...raw.pbs!.datastores![0], path: "/var/lib/pbs", disk: undefined };
    const p = problems(raw).filter((x) => x.path === "targets.rpoHours");
    expect(p.map((x) => x.message)).toEqual([
      'when a host is lost, no copy of the guests of vzdump "daily-pbs" survives: every copy is on the lost host (vzdump "daily-pbs" on host:proxmox-srv) (add a copy that lives off that host: on another host, a removable disk, the NAS or the bucket; or, if the site promises nothing when a host is lost, set targets.hostLoss: none)',
    ]);
  });
});

test("a cloud-only restic repository protects its files on site and offsite", () => {
  const site = parseSite({
    name: "small",
    hosts: [{ name: "srv", address: "10.0.0.1", roles: ["restic"] }],
    retention: { d: { keepDaily: 7 } },
    offsite: { bucket: { name: "small-backups" } },
    restic: {
      repositories: [
        {
          name: "cloud",
          host: "srv",
          kind: "s3",
          schedule: "30 2 * * *",
          paths: ["/etc"],
          retention: "d",
        },
      ],
    },
  });
  const r = recoveryReport(site);
  expect(r.onSite.rpo).toEqual([{ what: "files", via: 'restic "cloud"', hours: 24 }]);
  expect(r.siteLoss?.rpo).toEqual([{ what: "files", via: 'restic "cloud"', hours: 24 }]);
  expect(r.onSite.unprotected).toEqual([]);
  expect(threeTwoOne(site)).toMatchObject({ copies: 2, media: 2, offsite: 1, satisfied: false });
});
