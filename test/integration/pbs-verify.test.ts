// The monitor's check of PBS verify jobs: monitor.sh as shipped, with its env file rendered from
// the checks, reading PBS's task list through the command prefix from the recording stand-in of
// proxmox-backup-manager, whose verify runs (run, failed, aged) are its own task records. A failed
// last verify, none at all, one older than the schedule allows, or a task list that cannot be read
// each alert; the verify that passed after a failure clears it.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { jobEnv, renderEnvFile } from "../../components/host/render";
import {
  monitorEnv,
  verifyMaxAgeHours,
  type MonitorChecks,
} from "../../components/monitoring/render";
import { hostPaths, type HostPaths } from "../../stacks/model/hosts";
import { installProxmoxShims, type ProxmoxShims } from "../harness/proxmoxShims";
import { run, runOk } from "../harness/proc";

const ROOT = path.join(__dirname, "..", "..");
const STORE = "usb-ssd";
const JOB = "b321-usb-ssd";
const MAX_HOURS = verifyMaxAgeHours("weekly");
let root: string;
let paths: HostPaths;
let shims: ProxmoxShims;
let alerts: string;
let prefix: string;

function envFile(pbsPrefix = prefix): string {
  const checks: MonitorChecks = {
    mounts: [],
    diskFullPercent: 100,
    smartDevices: [],
    resticRepos: [],
    staleLockHours: 12,
    pbsVerify: {
      prefix: pbsPrefix,
      jobs: [{ datastore: STORE, job: JOB, maxAgeHours: MAX_HOURS }],
    },
    restoreJobs: [],
    rtoHours: 4,
  };
  const file = path.join(paths.etc, "monitor.env");
  fs.writeFileSync(
    file,
    renderEnvFile("test monitor", {
      ...monitorEnv(checks),
      ...jobEnv(paths, "monitor"),
      B321_ALERT: path.join(root, "alert.sh"),
    }),
    { mode: 0o600 },
  );
  return file;
}

/** Runs the monitor; returns the verify check's metric and the alert's lines about verifies. */
function monitor(env = envFile()): { ok: number | undefined; lines: string[]; last: string } {
  fs.rmSync(alerts, { force: true });
  run(path.join(paths.lib, "monitor.sh"), [env]);
  const prom = fs.readFileSync(path.join(paths.metrics, "monitor-checks.prom"), "utf8");
  const m = new RegExp(
    `^backup321_monitor_check_ok\\{check="pbs-verify",target="${STORE}"\\} (\\d)$`,
    "m",
  ).exec(prom);
  const last =
    /^backup321_pbs_verify_last_end_timestamp_seconds\{datastore="usb-ssd"\} (\d+)$/m.exec(prom);
  const text = fs.existsSync(alerts) ? fs.readFileSync(alerts, "utf8") : "";
  return {
    ok: m ? Number(m[1]) : undefined,
    // the monitor's other checks find this sandbox empty: only the PBS lines matter here
    lines: text.split("\n").filter((l) => l.includes("PBS")),
    last: last?.[1] ?? "",
  };
}

const verify = () =>
  run(path.join(shims.bin, "proxmox-backup-manager"), ["verify-job", "run", JOB]);
const tasks = () =>
  JSON.parse(fs.readFileSync(path.join(shims.root, "state", "tasks.json"), "utf8")) as Record<
    string,
    string | number
  >[];

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-pbs-verify-"));
  paths = hostPaths.parse({
    lib: path.join(root, "lib"),
    etc: path.join(root, "etc"),
    state: path.join(root, "state"),
  });
  fs.mkdirSync(paths.lib, { recursive: true });
  fs.mkdirSync(paths.etc, { recursive: true });
  for (const f of ["host/scripts/common.sh", "monitoring/scripts/monitor.sh"]) {
    fs.copyFileSync(path.join(ROOT, "components", f), path.join(paths.lib, path.basename(f)));
    fs.chmodSync(path.join(paths.lib, path.basename(f)), 0o755);
  }
  alerts = path.join(root, "alerts.log");
  fs.writeFileSync(path.join(root, "alert.sh"), `#!/bin/sh\necho "$@" >> '${alerts}'\n`, {
    mode: 0o755,
  });
  shims = installProxmoxShims(path.join(root, "pbs"));
  // What "docker exec pbs" is in production: the way into PBS's own PATH.
  prefix = `env PATH=${shims.bin}:/usr/bin:/bin`;
  // the verify job as pbs-setup.sh creates it
  runOk(path.join(shims.bin, "proxmox-backup-manager"), [
    "verify-job",
    "create",
    JOB,
    "--store",
    STORE,
    "--schedule",
    "weekly",
    "--ignore-verified",
    "true",
    "--outdated-after",
    "30",
  ]);
});

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("a verify job that never ran is stale: nothing says the chunks are readable", () => {
  const r = monitor();
  expect(r.ok).toBe(0);
  expect(r.lines).toEqual([
    `- PBS datastore ${STORE} has no finished run of its verify job ${JOB} in PBS's task list: nothing says its chunks are still readable (is the job there, and its schedule?)`,
  ]);
  expect(r.last).toBe("0");
});

test("a verify that ended OK within its schedule passes, read through the command prefix", () => {
  expect(verify().code).toBe(0);
  shims.clearCalls();
  const r = monitor();
  expect(r.ok).toBe(1);
  expect(r.lines).toEqual([]);
  expect(r.last).toBe(String(tasks().at(-1)!.endtime));
  expect(shims.calls()).toEqual([
    [
      "proxmox-backup-manager",
      "task",
      "list",
      "--all",
      "true",
      "--limit",
      "1000",
      "--output-format",
      "json",
    ],
  ]);
});

test("a failed verify alerts with PBS's error and its task's UPID; the next good one clears it", () => {
  // one run of a job ends at least a second after the one before it (the previous test's)
  shims.ageTasks(1);
  shims.failVerify(JOB, true);
  try {
    expect(verify().code).not.toBe(0);
  } finally {
    shims.failVerify(JOB, false);
  }
  const failed = tasks().at(-1)!;
  expect(failed).toMatchObject({ worker_type: "verificationjob", worker_id: `${STORE}:${JOB}` });
  const r = monitor();
  expect(r.ok).toBe(0);
  const ended = new Date(Number(failed.endtime) * 1000).toISOString().replace(/\.000Z$/, "Z");
  expect(r.lines).toEqual([
    `- the last verify of PBS datastore ${STORE} (${JOB}, ended ${ended}) failed: verification failed - please check the log for details; its log: proxmox-backup-manager task log '${failed.upid}'`,
  ]);
  // PBS's clock moves on a second, and the next verify passes
  shims.ageTasks(1);
  expect(verify().code).toBe(0);
  expect(monitor()).toMatchObject({ ok: 1, lines: [] });
});

test("a last verify older than its schedule's interval plus grace alerts; within it, it does not", () => {
  shims.ageTasks(MAX_HOURS * 3600 - 60);
  expect(monitor()).toMatchObject({ ok: 1, lines: [] });
  shims.ageTasks(120);
  const r = monitor();
  expect(r.ok).toBe(0);
  expect(r.lines).toHaveLength(1);
  expect(r.lines[0]).toMatch(
    new RegExp(
      `^- the last verify of PBS datastore ${STORE} \\(${JOB}\\) ended 180\\.0 h ago, more than 180\\.0 h: the verify job has stopped running`,
    ),
  );
});

test("a task list that cannot be read is a problem, not a pass", () => {
  const r = monitor(envFile("env PATH=/nonexistent"));
  expect(r.ok).toBe(0);
  expect(r.lines).toHaveLength(1);
  expect(r.lines[0]).toMatch(
    new RegExp(
      `^- cannot read PBS's task list to check the verify job ${JOB} of datastore ${STORE}: .*proxmox-backup-manager`,
    ),
  );
});
