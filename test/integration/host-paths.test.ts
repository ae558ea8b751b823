// The host's directories are named once (hosts[].paths): a site that moves them gets every job,
// the cron wrapper and the monitor writing and reading in the new place, and nothing in the old
// one. The commands of a mock run are executed over SSH against a sandbox, then the jobs run by
// their entry points as a person would.
import * as fs from "node:fs";
import * as path from "node:path";
import { rootedPaths } from "../harness/sandbox";
import { run } from "../harness/proc";
import { useRig } from "../harness/rig";
import { jobScript } from "../harness/program";

// The one change a site makes to move them.
const MOVED = {
  status: "srv/b321/status",
  metrics: "srv/node-exporter/b321",
  locks: "run/b321-locks",
  runs: "run/b321-runs",
  jobs: "srv/b321/jobs",
  secrets: "root/b321-secrets",
};

const rig = useRig({
  prefix: "b321-paths-",
  moved: MOVED,
  host: { timezone: "UTC" },
  async program({ box }, host) {
    const { RemoteFile, ScheduledJob } = await import("../../components/host");
    const { Monitor } = await import("../../components/monitoring");
    const script = new RemoteFile("demo-script", {
      host,
      path: `${box.paths.lib}/demo.sh`,
      mode: "0755",
      content: jobScript(
        "b321_lock demo-resource",
        "b321_set bytes 42",
        '[ "${DEMO_FAIL:-0}" = 0 ] || b321_fail boom',
      ),
    });
    new ScheduledJob("demo", {
      host,
      job: "demo",
      schedule: "0 3 * * *",
      script: script.path,
      env: {},
      dependsOn: [script],
    });
    new Monitor("mon", {
      host,
      checks: {
        mounts: [],
        diskFullPercent: 100,
        smartDevices: [],
        resticRepos: [],
        staleLockHours: 12,
        restoreJobs: [],
        rtoHours: 4,
      },
      webhookUrl: "http://127.0.0.1:9/unused",
    });
  },
});

beforeAll(() => rig.applyCreates());

const entry = (job: string, env: NodeJS.ProcessEnv = {}) =>
  run(`${rig.box.paths.sbin}/b321-${job}`, [], {
    env: { ...process.env, B321_ALERT: "/bin/true", ...env },
  });
const json = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
/** The moved directories' default places that exist: none may, nothing spells them out. */
const defaultsInUse = () => {
  const defaults = rootedPaths(rig.box.root);
  return Object.keys(MOVED)
    .map((k) => defaults[k as keyof typeof MOVED])
    .filter((d) => fs.existsSync(d));
};

test("the secrets and the job registry are installed in the moved directories", () => {
  expect(fs.readdirSync(rig.box.paths.secrets)).toEqual(["alert-webhook-url"]);
  expect((fs.statSync(rig.box.paths.secrets).mode & 0o777).toString(8)).toBe("700");
  expect(fs.readdirSync(rig.box.paths.jobs).sort()).toEqual(["demo.json", "monitor.json"]);
});

test("a job run by hand writes its status, metrics, lock and run record in the moved directories", () => {
  const r = entry("demo");
  expect(r.stderr).not.toContain("missing from");
  expect(r.code).toBe(0);
  expect(json(path.join(rig.box.paths.status, "demo.json"))).toMatchObject({
    job: "demo",
    result: "success",
    bytes: 42,
  });
  expect(fs.readFileSync(path.join(rig.box.paths.metrics, "demo.prom"), "utf8")).toContain(
    'backup321_job_success{job="demo"} 1',
  );
  expect(fs.readdirSync(rig.box.paths.locks).sort()).toEqual([
    "cron-demo.lock",
    "demo-resource.lock",
  ]);
  expect(fs.existsSync(rig.box.paths.runs)).toBe(true);
  expect(defaultsInUse()).toEqual([]);
});

test("the monitor reads the job where it wrote and finds it healthy", () => {
  const r = entry("monitor");
  expect(r.code).toBe(0);
  expect(json(path.join(rig.box.paths.status, "monitor.json"))).toMatchObject({
    result: "success",
  });
  const checks = fs.readFileSync(path.join(rig.box.paths.metrics, "monitor-checks.prom"), "utf8");
  expect(checks).toMatch(/backup321_job_last_success_age_seconds\{job="demo"\} \d+/);
  expect(checks).toContain(`backup321_monitor_check_ok{check="job",target="demo"} 1`);
  expect(checks).toContain("backup321_monitor_checks_failed 0");
  // and sees a failure there too: the job's own failed run, in the moved status directory
  expect(entry("demo", { DEMO_FAIL: "1" }).code).toBe(1);
  expect(json(path.join(rig.box.paths.status, "demo.json"))).toMatchObject({ result: "failed" });
  const failing = entry("monitor");
  expect(failing.code).toBe(1);
  expect(failing.stderr).toContain("boom");
  expect(defaultsInUse()).toEqual([]);
});

test("a delete takes the job's status and metrics from the moved directories", () => {
  rig.applyDeletes();
  expect(fs.readdirSync(rig.box.paths.status)).toEqual([]);
  expect(fs.readdirSync(rig.box.paths.metrics)).toEqual([]);
  expect(fs.readdirSync(rig.box.paths.jobs)).toEqual([]);
});
