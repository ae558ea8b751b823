// The MariaDB host scripts against a real MariaDB 10.11 on loopback: full backups (both methods),
// binlog shipping, restore tests, the seed's point-in-time recovery scenario, and the failures
// that must end non-zero with a failed status while the previous good backup stays untouched.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run, runAsync, waitFor } from "../harness/proc";
import {
  countsIn,
  createBackupUser,
  fingerprint,
  fulls,
  physicalInstall,
  keyFileFingerprint,
  seedSchema,
  startOn,
  tableCounts,
  type Install,
} from "./mariadb-fixture";
import { jobFiles } from "../../components/host/render";
import { parseHistoryLine } from "../../components/host/file-contracts";

const DB = "atlastech_db";
let server: MariaDbServer;
let root: string;
let box: Install;
let physEnv: string;
let logEnv: string;
const backups = () => path.join(root, "backups");

function manifestOf(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(`${file}.manifest.json`, "utf8"));
}

const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const shippedDir = () => path.join(root, "binlogs");

/** A shipped copy: <name>.<start>.s<server id>.zst.enc, as the shipper names it. */
interface Copy {
  readonly file: string;
  readonly name: string;
  readonly seq: number;
  readonly start: string;
}

function shippedCopies(dir = shippedDir()): Copy[] {
  return fs
    .readdirSync(dir)
    .map((f) => /^(mysql-bin\.(\d+))\.(\d{8}T\d{6}Z)\.s\d+\.zst\.enc$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ file: path.join(dir, m[0]), name: m[1], seq: Number(m[2]), start: m[3] }))
    .sort((a, b) => a.start.localeCompare(b.start) || a.seq - b.seq);
}

/** sha256 of a shipped copy once decrypted with the stack's key and decompressed. */
function openedSha(copy: string): string {
  const r = run("bash", [
    "-c",
    'openssl enc -aes-256-cbc -d -pbkdf2 -pass "file:$1" -in "$2" | zstd -d -q -c | sha256sum',
    "-",
    box.keyFile,
    copy,
  ]);
  expect(r.code).toBe(0);
  return r.stdout.split(" ")[0];
}

const sha256Of = (file: string) => run("sha256sum", [file]).stdout.split(" ")[0];
const serverBinlog = (name: string) => path.join(path.dirname(server.binlogBasename), name);

/** Changes bytes in the middle of a file, keeping its size; returns the original bytes. */
function corrupt(file: string): Buffer {
  const saved = fs.readFileSync(file);
  const bad = Buffer.from(saved);
  bad.write("CORRUPTED", Math.floor(bad.length / 2));
  fs.writeFileSync(file, bad);
  return saved;
}

/** Appends an alert hook that records "<job> <result> <message>" lines; returns the record's path. */
function recordAlerts(envFile: string, name: string): string {
  const alerts = path.join(root, `${name}-alerts.log`);
  const hook = path.join(root, `${name}-alert.sh`);
  fs.writeFileSync(hook, `#!/bin/sh\necho "$@" >> '${alerts}'\n`, { mode: 0o755 });
  fs.appendFileSync(envFile, `B321_ALERT=${hook}\n`);
  return alerts;
}

function expectFailed(r: { code: number; stderr: string }, job: string, error: RegExp): void {
  expect(r.code).not.toBe(0);
  const status = box.status(job);
  expect(status.result).toBe("failed");
  expect(String(status.error)).toMatch(error);
}

beforeAll(async () => {
  server = await startMariaDb();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-mdb-scripts-"));
  fs.chmodSync(root, 0o755);
  server.sql(seedSchema(DB));
  server.sql(
    "CREATE DATABASE bigdb; USE bigdb; CREATE TABLE bigdb.journal (id INT PRIMARY KEY, msg VARCHAR(255)) ENGINE=InnoDB;" +
      "INSERT INTO bigdb.journal SELECT seq, REPEAT(MD5(seq), 7) FROM seq_1_to_400000;",
  );
  const phys = physicalInstall(root, server, DB, {
    backupDir: backups(),
    binlogBackupDir: path.join(root, "binlogs"),
    keepFulls: 2,
    timezone: "Europe/Paris",
  });
  box = phys.box;
  const secrets = phys.secrets;
  createBackupUser(
    server,
    "backup_user",
    "Log1Pass",
    "logical",
    [DB, "bigdb"],
    `${secrets}/log.cnf`,
  );
  physEnv = box.env("mariadb-full");
  logEnv = box.env(
    "mariadb-full",
    { method: "logical", compression: "gzip", clientCnf: `${secrets}/log.cnf` },
    "logical",
  );
}, 300_000);

afterAll(async () => {
  await server?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("the backup users can read but cannot write, drop or create", () => {
  for (const cnf of ["phys.cnf", "log.cnf"]) {
    const as = (q: string) =>
      run("mariadb", [
        `--defaults-extra-file=${root}/etc/secrets/${cnf}`,
        `--socket=${server.socket}`,
        "-N",
        "-B",
        "-e",
        q,
      ]);
    expect(as(`SELECT COUNT(*) FROM ${DB}.employes`).stdout.trim()).toBe("300");
    for (const q of [
      `INSERT INTO ${DB}.employes (nom) VALUES ('x')`,
      `UPDATE ${DB}.employes SET nom = 'x'`,
      `DELETE FROM ${DB}.employes`,
      `DROP TABLE ${DB}.conges`,
      `CREATE TABLE ${DB}.pirate (id INT)`,
      `DROP DATABASE ${DB}`,
      "CREATE DATABASE pirate",
      "CREATE USER pirate@localhost",
    ]) {
      const r = as(q);
      expect({ q, code: r.code }).toEqual({ q, code: 1 });
      expect(r.stderr).toMatch(/denied/);
    }
  }
  expect(server.sql(`SELECT COUNT(*) FROM ${DB}.employes`).trim()).toBe("300");
});

test("physical full: verified, renamed, with a manifest of exact row counts and binlog position", () => {
  const r = box.runScript("mariadb-full.sh", physEnv);
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
  const [file] = fulls(backups());
  expect(path.basename(file)).toMatch(/^atlastech_db_full_\d{8}_\d{6}\.xb\.zst\.enc$/);
  const m = manifestOf(file);
  expect(m).toMatchObject({
    verified: true,
    method: "physical",
    compression: "zstd",
    databases: DB,
    sha256: run("sha256sum", [file]).stdout.split(" ")[0],
    bytes: fs.statSync(file).size,
  });
  expect(m.tables).toEqual(
    Object.fromEntries(
      Object.entries(tableCounts(server.sql, DB)).map(([t, n]) => [`${DB}.${t}`, n]),
    ),
  );
  expect(String(m.binlog_file)).toMatch(/^mysql-bin\.\d{6}$/);
  expect(m.binlog_position).toBeGreaterThan(0);
  expect(fs.readdirSync(backups()).filter((f) => f.includes("partial"))).toEqual([]);
  expect(box.status("mariadb-full")).toMatchObject({ result: "success", bytes: m.bytes });
});

test("logical gzip full is the seed's format: its documented decrypt | gunzip | mysql works by hand", () => {
  const r = box.runScript("mariadb-full.sh", logEnv);
  expect(r.code).toBe(0);
  const file = fulls(backups()).find((f) => f.endsWith(".sql.gz.enc"));
  expect(file).toBeDefined();
  expect(manifestOf(file!)).toMatchObject({ method: "logical", compression: "gzip" });
  server.sql("CREATE DATABASE seed_restore");
  const seedCmd = `openssl enc -aes-256-cbc -d -pbkdf2 -pass file:${box.keyFile} -in ${file} | gunzip | mariadb --no-defaults --socket=${server.socket} -uroot seed_restore`;
  expect(run("bash", ["-o", "pipefail", "-c", seedCmd]).code).toBe(0);
  expect(tableCounts(server.sql, "seed_restore")).toEqual(tableCounts(server.sql, DB));
  expect(server.sql("SHOW CREATE VIEW seed_restore.v_employes")).toContain("v_employes");
  expect(server.sql("SHOW TRIGGERS FROM seed_restore")).toContain("commandes_total");
  expect(server.sql("SHOW PROCEDURE STATUS WHERE Db = 'seed_restore'")).toContain("nb_commandes");
  expect(server.sql("SHOW EVENTS FROM seed_restore")).toContain("purge_conges");
  server.sql("DROP DATABASE seed_restore");
});

test("a full started in the second another was named in waits for the next one instead of failing", () => {
  // Both runs start their clock at the same second (faketime lets it run on from there), as a run
  // by hand right after cron's can, under the same lock.
  const at = new Date(Date.now() - 3_600_000)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "");
  const named: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = run("faketime", ["-f", `@${at}`, path.join(box.lib, "mariadb-full.sh"), logEnv], {
      // one clock for the whole run, its children included (not one restarted in each)
      env: { ...process.env, TZ: "UTC", FAKETIME_DONT_RESET: "1" },
      timeoutMs: 600_000,
    });
    expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
    named.push(String(box.status("mariadb-full").file));
  }
  // (retention may remove these two at once: they are the oldest by name)
  const stamps = named.map((f) => /_full_(\d{8}_\d{6})\./.exec(f)![1]);
  expect(stamps[1] > stamps[0]).toBe(true);
});

test("binlog shipping copies only closed binlogs, encrypted, verified, and ships each once", () => {
  const env = box.env("mariadb-binlogs");
  server.sql(`INSERT INTO ${DB}.clients (nom) VALUES ('after-full')`);
  const r = box.runScript("mariadb-binlogs.sh", env);
  expect(r.code).toBe(0);
  const active = server.sql("SHOW MASTER STATUS").split("\t")[0];
  const copies = shippedCopies();
  expect(copies.map((c) => c.name)).not.toContain(active);
  const closed = server
    .sql("SHOW BINARY LOGS")
    .trim()
    .split("\n")
    .map((l) => l.split("\t")[0])
    .filter((f) => f !== active);
  expect(copies.map((c) => c.name).sort()).toEqual(closed.sort());
  // Nothing plain at rest: only encrypted copies and their sums, no binlog header among them, and
  // the shipping's checkpoints, encrypted too.
  expect(fs.readdirSync(shippedDir()).filter((f) => !/\.zst\.enc(\.sha256)?$/.test(f))).toEqual([
    "checkpoints",
  ]);
  const checkpoints = fs.readdirSync(path.join(shippedDir(), "checkpoints"));
  expect(checkpoints.length).toBeGreaterThan(0);
  for (const f of checkpoints) {
    expect(f).toMatch(/\.json\.enc$/);
    const head = fs.readFileSync(path.join(shippedDir(), "checkpoints", f)).subarray(0, 8);
    expect(head.toString()).toBe("Salted__");
  }
  for (const c of copies) {
    expect(fs.readFileSync(c.file).subarray(0, 4).toString("hex")).not.toBe("fe62696e");
    const recorded = fs.readFileSync(`${c.file}.sha256`, "utf8").split(" ")[0];
    expect(sha256Of(c.file)).toBe(recorded);
    expect(openedSha(c.file)).toBe(sha256Of(serverBinlog(c.name)));
  }
  expect(box.status("mariadb-binlogs")).toMatchObject({
    result: "success",
    shipped: closed.length,
    newest: path.basename(copies.at(-1)!.file, ".zst.enc"),
  });
  const again = box.runScript("mariadb-binlogs.sh", env);
  expect(again.code).toBe(0);
  expect(box.status("mariadb-binlogs").shipped).toBe(1); // only the one the new flush closed
});

test("restore test restores the newest full into a scratch instance and checks every count", () => {
  const env = box.env("mariadb-restore-test");
  const r = box.runScript("mariadb-restore-test.sh", env);
  expect(r.stderr).toContain("restore test passed");
  expect(r.code).toBe(0);
  const s = box.status("mariadb-restore-test");
  const newest = fulls(backups()).at(-1)!;
  expect(s).toMatchObject({ result: "success", file: newest, tables: 8 });
  expect(typeof s.restore_seconds).toBe("number");
  expect(s.rows).toBe(Object.values(tableCounts(server.sql, DB)).reduce((a, b) => a + b, 0) - 1);
  // the run is in the host's history as a drill, with the restore time it measured
  const history = fs
    .readFileSync(path.join(box.paths.history, `${String(s.ended).slice(0, 7)}.tsv`), "utf8")
    .split("\n")
    .map(parseHistoryLine)
    .filter((l): l is Record<string, string> => typeof l !== "string");
  expect(history.at(-1)).toMatchObject({
    ended: s.ended,
    job: "mariadb-restore-test",
    kind: "drill",
    result: "success",
    restore_seconds: String(s.restore_seconds),
  });
  // the scratch instance is gone, the live server untouched
  expect(fs.readdirSync(path.join(root, "scratch"))).toEqual([]);
  expect(server.isUp()).toBe(true);
});

test("restore test of a physical full taken under writes replays the gap up to the counted position", async () => {
  const writer = runAsync("bash", [
    "-c",
    `for i in $(seq 1 200); do mariadb --no-defaults --socket=${server.socket} -uroot -e "INSERT INTO ${DB}.commandes (client_id, total) VALUES (1, $i)" || exit 1; done`,
  ]);
  const r = box.runScript("mariadb-full.sh", physEnv);
  await writer.done;
  expect(r.code).toBe(0);
  const test = box.runScript("mariadb-restore-test.sh", box.env("mariadb-restore-test"));
  expect(test.stderr).toContain("restore test passed");
  expect(test.code).toBe(0);
  const m = manifestOf(fulls(backups()).at(-1)!);
  const gap =
    `${m.binlog_file}:${m.binlog_position}` !==
    `${m.counted_binlog_file}:${m.counted_binlog_position}`;
  // When writes landed between the backup's position and the counts', the gap was replayed.
  const replayed = box.status("mariadb-restore-test").binlogs_replayed;
  if (gap) expect(Number(replayed)).toBeGreaterThan(0);
  else expect(replayed).toBeUndefined();
});

test("restore test fails when the restored data differs from the manifest", () => {
  const newest = fulls(backups()).at(-1)!;
  const manifest = `${newest}.manifest.json`;
  const original = fs.readFileSync(manifest, "utf8");
  fs.writeFileSync(
    manifest,
    original.replace(/("atlastech_db\.conges": )(\d+)/, (_, k, n) => `${k}${Number(n) + 1}`),
  );
  try {
    const r = box.runScript("mariadb-restore-test.sh", box.env("mariadb-restore-test"));
    expectFailed(
      r,
      "mariadb-restore-test",
      /atlastech_db\.conges has \d+ rows, the manifest recorded \d+/,
    );
  } finally {
    fs.writeFileSync(manifest, original);
  }
});

test("the seed's PITR scenario: rows deleted at 14:30, restored to 14:29, come back exactly", async () => {
  // A full now, then changes stamped one hour later (inserts) and two hours later (the accident).
  expect(box.runScript("mariadb-full.sh", physEnv).code).toBe(0);
  const t0 = Math.floor(Date.now() / 1000);
  server.sql(
    `SET timestamp = ${t0 + 3600}; INSERT INTO ${DB}.employes (nom) SELECT CONCAT('embauche-', seq) FROM seq_1_to_25;` +
      `SET timestamp = ${t0 + 5400}; UPDATE ${DB}.salaires SET montant = montant + 100 WHERE employe_id <= 10;`,
    DB,
  );
  const before = tableCounts(server.sql, DB);
  const salaries = server.sql(`SELECT SUM(montant) FROM ${DB}.salaires`);
  server.sql(`SET timestamp = ${t0 + 7200}; DELETE FROM ${DB}.commandes WHERE id <= 1500;`);
  expect(tableCounts(server.sql, DB).commandes).toBe(before.commandes - 1500);
  // "14:29": one minute before the accident, written in the site's zone (Europe/Paris).
  const until = new Date((t0 + 7200 - 60) * 1000)
    .toLocaleString("sv-SE", { timeZone: "Europe/Paris" })
    .replace("T", " ");
  const target = path.join(root, "pitr-target");
  const r = box.pitr(box.env("mariadb-pitr"), until, target, "Europe/Paris");
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
  const restored = await startOn(target);
  try {
    expect(tableCounts(restored.sql, DB)).toEqual(before);
    expect(restored.sql(`SELECT SUM(montant) FROM ${DB}.salaires`)).toBe(salaries);
  } finally {
    await restored.stop();
  }
  // The same moment read as UTC is an hour off: the accident would be replayed.
  const wrongZone = path.join(root, "pitr-utc");
  expect(box.pitr(box.env("mariadb-pitr"), until, wrongZone).code).toBe(0);
  const utc = await startOn(wrongZone);
  try {
    expect(tableCounts(utc.sql, DB).commandes).toBe(before.commandes - 1500);
  } finally {
    await utc.stop();
  }
});

test("PITR of a logical full into a running server (--target-socket)", async () => {
  expect(box.runScript("mariadb-full.sh", logEnv).code).toBe(0);
  const t0 = Math.floor(Date.now() / 1000);
  server.sql(`SET timestamp = ${t0 + 3600}; INSERT INTO ${DB}.produits (nom) VALUES ('nouveau');`);
  const before = tableCounts(server.sql, DB);
  server.sql(`SET timestamp = ${t0 + 7200}; DELETE FROM ${DB}.produits;`);
  const other = await startMariaDb();
  try {
    const until = new Date((t0 + 7140) * 1000).toISOString().slice(0, 19).replace("T", " ");
    const r = box.runScript(
      "mariadb-pitr.sh",
      box.env("mariadb-pitr", { method: "logical" }, "l"),
      ["--until", until, "--tz", "UTC", "--target-socket", other.socket],
    );
    expect(r.stderr).toContain("finished: success");
    expect(tableCounts(other.sql, DB)).toEqual(before);
  } finally {
    await other.stop();
  }
});

describe("a failed PITR leaves nothing at the target: only a complete datadir gets its name", () => {
  const now = () => new Date().toISOString().slice(0, 19).replace("T", " ");

  test("the full restored, then no binlog to replay: failed, and no datadir appears", () => {
    const parent = path.join(root, "pitr-nobinlogs");
    const shipped = path.join(root, "no-shipped-binlogs");
    fs.mkdirSync(shipped);
    const env = box.env("mariadb-pitr", { binlogBackupDir: shipped }, "nobinlogs");
    // The server's own binlogs out of reach too: the replay that follows the full finds nothing.
    fs.appendFileSync(env, `MARIADB_BINLOG_BASENAME=${root}/no-server-binlogs/mysql-bin\n`);
    const r = box.pitr(env, now(), `${parent}/db`);
    expect(r.stderr).toMatch(/restoring .*_full_/);
    expectFailed(
      r,
      "mariadb-pitr",
      /binlog mysql-bin\.\d+ \(the full's, started \d{8}T\d{6}Z\) is in neither .* nor the server's binlogs/,
    );
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  test("interrupted by Ctrl-C during the replay: failed, the scratch server stopped, no datadir", async () => {
    const parent = path.join(root, "pitr-interrupted");
    const shims = path.join(root, "pitr-shims");
    const reached = path.join(shims, "replay-started");
    fs.mkdirSync(shims);
    // mariadb-binlog hangs once the scratch server runs (the binlogs were read before, while the
    // full unpacked), so the interrupt lands while the restored full waits for its replay.
    const real = run("bash", ["-c", "command -v mariadb-binlog"]).stdout.trim();
    fs.writeFileSync(
      path.join(shims, "mariadb-binlog"),
      `#!/bin/bash
if pgrep -f -- '--datadir=${parent}/db.partial' >/dev/null; then touch '${reached}'; exec sleep 600; fi
exec '${real}' "$@"
`,
      { mode: 0o755 },
    );
    const job = spawn(
      path.join(box.lib, "mariadb-pitr.sh"),
      [
        box.env("mariadb-pitr"),
        "--until",
        now(),
        "--tz",
        "UTC",
        "--target-datadir",
        `${parent}/db`,
      ],
      { env: { ...process.env, PATH: `${shims}:${process.env.PATH}` }, detached: true },
    );
    let stderr = "";
    job.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => job.on("close", resolve));
    try {
      await waitFor("the replay to start", () => fs.existsSync(reached), 300_000);
      process.kill(-job.pid!, "SIGINT"); // Ctrl-C: the terminal signals the whole process group
      expect(await exited).toBe(1);
    } finally {
      if (job.exitCode === null) process.kill(-job.pid!, "SIGKILL");
    }
    expect(stderr).toContain("finished: failed");
    expect(box.status("mariadb-pitr")).toMatchObject({
      result: "failed",
      error: "interrupted by signal INT",
    });
    expect(fs.readdirSync(parent)).toEqual([]);
    expect(run("pgrep", ["-f", "--", `--datadir=${parent}/`]).code).toBe(1);
  });

  test("a wrong command line is a usage error: exit 2, the synopsis, no status, no alert", () => {
    const statusFile = jobFiles(box.paths, "mariadb-pitr").statusFile;
    const before = fs.readFileSync(statusFile, "utf8");
    const alerts = path.join(root, "pitr-usage-alerts");
    const hook = path.join(root, "pitr-usage-alert.sh");
    fs.writeFileSync(hook, `#!/bin/sh\necho "$@" >> '${alerts}'\n`, { mode: 0o755 });
    const env = box.env("mariadb-pitr", {}, "usage");
    fs.appendFileSync(env, `B321_ALERT=${hook}\n`);
    const to = ["--target-datadir", `${root}/pitr-usage`];
    for (const args of [
      [],
      ["--until"],
      ["--until", "2026-02-09", ...to],
      ["--until", "2026-02-30 14:29:00", ...to],
      ["--until", "2026-02-09 14:29:00", "--tz", "Mars/Olympus", ...to],
      ["--until", "2026-02-09 14:29:00", "--target-datadir", "relative/dir"],
      ["--until", "2026-02-09 14:29:00", ...to, "--target-socket", server.socket],
      ["--until", "2026-02-09 14:29:00", ...to, "--bogus"],
    ]) {
      const r = box.runScript("mariadb-pitr.sh", env, args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(
        "; b321-mariadb-pitr --until 'YYYY-MM-DD HH:MM:SS' [--tz ZONE] (--target-datadir DIR",
      );
    }
    expect(fs.readFileSync(statusFile, "utf8")).toBe(before);
    expect(fs.existsSync(alerts)).toBe(false);
    expect(fs.existsSync(`${root}/pitr-usage`)).toBe(false);
  });
});

describe("failures end non-zero, with a failed status, and leave the previous good backup alone", () => {
  let good: string[];
  let prints: string[];
  beforeEach(() => {
    good = fulls(backups());
    prints = good.map(fingerprint);
    expect(good.length).toBeGreaterThan(0);
  });
  afterEach(() => {
    expect(fulls(backups())).toEqual(good);
    expect(good.map(fingerprint)).toEqual(prints);
    expect(
      fs.readdirSync(backups()).filter((f) => f.includes("partial") || f.startsWith(".b321")),
    ).toEqual([]);
  });

  test("dump killed mid-way", async () => {
    const env = box.env(
      "mariadb-full",
      {
        method: "logical",
        clientCnf: `${root}/etc/secrets/log.cnf`,
        databases: [DB, "bigdb"],
        compression: "gzip",
      },
      "big",
    );
    const job = runAsync(path.join(box.lib, "mariadb-full.sh"), [env]);
    let pid = 0;
    await waitFor(
      "mariadb-dump to start",
      () => {
        const r = run("pgrep", [
          "-f",
          `mariadb-dump --defaults-extra-file=${root}/etc/secrets/log.cnf`,
        ]);
        pid = Number(r.stdout.trim().split("\n")[0]);
        return r.code === 0 && pid > 0;
      },
      30_000,
    );
    process.kill(pid, "SIGKILL");
    const r = await job.done;
    expectFailed(r, "mariadb-full", /mariadb-dump failed/);
  });

  // The physical full is checked as it is written: a stream damaged between mariadb-backup and
  // the file (here by a wrapper on PATH that still exits 0) fails the run, and no full, partial
  // or scratch file stays.
  test.each([
    [
      "with a byte changed",
      "sed 's/full-backuped/full-backupex/'",
      /checksum mismatch \(corrupted\)/,
    ],
    ["cut short", "head -c 300000", /\(truncated\)/],
  ])("physical stream %s on its way: caught in the same pass", (_what, filter, error) => {
    const shims = fs.mkdtempSync(path.join(root, "xb-shims-"));
    const real = run("bash", ["-c", "command -v mariadb-backup"]).stdout.trim();
    fs.writeFileSync(
      path.join(shims, "mariadb-backup"),
      `#!/bin/bash\n'${real}' "$@" | ${filter}\n`,
      { mode: 0o755 },
    );
    const r = run(path.join(box.lib, "mariadb-full.sh"), [physEnv], {
      env: { ...process.env, PATH: `${shims}:${process.env.PATH}` },
    });
    expectFailed(r, "mariadb-full", error);
    expect(String(box.status("mariadb-full").error)).toMatch(/^verify: the xbstream check failed/);
  });

  test("wrong key", () => {
    const wrong = path.join(root, "etc", "secrets", "wrong.key");
    fs.writeFileSync(wrong, "not-the-key\n", { mode: 0o600 });
    const r = box.runScript(
      "mariadb-restore-test.sh",
      box.env("mariadb-restore-test", { keyFile: wrong }, "wrongkey"),
    );
    expectFailed(r, "mariadb-restore-test", /wrong\.key is not the stack's encryption key/);
  });

  test("every full corrupted", () => {
    const saved = good.map(corrupt);
    try {
      const r = box.runScript("mariadb-restore-test.sh", box.env("mariadb-restore-test"));
      expectFailed(
        r,
        "mariadb-restore-test",
        new RegExp(
          `^no intact full backup in ${reEscape(backups())}: (.*; )?${reEscape(good[0])}: sha256 [0-9a-f]{64} differs from its manifest`,
        ),
      );
    } finally {
      good.forEach((f, i) => fs.writeFileSync(f, saved[i]));
    }
  });

  test("server down", async () => {
    await server.kill();
    try {
      expectFailed(box.runScript("mariadb-full.sh", physEnv), "mariadb-full", /does not answer/);
      expectFailed(
        box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs")),
        "mariadb-binlogs",
        /does not answer/,
      );
    } finally {
      await server.start();
    }
  });

  test("a second run while one is running", () => {
    const lock = path.join(box.paths.locks, "mariadb-full.lock");
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    const r = run("flock", [lock, path.join(box.lib, "mariadb-full.sh"), physEnv]);
    expectFailed(r, "mariadb-full", /another run holds the lock/);
  });
});

test("retention keeps the configured count of verified fulls, newest included", () => {
  const r = box.runScript("mariadb-full.sh", physEnv);
  expect({ code: r.code, stderr: r.code ? r.stderr : "" }).toEqual({ code: 0, stderr: "" });
  const all = fulls(backups());
  expect(all).toHaveLength(2);
  expect(box.status("mariadb-full").file).toBe(all.at(-1));
});

test("shipped binlogs are pruned only when older than the oldest kept full and the configured days", () => {
  const oldest = fulls(backups())[0];
  const need = String(manifestOf(oldest).binlog_identity);
  expect(need).toMatch(/^mysql-bin\.\d+\.\d{8}T\d{6}Z\.s\d+$/);
  const ids = () => shippedCopies().map((c) => path.basename(c.file, ".zst.enc"));
  const initial = ids();
  // Recent copies stay whatever the fulls say (MARIADB_BINLOG_KEEP_DAYS = 7).
  expect(box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs")).code).toBe(0);
  const before = ids();
  expect(before.slice(0, initial.length)).toEqual(initial);
  const at = before.indexOf(need);
  expect(at).toBeGreaterThan(0);
  // Old copies go, except those the oldest kept full needs.
  for (const f of fs.readdirSync(shippedDir()))
    run("touch", ["-d", "30 days ago", path.join(shippedDir(), f)]);
  expect(box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs")).code).toBe(0);
  const after = ids();
  expect(after[0]).toBe(need);
  expect(box.status("mariadb-binlogs").pruned).toBe(at);
  expect(fs.existsSync(path.join(shippedDir(), `${before[at - 1]}.zst.enc.sha256`))).toBe(false);
});

describe("a corrupt full is never relied on: skipped with an alert, never counted, never deleted", () => {
  const dir = () => path.join(root, "corrupt-fulls");
  const env = (job: string) => box.env(job, { backupDir: dir(), keepFulls: 2 }, "corrupt");
  const utcNow = () => new Date().toISOString().slice(0, 19).replace("T", " ");
  let older = "";
  let bad = "";

  test("the restore test tests the newest intact full and alerts naming the corrupt newer one", () => {
    expect(box.runScript("mariadb-full.sh", env("mariadb-full")).code).toBe(0);
    server.sql(`INSERT INTO ${DB}.clients (nom) VALUES ('between-fulls')`);
    expect(box.runScript("mariadb-full.sh", env("mariadb-full")).code).toBe(0);
    [older, bad] = fulls(dir());
    expect(bad).toBeDefined();
    corrupt(bad);
    const rtEnv = env("mariadb-restore-test");
    const alerts = recordAlerts(rtEnv, "corrupt-rt");
    const r = box.runScript("mariadb-restore-test.sh", rtEnv);
    // the newest is hashed as its restore reads it: the mismatch stops that restore, not the test
    expect(r.stderr).toMatch(
      new RegExp(`${reEscape(path.basename(bad))} is corrupt \\(sha256 [0-9a-f]{64} differs`),
    );
    expect(r.stderr).toContain("restore test passed");
    expect(r.code).toBe(0);
    const s = box.status("mariadb-restore-test");
    expect(s).toMatchObject({ result: "warning", file: older });
    expect(String(s.error)).toMatch(
      new RegExp(`${reEscape(bad)}: sha256 [0-9a-f]{64} differs from its manifest`),
    );
    expect(fs.readFileSync(alerts, "utf8")).toContain(`mariadb-restore-test warning ${s.error}`);
    expect(fs.existsSync(bad)).toBe(true);
  });

  test("PITR falls back to the newest intact full, says so, and replays the binlogs from it", async () => {
    server.sql(`INSERT INTO ${DB}.clients (nom) VALUES ('after-fulls')`);
    const want = tableCounts(server.sql, DB);
    await new Promise((r) => setTimeout(r, 1100));
    const target = path.join(root, "pitr-fallback");
    const r = box.pitr(env("mariadb-pitr"), utcNow(), target);
    expect(r.stderr).toContain(
      `${path.basename(bad)} is not intact: restoring the newest intact full before it, ${path.basename(older)}`,
    );
    expect(r.stderr).toContain("finished: warning");
    expect(r.code).toBe(0);
    expect(box.status("mariadb-pitr")).toMatchObject({ result: "warning", file: older });
    expect(await countsIn(target, DB)).toEqual(want);
  });

  test("PITR --full NAME: unknown is a usage error, a corrupt one fails naming it, an intact one is used", () => {
    const pitr = (full: string, target: string) =>
      box.runScript("mariadb-pitr.sh", env("mariadb-pitr"), [
        "--until",
        utcNow(),
        "--tz",
        "UTC",
        "--full",
        full,
        "--target-datadir",
        path.join(root, target),
      ]);
    const statusFile = jobFiles(box.paths, "mariadb-pitr").statusFile;
    const before = fs.readFileSync(statusFile, "utf8");
    const unknown = pitr("atlastech_db_full_20000101_000000.xb.zst.enc", "pitr-unknown");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      `usage: no full named atlastech_db_full_20000101_000000.xb.zst.enc in ${dir()}`,
    );
    expect(fs.readFileSync(statusFile, "utf8")).toBe(before);
    expectFailed(
      pitr(path.basename(bad), "pitr-named-bad"),
      "mariadb-pitr",
      new RegExp(`${reEscape(bad)}: sha256 [0-9a-f]{64} differs from its manifest`),
    );
    expect(fs.existsSync(path.join(root, "pitr-named-bad"))).toBe(false);
    const named = pitr(path.basename(older), "pitr-named");
    expect(named.stderr).toContain("finished: success");
    expect(box.status("mariadb-pitr")).toMatchObject({ result: "success", file: older });
  });

  test("retention keeps the configured count of intact fulls and leaves the corrupt one in place", () => {
    // keepFulls 2: older and the new one are the two kept; the corrupt one neither counts nor goes.
    const fullEnv = env("mariadb-full");
    const alerts = recordAlerts(fullEnv, "corrupt-full");
    expect(box.runScript("mariadb-full.sh", fullEnv).code).toBe(0);
    const [, , newest] = fulls(dir());
    expect(fulls(dir())).toEqual([older, bad, newest]);
    const s = box.status("mariadb-full");
    expect(s).toMatchObject({ result: "warning", file: newest, removed: 0 });
    expect(String(s.error)).toContain(`${bad}: sha256`);
    expect(fs.readFileSync(alerts, "utf8")).toContain(`mariadb-full warning ${s.error}`);
    // One more: two newer intact fulls, so older goes; the corrupt one stays for inspection.
    expect(box.runScript("mariadb-full.sh", fullEnv).code).toBe(0);
    expect(fulls(dir())).toEqual([bad, newest, fulls(dir()).at(-1)]);
    expect(box.status("mariadb-full")).toMatchObject({ result: "warning", removed: 1 });
  });
});

describe("a key file that is not the stack's key stops every job that encrypts or decrypts", () => {
  const dir = () => path.join(root, "key-changed");
  const env = (job: string) => box.env(job, { backupDir: dir() }, "keychanged");

  test("the manifest records the fingerprint of the key the full was encrypted with", () => {
    expect(box.runScript("mariadb-full.sh", env("mariadb-full")).code).toBe(0);
    const [file] = fulls(dir());
    expect(manifestOf(file).key_fingerprint).toBe(keyFileFingerprint(box.keyFile));
  });

  test("another key in the key file: full, restore test and PITR fail naming it, nothing is written", () => {
    const good = fulls(dir());
    const saved = fs.readFileSync(box.keyFile);
    fs.writeFileSync(box.keyFile, run("openssl", ["rand", "-base64", "32"]).stdout);
    const error = new RegExp(
      `^${reEscape(box.keyFile)} is not the stack's encryption key \\(fingerprint [0-9a-f]{64}, the stack's is ${keyFingerprintOf(saved)}\\): .*put the stack's key back`,
    );
    try {
      expectFailed(box.runScript("mariadb-full.sh", env("mariadb-full")), "mariadb-full", error);
      expectFailed(
        box.runScript("mariadb-restore-test.sh", env("mariadb-restore-test")),
        "mariadb-restore-test",
        error,
      );
      const target = path.join(root, "pitr-keychanged");
      expectFailed(
        box.runScript("mariadb-pitr.sh", env("mariadb-pitr"), [
          "--until",
          new Date().toISOString().slice(0, 19).replace("T", " "),
          "--target-datadir",
          target,
        ]),
        "mariadb-pitr",
        error,
      );
      expect(fs.existsSync(target)).toBe(false);
      expect(fulls(dir())).toEqual(good);
      expect(fs.readdirSync(dir()).filter((f) => !good.includes(path.join(dir(), f)))).toEqual(
        good.map((f) => `${path.basename(f)}.manifest.json`),
      );
    } finally {
      fs.writeFileSync(box.keyFile, saved);
    }
    expect(box.runScript("mariadb-full.sh", env("mariadb-full")).code).toBe(0);
  });
});

describe("a rebuilt server numbers its binlogs from 000001 again: shipping and PITR follow identities", () => {
  const fullsDir = () => path.join(root, "reuse-fulls");
  const copiesDir = () => path.join(root, "reuse-binlogs");
  const env = (job: string) =>
    box.env(job, { backupDir: fullsDir(), binlogBackupDir: copiesDir(), keepFulls: 2 }, "reuse");
  const ship = () =>
    expect(box.runScript("mariadb-binlogs.sh", env("mariadb-binlogs")).code).toBe(0);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let old: Map<string, string>;
  let before: Record<string, number>;
  let until = "";

  test("the old history's copies are never overwritten by the new server's same names", async () => {
    expect(box.runScript("mariadb-full.sh", env("mariadb-full")).code).toBe(0);
    server.sql(`INSERT INTO ${DB}.clients (nom) VALUES ('old-history')`);
    ship();
    before = tableCounts(server.sql, DB);
    await sleep(1100);
    until = new Date().toISOString().slice(0, 19).replace("T", " ");
    await sleep(1100);
    old = new Map(shippedCopies(copiesDir()).map((c) => [c.file, sha256Of(c.file)]));
    // The rebuild: the server's binlogs start again at 000001, the data moves on.
    server.sql("RESET MASTER");
    server.sql(`DELETE FROM ${DB}.commandes WHERE id <= 100; FLUSH BINARY LOGS;`);
    server.sql(`INSERT INTO ${DB}.clients (nom) VALUES ('new-history'); FLUSH BINARY LOGS;`);
    ship();
    const copies = shippedCopies(copiesDir());
    for (const [file, sha] of old) expect({ file, sha: sha256Of(file) }).toEqual({ file, sha });
    const reused = copies.filter((c) => !old.has(c.file));
    expect(reused.map((c) => c.name)).toEqual([1, 2, 3].map((n) => `mysql-bin.00000${n}`));
    const oldNames = [...old.keys()].map((f) => path.basename(f).split(".").slice(0, 2).join("."));
    expect(oldNames).toContain("mysql-bin.000001");
  });

  test("PITR from the old history's full replays the old history only, and comes back exact", async () => {
    const target = path.join(root, "pitr-reuse");
    const r = box.pitr(env("mariadb-pitr"), until, target);
    expect(r.stderr).toContain("finished: success");
    expect(await countsIn(target, DB)).toEqual(before);
  });

  test("pruning keeps every copy the old full needs, whatever the new history's numbers", () => {
    expect(box.runScript("mariadb-full.sh", env("mariadb-full")).code).toBe(0);
    const [oldest] = fulls(fullsDir());
    const need = String(manifestOf(oldest).binlog_identity);
    for (const f of fs.readdirSync(copiesDir()))
      run("touch", ["-d", "30 days ago", path.join(copiesDir(), f)]);
    ship();
    const left = shippedCopies(copiesDir()).map((c) => path.basename(c.file, ".zst.enc"));
    expect(left[0]).toBe(need);
    // The old history from the full's binlog on, then the whole new one.
    const oldIds = [...old.keys()].map((f) => path.basename(f, ".zst.enc"));
    expect(left.slice(0, oldIds.length - oldIds.indexOf(need))).toEqual(
      oldIds.slice(oldIds.indexOf(need)),
    );
    expect(left.some((id) => id.startsWith("mysql-bin.000001.") && id !== oldIds[0])).toBe(true);
  });
});

function keyFingerprintOf(key: Buffer): string {
  const file = path.join(root, "key-copy");
  fs.writeFileSync(file, key, { mode: 0o600 });
  return keyFileFingerprint(file);
}
