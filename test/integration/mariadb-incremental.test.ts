// Incremental backups against a real MariaDB 10.11: the increments mariadb-incremental.sh takes
// (the pages changed since the newest full, verified like a full), the restore test and PITR that
// restore the full and the newest increment and replay only the binlogs after it, the fallback when
// increments are corrupt, and retention by chain.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expectFileContracts } from "../harness/contracts";
import { flushDirtyPages, startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run, runOk, waitFor } from "../harness/proc";
import { fulls, physicalInstall, seedSchema, startOn, type Install } from "./mariadb-fixture";

const DB = "atlastech_db";
let server: MariaDbServer;
let root: string;
let box: Install;
let fullEnv: string;
let incrEnv: string;
let shipEnv: string;
const backups = () => path.join(root, "backups");
const increments = () => fulls(backups(), "incr");

type Manifest = Record<string, unknown> & {
  file: string;
  raw_bytes: number;
  binlog_file: string;
  binlog_position: number;
};
const manifestOf = (file: string): Manifest =>
  JSON.parse(fs.readFileSync(`${file}.manifest.json`, "utf8"));

/** One "day" of writes: a few thousand rows changed, some inserted. */
function day(d: number): void {
  server.sql(
    `UPDATE journal SET msg = CONCAT('day ${d} ', LEFT(msg, 200)) WHERE id BETWEEN ${d * 3000} AND ${d * 3000 + 2000};
     INSERT INTO journal SELECT 100000 + ${d} * 1000 + seq, CONCAT('new ', ${d}) FROM seq_1_to_500;
     UPDATE clients SET nom = CONCAT(nom, '${d}') LIMIT 3;`,
    DB,
  );
}

const tables = () =>
  server
    .sql(`SELECT table_name FROM information_schema.tables WHERE table_schema = '${DB}' ORDER BY 1`)
    .trim()
    .split("\n");
const checksums = (sql: (q: string) => string) =>
  sql(
    `CHECKSUM TABLE ${tables()
      .map((t) => `${DB}.${t}`)
      .join(", ")}`,
  );

/** What the unpacks left in the run directory (their statuses and sha256 while they run). */
const unpackLeftovers = () =>
  fs.readdirSync(path.join(box.state, "runs")).filter((f) => f.includes(".unpack"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const utc = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");

/** PITR to just after now, checked against the source table by table. */
async function recoverNow(
  tag: string,
): Promise<{ r: ReturnType<Install["pitr"]>; equal: boolean }> {
  const ship = box.runScript("mariadb-binlogs.sh", shipEnv);
  expect(ship.stderr).not.toMatch(/FAILED/);
  expect(ship.code).toBe(0);
  await sleep(1100);
  const until = utc(Date.now());
  await sleep(1100);
  const target = path.join(root, `recovered-${tag}`);
  const r = box.pitr(box.env("mariadb-pitr", {}, tag), until, target);
  if (r.code !== 0) return { r, equal: false };
  const recovered = await startOn(target);
  try {
    return { r, equal: checksums(recovered.sql) === checksums((q) => server.sql(q)) };
  } finally {
    await recovered.stop();
    fs.rmSync(target, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  server = await startMariaDb();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-mdb-incr-"));
  fs.chmodSync(root, 0o755);
  server.sql(seedSchema(DB));
  server.sql(
    "CREATE TABLE journal (id INT PRIMARY KEY, msg VARCHAR(255)) ENGINE=InnoDB;" +
      "INSERT INTO journal SELECT seq, REPEAT(MD5(seq), 7) FROM seq_1_to_100000;",
    DB,
  );
  box = physicalInstall(root, server, DB, {
    backupDir: backups(),
    binlogBackupDir: path.join(root, "binlogs"),
    keepFulls: 1,
    timezone: "UTC",
  }).box;
  fullEnv = box.env("mariadb-full", { keepIncrementDays: 7 });
  incrEnv = box.env("mariadb-incremental", { keepIncrementDays: 7 });
  shipEnv = box.env("mariadb-binlogs");
}, 300_000);

afterAll(async () => {
  await server?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("without a full, the incremental job takes a full and says why", () => {
  // as at 02:00: the bulk load is in the data files, not in a redo backlog every backup would carry
  flushDirtyPages(server);
  const r = box.runScript("mariadb-incremental.sh", incrEnv);
  expect(r.stderr).toMatch(/taking a full instead of an increment: there is no full yet/);
  expect(r.code).toBe(0);
  const status = box.status("mariadb-incremental");
  expect(status).toMatchObject({ result: "success", level: "full" });
  expect(status.full_instead).toMatch(/no full yet/);
  expect(fulls(backups())).toHaveLength(1);
  expect(increments()).toHaveLength(0);
  expect(manifestOf(fulls(backups())[0]).to_lsn).toEqual(expect.any(Number));
}, 300_000);

test("an increment holds only the pages changed since the full, verified, and names its full", () => {
  const [full] = fulls(backups());
  day(1);
  const r = box.runScript("mariadb-incremental.sh", incrEnv);
  expect(r.code).toBe(0);
  const [incr] = increments();
  expect(path.basename(incr)).toMatch(/^atlastech_db_incr_\d{8}_\d{6}\.xb\.zst\.enc$/);
  const status = box.status("mariadb-incremental");
  expect(status).toMatchObject({
    result: "success",
    level: "incremental",
    base_full: path.basename(full),
    file: incr,
  });
  const m = manifestOf(incr);
  const f = manifestOf(full);
  expect(m).toMatchObject({
    format: "backup321-mariadb-incremental/1",
    verified: true,
    base_full: path.basename(full),
    from_lsn: f.to_lsn,
  });
  expect(m.to_lsn as number).toBeGreaterThanOrEqual(m.from_lsn as number);
  // the changed pages only: a small part of the full
  expect(m.raw_bytes).toBeLessThan(f.raw_bytes / 4);
  expectFileContracts(root);
}, 300_000);

test("a second increment builds on the full again; the restore test restores the full and the newest increment", () => {
  const [full] = fulls(backups());
  day(2);
  expect(box.runScript("mariadb-incremental.sh", incrEnv).code).toBe(0);
  const [first, second] = increments();
  expect(manifestOf(second)).toMatchObject({
    base_full: path.basename(full),
    from_lsn: manifestOf(first).from_lsn,
  });
  expect(manifestOf(second).raw_bytes).toBeLessThan(manifestOf(full).raw_bytes / 4);
  const r = box.runScript("mariadb-restore-test.sh", box.env("mariadb-restore-test"));
  expect(r.stderr).toMatch(/and its increment atlastech_db_incr_/);
  expect(r.code).toBe(0);
  expect(box.status("mariadb-restore-test")).toMatchObject({
    result: "success",
    file: full,
    increment: second,
  });
}, 300_000);

test("PITR restores the full and the newest increment, then replays only the binlogs after it", async () => {
  const [, second] = increments();
  day(3);
  const { r, equal } = await recoverNow("incr");
  expect(r.stderr).not.toMatch(/FAILED/);
  expect(r.code).toBe(0);
  const m = manifestOf(second);
  expect(r.stderr).toContain(`from ${m.binlog_file}:${m.binlog_position} `);
  expect(box.status("mariadb-pitr")).toMatchObject({ result: "success", increment: second });
  expect(equal).toBe(true);
}, 300_000);

test("PITR stopped while the full and the increment unpack (TERM to the script alone): the unpacks stop with it, nothing is left", async () => {
  const shims = fs.mkdtempSync(path.join(root, "unpack-shims-"));
  const hung = `b321-hung-mbstream-${path.basename(shims)}`;
  // mbstream takes nothing in: both unpacks wait on their pipes when the signal comes
  fs.writeFileSync(path.join(shims, "mbstream"), `#!/bin/bash\nexec -a ${hung} sleep 600\n`, {
    mode: 0o755,
  });
  const parent = path.join(root, "pitr-stopped");
  fs.mkdirSync(parent);
  const job = spawn(
    path.join(box.lib, "mariadb-pitr.sh"),
    [
      box.env("mariadb-pitr", {}, "stopped"),
      "--until",
      utc(Date.now()),
      "--tz",
      "UTC",
      "--target-datadir",
      `${parent}/db`,
    ],
    { env: { ...process.env, PATH: `${shims}:${process.env.PATH}` } },
  );
  let stderr = "";
  job.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => job.on("close", resolve));
  try {
    // both unpacks under way, and the binlogs read meanwhile: the run now only waits for them
    await waitFor(
      "both unpacks, the binlogs read",
      () =>
        run("pgrep", ["-c", "-f", hung]).stdout.trim() === "2" &&
        stderr.includes("phase binlogs: ended"),
      60_000,
    );
    job.kill("SIGTERM"); // as `kill PID` does: the script's own children get no signal
    expect(await exited).toBe(1);
  } finally {
    if (job.exitCode === null) job.kill("SIGKILL");
  }
  expect(stderr).toContain("finished: failed");
  expect(box.status("mariadb-pitr")).toMatchObject({
    result: "failed",
    error: "interrupted by signal TERM",
    phase: "restore",
  });
  expect(fs.readdirSync(parent)).toEqual([]);
  expect(unpackLeftovers()).toEqual([]);
  expect(run("pgrep", ["-f", hung]).code).toBe(1);
  expect(run("pgrep", ["-f", "openssl dgst -sha256 -r"]).code).toBe(1);
}, 120_000);

test("a restore that fills its disk fails naming mbstream: the intact full is not taken for a corrupt one", async () => {
  const disk = path.join(root, "small-target-disk");
  fs.mkdirSync(disk);
  // far less than the full unpacks to: mbstream stops, and the read with it, part way
  runOk("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", disk]);
  try {
    await sleep(1100);
    const r = box.pitr(box.env("mariadb-pitr", {}, "small-disk"), utc(Date.now()), `${disk}/db`);
    expect(r.code).not.toBe(0);
    const status = box.status("mariadb-pitr");
    expect(status.result).toBe("failed");
    expect(String(status.error)).toMatch(/^mbstream -x failed \(exit \d+\)/);
    expect(r.stderr).not.toMatch(/corrupt|differs from its manifest|falling back/);
    expect(fs.readdirSync(disk)).toEqual([]);
    expect(unpackLeftovers()).toEqual([]);
  } finally {
    runOk("umount", [disk]);
  }
}, 300_000);

test("corrupt increments: PITR falls back to the older one, then to the full and its binlogs, and says so", async () => {
  const [full] = fulls(backups());
  const [first, second] = increments();
  const corrupt = (file: string) => {
    const bytes = fs.readFileSync(file);
    const bad = Buffer.from(bytes);
    bad.write("CORRUPTED", Math.floor(bad.length / 2));
    fs.writeFileSync(file, bad);
    return bytes;
  };
  const saved = [corrupt(second)];
  try {
    day(4);
    const older = await recoverNow("older");
    expect(older.r.stderr).toMatch(/falling back to the older increment atlastech_db_incr_/);
    expect(older.r.code).toBe(0);
    const m1 = manifestOf(first);
    expect(older.r.stderr).toContain(`from ${m1.binlog_file}:${m1.binlog_position} `);
    expect(box.status("mariadb-pitr")).toMatchObject({
      result: "warning",
      increment: first,
      increment_skipped: path.basename(second),
    });
    expect(String(box.status("mariadb-pitr").error)).toContain(path.basename(second));
    expect(older.equal).toBe(true);

    saved.push(corrupt(first));
    day(5);
    const fallback = await recoverNow("full");
    expect(fallback.r.stderr).toMatch(
      /falling back to the full atlastech_db_full_\S+ and every binlog after it/,
    );
    expect(fallback.r.code).toBe(0);
    const mf = manifestOf(full);
    expect(fallback.r.stderr).toContain(`from ${mf.binlog_file}:${mf.binlog_position} `);
    const status = box.status("mariadb-pitr");
    expect(status.increment).toBeUndefined();
    expect(status.increment_skipped).toBe(`${path.basename(second)} ${path.basename(first)}`);
    expect(fallback.equal).toBe(true);
  } finally {
    fs.writeFileSync(second, saved[0]);
    if (saved[1]) fs.writeFileSync(first, saved[1]);
  }
}, 600_000);

test("PITR to just after an increment replays nothing and starts no server: the prepared datadir is the recovery", async () => {
  expect(box.runScript("mariadb-incremental.sh", incrEnv).code).toBe(0);
  const newest = increments().at(-1)!;
  const { r, equal } = await recoverNow("lazy");
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(
    /nothing to replay in \d+ binlog\(s\) from mysql-bin\.\d+:\d+ \(--stop-datetime=[^)]+\): the prepared datadir is the recovery/,
  );
  const status = box.status("mariadb-pitr");
  expect(status).toMatchObject({ result: "success", increment: newest, binlogs_replayed: 0 });
  expect(status.phase_start_seconds).toBeUndefined();
  expect(equal).toBe(true);
  // one small transaction after it: replayed into a started server, not skipped
  server.sql("INSERT INTO journal VALUES (999999, 'after the increment')", DB);
  const after = await recoverNow("one-row");
  expect(after.r.code).toBe(0);
  expect(after.r.stderr).toMatch(/replaying \d+ binlog\(s\) from mysql-bin\.\d+:\d+ /);
  expect(box.status("mariadb-pitr").phase_start_seconds).toEqual(expect.any(Number));
  expect(after.equal).toBe(true);
}, 300_000);

test("retention counts chains: a full stays while its increments do, and they go together", () => {
  const [full1] = fulls(backups());
  const chain = increments().length;
  const later = (days: number, env: string, script: string) =>
    run("faketime", ["-f", `+${days}d`, path.join(box.lib, script), env], {
      timeoutMs: 300_000,
      env: { ...process.env, FAKETIME_DONT_RESET: "1" },
    });
  // a day later, a new full: the kept count is 1, but the first full's increments are a day old
  const r1 = later(1, fullEnv, "mariadb-full.sh");
  expect(r1.code).toBe(0);
  expect(r1.stderr).toMatch(/keeping atlastech_db_full_\S+: increments of it are kept/);
  const after1 = fulls(backups());
  expect(after1).toHaveLength(2);
  expect(after1[0]).toBe(full1);
  expect(increments()).toHaveLength(chain);
  // nine days later: the chain's newest increment is older than 7 days, so it goes with its full
  const r2 = later(9, fullEnv, "mariadb-full.sh");
  expect(r2.code).toBe(0);
  expect(increments()).toHaveLength(0);
  const after2 = fulls(backups());
  expect(after2).toHaveLength(1);
  expect(after2[0]).not.toBe(full1);
  expect(after2[0]).not.toBe(after1[1]);
  expect(box.status("mariadb-full").removed).toBe(chain + 2);
}, 600_000);
