// What the monitor of each host checks (from the site model), its env file, the alert channels,
// and the job registry entries every ScheduledJob writes.
import { readStackFile } from "../../infra/stackFile";
import { parseSite } from "../../stacks/load";
import { defaultGraceHours, jobEntry, renderJobEntry } from "../../components/host/render";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run } from "../harness/proc";
import {
  monitorChecksFor,
  monitorEnv,
  renderAlertEnv,
  textfileDirCommands,
} from "../../components/monitoring/render";

const prod = parseSite(readStackFile("prod").config["backup321:site"]);

test("docker-srv: the USB SSD mount, its SMART health, the local restic repository and both drills", () => {
  const c = monitorChecksFor(prod, "docker-srv");
  expect(c).toEqual({
    mounts: ["/mnt/usb-ssd"],
    diskFullPercent: 85,
    smartDevices: ["/dev/disk/by-uuid/5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b"],
    resticRepos: ["/mnt/usb-ssd/restic"],
    staleLockHours: 12,
    // the binlog stream from db-srv (mariadb.stream)
    stream: { maxLagSeconds: 60, staleSeconds: 50 },
    pbsVerify: {
      prefix: "docker exec pbs",
      // weekly: 168 h and 12 h of grace
      jobs: [{ datastore: "usb-ssd", job: "b321-usb-ssd", maxAgeHours: 180 }],
    },
    restoreJobs: ["restic-usb-drill", "restic-cloud-drill"],
    rtoHours: 4,
    // the cloud copy is the one a lost site restores from: its drill answers to that RTO
    restoreRtoHours: { "restic-cloud-drill": 24 },
  });
  expect(monitorEnv(c).MONITOR_RESTORE_RTO_SECONDS).toBe("restic-cloud-drill=86400");
  expect(monitorEnv(monitorChecksFor(prod, "docker-srv"))).toMatchObject({
    MONITOR_PBS_PREFIX: "docker exec pbs",
    MONITOR_PBS_VERIFY: "usb-ssd:b321-usb-ssd:648000",
  });
});

test("a verify job's age limit: the model's, or its schedule's interval plus grace", () => {
  const raw = structuredClone(readStackFile("prod").config["backup321:site"]) as {
    pbs: { datastores: Record<string, unknown>[] };
  };
  raw.pbs.datastores[0].verifySchedule = "sat 03:00";
  expect(monitorChecksFor(parseSite(raw), "docker-srv").pbsVerify!.jobs[0].maxAgeHours).toBe(180);
  raw.pbs.datastores[0].verifySchedule = "daily";
  expect(monitorChecksFor(parseSite(raw), "docker-srv").pbsVerify!.jobs[0].maxAgeHours).toBe(30);
  raw.pbs.datastores[0].verifyMaxAgeHours = 50;
  expect(monitorChecksFor(parseSite(raw), "docker-srv").pbsVerify!.jobs[0].maxAgeHours).toBe(50);
});

test("db-srv without a replica: the PITR chain, the restore test, the PITR drill and the NAS and offsite drills against the RTO", () => {
  const c = monitorChecksFor(
    { ...prod, mariadb: { ...prod.mariadb!, replica: undefined } },
    "db-srv",
  );
  expect(c).toEqual({
    mounts: [],
    diskFullPercent: 85,
    smartDevices: [],
    resticRepos: [],
    staleLockHours: 12,
    pitr: { binlogDir: "/backups/binlogs", fullDir: "/backups/database", graceHours: 2 },
    restoreJobs: [
      "mariadb-restore-test",
      "mariadb-pitr-drill",
      "nas-sync-drill",
      "offsite-upload-drill",
    ],
    rtoHours: 4,
    // the offsite copy's drill against the site-loss RTO (prod's targets.siteLoss.rtoHours)
    restoreRtoHours: { "offsite-upload-drill": 24 },
  });
  expect(monitorEnv(c)).toEqual({
    MONITOR_MOUNTS: "",
    MONITOR_DISK_FULL_PERCENT: 85,
    MONITOR_SMART_DEVICES: "",
    MONITOR_RESTIC_REPOS: "",
    MONITOR_STALE_LOCK_SECONDS: 43200,
    MONITOR_PITR_BINLOG_DIR: "/backups/binlogs",
    MONITOR_PITR_FULL_DIR: "/backups/database",
    MONITOR_PITR_GRACE_SECONDS: 7200,
    MONITOR_PBS_PREFIX: "",
    MONITOR_PBS_VERIFY: "",
    MONITOR_RESTORE_JOBS:
      "mariadb-restore-test mariadb-pitr-drill nas-sync-drill offsite-upload-drill",
    MONITOR_REPLICA_SOCKET: "",
    MONITOR_REPLICA_MAX_LAG_SECONDS: "",
    MONITOR_RTO_SECONDS: 14400,
    MONITOR_RESTORE_RTO_SECONDS: "offsite-upload-drill=86400",
    MONITOR_TEXTFILE_DIR: "",
  });
});

test("prod's replica: its lag and the restore test are watched on db-replica, the PITR chain on db-srv", () => {
  const replica = monitorChecksFor(prod, "db-replica");
  expect(replica).toMatchObject({
    // the yearly DR drill runs there too (the standby of mariadb.drDrill), held to rtoHours
    restoreJobs: ["mariadb-restore-test", "mariadb-dr-drill"],
    replica: { socket: "/run/mysqld/mysqld.sock", maxLagSeconds: 300 },
  });
  // the binlogs are on the primary, and the fulls the replica hands it: the chain is checked there
  expect(replica.pitr).toBeUndefined();
  expect(monitorEnv(replica)).toMatchObject({
    MONITOR_REPLICA_SOCKET: "/run/mysqld/mysqld.sock",
    MONITOR_REPLICA_MAX_LAG_SECONDS: 300,
    MONITOR_RESTORE_JOBS: "mariadb-restore-test mariadb-dr-drill",
    MONITOR_RTO_SECONDS: 14400,
    MONITOR_RESTORE_RTO_SECONDS: "",
  });
  const primary = monitorChecksFor(prod, "db-srv");
  // the restore test runs where the fulls are taken; the PITR drill where the binlogs are, with the
  // drills of the copies made from db-srv
  expect(primary.restoreJobs).toEqual([
    "mariadb-pitr-drill",
    "nas-sync-drill",
    "offsite-upload-drill",
  ]);
  // without mariadb.drDrill (or without the NAS it reads), no standby watches a DR drill
  const raw = structuredClone(readStackFile("prod").config["backup321:site"]) as {
    mariadb: { drDrill?: unknown };
  };
  delete raw.mariadb.drDrill;
  const noDrill = parseSite(raw);
  expect(monitorChecksFor(noDrill, "db-replica").restoreJobs).toEqual(["mariadb-restore-test"]);
  expect(primary.replica).toBeUndefined();
  expect(primary.pitr).toEqual({
    binlogDir: "/backups/binlogs",
    fullDir: "/backups/database",
    graceHours: 2,
  });
});

test("proxmox-srv: only its jobs", () => {
  expect(monitorChecksFor(prod, "proxmox-srv")).toMatchObject({
    mounts: [],
    smartDevices: [],
    resticRepos: [],
    restoreJobs: [],
  });
  expect(monitorChecksFor(prod, "proxmox-srv").pitr).toBeUndefined();
});

test("alert.env names the webhook file, never the URL, and who to call", () => {
  expect(
    renderAlertEnv({
      email: ["a@example.org", "b@example.org"],
      webhookFile: "/etc/backup321/secrets/alert-webhook-url",
      webhookStyle: "healthchecks",
      pingOnSuccess: true,
      contacts: ["Oumayma Lafridi (IT manager, +212 6 00 00 00 01)", "Ibtissam Elghbali (DBA)"],
    }),
  ).toBe(
    [
      "# backup321 alert channels (read by alert.sh)",
      "# Managed by backup321 (pulumi up): local edits are overwritten.",
      "ALERT_CONTACTS='Oumayma Lafridi (IT manager, +212 6 00 00 00 01); Ibtissam Elghbali (DBA)'",
      "ALERT_EMAIL='a@example.org,b@example.org'",
      "ALERT_PING_ON_SUCCESS='1'",
      "ALERT_WEBHOOK_FILE='/etc/backup321/secrets/alert-webhook-url'",
      "ALERT_WEBHOOK_STYLE='healthchecks'",
      "",
    ].join("\n"),
  );
  // no webhook: nothing to ping
  expect(
    renderAlertEnv({ email: [], webhookStyle: "json", pingOnSuccess: true, contacts: [] }),
  ).toContain("ALERT_PING_ON_SUCCESS='0'");
});

test("grace: a quarter of the interval, between 1 and 12 hours", () => {
  expect(defaultGraceHours(0.25)).toBe(1);
  expect(defaultGraceHours(1)).toBe(1);
  expect(defaultGraceHours(24)).toBe(6);
  expect(defaultGraceHours(168)).toBe(12);
  expect(defaultGraceHours(744)).toBe(12);
});

test("job registry entry: interval from the cron in the host's zone, plus grace", () => {
  const e = jobEntry("restic-usb-backup", " 0  3 * * *", "Europe/Paris", 25);
  expect(e).toEqual({
    job: "restic-usb-backup",
    schedule: "0 3 * * *",
    timezone: "Europe/Paris",
    maxIntervalHours: 25,
    graceHours: 6.25,
    maxAgeSeconds: 112500,
  });
  expect(renderJobEntry(e)).toBe(
    [
      "{",
      '  "graceHours": 6.25,',
      '  "job": "restic-usb-backup",',
      '  "maxAgeSeconds": 112500,',
      '  "maxIntervalHours": 25,',
      '  "schedule": "0 3 * * *",',
      '  "timezone": "Europe/Paris"',
      "}",
      "",
    ].join("\n"),
  );
  expect(jobEntry("x", "0 * * * *", "UTC", 1, 0.5).maxAgeSeconds).toBe(5400);
  expect(() => jobEntry("bad name", "0 * * * *", "UTC", 1)).toThrow(/job name "bad name"/);
});

test("the textfile directory: made readable when missing; its delete removes backup321's copies only", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "b321-textfile-"));
  try {
    // a name bash would otherwise split or expand
    const dir = path.join(base, "node exporter's $HOME *");
    const c = textfileDirCommands(dir);
    expect(run("bash", ["-c", `umask 077\n${c.create}`]).code).toBe(0);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o755);
    const names = ["backup321-a.prom", "backup321-b-check.prom", ".backup321.Xy12ab", "node.prom"];
    for (const n of [...names, "backup321-notes.txt"]) fs.writeFileSync(path.join(dir, n), "x");
    fs.mkdirSync(path.join(base, "node exporter's $HOME * sibling"));
    expect(run("bash", ["-c", `set -eu\n${c.delete}`]).code).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(["backup321-notes.txt", "node.prom"]);
    // twice: nothing left to remove is no error
    expect(run("bash", ["-c", `set -eu\n${c.delete}`]).code).toBe(0);
    expect(() => textfileDirCommands("relative")).toThrow("must be absolute");
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
