// How long the monitor takes on a host with many jobs, and how long the site checks (schedules,
// recovery targets) take when a stack is loaded.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readStackFile } from "../../infra/stackFile";
import { parseSite } from "../../stacks/load";
import { hostPaths } from "../../stacks/model/hosts";
import {
  jobEntry,
  jobEnv,
  jobFiles,
  renderEnvFile,
  renderJobEntry,
} from "../../components/host/render";
import { run as runProc } from "../harness/proc";

function timeMs(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export async function run(): Promise<void> {
  const raw = readStackFile("prod").config["backup321:site"];
  console.log(`parseSite(prod), first call: ${timeMs(() => parseSite(raw)).toFixed(0)} ms`);
  console.log(`parseSite(prod), cached schedules: ${timeMs(() => parseSite(raw)).toFixed(0)} ms`);

  const root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-bench-monitor-"));
  try {
    const lib = path.join(root, "lib");
    fs.mkdirSync(lib);
    for (const f of ["common.sh", "alert.sh"])
      fs.copyFileSync(path.join("components/host/scripts", f), path.join(lib, f));
    fs.copyFileSync("components/monitoring/scripts/monitor.sh", path.join(lib, "monitor.sh"));
    for (const f of fs.readdirSync(lib)) fs.chmodSync(path.join(lib, f), 0o755);
    const etc = path.join(root, "etc");
    const paths = hostPaths.parse({ lib, etc, state: path.join(root, "state") });
    fs.mkdirSync(paths.jobs, { recursive: true });
    fs.mkdirSync(paths.status, { recursive: true });
    const jobs = 200;
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    for (let i = 0; i < jobs; i++) {
      const job = `job-${i}`;
      fs.writeFileSync(
        jobFiles(paths, job).registryFile,
        renderJobEntry(jobEntry(job, "0 3 * * *", "UTC", 24)),
      );
      fs.writeFileSync(
        jobFiles(paths, job).statusFile,
        JSON.stringify({ job, result: "success", last_success: now, error: "" }, null, 2),
      );
    }
    const env = path.join(etc, "monitor.env");
    fs.writeFileSync(
      env,
      renderEnvFile("bench monitor", {
        ...jobEnv(paths, "monitor"),
        MONITOR_MOUNTS: "/",
        MONITOR_DISK_FULL_PERCENT: 100,
      }),
    );
    const runs = 5;
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) {
      ms.push(
        timeMs(() => {
          const r = runProc("bash", [path.join(lib, "monitor.sh"), env], {
            env: { ...process.env, B321_ALERT_ENV: path.join(etc, "none.env") },
          });
          if (r.code !== 0) throw new Error(`monitor failed: ${r.stderr}`);
        }),
      );
    }
    ms.sort((a, b) => a - b);
    console.log(
      `monitor.sh with ${jobs} jobs: median ${ms[Math.floor(runs / 2)].toFixed(0)} ms, max ${ms[runs - 1].toFixed(0)} ms (${runs} runs)`,
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
