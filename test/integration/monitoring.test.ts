// The monitor as `pulumi up` installs it (commands from a mock run, executed over real SSH into a
// sandbox), run against status files written by common.sh under a shifted clock, binlogs, a real
// restic repository with a lock left by a killed restic, and mount points; every alert is received by a real HTTP webhook receiver on
// 127.0.0.1. Mail goes through a recording sendmail on PATH (no MTA is installed here).
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { useRig } from "../harness/rig";
import { spawn } from "node:child_process";
import { freePort, run, runAsync, runOk, waitFor, type RunResult } from "../harness/proc";
import { jobEnv, renderEnvFile, shq } from "../../components/host/render";
import { manifestFixture } from "../harness/manifest";
import type { MonitorChecks } from "../../components/monitoring/render";

interface Received {
  readonly method: string;
  readonly url: string;
  readonly title: string;
  readonly body: string;
}

let server: http.Server;
let port: number;
const received: Received[] = [];
let webhookToken: string;
let shimDir: string;
let mailLog: string;
let repo: string;

const HOUR = 3600_000;
/** The scripts the two registered jobs stand for: any daily job, and the restore test. */
const DAILY = "restic-backup.sh";
const RESTORE_TEST = "mariadb-restore-test.sh";
const restoreFields = (seconds: number) => ({
  file: "/backups/database/full.enc",
  restore_seconds: seconds,
  tables: 8,
  rows: 225000,
});

const rig = useRig({
  prefix: "b321-monitor-",
  host: { timezone: "UTC" },
  timeoutMs: 180_000,
  prepare: async ({ box }) => {
    port = await freePort();
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        received.push({
          method: req.method ?? "",
          url: req.url ?? "",
          title: String(req.headers.title ?? ""),
          body,
        });
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    webhookToken = `tok${Date.now()}`;
    repo = box.at("mnt/usb/restic");
    shimDir = box.at("shim");
    mailLog = box.at("mail.log");
    fs.mkdirSync(shimDir, { recursive: true });
    fs.writeFileSync(
      path.join(shimDir, "sendmail"),
      `#!/bin/bash\n{ echo "ARGS: $*"; cat; echo "--END--"; } >> ${mailLog}\n`,
      { mode: 0o755 },
    );
  },
  program: async ({ box }, host) => {
    const { ScheduledJob } = await import("../../components/host");
    const { Monitor } = await import("../../components/monitoring");
    const checks: MonitorChecks = {
      mounts: ["/"],
      diskFullPercent: 100,
      smartDevices: [],
      resticRepos: [repo],
      staleLockHours: 12,
      pitr: {
        binlogDir: box.at("backups/binlogs"),
        fullDir: box.at("backups/database"),
        graceHours: 2,
      },
      restoreJobs: ["mariadb-restore-test"],
      rtoHours: 4,
      textfileDir: box.at("textfile"),
    };
    // Two jobs of "other components": the monitor knows them only through their registry entries.
    for (const [job, schedule] of [
      ["demo-daily", "0 3 * * *"],
      ["mariadb-restore-test", "0 3 1 * *"],
    ]) {
      new ScheduledJob(job, {
        host,
        job,
        schedule,
        script: `${box.paths.lib}/common.sh`,
        env: {},
      });
    }
    new Monitor("mon", {
      host,
      checks,
      email: ["ops@example.invalid"],
      webhookUrl: pulumi.secret(`http://127.0.0.1:${port}/hook/${webhookToken}`),
      runbook: "# runbook\n",
    });
  },
  cleanup: () => new Promise<void>((r) => (server ? server.close(() => r()) : r())),
});

beforeAll(() => {
  rig.applyCreates();
  const env = { ...process.env, RESTIC_PASSWORD: "test-only-password" };
  runOk("restic", ["init", "--repo", repo], { env });
});

/**
 * Status files written by the real common.sh: each run is a stand-in named like the job's script that
 * only sets its fields (and fails with `error`), run under faketime so that it ends `ago` ms before now.
 * A failed run keeps the last success of the runs before it, as on a host.
 */
function jobRuns(
  job: string,
  script: string,
  runs: readonly { ago: number; error?: string; fields?: Record<string, string | number> }[],
): void {
  const dir = rig.box.at(`standin/${job}`);
  fs.rmSync(`${rig.box.paths.status}/${job}.json`, { force: true });
  fs.mkdirSync(dir, { recursive: true });
  const env = `${dir}/job.env`;
  fs.writeFileSync(
    env,
    renderEnvFile(`stand-in ${job}`, { ...jobEnv(rig.box.paths, job), B321_ALERT: "/bin/true" }),
  );
  for (const step of runs) {
    const body = [
      "#!/bin/bash",
      "set -Eeuo pipefail",
      `source ${rig.box.paths.lib}/common.sh`,
      'b321_start "$1"',
      ...Object.entries(step.fields ?? {}).map(([k, v]) => `b321_set ${k} ${shq(String(v))}`),
      ...(step.error ? [`b321_fail ${shq(step.error)}`] : []),
    ];
    fs.writeFileSync(`${dir}/${script}`, body.join("\n") + "\n", { mode: 0o755 });
    const at = new Date(Date.now() - step.ago)
      .toISOString()
      .replace("T", " ")
      .replace(/\.\d+Z$/, "");
    const r = run("faketime", ["-f", `@${at}`, `${dir}/${script}`, env], {
      env: { ...process.env, TZ: "UTC" },
    });
    if (r.code !== (step.error ? 1 : 0))
      throw new Error(`stand-in ${script} exited ${r.code}: ${r.stderr}`);
  }
}

/** A full's manifest as the monitor reads it. */
const manifest = (binlogFile: string, binlogPosition: number) =>
  manifestFixture({
    binlog_file: binlogFile,
    binlog_position: binlogPosition,
    binlog_identity: copyId(binlogFile, 1),
    counted_binlog_file: binlogFile,
    counted_binlog_position: binlogPosition,
  });

/** The identity of a binlog of the first server (history 1) or of its rebuilt successor (2). */
const copyId = (name: string, history: 1 | 2) =>
  `${name}.${history === 1 ? "20261115" : "20261201"}T0${name.slice(-1)}0000Z.s1`;

/** Everything fine: fresh successes, binlogs from the newest full on without a gap, no lock. */
function baseline(): void {
  jobRuns("demo-daily", DAILY, [{ ago: 2 * HOUR }]);
  jobRuns("mariadb-restore-test", RESTORE_TEST, [{ ago: 24 * HOUR, fields: restoreFields(1200) }]);
  const full = rig.box.at("backups/database");
  const bin = rig.box.at("backups/binlogs");
  fs.rmSync(full, { recursive: true, force: true });
  fs.rmSync(bin, { recursive: true, force: true });
  fs.mkdirSync(full, { recursive: true });
  fs.mkdirSync(bin, { recursive: true });
  // an older full that starts earlier: only the newest counts
  fs.writeFileSync(
    `${full}/atlastech_db_full_20261101T020000Z.manifest.json`,
    manifest("mysql-bin.000001", 4),
  );
  const old = new Date(Date.now() - 14 * 24 * HOUR);
  fs.utimesSync(`${full}/atlastech_db_full_20261101T020000Z.manifest.json`, old, old);
  fs.writeFileSync(
    `${full}/atlastech_db_full_20261115T020000Z.manifest.json`,
    manifest("mysql-bin.000004", 1234),
  );
  const dayAgo = new Date(Date.now() - 24 * HOUR);
  fs.utimesSync(`${full}/atlastech_db_full_20261115T020000Z.manifest.json`, dayAgo, dayAgo);
  for (const n of ["000004", "000005", "000006"]) {
    fs.writeFileSync(`${bin}/${copyId(`mysql-bin.${n}`, 1)}.zst.enc`, "x");
    fs.writeFileSync(`${bin}/${copyId(`mysql-bin.${n}`, 1)}.zst.enc.sha256`, "x");
  }
  // being written: ignored
  fs.writeFileSync(`${bin}/${copyId("mysql-bin.000007", 1)}.zst.enc.b321-partial`, "x");
  fs.rmSync(`${repo}/locks`, { recursive: true, force: true });
  fs.mkdirSync(`${repo}/locks`);
  fs.rmSync(mailLog, { force: true });
  received.length = 0;
}

async function monitor(envFile?: string): Promise<RunResult & { status: Record<string, unknown> }> {
  const env = { ...process.env, PATH: `${shimDir}:${process.env.PATH}` };
  const r = await runAsync(
    envFile ? `${rig.box.paths.lib}/monitor.sh` : `${rig.box.paths.sbin}/b321-monitor`,
    envFile ? [envFile] : [],
    { env },
  ).done;
  const status = JSON.parse(fs.readFileSync(`${rig.box.paths.status}/monitor.json`, "utf8"));
  return { ...r, status };
}

/** A variant of the installed env file (the monitor is configured by nothing else). */
function envVariant(vars: Record<string, string>): string {
  const base = fs.readFileSync(`${rig.box.paths.etc}/monitor.env`, "utf8");
  const lines = base
    .split("\n")
    .filter((l) => !Object.keys(vars).some((k) => l.startsWith(`${k}=`)));
  const file = rig.box.at("etc/backup321/monitor-variant.env");
  fs.writeFileSync(
    file,
    [...lines, ...Object.entries(vars).map(([k, v]) => `${k}='${v}'`)].join("\n") + "\n",
    { mode: 0o600 },
  );
  return file;
}

function alertBodies(): { job: string; result: string; host: string; message: string }[] {
  return received.map((r) => JSON.parse(r.body));
}

test("the installed files: registry entries, alert env, a 0600 webhook URL file, the runbook", () => {
  const entry = JSON.parse(fs.readFileSync(`${rig.box.paths.jobs}/demo-daily.json`, "utf8"));
  expect(entry).toEqual({
    job: "demo-daily",
    schedule: "0 3 * * *",
    timezone: "UTC",
    maxIntervalHours: 24,
    graceHours: 6,
    maxAgeSeconds: 108000,
  });
  const url = `${rig.box.paths.secrets}/alert-webhook-url`;
  expect(fs.readFileSync(url, "utf8")).toBe(`http://127.0.0.1:${port}/hook/${webhookToken}\n`);
  expect((fs.statSync(url).mode & 0o777).toString(8)).toBe("600");
  const alertEnv = fs.readFileSync(`${rig.box.paths.etc}/alert.env`, "utf8");
  expect(alertEnv).toContain(`ALERT_WEBHOOK_FILE='${url}'`);
  expect(alertEnv).not.toContain(webhookToken);
  expect(fs.readFileSync(`${rig.box.paths.etc}/RUNBOOK.md`, "utf8")).toBe("# runbook\n");
  for (const s of rig.steps) expect(s.create ?? "").not.toContain(webhookToken);
});

test("all fine: exit 0, no alert, one success ping with the JSON body, metrics exported", async () => {
  baseline();
  const r = await monitor();
  expect(r.stderr).not.toContain("problem:");
  expect(r.code).toBe(0);
  expect(r.status).toMatchObject({ result: "success", checks_failed: 0, checks_total: 8 });
  await waitFor("the success ping", () => received.length === 1, 20_000);
  expect(received[0]).toMatchObject({ method: "POST", url: `/hook/${webhookToken}` });
  expect(alertBodies()[0]).toMatchObject({ job: "monitor", result: "success" });
  expect(alertBodies()[0].message).toMatch(/^all 8 checks passed on /);
  expect(fs.existsSync(mailLog)).toBe(false);
  const prom = fs.readFileSync(`${rig.box.paths.metrics}/monitor-checks.prom`, "utf8");
  expect(prom).toContain('backup321_monitor_check_ok{check="job",target="demo-daily"} 1');
  expect(prom).toContain(
    `backup321_monitor_check_ok{check="pitr",target="${rig.box.at("backups/binlogs")}"} 1`,
  );
  expect(prom).toContain("backup321_monitor_checks_failed 0");
  expect(prom).toContain('backup321_restore_seconds{job="mariadb-restore-test"} 1200');
  // node_exporter's textfile collector gets a copy of every .prom
  expect(fs.readFileSync(rig.box.at("textfile/backup321-monitor-checks.prom"), "utf8")).toBe(prom);
  // each metric family appears as one group
  const families = prom
    .split("\n")
    .filter((l) => l.startsWith("# TYPE"))
    .map((l) => l.split(" ")[2]);
  expect(new Set(families).size).toBe(families.length);
});

test("a failed job alerts by webhook and mail, with its error", async () => {
  baseline();
  jobRuns("demo-daily", DAILY, [{ ago: 25 * HOUR }, { ago: HOUR, error: "restic exited 1" }]);
  const r = await monitor();
  expect(r.code).toBe(1);
  expect(r.status).toMatchObject({ result: "failed", checks_failed: 1 });
  await waitFor("the alert", () => received.length === 1, 20_000);
  const [body] = alertBodies();
  expect(body).toMatchObject({ job: "monitor", result: "failed" });
  expect(body.message).toContain("1 of 8 checks failed");
  expect(body.message).toContain("- job demo-daily failed (run ended ");
  expect(body.message).toContain("): restic exited 1");
  expect(received[0].title).toMatch(/^backup321 failed: monitor on /);
  const mail = fs.readFileSync(mailLog, "utf8");
  expect(mail).toContain("ARGS: -t");
  expect(mail).toContain("To: ops@example.invalid");
  expect(mail).toMatch(/Subject: \[backup321\] failed: monitor on /);
  expect(mail).toContain("job demo-daily failed");
});

test("a success older than the job's interval + grace alerts; a fresh one does not", async () => {
  baseline();
  jobRuns("demo-daily", DAILY, [{ ago: 29 * HOUR }]);
  const fresh = await monitor();
  expect(fresh.code).toBe(0);
  baseline();
  jobRuns("demo-daily", DAILY, [{ ago: 31 * HOUR }]);
  const stale = await monitor();
  expect(stale.code).toBe(1);
  await waitFor("the alert", () => received.length === 1, 20_000);
  expect(alertBodies()[0].message).toContain(
    "job demo-daily has not succeeded for 31.0 h (last success: ",
  );
  expect(alertBodies()[0].message).toContain("more than its interval of 24 h + 6 h grace");
});

test("a last success in the future (a clock ahead) alerts instead of passing for as long as it is wrong", async () => {
  baseline();
  jobRuns("demo-daily", DAILY, [{ ago: -400 * 24 * HOUR }]);
  const r = await monitor();
  expect(r.code).toBe(1);
  expect(r.status.error).toMatch(/job demo-daily's last success \(\S+\) is in the future/);
  // A few seconds ahead is drift between hosts, not an error.
  baseline();
  jobRuns("demo-daily", DAILY, [{ ago: -60_000 }]);
  expect((await monitor()).code).toBe(0);
});

test("a monitor with no job registered is a problem, not 'all 0 checks passed'", async () => {
  baseline();
  const dir = `${rig.box.paths.jobs}`;
  const aside = rig.box.at("jobs.d-aside");
  fs.renameSync(dir, aside);
  fs.mkdirSync(dir);
  // The monitor's own entry stays: it does not count as a job it watches.
  fs.copyFileSync(`${aside}/monitor.json`, `${dir}/monitor.json`);
  try {
    const r = await monitor();
    expect(r.code).toBe(1);
    expect(r.status.error).toContain(`no backup job is registered in ${dir}`);
  } finally {
    fs.rmSync(dir, { recursive: true });
    fs.renameSync(aside, dir);
  }
  baseline();
  expect((await monitor()).code).toBe(0);
});

test("a job that never ran alerts once its interval + grace has passed since it was installed", async () => {
  baseline();
  fs.rmSync(`${rig.box.paths.status}/demo-daily.json`);
  expect((await monitor()).code).toBe(0);
  const entry = `${rig.box.paths.jobs}/demo-daily.json`;
  const longAgo = new Date(Date.now() - 31 * HOUR);
  fs.utimesSync(entry, longAgo, longAgo);
  const r = await monitor();
  expect(r.code).toBe(1);
  expect(r.status.error).toContain(
    "job demo-daily has never run, although it was installed 31.0 h ago",
  );
});

test("a gap in the shipped binlogs after the newest full alerts (PITR gap)", async () => {
  baseline();
  const bin = rig.box.at("backups/binlogs");
  fs.rmSync(`${bin}/${copyId("mysql-bin.000005", 1)}.zst.enc`);
  // A rebuilt server's binlog of the same name is another binlog: it fills no gap.
  fs.writeFileSync(`${bin}/${copyId("mysql-bin.000005", 2)}.zst.enc`, "x");
  const r = await monitor();
  expect(r.code).toBe(1);
  await waitFor("the alert", () => received.length === 1, 20_000);
  expect(alertBodies()[0].message).toContain(
    `point-in-time recovery has a gap: mysql-bin.000005 missing from ${rig.box.at("backups/binlogs")} (the newest full atlastech_db_full_20261115T020000Z.manifest.json starts at mysql-bin.000004 position 1234)`,
  );
});

test("the newest full's own binlog missing alerts, unless the full is younger than the grace", async () => {
  baseline();
  fs.rmSync(rig.box.at(`backups/binlogs/${copyId("mysql-bin.000004", 1)}.zst.enc`));
  fs.rmSync(rig.box.at(`backups/binlogs/${copyId("mysql-bin.000004", 1)}.zst.enc.sha256`));
  const r = await monitor();
  expect(r.code).toBe(1);
  expect(r.status.error).toContain("mysql-bin.000004 missing");
  // a full made ten minutes ago: its binlog is shipped at the next run
  const manifest = rig.box.at("backups/database/atlastech_db_full_20261115T020000Z.manifest.json");
  const recent = new Date(Date.now() - 600_000);
  fs.utimesSync(manifest, recent, recent);
  expect((await monitor()).code).toBe(0);
});

test("a restic lock older than the limit alerts (left by a killed restic)", async () => {
  baseline();
  const env = { ...process.env, RESTIC_PASSWORD: "test-only-password" };
  // restic reading a stdin that never ends holds its lock until it is killed
  const restic = spawn("restic", ["backup", "--repo", repo, "--stdin", "--stdin-filename", "x"], {
    env,
    stdio: ["pipe", "ignore", "ignore"],
  });
  const exited = new Promise((r) => restic.once("exit", r));
  try {
    await waitFor("restic's lock", () => fs.readdirSync(`${repo}/locks`).length > 0, 30_000);
    // a fresh lock of a running restic is fine
    expect((await monitor()).code).toBe(0);
  } finally {
    restic.kill("SIGKILL");
    await exited;
  }
  const [lock] = fs.readdirSync(`${repo}/locks`);
  const old = new Date(Date.now() - 13 * HOUR);
  fs.utimesSync(`${repo}/locks/${lock}`, old, old);
  const r = await monitor();
  expect(r.code).toBe(1);
  expect(r.status.error).toContain(
    `restic repository ${repo} has a lock 13.0 h old (limit 12.0 h): ${lock}`,
  );
});

test("an unmounted USB SSD, a fill above the threshold and a missing disk alert", async () => {
  baseline();
  const notMounted = rig.box.at("mnt/usb");
  const r = await monitor(
    envVariant({
      MONITOR_MOUNTS: `/ ${notMounted}`,
      MONITOR_DISK_FULL_PERCENT: "0",
      MONITOR_SMART_DEVICES: "/dev/disk/by-uuid/5f3a2c1e-0000-4e6f-9a0b-1c2d3e4f5a6b",
    }),
  );
  expect(r.code).toBe(1);
  const err = String(r.status.error);
  expect(err).toContain(`${notMounted} is not mounted: is the USB SSD plugged in`);
  expect(err).toMatch(/- \/ is \d+% full, above the threshold of 0%/);
  expect(err).toContain("disk /dev/disk/by-uuid/5f3a2c1e-0000-4e6f-9a0b-1c2d3e4f5a6b is missing");
  expect(r.status.checks_failed).toBe(3);
});

test("a disk that SMART calls failing alerts (smartctl is a recording stand-in: no disk here)", async () => {
  baseline();
  const dev = rig.box.at("dev/sdz1");
  fs.mkdirSync(path.dirname(dev), { recursive: true });
  fs.writeFileSync(dev, "");
  const byUuid = rig.box.at("dev/disk/by-uuid/5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b");
  fs.mkdirSync(path.dirname(byUuid), { recursive: true });
  fs.rmSync(byUuid, { force: true });
  fs.symlinkSync(dev, byUuid);
  const calls = rig.box.at("smartctl.calls");
  const smartDir = rig.box.at("smart-shim");
  fs.mkdirSync(smartDir, { recursive: true });
  const shim = (code: number, verdict: string) =>
    fs.writeFileSync(
      path.join(smartDir, "smartctl"),
      `#!/bin/bash
echo "$*" >> ${calls}
echo "SMART overall-health self-assessment test result: ${verdict}"
exit ${code}
`,
      { mode: 0o755 },
    );
  const env = envVariant({ MONITOR_SMART_DEVICES: byUuid });
  const runWith = async () =>
    runAsync(`${rig.box.paths.lib}/monitor.sh`, [env], {
      env: { ...process.env, PATH: `${smartDir}:${shimDir}:${process.env.PATH}` },
    }).done;
  shim(0, "PASSED");
  expect((await runWith()).code).toBe(0);
  expect(fs.readFileSync(calls, "utf8")).toBe(`-H -- ${dev}\n`);
  shim(8, "FAILED!");
  const r = await runWith();
  expect(r.code).toBe(1);
  const status = JSON.parse(fs.readFileSync(`${rig.box.paths.status}/monitor.json`, "utf8"));
  expect(status.error).toContain(
    `disk ${byUuid} (${dev}) is failing according to SMART (smartctl exit 8): SMART overall-health self-assessment test result: FAILED!; replace it`,
  );
});

test("a failed restore test, or one slower than the RTO, alerts", async () => {
  baseline();
  jobRuns("mariadb-restore-test", RESTORE_TEST, [{ ago: HOUR, fields: restoreFields(15000) }]);
  const slow = await monitor();
  expect(slow.code).toBe(1);
  expect(slow.status.error).toContain(
    "the last restore test (mariadb-restore-test) took 4.2 h (15000 s), more than the RTO of 4.0 h",
  );
  baseline();
  jobRuns("mariadb-restore-test", RESTORE_TEST, [
    { ago: 24 * HOUR, fields: restoreFields(1200) },
    { ago: HOUR, error: "row count of orders: 0, manifest says 1200" },
  ]);
  const failed = await monitor();
  expect(failed.code).toBe(1);
  expect(failed.status.error).toContain(
    "the last restore test (mariadb-restore-test) failed: row count of orders: 0, manifest says 1200",
  );
  // reported once, not also as a failed job
  expect(failed.status.checks_failed).toBe(1);
});

test("a restore job with an RTO of its own (a drill of the site-loss copy) is held to that one", async () => {
  // the offsite dumps' drill gets the site-loss RTO this way (monitorChecksFor's restoreRtoHours)
  const own = envVariant({ MONITOR_RESTORE_RTO_SECONDS: "mariadb-restore-test=86400" });
  baseline();
  jobRuns("mariadb-restore-test", RESTORE_TEST, [{ ago: HOUR, fields: restoreFields(15000) }]);
  const within = await monitor(own);
  expect(within.stderr).not.toContain("problem:");
  expect(within.code).toBe(0);
  baseline();
  jobRuns("mariadb-restore-test", RESTORE_TEST, [{ ago: HOUR, fields: restoreFields(90000) }]);
  const over = await monitor(own);
  expect(over.code).toBe(1);
  expect(over.status.error).toContain(
    "the last restore test (mariadb-restore-test) took 25.0 h (90000 s), more than the RTO of 24.0 h",
  );
});

test("a mail channel without sendmail is itself a problem, reported through the webhook", async () => {
  baseline();
  const r = await runAsync(`${rig.box.paths.sbin}/b321-monitor`, [], {
    env: { ...process.env, PATH: "/usr/local/bin:/usr/bin:/bin" },
  }).done;
  expect(r.code).toBe(1);
  await waitFor("the alert", () => received.length === 1, 20_000);
  expect(alertBodies()[0].message).toContain(
    "- alerts cannot be mailed to ops@example.invalid: no sendmail on this host",
  );
});

test("healthchecks style: alerts go to <url>/fail, success pings to <url>", async () => {
  const alertEnv = `${rig.box.paths.etc}/alert.env`;
  const saved = fs.readFileSync(alertEnv, "utf8");
  try {
    fs.writeFileSync(
      alertEnv,
      saved.replace("ALERT_WEBHOOK_STYLE='json'", "ALERT_WEBHOOK_STYLE='healthchecks'"),
    );
    baseline();
    expect((await monitor()).code).toBe(0);
    baseline();
    jobRuns("demo-daily", DAILY, [{ ago: 2 * HOUR }, { ago: HOUR, error: "boom" }]);
    expect((await monitor()).code).toBe(1);
    await waitFor("the alert", () => received.length === 1, 20_000);
    expect(received.map((x) => x.url)).toEqual([`/hook/${webhookToken}/fail`]);
  } finally {
    fs.writeFileSync(alertEnv, saved);
  }
});

/** What node_exporter's textfile collector finds (temp files left out). */
const textfiles = () =>
  fs
    .readdirSync(rig.box.at("textfile"))
    .filter((f) => !f.startsWith("."))
    .sort();

test("node_exporter gets the metrics of the jobs still on the host: a job removed loses its copy", async () => {
  baseline();
  // A job this host no longer runs: common.sh wrote its metrics, saying it succeeded.
  jobRuns("gone-daily", DAILY, [{ ago: 2 * HOUR }]);
  expect(fs.readFileSync(`${rig.box.paths.metrics}/gone-daily.prom`, "utf8")).toContain(
    'backup321_job_success{job="gone-daily"} 1',
  );
  // A one-off job (a restic init, PITR): not registered, but its env file is installed.
  jobRuns("oneoff-init", DAILY, [{ ago: 3 * HOUR }]);
  const oneoffEnv = `${rig.box.paths.etc}/oneoff-init.env`;
  fs.copyFileSync(rig.box.at("standin/oneoff-init/job.env"), oneoffEnv);
  // another collector's file in the same directory
  fs.writeFileSync(rig.box.at("textfile/node_custom.prom"), "node_custom 1\n");
  expect((await monitor()).code).toBe(0);
  const onHost = [
    "backup321-demo-daily.prom",
    "backup321-mariadb-restore-test.prom",
    "backup321-monitor-checks.prom",
    "backup321-monitor.prom",
    "backup321-oneoff-init.prom",
  ];
  expect(textfiles()).toEqual([...onHost, "node_custom.prom"]);
  expect(fs.readFileSync(rig.box.at("textfile/backup321-demo-daily.prom"), "utf8")).toBe(
    fs.readFileSync(`${rig.box.paths.metrics}/demo-daily.prom`, "utf8"),
  );
  // demo-daily and the one-off leave the host (pulumi up removes their registry entry and env
  // file): their copies go at the next run, the others stay
  const moved = [`${rig.box.paths.jobs}/demo-daily.json`, `${rig.box.paths.etc}/demo-daily.env`];
  for (const f of moved) fs.renameSync(f, `${f}.aside`);
  fs.rmSync(oneoffEnv);
  try {
    const r = await monitor();
    expect(r.code).toBe(0);
    const gone = ["backup321-demo-daily.prom", "backup321-oneoff-init.prom"];
    expect(textfiles()).toEqual([...onHost.filter((f) => !gone.includes(f)), "node_custom.prom"]);
    for (const g of gone)
      expect(r.stderr).toContain(
        `removed ${rig.box.at(`textfile/${g}`)}: its job is no longer on this host`,
      );
  } finally {
    for (const f of moved) fs.renameSync(`${f}.aside`, f);
  }
  // back on the host: copied again
  expect((await monitor()).code).toBe(0);
  expect(textfiles()).toEqual([
    ...onHost.filter((f) => f !== "backup321-oneoff-init.prom"),
    "node_custom.prom",
  ]);
});

test("deletes remove the monitor, its registry entry and the webhook secret", () => {
  rig.applyDeletes();
  for (const f of [
    `${rig.box.paths.secrets}/alert-webhook-url`,
    `${rig.box.paths.jobs}/monitor.json`,
    `${rig.box.paths.jobs}/demo-daily.json`,
    `${rig.box.paths.cron}/backup321-monitor`,
    `${rig.box.paths.lib}/monitor.sh`,
  ]) {
    expect(fs.existsSync(f)).toBe(false);
  }
});

test("deletes take every job's status and metrics with it, and the monitor's copies for node_exporter", () => {
  const left = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);
  // Only what no resource of this deploy wrote stays: the stand-ins of jobs deployed elsewhere.
  expect(left(rig.box.paths.metrics)).toEqual(["gone-daily.prom", "oneoff-init.prom"]);
  expect(left(rig.box.paths.status)).toEqual(["gone-daily.json", "oneoff-init.json"]);
  expect(textfiles()).toEqual(["node_custom.prom"]);
});
