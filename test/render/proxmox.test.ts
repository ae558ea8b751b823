// Pure functions of the Proxmox VE and PBS components, and the cross-checks of their model.
import * as fs from "node:fs";
import * as path from "node:path";
import { readStackFile } from "../../infra/stackFile";
import { parseSite, SiteError } from "../../stacks/load";
import {
  calendarMaxIntervalHours,
  calendarProblem,
  cronToCalendarEvent,
} from "../../stacks/calendar";
import { keepOptions } from "../../stacks/primitives";
import {
  pbsKeyFile,
  pveKeyFilePath,
  renderVzdumpHook,
  snapshotFeatureCheck,
} from "../../components/proxmox/render";
import { datastoreEnv, keepList, tokenId } from "../../components/pbs/render";

describe("cron to PVE calendar events", () => {
  test.each([
    ["0 1 * * *", "01:00"],
    ["30 0 * * *", "00:30"],
    ["*/15 * * * *", "*:0/15"],
    ["0 */6 * * 1-5", "mon..fri 0/6:00"],
    ["0 2 * * 0", "sun 02:00"],
    ["0 2 * * 7", "sun 02:00"],
    ["0 3 * * sat,sun", "sat,sun 03:00"],
    ["0 3 1 * *", "*-1 03:00"],
    ["15 4 1 jan *", "1-1 04:15"],
    ["0 8-17 * * *", "08..17:00"],
    ["5,35 1,13 * * *", "01,13:05,35"],
  ])("%s → %s", (cron, event) => {
    expect(cronToCalendarEvent(cron)).toBe(event);
  });

  test("forms without an exact PVE equivalent are refused with the reason", () => {
    expect(calendarProblem("0 1 1 * 1")).toBe(
      '"0 1 1 * 1" restricts both day of month and weekday (cron runs on either, PVE on both): keep one',
    );
    expect(calendarProblem("0 1-10/2 * * *")).toBe('"1-10/2": a step over a range has no PVE form');
    expect(calendarProblem("0 1 * * */2")).toBe(
      'a step in the weekday field ("*/2") has no PVE form',
    );
    expect(calendarProblem("0 1 * *")).toBe('"0 1 * *" must have five fields');
    expect(calendarProblem("0 1 * * *")).toBeUndefined();
  });
});

describe("retention", () => {
  const tier = { keepYearly: 1, keepDaily: 5, keepLast: 2, keepWeekly: 4 };
  test("keep-* options in PBS order", () => {
    expect(keepOptions(tier)).toEqual([
      ["keep-last", 2],
      ["keep-daily", 5],
      ["keep-weekly", 4],
      ["keep-yearly", 1],
    ]);
  });
  test("the PBS prune list is option=value", () => {
    expect(keepList(tier)).toBe("keep-last=2 keep-daily=5 keep-weekly=4 keep-yearly=1");
  });
});

describe("the PBS key file", () => {
  test("is a passphrase-less key file holding the 32 bytes", () => {
    const key = Buffer.alloc(32, 7).toString("base64");
    expect(pbsKeyFile(key)).toBe(
      `{"kdf":null,"created":"1970-01-01T00:00:00Z","modified":"1970-01-01T00:00:00Z","data":"${key}"}`,
    );
  });
  test("refuses a key of the wrong size", () => {
    expect(() => pbsKeyFile(Buffer.alloc(16).toString("base64"))).toThrow(
      "a PBS encryption key has 32 bytes, not 16",
    );
  });
  test("lives where PVE looks for it", () => {
    expect(pveKeyFilePath("pbs-usb-ssd")).toBe("/etc/pve/priv/storage/pbs-usb-ssd.enc");
  });
});

describe("datastore env", () => {
  const opts = { prefix: "", user: "b@pbs", tokenFile: "/e/t", fstab: "/etc/fstab" };
  test("defaults without a disk", () => {
    expect(datastoreEnv({ name: "a", path: "/srv/pbs", retention: { keepLast: 3 } }, opts)).toEqual(
      {
        PBS_PREFIX: "",
        PBS_USER: "b@pbs",
        PBS_DATASTORE: "a",
        PBS_PATH: "/srv/pbs",
        PBS_MOUNT: "",
        PBS_UUID: "",
        PBS_FSTYPE: "ext4",
        PBS_FSTAB: "/etc/fstab",
        PBS_GC_SCHEDULE: "daily",
        PBS_PRUNE_SCHEDULE: "daily",
        PBS_KEEP: "keep-last=3",
        PBS_VERIFY_SCHEDULE: "weekly",
        PBS_REVERIFY_DAYS: 30,
        PBS_TOKEN: "pve-a",
        PBS_TOKEN_FILE: "/e/t",
      },
    );
    expect(tokenId("b@pbs", "a")).toBe("b@pbs!pve-a");
  });
  test("a datastore outside its disk is refused", () => {
    expect(() =>
      datastoreEnv(
        {
          name: "a",
          path: "/mnt/usb-ssdx/pbs",
          disk: { uuid: "1234abcd", mountpoint: "/mnt/usb-ssd" },
          retention: { keepLast: 3 },
        },
        opts,
      ),
    ).toThrow("datastore a: /mnt/usb-ssdx/pbs must be below the disk's mount point /mnt/usb-ssd");
  });
});

describe("model checks", () => {
  // The prod site; its hourly binlog schedule is made daily only because measuring an hourly cron
  // over a year takes seconds, and these checks do not look at it.
  /* eslint-disable @typescript-eslint/no-explicit-any */
  const prod = (): any => {
    const s = structuredClone(readStackFile("prod").config["backup321:site"]) as any;
    s.mariadb.schedules.binlogs = "15 1 * * *";
    return s;
  };
  /* eslint-enable @typescript-eslint/no-explicit-any */
  const problems = (site: unknown): string[] => {
    try {
      parseSite(site);
      return [];
    } catch (e) {
      if (e instanceof SiteError)
        return e.problems
          .filter((p) => !p.path.startsWith("targets.")) // tested in targets.test.ts
          .map((p) => `${p.path}: ${p.message}`);
      throw e;
    }
  };

  test("the prod site passes", () => {
    expect(problems(readStackFile("prod").config["backup321:site"])).toEqual([]);
  });

  test("a datastore outside its disk's mount point", () => {
    const s = prod();
    s.pbs.datastores[0].path = "/srv/pbs";
    expect(problems(s)).toEqual([
      'pbs.datastores[0].path: "/srv/pbs" is not below the disk\'s mount point /mnt/usb-ssd, so an unplugged disk would let PBS write to the root file system (e.g. /mnt/usb-ssd/pbs)',
    ]);
  });

  test("a verify schedule whose interval backup321 cannot tell needs verifyMaxAgeHours", () => {
    const s = prod();
    s.pbs.datastores[0].verifySchedule = "*-*-01 02:00";
    expect(problems(s)).toEqual([
      'pbs.datastores[0].verifyMaxAgeHours: is needed: backup321 cannot tell how often verifySchedule "*-*-01 02:00" runs (give the hours after which the last verify is stale, e.g. 192 for a weekly one)',
    ]);
    s.pbs.datastores[0].verifyMaxAgeHours = 800;
    expect(problems(s)).toEqual([]);
  });

  test("a job whose datastore prunes more than it promises", () => {
    const s = prod();
    s.retention.daily3 = { keepDaily: 3 };
    s.pbs.datastores[0].retention = "daily3";
    s.restic.repositories[0].retention = "daily3";
    expect(problems(s)).toEqual([
      'proxmox.jobs[0].retention: promises keep-daily=5 (datastore: 3) but the datastore "usb-ssd" prunes to tier "daily3" (give the datastore a tier that keeps at least as much)',
    ]);
  });

  test("a job without a PVE form is refused (its RPO is checked with the other copies)", () => {
    const s = prod();
    s.proxmox.jobs[0].schedule = "0 1 1 * 1";
    expect(problems(s)[0]).toMatch(/^proxmox\.jobs\[0\]\.schedule: "0 1 1 \* 1" restricts both/);
  });

  test("snapshots of no guest, or of a guest listed twice", () => {
    const s = prod();
    s.proxmox.snapshots = { schedule: "0 * * * *", vms: [], containers: [] };
    expect(problems(s)).toEqual([
      "proxmox.snapshots: lists no guest (add vms: [100] or containers: [200])",
    ]);
    s.proxmox.snapshots = { schedule: "0 * * * *", vms: [100], containers: [100] };
    expect(problems(s)).toEqual([
      "proxmox.snapshots.containers: 100 listed as both VM and container (a guest id is one or the other)",
    ]);
  });

  test("a command prefix with shell syntax is refused", () => {
    const s = prod();
    s.pbs.commandPrefix = "docker exec pbs; rm -rf /";
    expect(problems(s)).toEqual([
      "pbs.commandPrefix: must be plain words of letters, digits and ._/:=@+- (e.g. docker exec pbs)",
    ]);
  });
});

describe("the vzdump hook", () => {
  const script = fs.readFileSync(
    path.join(__dirname, "../../components/proxmox/scripts/vzdump-hook.sh"),
    "utf8",
  );
  test("gets the guarded storage ids, sorted, on its one GUARDED_STORAGES line", () => {
    const out = renderVzdumpHook(script, ["pbs-usb-ssd", "pbs-b"]);
    expect(out.split("\n").filter((l) => l.startsWith("GUARDED_STORAGES="))).toEqual([
      'GUARDED_STORAGES="pbs-b pbs-usb-ssd"',
    ]);
    expect(out.replace('GUARDED_STORAGES="pbs-b pbs-usb-ssd"', 'GUARDED_STORAGES=""')).toBe(script);
  });
  test("refuses an id that is not a PVE storage id", () => {
    expect(() => renderVzdumpHook(script, ["pbs x"])).toThrow("not a PVE storage id: pbs x");
  });
});

describe("PBS names", () => {
  // PBS: datastore names 3..32 (pbs-api-types datastore.rs DATASTORE_SCHEMA), job ids at most 32
  // (jobs.rs JOB_ID_SCHEMA); the prune and verify jobs are b321-<datastore>.
  const lines = (site: unknown): string[] => {
    try {
      parseSite(site);
      return [];
    } catch (e) {
      if (e instanceof SiteError)
        return e.message
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l.startsWith("backup321:site.pbs."));
      throw e;
    }
  };
  const withName = (n: string): unknown => {
    const s = structuredClone(readStackFile("prod").config["backup321:site"]) as {
      pbs: { datastores: { name: string }[] };
      proxmox: { jobs: { datastore: string }[] };
    };
    s.pbs.datastores[0].name = n;
    s.proxmox.jobs[0].datastore = n;
    return s;
  };
  test("a datastore name of 3 to 27 characters passes", () => {
    expect(lines(withName("abc"))).toEqual([]);
    expect(lines(withName("a".repeat(27)))).toEqual([]);
  });
  test("a shorter name, or one whose job id b321-<name> would pass 32, is refused at its key", () => {
    expect(lines(withName("ab"))).toEqual([
      "backup321:site.pbs.datastores[0].name: must have at least 3 characters (a PBS datastore name is 3 to 32; e.g. usb-ssd)",
    ]);
    expect(lines(withName("a".repeat(28)))).toEqual([
      "backup321:site.pbs.datastores[0].name: must have at most 27 characters (its PBS prune and verify jobs are b321-<name>, and a PBS job id has at most 32)",
    ]);
  });
});

describe("the snapshot check", () => {
  test("asks PVE about each guest's snapshot feature and names those that cannot", () => {
    expect(snapshotFeatureCheck("pve1", [100], [200]).split("\n")).toEqual([
      'bad=""',
      `out=$(pvesh get '/nodes/pve1/qemu/100/feature' --feature snapshot --output-format json 2>&1) || { echo "backup321: cannot ask PVE whether vm 100 can snapshot: $out" >&2; exit 1; }`,
      `printf '%s' "$out" | grep -Eq '"hasFeature" *: *(1|true)' || bad="$bad vm 100"`,
      `out=$(pvesh get '/nodes/pve1/lxc/200/feature' --feature snapshot --output-format json 2>&1) || { echo "backup321: cannot ask PVE whether ct 200 can snapshot: $out" >&2; exit 1; }`,
      `printf '%s' "$out" | grep -Eq '"hasFeature" *: *(1|true)' || bad="$bad ct 200"`,
      `[ -z "$bad" ] || { echo "backup321: snapshots of\${bad} would fail on every run: PVE says their storage cannot snapshot ('snapshot feature is not available'); move their disks to storage that can (ZFS, LVM-thin, Ceph RBD, qcow2 on a directory) or take them out of proxmox.snapshots" >&2; exit 1; }`,
    ]);
  });
});

test("the longest gap of a PBS calendar event: exact for shortcuts, a bound for times and weekdays", () => {
  expect(
    Object.fromEntries(
      [
        "hourly",
        "daily",
        "weekly",
        "Monthly",
        "02:30",
        "*:0/15",
        "sat 03:00",
        "mon..fri 22:00",
        "mon,wed,fri",
        "*-*-01 02:00",
        "2026-12-24",
        "sat sun",
      ].map((e) => [e, calendarMaxIntervalHours(e)]),
    ),
  ).toEqual({
    hourly: 1,
    daily: 24,
    weekly: 168,
    Monthly: 744,
    "02:30": 24,
    "*:0/15": 24,
    "sat 03:00": 168,
    "mon..fri 22:00": 168,
    "mon,wed,fri": 168,
    "*-*-01 02:00": undefined,
    "2026-12-24": undefined,
    "sat sun": undefined,
  });
});
