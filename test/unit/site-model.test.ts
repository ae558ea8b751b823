// The site model: defaults filled in one place, every problem listed with its key path and fix.
import fc from "fast-check";
import { parseSite } from "../../stacks/load";
import { maxIntervalHours } from "../../stacks/schedule";
import { cronProblem } from "../../stacks/primitives";
import { clone, minimalSite, stackSite, siteProblems } from "../harness/sites";

const problems = siteProblems;

describe("the stacks' own models", () => {
  test.each(["prod", "dev"])("%s is valid", (stack) => {
    expect(problems(stackSite(stack))).toEqual([]);
  });

  test("defaults are filled in", () => {
    const site = parseSite(minimalSite());
    expect(site.timezone).toBe("UTC");
    expect(site.targets).toEqual({ rpoHours: 24, rtoHours: 4 });
    expect(site.hosts[0]).toMatchObject({
      user: "root",
      port: 22,
      sshKeySecret: "sshPrivateKey",
      paths: {
        etc: "/etc/backup321",
        lib: "/usr/local/lib/backup321",
        sbin: "/usr/local/sbin",
        state: "/var/lib/backup321",
        cron: "/etc/cron.d",
      },
    });
    expect(site.monitoring.schedule).toBe("0 * * * *");
  });

  test("prod describes the seed's site", () => {
    const site = parseSite(stackSite("prod"));
    expect(site.hosts.map((h) => [h.name, h.roles])).toEqual([
      ["proxmox-srv", ["proxmox"]],
      ["docker-srv", ["pbs", "restic"]],
      ["db-srv", ["mariadb"]],
      ["db-replica", ["mariadb"]],
      ["nas", ["nas"]],
    ]);
    expect(site.hosts.find((h) => h.name === "nas")?.address).toBe("192.168.10.30");
    expect(site.offsite.bucket?.name).toBe("atlastech-backups");
    expect(site.retention).toEqual({ daily5: { keepDaily: 5 }, weekly4: { keepWeekly: 4 } });
    expect(site.mariadb).toMatchObject({
      databases: ["atlastech_db"],
      schedules: { full: "0 2 * * 0", restoreTest: "0 3 1 * *" },
      retention: { fulls: 4, binlogExpireDays: 7 },
    });
    expect(site.targets).toMatchObject({ rpoHours: 24, rtoHours: 4 });
  });
});

describe("problems are listed with their key path and what would be valid", () => {
  test("an unknown host in a role", () => {
    const raw = clone(stackSite("prod")) as Record<string, unknown> & { mariadb: { host: string } };
    raw.mariadb.host = "db-srv2";
    expect(problems(raw)).toEqual([
      'backup321:site.mariadb.host: unknown host "db-srv2" (one of: proxmox-srv, docker-srv, db-srv, db-replica, nas)',
    ]);
  });

  test("the dirty pages' low water mark: 10 by default, a percentage below 100", () => {
    expect(parseSite(stackSite("prod")).mariadb?.dirtyPagesLwmPct).toBe(10);
    const raw = clone(stackSite("prod")) as Record<string, unknown> & {
      mariadb: Record<string, unknown>;
    };
    raw.mariadb.dirtyPagesLwmPct = 100;
    expect(problems(raw)).toEqual([
      "backup321:site.mariadb.dirtyPagesLwmPct: must be a percentage from 0 to 99 (e.g. 10)",
    ]);
  });

  test("unknown keys, wrong types, bad cron, non-positive retention, all at once", () => {
    const raw = {
      name: "t",
      hosts: [{ name: "h1", address: "10.0.0.1", port: "22", colour: "red" }],
      retention: { daily: { keepDaily: 0 } },
      monitoring: { schedule: "0 25 * * *" },
      extra: 1,
    };
    expect(problems(raw)).toEqual([
      'backup321:site.hosts[0].port: is the string "22" (expected number)',
      "backup321:site.hosts[0].colour: unknown key (remove it or check its spelling)",
      "backup321:site.retention.daily.keepDaily: must be a positive whole number (e.g. 5)",
      expect.stringMatching(
        /^backup321:site\.monitoring\.schedule: "0 25 \* \* \*" .*\(five fields/,
      ),
      "backup321:site.extra: unknown key (remove it or check its spelling)",
    ]);
  });

  test("model strings that reach a command, a URL or a policy are refused at their key", () => {
    type Raw = {
      timezone: string;
      hosts: { timezone?: string }[];
      pbs: { server?: string };
      restic: { repositories: { excludes?: string[] }[] };
      offsite: { bucket: Record<string, string>; nas: { path: string } };
    };
    const raw = clone(stackSite("prod")) as unknown as Raw;
    raw.timezone = "Europe/Nowhere";
    raw.hosts[0].timezone = "UTC; touch /tmp/pwned";
    raw.pbs.server = "10.0.0.5\nrm -rf /";
    raw.restic.repositories[0].excludes = ["/root/.cache\n/etc"];
    raw.offsite.bucket.region = "evil.example/x#";
    raw.offsite.bucket.dumpPrefix = "*";
    raw.offsite.bucket.resticPrefix = "../restic/";
    raw.offsite.nas.path = "/backups/../../etc";
    const keys = problems(raw).map((p) => p.slice(0, p.indexOf(":", "backup321:".length)));
    expect(keys).toEqual(
      expect.arrayContaining([
        "backup321:site.timezone",
        "backup321:site.hosts[0].timezone",
        "backup321:site.pbs.server",
        "backup321:site.restic.repositories[0].excludes[0]",
        "backup321:site.offsite.bucket.region",
        "backup321:site.offsite.bucket.dumpPrefix",
        "backup321:site.offsite.bucket.resticPrefix",
        "backup321:site.offsite.nas.path",
      ]),
    );
    expect(problems(raw)).toEqual(
      expect.arrayContaining([
        "backup321:site.timezone: must be an IANA time zone (e.g. Europe/Paris, or UTC)",
        "backup321:site.offsite.bucket.dumpPrefix: must be a key prefix of letters, digits and ._- segments, ending in / (e.g. database/)",
        "backup321:site.offsite.nas.path: must not contain '.' or '..' segments (write the path it means, e.g. /mnt/usb)",
      ]),
    );
  });

  test("schema problems and the cross-checks of the sections that parsed, in one list", () => {
    const raw = clone(stackSite("prod")) as unknown as {
      mariadb: { host: string };
      monitoring: { schedule: string };
    };
    raw.mariadb.host = "db-srv2";
    raw.monitoring.schedule = "0 25 * * *";
    expect(problems(raw)).toEqual([
      expect.stringMatching(/^backup321:site\.monitoring\.schedule: "0 25 \* \* \*" /),
      'backup321:site.mariadb.host: unknown host "db-srv2" (one of: proxmox-srv, docker-srv, db-srv, db-replica, nas)',
    ]);
  });

  test("a cross-check that reads a section with schema problems is left out, not guessed", () => {
    const raw = clone(stackSite("prod")) as unknown as {
      hosts: { address: string }[];
      mariadb: { host: string };
    };
    raw.hosts[2].address = "db srv";
    raw.mariadb.host = "db-srv2"; // checked against the hosts, which did not parse
    expect(problems(raw)).toEqual([
      "backup321:site.hosts[2].address: must be an IP address or host name (e.g. 192.168.10.20)",
    ]);
  });

  test("duplicate names", () => {
    const raw = minimalSite();
    raw.hosts.push({ name: "h1", address: "10.0.0.2" });
    expect(problems(raw)).toEqual([
      'backup321:site.hosts[1].name: duplicate name "h1" (names must be unique)',
    ]);
  });

  test("a role the host does not have", () => {
    const raw = { ...minimalSite(), mariadb: { host: "h1", databases: ["db"] } };
    expect(problems(raw)).toEqual([
      'backup321:site.mariadb.host: host "h1" does not have the role mariadb (add mariadb to its roles)',
    ]);
  });

  test("a retention tier that keeps nothing, and an unknown tier", () => {
    const raw = clone(stackSite("prod")) as {
      retention: Record<string, unknown>;
      restic: { repositories: { retention: string }[] };
    };
    raw.retention.daily5 = {};
    raw.restic.repositories[1].retention = "monthly";
    expect(problems(raw)).toEqual([
      expect.stringMatching(
        /^backup321:site\.retention\.daily5: keeps nothing \(set at least one of keepLast/,
      ),
    ]);
    raw.retention.daily5 = { keepDaily: 5 };
    expect(problems(raw)).toEqual([
      'backup321:site.restic.repositories[1].retention: unknown retention tier "monthly" (one of: daily5, weekly4)',
    ]);
  });

  test("a Glacier transition over the restic prefix says why", () => {
    const raw = clone(stackSite("prod")) as { offsite: { bucket: { transitions: unknown[] } } };
    raw.offsite.bucket.transitions.push({ prefix: "", days: 30, storageClass: "GLACIER" });
    expect(problems(raw)).toEqual([
      expect.stringMatching(
        /^backup321:site\.offsite\.bucket\.transitions\[1\]\.prefix: "" would move restic data under "restic\/" to GLACIER, and restic cannot read archived objects \(restic issue 4583\)/,
      ),
    ]);
  });

  test("a contact nobody can reach, and an application without a health URL", () => {
    const raw = clone(stackSite("prod")) as {
      contacts: Record<string, string>[];
      application: Record<string, string>;
    };
    raw.contacts = [{ name: "Oumayma Lafridi", role: "IT manager" }];
    raw.application.healthUrl = "intranet";
    expect(problems(raw)).toEqual([
      "backup321:site.contacts[0]: gives no way to reach them (add phone: or email:)",
      "backup321:site.application.healthUrl: must be a URL (e.g. https://intranet.atlastech.ma/login)",
    ]);
  });

  test("the NAS and offsite drills: a schedule each, nothing else; the offsite one where the key is", () => {
    const site = parseSite(stackSite("prod"));
    expect(site.offsite.nas?.drill).toEqual({ schedule: "0 10 4 * *" });
    expect(site.offsite.upload?.drill).toEqual({ schedule: "0 11 5 * *" });
    const raw = clone(stackSite("prod")) as {
      hosts: { name: string; roles: string[] }[];
      offsite: { nas: { drill: unknown }; upload: { host?: string; drill: unknown } };
    };
    const bad = clone(raw);
    bad.offsite.nas.drill = { schedule: "61 * * * *", files: 3 };
    expect(problems(bad)).toEqual([
      expect.stringMatching(/^backup321:site\.offsite\.nas\.drill\.schedule: "61 \* \* \* \*" /),
      "backup321:site.offsite.nas.drill.files: unknown key (remove it or check its spelling)",
    ]);
    raw.offsite.upload.host = "docker-srv";
    raw.hosts.find((h) => h.name === "docker-srv")!.roles.push("mariadb");
    expect(problems(raw)).toEqual([
      "backup321:site.offsite.upload.drill: runs on the upload host docker-srv, which has no MariaDB key to decrypt the fulls (upload from db-srv, or remove the drill)",
    ]);
  });

  test("a server binlog expiry shorter than the shipping can cover", () => {
    const raw = clone(stackSite("prod")) as {
      mariadb: { schedules: { binlogs: string }; retention: { binlogExpireDays: number } };
    };
    raw.mariadb.schedules.binlogs = "0 0 * * 0"; // weekly shipping
    raw.mariadb.retention.binlogExpireDays = 7;
    // read in the database host's time zone (Europe/Paris): the week of the clock change lasts 169 h
    expect(problems(raw)).toEqual([
      expect.stringMatching(
        /^backup321:site\.mariadb\.retention\.binlogExpireDays: the server would drop binlogs after 7 day\(s\) but they are shipped only every 169 h.*\(at least 16\)$/,
      ),
    ]);
  });
});

describe("cron expressions", () => {
  test.each([
    ["0 2 * * 0", 168],
    ["15 * * * *", 1],
    ["0 3 1 * *", 31 * 24],
    ["*/15 * * * *", 0.25],
    ["0 1 * * 1-5", 72],
  ])("%s runs at least every %d h", (expr, hours) => {
    expect(maxIntervalHours(expr, "UTC")).toBe(hours);
  });

  test.each(["0 2 * *", "@daily", "0 2 * * 0 2026", "61 * * * *", "0 2 L * *", "0 2 ? * *"])(
    "%s is refused",
    (expr) => {
      expect(cronProblem(expr)).toBeDefined();
    },
  );

  test("any valid five-field expression is accepted and has a positive interval", () => {
    const field = (max: number, min = 0) =>
      fc.oneof(
        fc.constant("*"),
        fc.integer({ min, max }).map(String),
        fc.integer({ min: 1, max: Math.max(1, Math.floor(max / 2)) }).map((n) => `*/${n}`),
      );
    fc.assert(
      fc.property(field(59), field(23), field(28, 1), field(12, 1), field(6), (...f) => {
        const expr = f.join(" ");
        expect(cronProblem(expr)).toBeUndefined();
        expect(maxIntervalHours(expr, "UTC")).toBeGreaterThan(0);
      }),
      { numRuns: 200 },
    );
  });
});

describe("properties of validation", () => {
  const validName = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);

  test("hosts with distinct valid names always parse; a duplicate always names its index", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(validName, { minLength: 1, maxLength: 6 }),
        fc.nat(),
        (names, pick) => {
          const hosts = names.map((name, i) => ({ name, address: `10.0.0.${i + 1}` }));
          expect(problems({ name: "s", hosts })).toEqual([]);
          const dup = names[pick % names.length];
          const withDup = [...hosts, { name: dup, address: "10.9.9.9" }];
          expect(problems({ name: "s", hosts: withDup })).toEqual([
            `backup321:site.hosts[${names.length}].name: duplicate name "${dup}" (names must be unique)`,
          ]);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("any non-positive or fractional keep-* is refused at its path", () => {
    const keys = ["keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly", "keepYearly"];
    fc.assert(
      fc.property(
        fc.constantFrom(...keys),
        fc.oneof(fc.integer({ max: 0 }), fc.double({ min: 0.01, max: 100, noInteger: true })),
        (key, value) => {
          const out = problems({ ...minimalSite(), retention: { t: { [key]: value } } });
          expect(out).toHaveLength(1);
          expect(out[0].startsWith(`backup321:site.retention.t.${key}: `)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("a role pointing at any name that is not a host is refused with the known hosts", () => {
    fc.assert(
      fc.property(
        validName.filter((n) => n !== "h1"),
        (other) => {
          const site = { ...minimalSite(), mariadb: { host: other, databases: ["db"] } };
          expect(problems(site)).toEqual([
            `backup321:site.mariadb.host: unknown host "${other}" (one of: h1)`,
          ]);
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe("the offsite copy is immutable by default, and the bucket's windows fit the site", () => {
  type Raw = {
    offsite: { bucket: Record<string, unknown> & { transitions: Record<string, unknown>[] } };
    mariadb: { retention: { fulls: number } };
    restic: { repositories: { name: string; check?: { schedule: string } }[] };
  };
  const prod = () => clone(stackSite("prod")) as unknown as Raw;

  test("Object Lock is on by default: GOVERNANCE for 35 days; false turns it off", () => {
    expect(parseSite(stackSite("prod")).offsite.bucket?.objectLock).toEqual({
      mode: "GOVERNANCE",
      days: 35,
    });
    const raw = prod();
    raw.offsite.bucket.objectLock = { mode: "COMPLIANCE" };
    expect(parseSite(raw).offsite.bucket?.objectLock).toEqual({ mode: "COMPLIANCE", days: 35 });
    raw.offsite.bucket.objectLock = false;
    expect(problems(raw)).toEqual([]);
    expect(parseSite(raw).offsite.bucket?.objectLock).toBe(false);
  });

  test("the lock must last as long as the host keeps its fulls", () => {
    const raw = prod();
    raw.offsite.bucket.objectLock = { days: 20 };
    // four weekly fulls; Europe/Paris makes one week 169 h long
    const every = maxIntervalHours("0 2 * * 0", "Europe/Paris");
    const need = Math.ceil((4 * every) / 24);
    expect(need).toBe(29);
    expect(problems(raw)).toEqual([
      `backup321:site.offsite.bucket.objectLock.days: dumps are locked for 20 day(s), but the host keeps 4 fulls made every ${every} h (${need} days), so an attacker who deletes the local fulls finds their offsite copies unlocked (at least ${need})`,
    ]);
    raw.offsite.bucket.objectLock = { days: need };
    expect(problems(raw)).toEqual([]);
    raw.mariadb.retention.fulls = 6;
    expect(problems(raw)[0]).toContain("(at least 43)");
    raw.offsite.bucket.objectLock = false;
    expect(problems(raw)).toEqual([]);
  });

  test("noncurrent versions outlive the time it takes to notice a broken restic repository", () => {
    const raw = prod();
    raw.offsite.bucket.noncurrentDays = 7;
    // the cloud repository's check runs weekly (169 h across a clock change), 12 h grace,
    // and the monitor runs hourly
    const check = maxIntervalHours("0 8 * * 0", "Europe/Paris");
    const monitor = maxIntervalHours("0 * * * *", "Europe/Paris");
    const hours = check + 12 + monitor;
    const need = Math.ceil(hours / 24);
    expect(need).toBe(8);
    expect(problems(raw)).toEqual([
      `backup321:site.offsite.bucket.noncurrentDays: an object of the restic repository "cloud" that is overwritten or deleted can be brought back for 7 day(s), but a problem with the repository may go unnoticed for ${hours} h (its check every ${check} h + 12 h grace + the monitor every ${monitor} h) (at least ${need})`,
    ]);
    raw.offsite.bucket.noncurrentDays = need;
    expect(problems(raw)).toEqual([]);
    // without a check, the copy job is what would notice
    delete raw.restic.repositories[1].check;
    raw.offsite.bucket.noncurrentDays = 7;
    expect(problems(raw)[0]).toContain("its copy every");
  });

  test("S3's IA rules: 30 days before a move to IA, 30 more before a later archive move", () => {
    const raw = prod();
    raw.offsite.bucket.transitions = [
      { prefix: "database/", days: 10, storageClass: "STANDARD_IA" },
      { prefix: "database/", days: 30, storageClass: "GLACIER" },
    ];
    expect(problems(raw)).toEqual([
      "backup321:site.offsite.bucket.transitions[0].days: S3 refuses a move to STANDARD_IA before 30 days (at least 30)",
      "backup321:site.offsite.bucket.transitions[1].days: objects under database/ would move from STANDARD_IA (transitions[0], day 10) to GLACIER after 20 day(s), but S3 requires 30 days in STANDARD_IA first (at least 40)",
    ]);
    raw.offsite.bucket.transitions = [
      { prefix: "database/", days: 30, storageClass: "ONEZONE_IA" },
      { prefix: "database/", days: 60, storageClass: "GLACIER" },
    ];
    expect(problems(raw)).toEqual([]);
  });

  test("no archive class is left before its minimum storage duration", () => {
    const raw = prod();
    raw.offsite.bucket.transitions = [{ prefix: "database/", days: 300, storageClass: "GLACIER" }];
    expect(problems(raw)).toEqual([
      "backup321:site.offsite.bucket.transitions[0].days: dumps would expire 65 day(s) after moving to GLACIER, which bills at least 90 days, so the early deletion fee pays for data that is gone (at most 275, or expireDumpsAfterDays at least 390)",
    ]);
    raw.offsite.bucket.transitions = [
      { prefix: "database/", days: 30, storageClass: "GLACIER_IR" },
      { prefix: "database/binlogs/", days: 60, storageClass: "DEEP_ARCHIVE" },
    ];
    raw.offsite.bucket.expireDumpsAfterDays = 200;
    expect(problems(raw)).toEqual([
      "backup321:site.offsite.bucket.transitions[1].days: objects under database/binlogs/ would move from GLACIER_IR (transitions[0], day 30) to DEEP_ARCHIVE after 30 day(s), but GLACIER_IR bills at least 90 days (at least 120)",
      "backup321:site.offsite.bucket.transitions[1].days: objects under database/binlogs/ would expire 140 day(s) after moving to DEEP_ARCHIVE, which bills at least 180 days, so the early deletion fee pays for data that is gone (at most 20, or expireDumpsAfterDays at least 240)",
    ]);
  });
});
