// Progress on long restores: the real PITR and restore test on a real MariaDB 10.11 record each
// phase's seconds in their status and log the restore's and the replay's progress, with totals
// checked against byte counts taken here from the real files; a failed PITR records the phases
// it reached.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expectFileContracts } from "../harness/contracts";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run } from "../harness/proc";
import {
  countsIn,
  fulls,
  physicalInstall,
  seedSchema,
  tableCounts,
  type Install,
} from "./mariadb-fixture";

const DB = "atlastech_db";
let server: MariaDbServer;
let root: string;
let box: Install;
const backups = () => path.join(root, "backups");
const shipped = () => path.join(root, "binlogs");
const utcNow = () => new Date().toISOString().slice(0, 19).replace("T", " ");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const COMMON = path.join(__dirname, "../../components/host/scripts/common.sh");

/** The env file of a job that replays the shipped copies only (the server's binlogs out of reach). */
function shippedOnly(job: string, tag: string): string {
  const env = box.env(job, {}, tag);
  fs.appendFileSync(env, `MARIADB_BINLOG_BASENAME=${root}/no-server-binlogs/mysql-bin\n`);
  return env;
}

function manifestOf(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(`${file}.manifest.json`, "utf8"));
}

/** The last progress line of LABEL: done (with the final statistics) or stopped. */
function lastProgress(stderr: string, label: string) {
  const lines = stderr.split("\n").filter((l) => l.includes(`]: ${label}: `));
  const m = /\((\d+)%, (\d+) of (\d+) bytes\) (in|after) \d+ s/.exec(lines.at(-1) ?? "");
  if (!m) throw new Error(`no final ${label} progress line in:\n${stderr}`);
  return { percent: Number(m[1]), bytes: Number(m[2]), total: Number(m[3]), done: m[4] === "in" };
}

/**
 * Phase durations in a status, and the checks that they account for no more than the run and that
 * the status, as written, is what the monitor's contract reads (file-contracts.ts).
 */
function phasesOf(status: Record<string, unknown>): Record<string, number> {
  expectFileContracts(box.paths.status);
  const phases = Object.fromEntries(
    Object.entries(status)
      .map(([k, v]) => [/^phase_(.+)_seconds$/.exec(k)?.[1], v] as const)
      .filter((e): e is [string, unknown] => e[0] !== undefined),
  );
  for (const [name, s] of Object.entries(phases)) {
    expect({ name, s: typeof s === "number" && s >= 0 }).toEqual({ name, s: true });
  }
  const sum = Object.values(phases).reduce((a: number, b) => a + Number(b), 0);
  expect(sum).toBeLessThanOrEqual(Number(status.duration_seconds) + 1);
  return phases as Record<string, number>;
}

/** Bytes of SQL mariadb-binlog decodes from the server's own binlogs FROM..TO (by name). */
function decodedBytes(from: string, to: string, args: string[]): number {
  const dir = path.dirname(server.binlogBasename);
  const names = fs
    .readdirSync(dir)
    .filter((f) => /^mysql-bin\.\d+$/.test(f) && f >= from && f <= to)
    .sort();
  const r = run("bash", ["-c", 'mariadb-binlog "$@" | wc -c', "-", ...args, "--", ...names], {
    cwd: dir,
    env: { ...process.env, TZ: "UTC" },
  });
  expect(r.code).toBe(0);
  return Number(r.stdout.trim());
}

beforeAll(async () => {
  server = await startMariaDb();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-mdb-progress-"));
  fs.chmodSync(root, 0o755);
  server.sql(seedSchema(DB, 0.2));
  ({ box } = physicalInstall(root, server, DB, {
    backupDir: backups(),
    binlogBackupDir: shipped(),
    keepFulls: 2,
    timezone: "UTC",
  }));
  expect(box.runScript("mariadb-full.sh", box.env("mariadb-full")).code).toBe(0);
  server.sql(
    `INSERT INTO ${DB}.commandes (client_id, total) SELECT 1, seq FROM seq_1_to_3000; FLUSH BINARY LOGS;` +
      `INSERT INTO ${DB}.clients (nom) SELECT CONCAT('apres-', seq) FROM seq_1_to_200; FLUSH BINARY LOGS;`,
    DB,
  );
  expect(box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs")).code).toBe(0);
}, 300_000);

afterAll(async () => {
  await server?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("b321_progress passes the bytes through unchanged and logs at most every B321_PROGRESS_SECONDS", () => {
  // 3 MiB, a 2.5 s pause, 1 MiB more: an update while it waits, then the final count.
  const r = run("bash", [
    "-c",
    `set -Eeuo pipefail; source '${COMMON}'; B321_JOB=t B321_PROGRESS_SECONDS=1
     { head -c 3145728 /dev/urandom; sleep 2.5; head -c 1048576 /dev/urandom; } | tee >(sha256sum >&2) |
       b321_progress copy 4194304 | sha256sum`,
  ]);
  expect(r.code).toBe(0);
  const sums = r.stderr.match(/^[0-9a-f]{64}/gm);
  expect(sums).toEqual([r.stdout.split(" ")[0]]);
  const lines = r.stderr.split("\n").filter((l) => l.includes("]: copy: "));
  expect(lines.at(-1)).toMatch(
    /copy: 4\.0 MiB of 4\.0 MiB \(100%, 4194304 of 4194304 bytes\) in \d+ s, [\d.]+ [KM]iB\/s$/,
  );
  // while it waited: how far, of what, the rate and the time left (dd's update may come as the last
  // MiB starts: 75% or a little more)
  expect(lines.slice(0, -1).join("\n")).toMatch(
    /copy: 3\.\d MiB of 4\.0 MiB \((7[5-9])%\), [\d.]+ [KM]iB\/s, \d+ s left/,
  );
  // one update a second from dd at most, one line per B321_PROGRESS_SECONDS from them
  const stamps = lines.slice(0, -1).map((l) => Date.parse(l.split(" ")[0]));
  stamps.slice(1).forEach((t, i) => expect(t - stamps[i]).toBeGreaterThanOrEqual(1000));
});

test("PITR: every phase's seconds in its status; the full's and the replay's progress to 100%", async () => {
  await sleep(1100);
  const until = utcNow();
  const target = path.join(root, "pitr-ok");
  const r = box.pitr(shippedOnly("mariadb-pitr", "ok"), until, target);
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
  const status = box.status("mariadb-pitr");
  const phases = phasesOf(status);
  expect(Object.keys(phases).sort()).toEqual(
    ["binlogs", "check", "finish", "prepare", "replay", "restore", "start"].sort(),
  );
  expect(status.phase).toBe("finish");
  // The full read through: its size, all of it.
  const full = String(status.file);
  const size = fs.statSync(full).size;
  expect(lastProgress(r.stderr, "restore")).toEqual({
    percent: 100,
    bytes: size,
    total: size,
    done: true,
  });
  // The replay: the SQL decoded from the full's binlog position to the moment, all of it.
  const m = manifestOf(full);
  const copies = fs.readdirSync(shipped()).filter((f) => f.endsWith(".zst.enc"));
  const lastCopy = copies
    .map((f) => f.split(".").slice(0, 2).join("."))
    .sort()
    .at(-1)!;
  const want = decodedBytes(String(m.binlog_file), lastCopy, [
    `--start-position=${m.binlog_position}`,
    `--stop-datetime=${until}`,
  ]);
  expect(want).toBeGreaterThan(0);
  expect(lastProgress(r.stderr, "replay")).toEqual({
    percent: 100,
    bytes: want,
    total: want,
    done: true,
  });
  // and it did replay it: the rows written after the full are there
  expect(await countsIn(target, DB)).toEqual(tableCounts(server.sql, DB));
});

test("restore test: every phase's seconds in its status; the full's progress to 100%", () => {
  const r = box.runScript("mariadb-restore-test.sh", box.env("mariadb-restore-test"));
  expect(r.stderr).toContain("restore test passed");
  expect(r.code).toBe(0);
  const status = box.status("mariadb-restore-test");
  const phases = phasesOf(status);
  const m = manifestOf(String(status.file));
  const gap =
    `${m.binlog_file}:${m.binlog_position}` !==
    `${m.counted_binlog_file}:${m.counted_binlog_position}`;
  expect(Object.keys(phases).sort()).toEqual(
    [
      "check",
      "compare",
      "prepare",
      "restore",
      "start",
      ...(gap ? ["binlogs", "replay"] : []),
    ].sort(),
  );
  expect(status.phase).toBe("compare");
  const size = fs.statSync(String(status.file)).size;
  expect(lastProgress(r.stderr, "restore")).toEqual({
    percent: 100,
    bytes: size,
    total: size,
    done: true,
  });
  expect(Number(status.rows)).toBeGreaterThan(0);
});

test("a PITR that fails on a corrupt binlog records the phases it reached and leaves no datadir", () => {
  const [full] = fulls(backups());
  const m = manifestOf(full);
  const copy = fs
    .readdirSync(shipped())
    .find((f) => f.startsWith(`${m.binlog_file}.`) && f.endsWith(".zst.enc"))!;
  expect(copy).toBeDefined();
  const file = path.join(shipped(), copy);
  const saved = fs.readFileSync(file);
  const bad = Buffer.from(saved);
  bad.write("CORRUPTED", Math.floor(bad.length / 2));
  fs.writeFileSync(file, bad);
  const target = path.join(root, "pitr-bad");
  try {
    const r = box.pitr(shippedOnly("mariadb-pitr", "bad"), utcNow(), target);
    expect(r.code).not.toBe(0);
    const status = box.status("mariadb-pitr");
    expect(status.result).toBe("failed");
    expect(String(status.error)).toContain(`the shipped binlog ${file} does not match`);
    expect(status.phase).toBe("binlogs");
    // the binlogs are read while the full unpacks: the run stops there, before the prepare
    expect(Object.keys(phasesOf(status)).sort()).toEqual(["binlogs", "check", "restore"].sort());
    expect(r.stderr).not.toMatch(/]: replay: /);
  } finally {
    fs.writeFileSync(file, saved);
  }
  expect(fs.existsSync(target)).toBe(false);
});
