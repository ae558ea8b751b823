// Continuous binlog streaming (mariadb-stream.sh) against a real MariaDB 10.11 primary over TCP,
// with the stream user exactly as the component creates it (streamUserCommand). The stream's own
// files are compared byte for byte with the primary's binlogs: every closed binlog sealed once
// (decrypting to the primary's file), the open one equal to the primary's so far, after a kill -9,
// a primary restart with a rotation, and a full disk on the stream host. Then the database host is
// gone and PITR on the stream host, from a full and the streamed files only, gives back every
// table as it was at the last write.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expectFileContracts } from "../harness/contracts";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run, runAsync, runOk, waitFor } from "../harness/proc";
import { jobEnv, renderEnvFile } from "../../components/host/render";
import { monitorEnv, type MonitorChecks } from "../../components/monitoring/render";
import { hostPaths, type HostPaths } from "../../stacks/model/hosts";
import {
  STREAM_JOB,
  STREAM_WATCH_JOB,
  renderStreamOptionFile,
  streamEnv,
  streamUserCommand,
} from "../../components/mariadb/render";
import {
  keyFileFingerprint,
  physicalInstall,
  seedSchema,
  startOn,
  type Install,
} from "./mariadb-fixture";

const DB = "atlastech_db";
const STREAM_USER = "b321_stream";
const STREAM_PASSWORD = "Str3amPass";

let primary: MariaDbServer;
let root: string;
let box: Install;
/** The stream host's directories (another host: its own etc, state, status). */
let on: HostPaths;
let streamDir: string;
let alerts: string;

/** The primary's binlogs: name -> path, in order. */
function primaryBinlogs(): { name: string; size: number }[] {
  return primary
    .sql("SHOW BINARY LOGS")
    .trim()
    .split("\n")
    .map((l) => l.split("\t"))
    .map(([name, size]) => ({ name, size: Number(size) }));
}

function sha(file: string): string {
  return runOk("sha256sum", [file]).stdout.split(" ")[0];
}

/** What a sealed binlog decrypts to (with the stack's key, as PITR reads it). */
function unsealed(file: string): string {
  const r = runOk("bash", [
    "-c",
    'set -o pipefail; openssl enc -aes-256-cbc -d -pbkdf2 -pass "file:$1" -in "$2" | zstd -d -q -c | sha256sum',
    "_",
    box.keyFile,
    file,
  ]);
  return r.stdout.split(" ")[0];
}

/** The stream's sealed files: binlog name -> path. */
function sealed(): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of fs.readdirSync(streamDir).sort()) {
    const r = /^(mysql-bin\.\d+)\.\d{8}T\d{6}Z\.s\d+\.zst\.enc$/.exec(f);
    if (r) {
      expect(m.has(r[1])).toBe(false);
      m.set(r[1], path.join(streamDir, f));
    }
  }
  return m;
}

const live = () => path.join(streamDir, "live");
const liveFiles = () => fs.readdirSync(live()).filter((f) => /^mysql-bin\.\d+$/.test(f));

/**
 * The stream holds exactly the primary's binlogs: each closed one sealed once (a .sha256 beside it,
 * decrypting to the primary's bytes), the active one open in live/ with the primary's bytes, and
 * nothing else there. No event missing, none written twice.
 */
function expectSameAsPrimary(): void {
  const logs = primaryBinlogs();
  const active = logs[logs.length - 1];
  const seals = sealed();
  for (const { name } of logs.slice(0, -1)) {
    const f = seals.get(name);
    expect({ name, sealed: f !== undefined }).toEqual({ name, sealed: true });
    expect(fs.existsSync(`${f}.sha256`)).toBe(true);
    expect(fs.readFileSync(`${f}.sha256`, "utf8").split(" ")[0]).toBe(sha(f as string));
    expect({ name, sha: unsealed(f as string) }).toEqual({
      name,
      sha: sha(path.join(path.dirname(primary.binlogBasename), name)),
    });
  }
  expect(liveFiles()).toEqual([active.name]);
  expectSameOpenBinlog(
    path.join(live(), active.name),
    path.join(path.dirname(primary.binlogBasename), active.name),
  );
}

/**
 * An open binlog and its streamed copy: the same bytes, but for the "in use" flag of the format
 * description event (the first event), which the server sets in its own open file and the dump
 * sends cleared (and the event's checksum with it).
 */
function expectSameOpenBinlog(copy: string, original: string): void {
  const a = fs.readFileSync(copy);
  const b = fs.readFileSync(original);
  expect(a.length).toBe(b.length);
  const fdEnd = 4 + b.readUInt32LE(4 + 9);
  expect(a.subarray(0, 4 + 17).equals(b.subarray(0, 4 + 17))).toBe(true);
  expect(a.readUInt32LE(4 + 9)).toBe(fdEnd - 4);
  expect({ copy, same: a.subarray(fdEnd).equals(b.subarray(fdEnd)) }).toEqual({ copy, same: true });
}

/** waitFor, with the stream's log in the error when it times out (the stream is stopped then). */
async function waitForStream(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  try {
    await waitFor(what, check, timeoutMs);
  } catch (e) {
    const s = stream;
    stream = undefined;
    s?.kill("SIGTERM");
    const r = await s?.done;
    throw new Error(
      `${(e as Error).message}; the stream said:\n${r?.stderr.slice(-3000) ?? "(none running)"}`,
    );
  }
}

/** The stream has everything the primary wrote (its open file is as long as the primary's). */
async function caughtUp(): Promise<void> {
  await waitForStream(
    "the stream to catch up with the primary",
    () => {
      const logs = primaryBinlogs();
      const active = logs[logs.length - 1];
      const f = path.join(live(), active.name);
      return (
        fs.existsSync(f) &&
        fs.statSync(f).size === active.size &&
        liveFiles().length === 1 &&
        logs.slice(0, -1).every(({ name }) => sealed().has(name))
      );
    },
    60_000,
  );
}

function envFile(dir: string): string {
  const file = path.join(on.etc, `${STREAM_JOB}.env`);
  fs.writeFileSync(
    file,
    renderEnvFile("test stream", {
      ...streamEnv({
        address: "127.0.0.1",
        port: primary.port,
        clientCnf: path.join(on.secrets, "mariadb-stream.cnf"),
        dir,
        basename: "mysql-bin",
        serverId: 4242,
        keyFile: box.keyFile,
        keyFingerprint: keyFileFingerprint(box.keyFile),
        maxLagSeconds: 60,
        statusSeconds: 1,
        keepDays: 30,
      }),
      ...jobEnv(on, STREAM_JOB),
      B321_ALERT: path.join(root, "alert.sh"),
    }),
    { mode: 0o600 },
  );
  return file;
}

/**
 * Runs the watchdog once (the stream's env, its own job; a 3 s lag limit, stale after 4 s), its env
 * file written deployedSecondsAgo.
 */
function watch(deployedSecondsAgo = 0): { code: number; status: Record<string, unknown> } {
  const file = path.join(on.etc, `${STREAM_WATCH_JOB}.env`);
  const env = fs
    .readFileSync(envFile(streamDir), "utf8")
    .replace(/^B321_JOB=.*$/m, `B321_JOB=${STREAM_WATCH_JOB}`);
  fs.writeFileSync(file, `${env}MARIADB_STREAM_MAX_LAG=3\nMARIADB_STREAM_STALE_SECONDS=4\n`, {
    mode: 0o600,
  });
  const deployed = Date.now() / 1000 - deployedSecondsAgo;
  fs.utimesSync(file, deployed, deployed);
  const r = run(path.join(box.lib, "mariadb-stream-watch.sh"), [file]);
  return {
    code: r.code,
    status: JSON.parse(fs.readFileSync(path.join(on.status, `${STREAM_WATCH_JOB}.json`), "utf8")),
  };
}

/**
 * monitor.sh on the stream host with its stream check only (3 s lag limit, stale after 4 s): the
 * stream's line of its status error ("" when that check passed) and its check metric.
 */
function monitor(): { problem: string; metric: string } {
  const script = path.join(box.lib, "monitor.sh");
  fs.copyFileSync(path.join(__dirname, "../../components/monitoring/scripts/monitor.sh"), script);
  fs.chmodSync(script, 0o755);
  const env = path.join(on.etc, "monitor.env");
  const checks: MonitorChecks = {
    mounts: [],
    diskFullPercent: 90,
    smartDevices: [],
    resticRepos: [],
    staleLockHours: 1,
    restoreJobs: [],
    rtoHours: 4,
    stream: { maxLagSeconds: 3, staleSeconds: 4 },
  };
  fs.writeFileSync(
    env,
    renderEnvFile("test monitor", {
      ...monitorEnv(checks),
      ...jobEnv(on, "monitor"),
      B321_ALERT: "/bin/true",
    }),
    { mode: 0o600 },
  );
  run(script, [env], { timeoutMs: 120_000 });
  const status = JSON.parse(fs.readFileSync(path.join(on.status, "monitor.json"), "utf8"));
  const metrics = fs.readFileSync(path.join(on.metrics, "monitor-checks.prom"), "utf8");
  return {
    problem: String(status.error)
      .split("\n")
      .filter((l) => l.includes("binlog stream"))
      .join("\n"),
    metric:
      /backup321_monitor_check_ok\{check="stream",target="mariadb-stream"\} (\d)/.exec(
        metrics,
      )?.[1] ?? "",
  };
}

type Stream = ReturnType<typeof runAsync>;
let stream: Stream | undefined;

function startStream(dir = streamDir): Stream {
  const s = runAsync(path.join(box.lib, "mariadb-stream.sh"), [envFile(dir)]);
  stream = s;
  return s;
}

async function stopStream(sig: NodeJS.Signals = "SIGTERM"): Promise<void> {
  const s = stream;
  stream = undefined;
  if (!s) return;
  s.kill(sig);
  await s.done;
}

function streamStatus(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(on.status, `${STREAM_JOB}.json`), "utf8"));
}

/** Inserts N rows into a table of their own, one transaction each; returns the last id. */
let nextId = 1;
function write(n: number): number {
  const values = [];
  for (let i = 0; i < n; i++) values.push(`(${nextId++}, REPEAT('x', 200))`);
  primary.sql(values.map((v) => `INSERT INTO ${DB}.stream_probe VALUES ${v};`).join("\n"));
  return nextId - 1;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-stream-"));
  fs.chmodSync(root, 0o755);
  primary = await startMariaDb({ parent: root });
  primary.sql(seedSchema(DB, 0.2));
  primary.sql(`CREATE TABLE ${DB}.stream_probe (id INT PRIMARY KEY, pad VARCHAR(255))`);
  ({ box } = physicalInstall(path.join(root, "db"), primary, DB, {
    backupDir: path.join(root, "db/backups"),
    binlogBackupDir: path.join(root, "db/binlogs"),
    keepFulls: 4,
    timezone: "UTC",
  }));
  alerts = path.join(root, "alerts.log");
  fs.writeFileSync(path.join(root, "alert.sh"), `#!/bin/sh\necho "$@" >> '${alerts}'\n`, {
    mode: 0o755,
  });
  const full = box.runScript("mariadb-full.sh", box.env("mariadb-full"));
  if (full.code !== 0) throw new Error(`the full failed: ${full.stderr}`);
  // The stream host: its own directories, the stream user's option file.
  const at = (p: string) => path.join(root, "streamhost", p);
  on = hostPaths.parse({ lib: box.lib, etc: at("etc"), state: at("state") });
  fs.mkdirSync(on.secrets, { recursive: true, mode: 0o700 });
  fs.writeFileSync(
    path.join(on.secrets, "mariadb-stream.cnf"),
    renderStreamOptionFile(STREAM_USER, STREAM_PASSWORD),
    { mode: 0o600 },
  );
  streamDir = at("stream");
  runOk(
    "bash",
    ["-c", streamUserCommand(primary.socket, { user: STREAM_USER, from: "127.0.0.1" })],
    {
      input: `${STREAM_PASSWORD}\n`,
    },
  );
}, 300_000);

afterAll(async () => {
  await stopStream("SIGKILL");
  await primary?.stop();
  if (root) {
    run("umount", [path.join(root, "small")]);
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("the stream user has exactly the replication grants, from the stream host only", () => {
  const grants = primary.sql(`SHOW GRANTS FOR '${STREAM_USER}'@'127.0.0.1'`);
  expect(grants).toMatch(
    /^GRANT REPLICATION SLAVE, BINLOG MONITOR ON \*\.\* TO `b321_stream`@`127\.0\.0\.1`/,
  );
  expect(grants.trim().split("\n")).toHaveLength(1);
  // no password on any command line of the script: it reads the option file
  expect(fs.readFileSync(path.join(box.lib, "mariadb-stream.sh"), "utf8")).not.toContain(
    "--password",
  );
});

test("before the stream's first report, the watchdog gives a new deploy the stale limit, then alerts", () => {
  expect(fs.existsSync(path.join(on.status, `${STREAM_JOB}.json`))).toBe(false);
  const fresh = watch(1);
  expect(fresh.code).toBe(0);
  expect(fresh.status).toMatchObject({ result: "success" });
  expect(Number(fresh.status.lag_seconds)).toBeLessThanOrEqual(4);
  const old = watch(30);
  expect(old.code).not.toBe(0);
  expect(old.status).toMatchObject({ result: "failed" });
  expect(String(old.status.error)).toMatch(
    /^the binlog stream has never reported \(.* is missing, deployed 3\d s ago\)/,
  );
});

test("streams every binlog as it is written, and seals each closed one", async () => {
  startStream();
  write(50);
  primary.sql("FLUSH BINARY LOGS");
  write(50);
  primary.sql("FLUSH BINARY LOGS");
  write(20);
  await caughtUp();
  expectSameAsPrimary();
  await waitFor("a status of the running stream", () => {
    try {
      return streamStatus().state === "streaming" && typeof streamStatus().lag_seconds === "number";
    } catch {
      return false;
    }
  });
  const status = streamStatus();
  expect(status).toMatchObject({ job: STREAM_JOB, result: "success", tls: "none" });
  expect(Number(status.lag_seconds)).toBeLessThan(10);
  // The sealed files and the stream's directory are the stream host's alone.
  expect((fs.statSync(streamDir).mode & 0o777).toString(8)).toBe("700");
  for (const f of sealed().values()) expect((fs.statSync(f).mode & 0o777).toString(8)).toBe("600");
  // The watchdog finds it up and close behind the primary.
  const w = watch();
  expect(w.code).toBe(0);
  expect(w.status).toMatchObject({ job: STREAM_WATCH_JOB, result: "success" });
  expect(Number(w.status.lag_seconds)).toBeLessThanOrEqual(3);
  expect(monitor()).toEqual({ problem: "", metric: "1" });
}, 120_000);

test("a stream that receives nothing while the primary writes lags: the watchdog alerts, then clears", async () => {
  const pid = run("pgrep", ["-f", "--", `--result-file=${live()}/`]).stdout.trim();
  expect(pid).toMatch(/^\d+$/);
  fs.writeFileSync(alerts, "");
  process.kill(Number(pid), "SIGSTOP");
  try {
    write(5);
    await waitFor(
      "the stream's status to show a lag beyond 3 s",
      () => Number(streamStatus().lag_seconds) > 3,
      20_000,
    );
    const w = watch();
    expect(w.code).toBe(1);
    expect(String(w.status.error)).toMatch(
      /^the binlog stream lags the primary by \d+ s, more than the limit of 3 s \(mariadb\.stream\.maxLagSeconds\)/,
    );
    expect(fs.readFileSync(alerts, "utf8")).toContain(
      `${STREAM_WATCH_JOB} failed the binlog stream lags`,
    );
    const m = monitor();
    expect(m.metric).toBe("0");
    expect(m.problem).toMatch(
      /^- the binlog stream lags the primary by \d+ s, more than the limit of 3 s \(mariadb\.stream\.maxLagSeconds\)$/,
    );
  } finally {
    process.kill(Number(pid), "SIGCONT");
  }
  await caughtUp();
  await waitFor(
    "the stream's status to catch up",
    () => Number(streamStatus().lag_seconds) <= 2,
    20_000,
  );
  expect(watch().code).toBe(0);
}, 120_000);

test("a stream killed mid-write resumes: no gap, no event twice", async () => {
  const writer = runAsync("bash", [
    "-c",
    `for i in $(seq 100000 100400); do echo "INSERT INTO ${DB}.stream_probe VALUES ($i, REPEAT('k', 200));"; done | mariadb ${primary
      .clientArgs()
      .join(" ")}`,
  ]);
  await new Promise((r) => setTimeout(r, 300));
  await stopStream("SIGKILL");
  const w = await writer.done;
  expect(w.code).toBe(0);
  primary.sql("FLUSH BINARY LOGS");
  write(30);
  // Killed without its trap, its status still says "streaming": the watchdog calls it down once
  // that status is older than the stale limit.
  expect(streamStatus().state).toBe("streaming");
  await new Promise((r) => setTimeout(r, 5_000));
  const dog = watch();
  expect(dog.code).toBe(1);
  expect(String(dog.status.error)).toMatch(/^the binlog stream has not reported for \d+ s/);
  expect(monitor().problem).toMatch(/^- the binlog stream has not reported for \d+ s/);
  // the killed run's mariadb-binlog is gone with it (its process group is stopped)
  await waitFor(
    "the killed stream's mariadb-binlog to end",
    () => run("pgrep", ["-f", "--", `--result-file=${live()}/`]).code !== 0,
  );
  startStream();
  await caughtUp();
  expectSameAsPrimary();
}, 120_000);

test("the primary restarted and its binlog rotated mid-stream: the run fails and alerts, the next resumes", async () => {
  const s = stream as Stream;
  write(10);
  await primary.kill();
  const r = await s.done;
  stream = undefined;
  expect(r.code).toBe(1);
  const status = streamStatus();
  expect(status.result).toBe("failed");
  expect(String(status.error)).toContain("the stream stopped");
  expect(fs.readFileSync(alerts, "utf8")).toContain(`${STREAM_JOB} failed the stream stopped`);
  const w = watch();
  expect(w.code).toBe(1);
  expect(String(w.status.error)).toContain(
    `the binlog stream is down since ${String(status.ended)}: the stream stopped`,
  );
  expect(monitor()).toMatchObject({ metric: "0" });
  expect(monitor().problem).toContain(`- the binlog stream is down since ${String(status.ended)}`);
  await primary.start();
  write(10);
  primary.sql("FLUSH BINARY LOGS");
  write(10);
  startStream();
  await caughtUp();
  expectSameAsPrimary();
}, 180_000);

test("a full disk on the stream host fails the stream with an alert; the primary goes on", async () => {
  // Stopped by its service manager (SIGTERM): a clean end, not a failure. Its only news is the
  // run killed with -9 earlier in this suite, which ended without a result (common.sh).
  fs.writeFileSync(alerts, "");
  await stopStream();
  const stopped = streamStatus();
  expect(stopped).toMatchObject({ result: "warning", state: "stopped", exit_code: 0 });
  expect(String(stopped.error)).toMatch(
    /^an earlier run \(started [^)]+\) ended without recording a result: it was killed/,
  );
  expect(fs.readFileSync(alerts, "utf8")).toMatch(/^mariadb-stream warning an earlier run /);
  // a second stream, in a small file system of its own
  const small = path.join(root, "small");
  fs.mkdirSync(small);
  runOk("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", small]);
  const dir = path.join(small, "stream");
  fs.writeFileSync(alerts, "");
  const before = primaryBinlogs().map((l) => l.name);
  // fill it to a few KiB free, then give the primary more than that to write
  runOk("bash", ["-c", `head -c $((4 * 1024 * 1024 - 96 * 1024)) /dev/zero > '${small}/filler'`]);
  const s = startStream(dir);
  for (let i = 0; i < 10; i++) write(100);
  const r = await s.done;
  stream = undefined;
  expect(r.code).toBe(1);
  const status = streamStatus();
  expect(status.result).toBe("failed");
  expect(String(status.error)).toMatch(/is full/);
  expect(fs.readFileSync(alerts, "utf8")).toContain(`${STREAM_JOB} failed`);
  // The primary: still writing, its binlogs all there, no dump thread left behind.
  write(5);
  expect(
    primaryBinlogs()
      .map((l) => l.name)
      .slice(0, before.length),
  ).toEqual(before);
  await waitFor(
    "the primary's dump thread to end",
    () => !primary.sql("SHOW PROCESSLIST").includes("Binlog Dump"),
  );
  // Room again: the next run resumes where the full disk stopped it.
  fs.rmSync(path.join(small, "filler"));
  const saved = streamDir;
  streamDir = dir;
  try {
    startStream(dir);
    await caughtUp();
    expectSameAsPrimary();
    await stopStream();
  } finally {
    streamDir = saved;
  }
}, 180_000);

test("PITR on the stream host, the database host gone: every table as at the last write", async () => {
  startStream();
  write(25);
  primary.sql(`UPDATE ${DB}.salaires SET montant = montant + 1 WHERE id % 3 = 0`);
  primary.sql(`DELETE FROM ${DB}.conges WHERE id % 5 = 0`);
  const lastId = write(1);
  await caughtUp();
  const tables = primary
    .sql(
      `SELECT table_name FROM information_schema.tables WHERE table_schema='${DB}' AND table_type='BASE TABLE' ORDER BY 1`,
    )
    .trim()
    .split("\n");
  const checksum = `CHECKSUM TABLE ${tables.map((t) => `\`${DB}\`.\`${t}\``).join(", ")}`;
  const source = primary.sql(checksum);
  // The database host is gone: its server and its binlogs (and the shipped copies beside them).
  await stopStream("SIGKILL");
  await primary.kill();
  fs.renameSync(
    path.dirname(primary.binlogBasename),
    `${path.dirname(primary.binlogBasename)}.gone`,
  );
  fs.rmSync(path.join(root, "db/binlogs"), { recursive: true, force: true });
  try {
    // PITR with the fulls (from the NAS or the bucket) and the stream's files as its binlogs.
    const env = box.env("mariadb-pitr");
    fs.appendFileSync(
      env,
      `MARIADB_BINLOG_BACKUP_DIR=${streamDir}\nMARIADB_BINLOG_BASENAME=${live()}/mysql-bin\n`,
    );
    const until = new Date(Date.now() + 5_000).toISOString().slice(0, 19).replace("T", " ");
    const target = path.join(root, "recovered");
    const r = box.pitr(env, until, target);
    expect({ code: r.code, err: r.code === 0 ? "" : r.stderr.slice(-2000) }).toEqual({
      code: 0,
      err: "",
    });
    const restored = await startOn(target);
    try {
      expect(restored.sql(checksum)).toBe(source);
      expect(restored.sql(`SELECT MAX(id) FROM ${DB}.stream_probe WHERE id < 100000`).trim()).toBe(
        String(lastId),
      );
    } finally {
      await restored.stop();
    }
  } finally {
    fs.renameSync(
      `${path.dirname(primary.binlogBasename)}.gone`,
      path.dirname(primary.binlogBasename),
    );
  }
}, 300_000);

test("sealed binlogs older than keepDays go with their .sha256, after the next seal; the newest stays", async () => {
  await primary.start();
  startStream();
  await caughtUp();
  const old = [...sealed().values()];
  expect(old.length).toBeGreaterThan(3);
  for (const f of old) runOk("touch", ["-d", "40 days ago", f, `${f}.sha256`]);
  primary.sql("FLUSH BINARY LOGS");
  write(3);
  // (caughtUp would wait for the pruned ones: the primary still has them)
  await waitForStream(
    "the next seal and the prune after it",
    () => sealed().size === 1 && !old.some((f) => fs.existsSync(f)),
    30_000,
  );
  const now = [...sealed().values()];
  // the one just sealed is the only one left; none of the old ones, nor their checksums
  expect(old).not.toContain(now[0]);
  expect(fs.existsSync(`${now[0]}.sha256`)).toBe(true);
  for (const f of old)
    expect([f, fs.existsSync(f), fs.existsSync(`${f}.sha256`)]).toEqual([f, false, false]);
  expect(liveFiles()).toHaveLength(1);
  await stopStream();
}, 120_000);

test("every status file and history line the stream wrote meets its contract", () => {
  expectFileContracts(path.join(root, "streamhost"));
});
