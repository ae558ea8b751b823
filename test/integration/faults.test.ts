// Fault injection: for every backup job of the site, the faults it can meet in real life (source
// down, killed mid-way, disk full, destination unreachable, wrong key, corrupted backup, unmounted
// USB SSD, concurrent run), each against the real services. Every case first makes a good backup,
// then injects the fault and runs the job's script with its env file, and requires: a non-zero
// exit, a failed status file, an alert received by a webhook receiver on loopback (through the
// real alert.sh and alert.env), the good backup byte for byte intact, and no new file that looks
// complete (leftovers, if any, are *.partial). The suite prints a table: fault | job | outcome.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { jobEntry, renderEnvFile, renderJobEntry } from "../../components/host/render";
import { renderAlertEnv } from "../../components/monitoring/render";
import {
  authorizedKeyLine,
  knownHostsLine,
  renderCredentialsFile,
} from "../../components/offsite/render";
import { backupEnv, repositoryEnv } from "../../components/restic/render";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import {
  freePort as freePortOf,
  run,
  runAsync,
  runOk,
  waitFor,
  type RunResult,
} from "../harness/proc";
import { startS3rver, type S3rverServer } from "../harness/s3rver";
import { startSshd, type Sshd } from "../harness/sshd";
import { installProxmoxShims, type ProxmoxShims } from "../harness/proxmoxShims";
import { startWebhookReceiver, type WebhookReceiver } from "../harness/webhook";
import { createBackupUser, installScripts, seedSchema, type Install } from "./mariadb-fixture";
import { expectFileContracts } from "../harness/contracts";

const ROOT = path.join(__dirname, "..", "..");
const DB = "atlastech_db";

let server: MariaDbServer;
let s3: S3rverServer;
let hook: WebhookReceiver;
let root: string;
let box: Install;
const mounts: string[] = [];
const table: { fault: string; job: string; outcome: string }[] = [];

const at = (p: string) => path.join(root, p);

/** A small tmpfs at DIR (a disk that can fill up, or a USB SSD that can be unplugged). */
function mountTmpfs(dir: string, size: string): void {
  fs.mkdirSync(dir, { recursive: true });
  runOk("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
  mounts.push(dir);
}

function unmount(dir: string): void {
  runOk("umount", [dir]);
  mounts.splice(mounts.indexOf(dir), 1);
}

/** Fills the file system holding DIR, leaving about FREE_KB free; returns the filler's path. */
function fill(dir: string, freeKb: number): string {
  const filler = path.join(dir, ".filler");
  const avail = Number(runOk("df", ["--output=avail", "-k", dir]).stdout.trim().split("\n")[1]);
  const kb = Math.max(0, avail - freeKb);
  runOk("dd", ["if=/dev/zero", `of=${filler}`, "bs=1K", `count=${kb}`, "status=none"]);
  return filler;
}

/** Every file under the dirs, by absolute path, with its sha256. */
function fingerprints(dirs: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name !== ".filler")
        out.set(p, createHash("sha256").update(fs.readFileSync(p)).digest("hex"));
    }
  };
  dirs.forEach(walk);
  return out;
}

function status(job: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(box.state, "status", `${job}.json`), "utf8"));
}

/** Whether a process whose command line matches PATTERN (pgrep -f) is running. */
const running = (pattern: string): boolean => run("pgrep", ["-f", pattern]).code === 0;

/** The run records (<state>/runs/<job>.<pid>.json) of a job, as the job wrote them. */
function runRecords(job: string): Record<string, unknown>[] {
  const dir = path.join(box.state, "runs");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${job}.`) && f.endsWith(".json"))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")));
}

/**
 * The real monitor.sh, watching only the jobs given (registry entries as ScheduledJob renders them),
 * with the real alert.sh; returns its exit code and the status file it wrote.
 */
function runMonitor(jobs: readonly string[]): { code: number; status: Record<string, unknown> } {
  const lib = path.join(box.lib, "monitor.sh");
  fs.copyFileSync(path.join(ROOT, "components/monitoring/scripts/monitor.sh"), lib);
  fs.chmodSync(lib, 0o755);
  const registry = at("monitor-jobs.d");
  fs.rmSync(registry, { recursive: true, force: true });
  fs.mkdirSync(registry, { recursive: true });
  for (const job of jobs) {
    const entry = renderJobEntry(jobEntry(job, "0 2 * * *", "UTC", 24));
    fs.writeFileSync(path.join(registry, `${job}.json`), entry);
  }
  const env = writeEnv("monitor", { MONITOR_JOBS_DIR: registry });
  const r = run(lib, [env], { timeoutMs: 120_000 });
  return { code: r.code, status: status("monitor") };
}

/** Replaces the test's /bin/true alert hook by the real alert.sh, which reads <etc>/alert.env. */
function withRealAlerts(envFile: string): string {
  const text = fs.readFileSync(envFile, "utf8").replace(/^B321_ALERT=.*\n/m, "");
  fs.writeFileSync(envFile, text, { mode: 0o600 });
  return envFile;
}

function writeEnv(job: string, vars: Record<string, string | number>): string {
  const file = path.join(box.etc, `${job}.env`);
  fs.writeFileSync(
    file,
    renderEnvFile(`test ${job}`, {
      ...vars,
      B321_JOB: job,
      B321_STATE: box.state,
      B321_LIB: box.lib,
      B321_ETC: box.etc,
    }),
    { mode: 0o600 },
  );
  return file;
}

interface FaultCase {
  readonly fault: string;
  readonly job: string;
  /** Script file name in the lib dir. */
  readonly script: string;
  readonly env: () => string;
  /** Where the good backups are: their files must come out byte for byte unchanged. */
  readonly watched: () => string[];
  /** New files allowed after the failed run (default: only *.partial files or under *.partial/). */
  readonly allowNew?: (file: string) => boolean;
  /** Makes the good backup (default: one successful run of the job). */
  readonly good?: () => void;
  readonly arrange?: () => void | Promise<void>;
  /** Runs the job under the fault (default: the script with its env file). */
  readonly act?: () => Promise<RunResult>;
  readonly restore?: () => void | Promise<void>;
  /** What the status file's error must say. */
  readonly error: RegExp;
}

const runJob = (c: Pick<FaultCase, "script" | "env">): RunResult =>
  run(path.join(box.lib, c.script), [c.env()], { timeoutMs: 300_000 });

async function check(c: FaultCase): Promise<void> {
  let outcome = "";
  try {
    if (c.good) c.good();
    else {
      const g = runJob(c);
      if (g.code !== 0) throw new Error(`the good run failed:\n${g.stderr}`);
    }
    const before = fingerprints(c.watched());
    expect(before.size).toBeGreaterThan(0);
    hook.clear();
    let r: RunResult;
    try {
      await c.arrange?.();
      r = c.act ? await c.act() : runJob(c);
    } finally {
      await c.restore?.();
    }
    expect({ code: r.code === 0 ? 0 : "non-zero" }).toEqual({ code: "non-zero" });
    const s = status(c.job);
    expect(s).toMatchObject({ job: c.job, result: "failed", exit_code: r.code });
    expect(String(s.error)).toMatch(c.error);
    await waitFor("the webhook alert", () => hook.received().some((a) => a.job === c.job), 30_000);
    const alert = hook.received().find((a) => a.job === c.job)!;
    expect(alert).toMatchObject({ job: c.job, result: "failed", host: os.hostname() });
    expect(alert.message).toBe(String(s.error));
    const after = fingerprints(c.watched());
    for (const [file, sha] of before) expect({ file, sha: after.get(file) }).toEqual({ file, sha });
    const fresh = [...after.keys()].filter((f) => !before.has(f));
    const allowed = c.allowNew ?? (() => false);
    expect(fresh.filter((f) => !/partial(\/|$)/.test(f) && !allowed(f))).toEqual([]);
    const why = String(s.error).replaceAll(root, "<sandbox>").slice(0, 80);
    outcome = `exit ${r.code}, failed, alerted, good intact: ${why}`;
  } catch (e) {
    outcome = `NOT OK: ${String(e instanceof Error ? e.message : e)
      .split("\n")
      .find((l) => l.trim())
      ?.slice(0, 90)}`;
    throw e;
  } finally {
    table.push({ fault: c.fault, job: c.job, outcome });
  }
}

beforeAll(async () => {
  [server, s3, hook] = await Promise.all([
    startMariaDb(),
    startS3rver({ bucket: "atlastech-backups" }),
    startWebhookReceiver(),
  ]);
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-faults-"));
  fs.chmodSync(root, 0o755);
  server.sql(seedSchema(DB));
  const secrets = path.join(root, "etc", "secrets");
  createBackupUser(server, "backup_user", "Log1Pass", "logical", [DB], `${secrets}/log.cnf`);
  const keyFile = `${secrets}/mariadb-backup.key`;
  fs.writeFileSync(keyFile, run("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
  box = installScripts(root, server, {
    method: "logical",
    compression: "zstd",
    databases: [DB],
    clientCnf: `${secrets}/log.cnf`,
    keyFile,
    backupDir: at("backups/mariadb"),
    binlogBackupDir: at("backups/binlogs"),
    keepFulls: 3,
    timezone: "UTC",
  });
  // The shared library as the Host component installs it, and the alert channel as monitoring does.
  for (const f of ["alert.sh"]) {
    fs.copyFileSync(path.join(ROOT, "components/host/scripts", f), path.join(box.lib, f));
    fs.chmodSync(path.join(box.lib, f), 0o755);
  }
  for (const f of fs.readdirSync(path.join(ROOT, "components/restic/scripts"))) {
    fs.copyFileSync(path.join(ROOT, "components/restic/scripts", f), path.join(box.lib, f));
    fs.chmodSync(path.join(box.lib, f), 0o755);
  }
  fs.writeFileSync(`${secrets}/alert-webhook`, `${hook.url}\n`, { mode: 0o600 });
  fs.writeFileSync(
    path.join(box.etc, "alert.env"),
    renderAlertEnv({
      email: [],
      webhookFile: `${secrets}/alert-webhook`,
      webhookStyle: "json",
      pingOnSuccess: false,
    }),
    { mode: 0o600 },
  );
}, 300_000);

afterAll(async () => {
  for (const m of [...mounts].reverse()) run("umount", ["-l", m]);
  if (table.length > 0) {
    const w = [5, 3].map((_, i) =>
      Math.max(...table.map((t) => (i === 0 ? t.fault.length : t.job.length)), 5),
    );
    const lines = [
      `${"fault".padEnd(w[0])} | ${"job".padEnd(w[1])} | outcome`,
      `${"-".repeat(w[0])}-|-${"-".repeat(w[1])}-|--------`,
      ...table.map((t) => `${t.fault.padEnd(w[0])} | ${t.job.padEnd(w[1])} | ${t.outcome}`),
    ];
    const text = lines.join("\n");
    console.log(`fault-injection results\n${text}`);
    fs.writeFileSync(path.join(os.tmpdir(), "backup321-faults-table.txt"), `${text}\n`);
  }
  await Promise.all([server?.stop(), s3?.stop(), hook?.stop()]);
  if (root) {
    try {
      expectFileContracts(root);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}, 120_000);

describe("mariadb-full", () => {
  const full = { job: "mariadb-full", script: "mariadb-full.sh" };
  const env = () => withRealAlerts(box.env("mariadb-full"));
  const watched = () => [at("backups/mariadb")];

  test("source down", async () => {
    await check({
      ...full,
      fault: "source down",
      env,
      watched,
      arrange: () => server.kill(),
      restore: () => server.start(),
      error: /does not answer/,
    });
  });

  test("dump killed mid-way (SIGKILL of mariadb-dump)", async () => {
    server.sql(
      "CREATE TABLE IF NOT EXISTS atlastech_db.journal (id INT PRIMARY KEY, msg VARCHAR(255));" +
        "INSERT IGNORE INTO atlastech_db.journal SELECT seq, REPEAT(MD5(seq), 7) FROM seq_1_to_300000;",
      DB,
    );
    await check({
      ...full,
      fault: "killed mid-way",
      env,
      watched,
      act: async () => {
        const job = runAsync(path.join(box.lib, "mariadb-full.sh"), [env()]);
        let pid = 0;
        await waitFor("mariadb-dump to start", () => {
          const r = run("pgrep", ["-f", `mariadb-dump --defaults-extra-file=${root}/`]);
          pid = Number(r.stdout.trim().split("\n")[0]);
          return r.code === 0 && pid > 0;
        });
        process.kill(pid, "SIGKILL");
        return job.done;
      },
      error: /mariadb-dump failed/,
    });
  });

  test("job stopped by SIGTERM during the dump", async () => {
    await check({
      ...full,
      fault: "killed mid-way (SIGTERM)",
      env,
      watched,
      act: async () => {
        const job = runAsync(path.join(box.lib, "mariadb-full.sh"), [env()]);
        await waitFor(
          "mariadb-dump to start",
          () => run("pgrep", ["-f", `mariadb-dump --defaults-extra-file=${root}/`]).code === 0,
        );
        job.kill("SIGTERM");
        return job.done;
      },
      error: /interrupted by signal TERM/,
    });
    server.sql("DROP TABLE atlastech_db.journal");
  });

  // SIGKILL of the job itself (OOM killer, kill -9): no trap can run, so no failed status and no
  // alert from the job. Its watchdog stops its children, the run record it wrote at start stays,
  // and the monitor's next run alerts; the job's next run reports it too.
  test("job SIGKILLed: its children die with it, and the monitor alerts naming the run", async () => {
    expect(runJob({ script: "mariadb-full.sh", env }).code).toBe(0);
    const statusFile = path.join(box.state, "status", "mariadb-full.json");
    const good = fs.readFileSync(statusFile, "utf8");
    expect(JSON.parse(good)).toMatchObject({ result: "success" });
    expect(runRecords("mariadb-full")).toEqual([]);
    // A session holding a table's write lock: the dump waits on it, and so would any orphan.
    const lockSql = "LOCK TABLES atlastech_db.clients WRITE; SELECT SLEEP(300)";
    const locker = runAsync("mariadb", [
      "--no-defaults",
      `--socket=${server.socket}`,
      "-uroot",
      "-e",
      lockSql,
    ]);
    const unlock = async () => {
      locker.kill("SIGKILL");
      const held = server.sql(
        "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(300)%'",
      );
      for (const id of held.split("\n").filter(Boolean)) server.sql(`KILL ${id}`);
      await locker.done;
    };
    const dump = `mariadb-dump --defaults-extra-file=${root}/`;
    const encrypt = `openssl enc -aes-256-cbc -salt -pbkdf2 -pass file:${box.keyFile}`;
    const children: number[] = [];
    try {
      await waitFor(
        "the table lock",
        () =>
          server
            .sql(
              "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(300)%'",
            )
            .trim() === "1",
      );
      hook.clear();
      const job = runAsync(path.join(box.lib, "mariadb-full.sh"), [env()]);
      await waitFor("mariadb-dump and openssl to start", () => running(dump) && running(encrypt));
      const pids = (p: string) => run("pgrep", ["-f", p]).stdout.trim().split("\n").map(Number);
      children.push(...pids(dump), ...pids(encrypt));
      job.kill("SIGKILL");
      // (Its end is awaited only after its children's: they hold its stdout and stderr.)
      await waitFor("the job to die", () => !fs.existsSync(`/proc/${job.pid}`));
      await waitFor("the job's children to end", () => !running(dump) && !running(encrypt), 10_000);
      expect((await job.done).code).not.toBe(0);
      await unlock();
      // Nothing from the job itself: its status is the good run's, last_success intact, no alert.
      expect(fs.readFileSync(statusFile, "utf8")).toBe(good);
      expect(hook.received().filter((a) => a.job === "mariadb-full")).toEqual([]);
      const records = runRecords("mariadb-full");
      expect(records).toEqual([
        expect.objectContaining({ job: "mariadb-full", pid: job.pid, started: expect.any(String) }),
      ]);
      const started = String(records[0].started);

      const m = runMonitor(["mariadb-full"]);
      expect(m.code).toBe(1);
      expect(m.status).toMatchObject({ result: "failed", checks_failed: 1 });
      expect(String(m.status.error)).toContain(
        `- job mariadb-full: the run started at ${started} (pid ${job.pid}) ended without recording a result: it was killed (kill -9, the OOM killer)`,
      );
      await waitFor("the monitor's alert", () => hook.received().some((a) => a.job === "monitor"));
      const alert = hook.received().find((a) => a.job === "monitor")!;
      expect(alert).toMatchObject({ result: "failed", message: String(m.status.error) });

      // The job's next run succeeds, reports the killed run as a warning and removes its record.
      hook.clear();
      expect(runJob({ script: "mariadb-full.sh", env }).code).toBe(0);
      expect(status("mariadb-full")).toMatchObject({ result: "warning", exit_code: 0 });
      expect(String(status("mariadb-full").error)).toContain(
        `an earlier run (started ${started}, pid ${job.pid}) ended without recording a result`,
      );
      await waitFor("the warning", () => hook.received().some((a) => a.job === "mariadb-full"));
      expect(runRecords("mariadb-full")).toEqual([]);
      expect(runMonitor(["mariadb-full"])).toMatchObject({
        code: 0,
        status: { result: "success" },
      });
    } finally {
      // Orphans left by a watchdog that did not do its job: ours, stopped by their pid.
      for (const pid of children) {
        const cmd = run("cat", [`/proc/${pid}/cmdline`]).stdout;
        if (cmd.includes(root) || cmd.includes(box.keyFile)) process.kill(pid, "SIGKILL");
      }
      await unlock();
    }
  });

  test("job SIGKILLed: nothing that looks complete is left, and the next run clears the leftovers", async () => {
    const dir = at("backups/mariadb");
    const good = fingerprints([dir]);
    server.sql(
      "CREATE TABLE atlastech_db.journal (id INT PRIMARY KEY, msg VARCHAR(255));" +
        "INSERT INTO atlastech_db.journal SELECT seq, REPEAT(MD5(seq), 7) FROM seq_1_to_300000;",
      DB,
    );
    try {
      const job = runAsync(path.join(box.lib, "mariadb-full.sh"), [env()]);
      await waitFor(
        "mariadb-dump to start",
        () => run("pgrep", ["-f", `mariadb-dump --defaults-extra-file=${root}/`]).code === 0,
      );
      job.kill("SIGKILL");
      expect((await job.done).code).not.toBe(0);
      await waitFor(
        "the orphaned dump to end",
        () => run("pgrep", ["-f", `mariadb-dump --defaults-extra-file=${root}/`]).code !== 0,
      );
      const left = [...fingerprints([dir]).keys()].filter((f) => !good.has(f));
      expect(left.filter((f) => !/(partial|\/\.b321-full\.[^/]+\/.*)$/.test(f))).toEqual([]);
      expect(runJob({ script: "mariadb-full.sh", env }).code).toBe(0);
      expect(
        fs.readdirSync(dir).filter((f) => f.includes("partial") || f.startsWith(".b321")),
      ).toEqual([]);
      // The good fulls still there (retention keeps the newest ones) are byte for byte unchanged.
      const now = fingerprints([dir]);
      for (const [file, sha] of good) {
        if (now.has(file)) expect({ file, sha: now.get(file) }).toEqual({ file, sha });
      }
    } finally {
      server.sql("DROP TABLE atlastech_db.journal");
    }
  });

  test("backup dir read-only (a disk remounted after I/O errors): the error says so", async () => {
    const disk = at("ro-disk");
    mountTmpfs(disk, "64m");
    try {
      const e = () =>
        withRealAlerts(box.env("mariadb-full", { backupDir: `${disk}/mariadb` }, "ro"));
      await check({
        ...full,
        fault: "backup dir read-only",
        env: e,
        watched: () => [`${disk}/mariadb`],
        arrange: () => void runOk("mount", ["-o", "remount,ro", disk]),
        restore: () => void runOk("mount", ["-o", "remount,rw", disk]),
        error: /ro-disk\/mariadb is on a read-only file system \(after disk errors\? see dmesg/,
      });
    } finally {
      unmount(disk);
    }
  });

  test("disk full (filled by the backup alone: the cleanup frees it, the disk is named)", async () => {
    const disk = at("small-disk");
    mountTmpfs(disk, "64m");
    const availKb = () =>
      Number(runOk("df", ["--output=avail", "-k", disk]).stdout.trim().split("\n")[1]);
    try {
      const e = () =>
        withRealAlerts(box.env("mariadb-full", { backupDir: `${disk}/mariadb` }, "small"));
      await check({
        ...full,
        fault: "disk full (backup too big)",
        env: e,
        watched: () => [`${disk}/mariadb`],
        arrange: async () => {
          // Backup names carry the second: the faulty run must not collide with the good one.
          await new Promise((r) => setTimeout(r, 1100));
          // About 4 MiB of backup that does not compress (a small binlog, for the binlog tests).
          server.sql(
            "CREATE TABLE atlastech_db.noise (id INT PRIMARY KEY, b VARCHAR(300));" +
              "INSERT INTO atlastech_db.noise SELECT seq, CONCAT(SHA2(RAND(), 512), SHA2(RAND(), 512)) FROM seq_1_to_30000;",
            DB,
          );
          // 2 MiB left: above what counts as full, below this backup. No filler file: once the
          // failed run's partial file is removed, the disk has its 2 MiB again.
          const used = Number(runOk("df", ["--output=used", "-k", disk]).stdout.split("\n")[1]);
          runOk("mount", ["-o", `remount,size=${used + 2048}k`, disk]);
        },
        restore: () => {
          server.sql("DROP TABLE atlastech_db.noise");
        },
        error:
          /small-disk\/mariadb was full when the run failed \(\d+ KiB free; \d+ KiB once the run's partial files were removed\): the backup does not fit$/,
      });
      expect(availKb()).toBeGreaterThan(1024);
    } finally {
      unmount(disk);
    }
  });

  test("disk too small to unpack a physical full for its verification: said before unpacking", async () => {
    const disk = at("small-phys-disk");
    mountTmpfs(disk, "512m");
    const cnf = path.join(box.etc, "secrets", "phys.cnf");
    if (!fs.existsSync(cnf))
      createBackupUser(server, "backup_phys", "Phys0Pass", "physical", [DB], cnf);
    const e = () =>
      withRealAlerts(
        box.env(
          "mariadb-full",
          { method: "physical", clientCnf: cnf, backupDir: `${disk}/mariadb` },
          "phys-small",
        ),
      );
    try {
      await check({
        ...full,
        fault: "disk too small to verify",
        env: e,
        watched: () => [`${disk}/mariadb`],
        arrange: async () => {
          await new Promise((r) => setTimeout(r, 1100));
          const bytes = Number(status("mariadb-full").bytes);
          const raw = Number(status("mariadb-full").raw_bytes);
          expect(raw).toBeGreaterThan(bytes + 8 * 1024 * 1024);
          // Room for the backup, not for unpacking it.
          const freeKb = Math.round((bytes + (raw - bytes) / 2) / 1024);
          const used = Number(runOk("df", ["--output=used", "-k", disk]).stdout.split("\n")[1]);
          runOk("mount", ["-o", `remount,size=${used + freeKb}k`, disk]);
        },
        error:
          /^verify: unpacking \S+ to check it needs about \d+ MiB free in \S+small-phys-disk\/mariadb \(its raw size\), only \d+ MiB are free/,
      });
    } finally {
      unmount(disk);
    }
  });

  test("concurrent run", async () => {
    const lock = path.join(box.state, "locks", "mariadb-full.lock");
    await check({
      ...full,
      fault: "concurrent run",
      env,
      watched,
      act: async () => run("flock", [lock, path.join(box.lib, "mariadb-full.sh"), env()]),
      error: /another run holds the lock/,
    });
  });
});

// The state disk full when the run writes its status: the previous status (and last_success) and
// metrics stay as they were, no temp file is left, and the run says so in syslog and in an alert.
describe("status on a full state disk", () => {
  test("a status that cannot be written keeps the previous one, and alerts", async () => {
    const disk = at("small-state");
    mountTmpfs(disk, "1m");
    try {
      const env = () => {
        const file = withRealAlerts(box.env("mariadb-full", {}, "small-state"));
        fs.appendFileSync(file, `B321_STATE='${disk}'\n`);
        return file;
      };
      const statusFile = path.join(disk, "status", "mariadb-full.json");
      const promFile = path.join(disk, "metrics", "mariadb-full.prom");
      expect(runJob({ script: "mariadb-full.sh", env }).code).toBe(0);
      const goodStatus = fs.readFileSync(statusFile, "utf8");
      const goodProm = fs.readFileSync(promFile, "utf8");
      expect(JSON.parse(goodStatus)).toMatchObject({ result: "success" });
      await new Promise((r) => setTimeout(r, 1100));
      const filler = fill(disk, 0);
      hook.clear();
      const r = runJob({ script: "mariadb-full.sh", env });
      fs.rmSync(filler);
      // The backup itself succeeded: the exit code is the script's own.
      expect(r.code).toBe(0);
      expect(fs.readFileSync(statusFile, "utf8")).toBe(goodStatus);
      expect(JSON.parse(goodStatus).last_success).toMatch(/^\d{4}-/);
      expect(fs.readFileSync(promFile, "utf8")).toBe(goodProm);
      expect(fs.readdirSync(path.dirname(statusFile))).toEqual(["mariadb-full.json"]);
      expect(fs.readdirSync(path.dirname(promFile))).toEqual(["mariadb-full.prom"]);
      const why = `its status could not be written to ${disk}/status (the previous status file is kept); ${disk} is full (0 KiB free)`;
      expect(r.stderr).toContain(why);
      await waitFor("the alert", () => hook.received().some((a) => a.job === "mariadb-full"));
      expect(hook.received().find((a) => a.job === "mariadb-full")).toMatchObject({
        result: "failed",
        message: `the run ended with success, but ${why}`,
      });
      table.push({
        fault: "state disk full",
        job: "mariadb-full",
        outcome: "status kept, alerted",
      });
    } finally {
      unmount(disk);
    }
  });
});

describe("mariadb-binlogs", () => {
  const ship = { job: "mariadb-binlogs", script: "mariadb-binlogs.sh" };
  const env = () => withRealAlerts(box.env("mariadb-binlogs"));
  const watched = () => [at("backups/binlogs")];
  const write = () => server.sql(`INSERT INTO ${DB}.clients (nom) VALUES ('binlog-${Date.now()}')`);

  test("source down", async () => {
    write();
    await check({
      ...ship,
      fault: "source down",
      env,
      watched,
      arrange: () => server.kill(),
      restore: () => server.start(),
      error: /does not answer/,
    });
  });

  test("disk full", async () => {
    const disk = at("small-binlog-disk");
    mountTmpfs(disk, "256m");
    let filler = "";
    try {
      const e = () =>
        withRealAlerts(box.env("mariadb-binlogs", { binlogBackupDir: `${disk}/binlogs` }, "small"));
      await check({
        ...ship,
        fault: "disk full",
        env: e,
        watched: () => [`${disk}/binlogs`],
        arrange: () => {
          // A binlog bigger than what is left on the disk.
          server.sql(
            `CREATE TABLE ${DB}.bulk (id INT PRIMARY KEY, b VARCHAR(255));` +
              `INSERT INTO ${DB}.bulk SELECT seq, REPEAT(MD5(seq), 7) FROM seq_1_to_20000;`,
            DB,
          );
          filler = fill(disk, 256);
        },
        restore: () => {
          fs.rmSync(filler, { force: true });
          server.sql(`DROP TABLE ${DB}.bulk`);
        },
        error: /small-binlog-disk\/binlogs is full \(\d+ KiB free\)$/,
      });
    } finally {
      unmount(disk);
    }
  });

  test("concurrent run", async () => {
    write();
    const lock = path.join(box.state, "locks", "mariadb-binlogs.lock");
    await check({
      ...ship,
      fault: "concurrent run",
      env,
      watched,
      act: async () => run("flock", [lock, path.join(box.lib, "mariadb-binlogs.sh"), env()]),
      error: /another run holds the lock/,
    });
  });
});

describe("mariadb-restore-test", () => {
  const rt = { job: "mariadb-restore-test", script: "mariadb-restore-test.sh" };
  const watched = () => [at("backups/mariadb")];
  const good = () => {
    expect(
      runJob({ script: "mariadb-full.sh", env: () => withRealAlerts(box.env("mariadb-full")) })
        .code,
    ).toBe(0);
  };

  test("wrong key", async () => {
    const wrong = path.join(box.etc, "secrets", "wrong.key");
    fs.writeFileSync(wrong, run("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
    await check({
      ...rt,
      fault: "wrong key",
      env: () => withRealAlerts(box.env("mariadb-restore-test", { keyFile: wrong }, "wrongkey")),
      watched,
      good,
      error:
        /wrong\.key is not the stack's encryption key \(fingerprint [0-9a-f]{64}, the stack's is [0-9a-f]{64}\)/,
    });
  });

  // One corrupt full among intact ones is a warning (the restore test uses the newest intact one,
  // see mariadb-scripts.test.ts); with every full corrupt there is nothing left to test.
  test("corrupted backup (every full)", async () => {
    const saved = new Map<string, Buffer>();
    await check({
      ...rt,
      fault: "corrupted backup",
      env: () => withRealAlerts(box.env("mariadb-restore-test")),
      watched,
      good,
      arrange: () => {
        const dir = at("backups/mariadb");
        for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".enc"))) {
          const file = path.join(dir, f);
          saved.set(file, fs.readFileSync(file));
          const bad = Buffer.from(saved.get(file)!);
          bad.write("CORRUPTED", Math.floor(bad.length / 2));
          fs.writeFileSync(file, bad);
        }
      },
      restore: () => saved.forEach((bytes, file) => fs.writeFileSync(file, bytes)),
      error:
        /^no intact full backup in .*: .*_full_\d{8}_\d{6}\.sql\.zst\.enc: sha256 [0-9a-f]{64} differs from its manifest/,
    });
  });
});

describe("restic", () => {
  const HOST_TAG = "docker-srv";
  let disk: string;
  let usbMount: string;
  let src: string;
  let bound = false;
  const usbRepo = () => `${disk}/restic`;
  const cloudUrl = (endpoint = s3.endpoint) => `s3:${endpoint}/${s3.bucket}/restic/cloud`;
  const secret = (name: string) => path.join(box.etc, "secrets", name);
  const onlyNoSnapshot = (f: string) => !f.includes("/snapshots/");

  const bind = () => {
    runOk("mount", ["--bind", disk, usbMount]);
    bound = true;
  };
  const unbind = () => {
    runOk("umount", [usbMount]);
    bound = false;
  };

  const usbEnv = (job: string, o: { passwordFile?: string } = {}) =>
    writeEnv(job, {
      ...repositoryEnv({
        repo: "usb",
        url: `${usbMount}/restic`,
        files: {
          passwordFile: o.passwordFile ?? secret("restic-usb.password"),
          excludeFile: "",
        },
        mountpoint: usbMount,
        hostTag: HOST_TAG,
        restic: "restic",
        cacheDir: path.join(box.state, "cache", "restic"),
      }),
      ...backupEnv({ paths: [src], tags: ["system"], retention: { keepLast: 5 } }),
    });
  const cloudEnv = (job: string, o: { passwordFile?: string; endpoint?: string } = {}) =>
    writeEnv(job, {
      ...repositoryEnv({
        repo: "cloud",
        url: cloudUrl(o.endpoint),
        files: {
          passwordFile: o.passwordFile ?? secret("restic-cloud.password"),
          s3CredentialsFile: secret("restic-cloud.s3"),
          caFile: s3.caFile,
          excludeFile: "",
        },
        hostTag: HOST_TAG,
        restic: "restic",
        cacheDir: path.join(box.state, "cache", "restic"),
        from: {
          repo: "usb",
          url: `${usbMount}/restic`,
          passwordFile: secret("restic-usb.password"),
          mountpoint: usbMount,
        },
      }),
      ...backupEnv({ paths: [], tags: [], retention: { keepLast: 5 } }),
      COPY_LOCK_WAIT: 2,
    });
  const backup = { job: "restic-usb", script: "restic-backup.sh", env: () => usbEnv("restic-usb") };
  const copy = {
    job: "restic-cloud",
    script: "restic-copy.sh",
    env: () => cloudEnv("restic-cloud"),
  };
  const cloudDir = () => [path.join(s3.directory, s3.bucket, "restic", "cloud")];

  beforeAll(() => {
    disk = at("usb-disk");
    usbMount = at("mnt/usb-ssd");
    fs.mkdirSync(usbMount, { recursive: true });
    mountTmpfs(disk, "400m");
    bind();
    src = at("srv/data");
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(`${src}/app.conf`, "setting=1\n");
    fs.writeFileSync(`${src}/blob.bin`, randomBytes(4 * 1024 * 1024));
    for (const r of ["usb", "cloud"]) {
      fs.writeFileSync(secret(`restic-${r}.password`), `${randomBytes(24).toString("hex")}\n`, {
        mode: 0o600,
      });
    }
    fs.writeFileSync(
      secret("restic-cloud.s3"),
      renderCredentialsFile(s3.accessKeyId, s3.secretAccessKey),
      {
        mode: 0o600,
      },
    );
    for (const [script, env] of [
      ["restic-init.sh", usbEnv("restic-usb-init")],
      ["restic-init.sh", cloudEnv("restic-cloud-init")],
    ]) {
      const r = run(path.join(box.lib, script), [env]);
      if (r.code !== 0) throw new Error(`${env}: ${r.stderr}`);
    }
  }, 120_000);

  afterAll(() => {
    if (bound) unbind();
  });

  test("backup: unmounted USB SSD", async () => {
    await check({
      ...backup,
      fault: "unmounted USB SSD",
      watched: () => [usbRepo()],
      arrange: unbind,
      restore: () => {
        // Nothing was written to the root file system in place of the disk.
        expect(fs.readdirSync(usbMount)).toEqual([]);
        bind();
      },
      error: /is not mounted/,
    });
  });

  test("backup: wrong key", async () => {
    const wrong = secret("restic-usb.wrong");
    fs.writeFileSync(wrong, "not-the-password\n", { mode: 0o600 });
    await check({
      ...backup,
      fault: "wrong key",
      env: () => usbEnv("restic-usb", { passwordFile: wrong }),
      good: () => expect(runJob(backup).code).toBe(0),
      watched: () => [usbRepo()],
      error: /password|wrong/i,
    });
  });

  test("backup: concurrent run", async () => {
    const lock = path.join(box.state, "locks", "restic-usb.lock");
    await check({
      ...backup,
      fault: "concurrent run",
      watched: () => [usbRepo()],
      act: async () => run("flock", [lock, path.join(box.lib, "restic-backup.sh"), backup.env()]),
      error: /another run holds the lock/,
    });
  });

  test("backup: killed mid-way", async () => {
    const big = `${src}/big.bin`;
    await check({
      ...backup,
      fault: "killed mid-way",
      watched: () => [usbRepo()],
      allowNew: onlyNoSnapshot,
      arrange: () => {
        runOk("dd", ["if=/dev/urandom", `of=${big}`, "bs=1M", "count=150", "status=none"]);
      },
      act: async () => {
        const job = runAsync(path.join(box.lib, "restic-backup.sh"), [backup.env()]);
        let pid = 0;
        await waitFor("restic backup to start", () => {
          const r = run("pgrep", ["-f", `restic --repo ${usbMount}/restic .* backup`]);
          pid = Number(r.stdout.trim().split("\n")[0]);
          return r.code === 0 && pid > 0;
        });
        await new Promise((r) => setTimeout(r, 300));
        process.kill(pid, "SIGKILL");
        return job.done;
      },
      restore: () => fs.rmSync(big, { force: true }),
      error: /backup|restic/,
    });
  });

  test("backup: disk full", async () => {
    const big = `${src}/big.bin`;
    let filler = "";
    await check({
      ...backup,
      fault: "disk full",
      watched: () => [usbRepo()],
      allowNew: onlyNoSnapshot,
      arrange: () => {
        runOk("dd", ["if=/dev/urandom", `of=${big}`, "bs=1M", "count=20", "status=none"]);
        filler = fill(disk, 2048);
      },
      restore: () => {
        fs.rmSync(big, { force: true });
        fs.rmSync(filler, { force: true });
      },
      error: /backup|restic|space/,
    });
  });

  test("copy to the cloud: destination unreachable", async () => {
    const dead = `https://127.0.0.1:${await freePortOf()}`;
    await check({
      ...copy,
      fault: "destination unreachable",
      env: () => cloudEnv("restic-cloud", { endpoint: dead }),
      good: () => expect(runJob(copy).code).toBe(0),
      watched: cloudDir,
      allowNew: onlyNoSnapshot,
      error: /./,
    });
  });

  test("copy to the cloud: wrong key", async () => {
    const wrong = secret("restic-cloud.wrong");
    fs.writeFileSync(wrong, "not-the-password\n", { mode: 0o600 });
    await check({
      ...copy,
      fault: "wrong key",
      env: () => cloudEnv("restic-cloud", { passwordFile: wrong }),
      good: () => expect(runJob(copy).code).toBe(0),
      watched: cloudDir,
      allowNew: onlyNoSnapshot,
      error: /password|wrong/i,
    });
  });
});

describe("offsite-upload", () => {
  const up = { job: "offsite-upload", script: "offsite-upload.sh" };
  const env = (o: { endpoint?: string; credentials?: string } = {}) =>
    writeEnv("offsite-upload", {
      OFFSITE_BUCKET: s3.bucket,
      OFFSITE_PREFIX: "database/",
      OFFSITE_REGION: "us-east-1",
      OFFSITE_CREDENTIALS: o.credentials ?? path.join(box.etc, "secrets", "offsite-upload-aws"),
      OFFSITE_BACKUP_DIR: at("backups/mariadb"),
      OFFSITE_SSE: "AES256",
      OFFSITE_ENDPOINT: o.endpoint ?? s3.endpoint,
      OFFSITE_CA_BUNDLE: s3.caFile,
      OFFSITE_CHECKSUM_CALCULATION: "when_required",
    });
  const watched = () => [path.join(s3.directory, s3.bucket, "database")];
  const good = () => {
    const full = runJob({
      script: "mariadb-full.sh",
      env: () => withRealAlerts(box.env("mariadb-full")),
    });
    const r = runJob({ ...up, env: () => env() });
    expect({ full: full.code, upload: r.code, err: r.code ? r.stderr : "" }).toEqual({
      full: 0,
      upload: 0,
      err: "",
    });
  };

  beforeAll(() => {
    for (const f of ["offsite-upload.sh"]) {
      fs.copyFileSync(path.join(ROOT, "components/offsite/scripts", f), path.join(box.lib, f));
      fs.chmodSync(path.join(box.lib, f), 0o755);
    }
    const creds = (id: string, secretKey: string) => renderCredentialsFile(id, secretKey);
    fs.writeFileSync(
      path.join(box.etc, "secrets", "offsite-upload-aws"),
      creds(s3.accessKeyId, s3.secretAccessKey),
      {
        mode: 0o600,
      },
    );
    fs.writeFileSync(
      path.join(box.etc, "secrets", "offsite-upload-wrong"),
      creds("AKIAREVOKEDKEY", "WRONG-SECRET"),
      {
        mode: 0o600,
      },
    );
  });

  test("destination unreachable", async () => {
    const dead = `https://127.0.0.1:${await freePortOf()}`;
    await check({
      ...up,
      fault: "destination unreachable",
      env: () => env({ endpoint: dead }),
      good,
      watched,
      error: /cannot check|failed|Could not connect/,
    });
  });

  test("wrong credentials", async () => {
    await check({
      ...up,
      fault: "wrong credentials",
      env: () => env({ credentials: path.join(box.etc, "secrets", "offsite-upload-wrong") }),
      good,
      watched,
      error: /cannot check|failed|Forbidden|SignatureDoesNotMatch/,
    });
  });
});

describe("proxmox and pbs (recording shims)", () => {
  let shims: ProxmoxShims;
  const withShims = () => ({ ...process.env, PATH: `${shims.bin}:${process.env.PATH ?? ""}` });

  beforeAll(() => {
    shims = installProxmoxShims(at("pve-tools"));
    for (const [dir, f] of [
      ["components/pbs/scripts", "pbs-guard.sh"],
      ["components/pbs/scripts", "pbs-lib.sh"],
      ["components/proxmox/scripts", "pve-snapshots.sh"],
    ]) {
      fs.copyFileSync(path.join(ROOT, dir, f), path.join(box.lib, f));
      fs.chmodSync(path.join(box.lib, f), 0o755);
    }
  });

  test("pbs guard: unmounted USB SSD", async () => {
    const disk = at("pbs-disk");
    const mnt = at("mnt/pbs-usb");
    fs.mkdirSync(disk, { recursive: true });
    fs.mkdirSync(mnt, { recursive: true });
    runOk("mount", ["--bind", disk, mnt]);
    mounts.push(mnt);
    const store = `${mnt}/datastore`;
    runOk(path.join(shims.bin, "proxmox-backup-manager"), [
      "datastore",
      "create",
      "usb-ssd",
      store,
    ]);
    fs.writeFileSync(`${store}/.chunks/0001`, randomBytes(4096));
    const env = () =>
      writeEnv("pbs-guard-usb-ssd", {
        PBS_PREFIX: `env PATH=${shims.bin}:/usr/bin:/bin`,
        PBS_DATASTORE: "usb-ssd",
        PBS_PATH: store,
        PBS_MOUNT: mnt,
        PBS_UUID: "3f9c2a10-0000-4000-8000-usbssd000001",
        PBS_MIN_FREE_PERCENT: 1,
      });
    try {
      await check({
        job: "pbs-guard-usb-ssd",
        script: "pbs-guard.sh",
        fault: "unmounted USB SSD",
        env,
        watched: () => [disk],
        arrange: () => unmount(mnt),
        restore: () => {
          expect(fs.readdirSync(mnt)).toEqual([]);
          runOk("mount", ["--bind", disk, mnt]);
          mounts.push(mnt);
        },
        error: /is not mounted: datastore usb-ssd is offline/,
      });
      const ds = (shims.pbsState().datastores as Record<string, unknown>[])[0];
      expect(ds["maintenance-mode"]).toBe("type=offline");
    } finally {
      unmount(mnt);
    }
  });

  test("pve snapshots: a guest failing", async () => {
    shims.addGuest("qemu", 100, ["before-upgrade"]);
    const env = () =>
      writeEnv("pve-snapshots", {
        SNAP_NODE: "proxmox-srv",
        SNAP_VMS: "100",
        SNAP_CONTAINERS: "",
        SNAP_KEEP: 3,
      });
    const snap = () => run(path.join(box.lib, "pve-snapshots.sh"), [env()], { env: withShims() });
    await check({
      job: "pve-snapshots",
      script: "pve-snapshots.sh",
      fault: "guest failing",
      env,
      watched: () => [path.join(shims.root, "state", "guests")],
      good: () => {
        const r = snap();
        expect({ code: r.code, err: r.code ? r.stderr : "" }).toEqual({ code: 0, err: "" });
        expect(shims.snapshots("qemu", 100)).toHaveLength(2);
      },
      arrange: async () => {
        await new Promise((r) => setTimeout(r, 1100));
        shims.failSnapshot("qm", 100, "VM 100 qmp command 'savevm-start' failed - disk full");
      },
      act: async () => snap(),
      restore: () => shims.failSnapshot("qm", 100, undefined),
      error: /100/,
    });
  });
});

describe("nas-sync", () => {
  let sshd: Sshd;
  let nasRoot: string;
  let nasDisk: string;
  let port: number;
  const sync = { job: "nas-sync", script: "nas-sync.sh" };
  const env = (o: { port?: number } = {}) =>
    writeEnv("nas-sync", {
      NAS_USER: "root",
      NAS_ADDRESS: "127.0.0.1",
      NAS_PORT: o.port ?? port,
      NAS_PATH: nasRoot,
      NAS_KEY: path.join(box.etc, "secrets", "nas-sync_ed25519"),
      NAS_KNOWN_HOSTS: path.join(box.etc, "nas-sync.known_hosts"),
      NAS_SOURCES: `${at("backups/mariadb")} ${at("backups/binlogs")}`,
      NAS_TIMEOUT: 120,
    });
  const watched = () => [nasRoot];
  const good = () => {
    const r = runJob({ ...sync, env: () => env() });
    expect({ code: r.code, err: r.code ? r.stderr : "" }).toEqual({ code: 0, err: "" });
  };

  beforeAll(async () => {
    sshd = await startSshd();
    port = sshd.port;
    nasDisk = at("nas-disk");
    mountTmpfs(nasDisk, "300m");
    nasRoot = `${nasDisk}/backups/atlastech`;
    for (const d of ["backups/mariadb", "backups/binlogs"])
      fs.mkdirSync(at(d), { recursive: true });
    fs.writeFileSync(at("backups/binlogs/README"), "shipped binlogs\n");
    fs.mkdirSync(nasRoot, { recursive: true });
    const receiver = at("nas-home/nas-receive.sh");
    fs.mkdirSync(path.dirname(receiver), { recursive: true });
    fs.copyFileSync(path.join(ROOT, "components/offsite/scripts/nas-receive.sh"), receiver);
    fs.chmodSync(receiver, 0o755);
    fs.copyFileSync(
      path.join(ROOT, "components/offsite/scripts/nas-sync.sh"),
      path.join(box.lib, "nas-sync.sh"),
    );
    fs.chmodSync(path.join(box.lib, "nas-sync.sh"), 0o755);
    const key = path.join(box.etc, "secrets", "nas-sync_ed25519");
    runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    const line = authorizedKeyLine({
      receiver,
      path: nasRoot,
      keep: 5,
      minAgeMinutes: 0,
      minIntervalMinutes: 0,
      publicKey: fs.readFileSync(`${key}.pub`, "utf8"),
      sourceHost: "db",
    });
    fs.appendFileSync(path.join(sshd.dir, "authorized_keys"), `${line}\n`);
    const hostKey = fs.readFileSync(path.join(sshd.dir, "host_ed25519.pub"), "utf8");
    fs.writeFileSync(
      path.join(box.etc, "nas-sync.known_hosts"),
      `${knownHostsLine("127.0.0.1", port, hostKey)}\n`,
    );
  }, 60_000);

  afterAll(async () => {
    await sshd?.stop();
  });

  test("destination unreachable", async () => {
    const dead = await freePortOf();
    await check({
      ...sync,
      fault: "destination unreachable",
      env: () => env({ port: dead }),
      good,
      watched,
      error: /NAS|ssh|refused/i,
    });
  });

  test("disk full on the NAS", async () => {
    const big = at("backups/mariadb/big-upload.bin");
    let filler = "";
    await check({
      ...sync,
      fault: "disk full (NAS)",
      env: () => env(),
      good,
      watched,
      arrange: async () => {
        await new Promise((r) => setTimeout(r, 1100));
        runOk("dd", ["if=/dev/urandom", `of=${big}`, "bs=1M", "count=8", "status=none"]);
        filler = fill(nasDisk, 1024);
      },
      restore: () => {
        fs.rmSync(big, { force: true });
        fs.rmSync(filler, { force: true });
      },
      error: /rsync to the NAS exited/,
    });
  });
});
