// The PITR drill against a real MariaDB 10.11: real fulls, real shipping runs between real writes
// (one of them while a writer keeps committing), each recording a checkpoint; the drill recovers a
// scratch instance to the newest checkpoint from the shipped copies and compares every table's
// checksum exactly. A damaged shipped binlog, and a change that never reached the binlog, each fail
// it with an alert, and leave neither a scratch datadir nor a server behind.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { expectFileContracts } from "../harness/contracts";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run } from "../harness/proc";
import { createBackupUser, physicalInstall, seedSchema, type Install } from "./mariadb-fixture";
import {
  checkpointSchema,
  contractProblems,
  parseHistoryLine,
} from "../../components/host/file-contracts";

const DB = "atlastech_db";
const DRILL = "mariadb-pitr-drill";
let server: MariaDbServer;
let root: string;
let box: Install;
let drillEnv: string;
let alerts: string;
const shipped = () => path.join(root, "binlogs");
const checkpointDir = () => path.join(shipped(), "checkpoints");
const scratch = () => path.join(root, "scratch");

type Checkpoint = Record<string, unknown> & {
  binlog_file: string;
  binlog_position: number;
  binlog_identity: string;
  gtid: string;
  tables: Record<string, number | string>;
};

/** The checkpoints the shipping wrote, oldest first (names start with their UTC stamp), decrypted
 * with the stack's key and checked against their contract. */
function checkpoints(): { name: string; body: Checkpoint }[] {
  if (!fs.existsSync(checkpointDir())) return [];
  return fs
    .readdirSync(checkpointDir())
    .sort()
    .map((name) => {
      expect(name).toMatch(/^\d{8}T\d{6}Z\.mysql-bin\.\d+\.\d{8}T\d{6}Z\.s1\.\d+\.json\.enc$/);
      const file = path.join(checkpointDir(), name);
      // encrypted like the shipped binlogs: nothing plain at rest beside them
      expect(fs.readFileSync(file).subarray(0, 8).toString()).toBe("Salted__");
      const r = run("openssl", [
        "enc",
        "-aes-256-cbc",
        "-d",
        "-pbkdf2",
        "-pass",
        `file:${box.keyFile}`,
        "-in",
        file,
      ]);
      expect(r.code).toBe(0);
      const body = JSON.parse(r.stdout) as Checkpoint;
      expect(contractProblems(checkpointSchema, body)).toEqual([]);
      return { name, body };
    });
}

/** CHECKSUM TABLE of every base table of DB on the live server, as the checkpoint keys them. */
function liveChecksums(): Record<string, number> {
  const tables = server
    .sql(
      `SELECT table_name FROM information_schema.tables WHERE table_schema='${DB}' AND table_type='BASE TABLE' AND engine='InnoDB' ORDER BY 1`,
    )
    .trim()
    .split("\n");
  const out = server.sql(`CHECKSUM TABLE ${tables.map((t) => `\`${DB}\`.\`${t}\``).join(", ")}`);
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .map((l) => l.split("\t"))
      .map(([t, v]) => [t, Number(v)]),
  );
}

function ship(): void {
  const r = box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs"));
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
}

const drill = () => box.runScript("mariadb-pitr-drill.sh", drillEnv);
const alertLines = () =>
  fs.existsSync(alerts) ? fs.readFileSync(alerts, "utf8").split("\n").filter(Boolean) : [];
/** What a drill may leave in the scratch directory: nothing (the directory itself may exist). */
const scratchLeft = () => (fs.existsSync(scratch()) ? fs.readdirSync(scratch()) : []);
/** mariadbd processes whose datadir is under the scratch directory. */
const scratchServers = () => run("pgrep", ["-f", `mariadbd.*--datadir=${scratch()}`]).stdout.trim();

beforeAll(async () => {
  server = await startMariaDb();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-mdb-drill-"));
  fs.chmodSync(root, 0o755);
  server.sql(seedSchema(DB, 0.2));
  // a table of an engine without consistent snapshots: recorded as skipped, never compared
  server.sql(
    `CREATE TABLE ${DB}.journal (id INT PRIMARY KEY, msg VARCHAR(40)) ENGINE=MyISAM;` +
      `INSERT INTO ${DB}.journal VALUES (1, 'un'), (2, 'deux');`,
  );
  ({ box } = physicalInstall(root, server, DB, {
    backupDir: path.join(root, "backups"),
    binlogBackupDir: shipped(),
    keepFulls: 2,
    timezone: "UTC",
  }));
  drillEnv = box.env(DRILL);
  alerts = path.join(root, "drill-alerts.log");
  const hook = path.join(root, "drill-alert.sh");
  fs.writeFileSync(hook, `#!/bin/sh\necho "$@" >> '${alerts}'\n`, { mode: 0o755 });
  fs.appendFileSync(drillEnv, `B321_ALERT=${hook}\n`);
  expect(box.runScript("mariadb-full.sh", box.env("mariadb-full")).code).toBe(0);
}, 300_000);

afterAll(async () => {
  await server?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("a drill before any checkpoint fails with an alert: nothing to compare is not a pass", () => {
  const r = drill();
  expect(r.code).toBe(1);
  const st = box.status(DRILL);
  expect(st.result).toBe("failed");
  expect(String(st.error)).toContain("no checkpoint after a full");
  expect(alertLines()).toEqual([`${DRILL} failed ${st.error}`]);
});

test("each shipping run records a checkpoint: its snapshot's position, GTID and every table's checksum", async () => {
  // clock seconds apart: the full, then each checkpoint (a checkpoint counts after a full only
  // when it began a second after the full was complete)
  await new Promise((r) => setTimeout(r, 1100));
  server.sql(
    `INSERT INTO ${DB}.commandes (client_id, total) SELECT 1, seq FROM seq_1_to_500;` +
      `UPDATE ${DB}.clients SET email = CONCAT('n', id, '@example.ma') WHERE id % 7 = 0;`,
    DB,
  );
  ship();
  server.sql(
    `DELETE FROM ${DB}.conges WHERE id % 3 = 0; INSERT INTO ${DB}.produits (nom, prix) VALUES ('neuf', 9.5);`,
  );
  ship();
  const cps = checkpoints();
  expect(cps).toHaveLength(2);
  const newest = cps[1].body;
  // nothing was written since the last run: the server's checksums now are the checkpoint's
  const live = liveChecksums();
  expect(Object.keys(live)).toHaveLength(8);
  expect(newest.tables).toEqual({
    ...live,
    [`${DB}.journal`]: "skipped: engine MyISAM has no consistent snapshot",
  });
  expect(cps[0].body.tables[`${DB}.conges`]).not.toBe(newest.tables[`${DB}.conges`]);
  expect(cps[0].body.tables[`${DB}.commandes`]).toBe(newest.tables[`${DB}.commandes`]);
  // its binlog is shipped, by the same run, and the GTID is the server's (no write since)
  expect(fs.existsSync(path.join(shipped(), `${newest.binlog_identity}.zst.enc`))).toBe(true);
  expect(newest.binlog_identity.startsWith(`${newest.binlog_file}.`)).toBe(true);
  expect(newest.gtid).toBe(server.sql("SELECT @@gtid_binlog_pos").trim());
  expect(cps[1].name).toBe(
    `${String(newest.time).replace(/[-:]/g, "")}.${newest.binlog_identity}.${newest.binlog_position}.json.enc`,
  );
  // no plain checkpoint left behind by the runs
  expect(fs.readdirSync(checkpointDir()).filter((f) => !f.endsWith(".json.enc"))).toEqual([]);
  expect(box.status("mariadb-binlogs").checkpoint).toBe(cps[1].name);
  expectFileContracts(root);
});

test("the drill recovers the newest checkpoint from the shipped copies and every checksum matches", () => {
  const before = alertLines().length;
  const r = drill();
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
  const st = box.status(DRILL);
  const newest = checkpoints().at(-1)!;
  expect(st).toMatchObject({
    result: "success",
    checkpoint: newest.name,
    tables: 8,
    tables_skipped: 1,
    phase: "compare",
  });
  expect(typeof st.restore_seconds).toBe("number");
  expect(Number(st.binlogs_replayed)).toBeGreaterThan(0);
  expect(r.stderr).toContain(`not compared: ${DB}.journal (skipped: engine MyISAM`);
  // stopped at the checkpoint's position, in its binlog
  expect(r.stderr).toMatch(
    /replaying \d+ binlog\(s\) from mysql-bin\.\d+:\d+ \(--stop-position=\d+\)/,
  );
  expect(r.stderr).toContain(`--stop-position=${newest.body.binlog_position}`);
  expect(alertLines().length).toBe(before);
  expect(scratchLeft()).toEqual([]);
  expect(scratchServers()).toBe("");
  // the run is in the host's history as a drill, with its measured restore time
  const month = fs
    .readdirSync(box.paths.history)
    .filter((f) => f.endsWith(".tsv"))
    .map((f) => fs.readFileSync(path.join(box.paths.history, f), "utf8"))
    .join("")
    .split("\n")
    .filter(Boolean)
    .map((l) => parseHistoryLine(l) as Record<string, string>)
    .filter((l) => l.job === DRILL);
  expect(month.at(-1)).toMatchObject({
    kind: "drill",
    result: "success",
    restore_seconds: String(st.restore_seconds),
  });
  expectFileContracts(root);
});

test("a checkpoint taken while a writer keeps committing is exact at its position", async () => {
  // a writer committing in a loop through the whole shipping run
  const writer = spawn(
    "bash",
    [
      "-c",
      `for i in $(seq 1 100000); do mariadb --no-defaults --socket='${server.socket}' -uroot ${DB} -e "INSERT INTO commandes (client_id, total) VALUES ($i, $i); UPDATE clients SET nom = CONCAT('w', $i) WHERE id = 1 + $i % 100" || exit 1; done`,
    ],
    { stdio: "ignore" },
  );
  try {
    await new Promise((r) => setTimeout(r, 1500));
    ship();
  } finally {
    writer.kill("SIGTERM");
    await new Promise((r) => writer.once("exit", r));
  }
  const newest = checkpoints().at(-1)!;
  // the writer went on after the snapshot: the live tables are no longer what it recorded
  expect(liveChecksums()[`${DB}.commandes`]).not.toBe(newest.body.tables[`${DB}.commandes`]);
  const r = drill();
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
  expect(box.status(DRILL)).toMatchObject({ checkpoint: newest.name, tables: 8 });
});

test("a damaged shipped binlog fails the drill with an alert, and nothing is left behind", () => {
  // the server still has the original binlog: the drill must read the shipped copy
  const newest = checkpoints().at(-1)!.body;
  const copy = path.join(shipped(), `${newest.binlog_identity}.zst.enc`);
  const saved = fs.readFileSync(copy);
  const bad = Buffer.from(saved);
  bad.write("CORRUPTED", Math.floor(bad.length / 2));
  fs.writeFileSync(copy, bad);
  const before = alertLines().length;
  try {
    const r = drill();
    expect(r.code).toBe(1);
    const st = box.status(DRILL);
    expect(st.result).toBe("failed");
    expect(String(st.error)).toContain(`the shipped binlog ${copy} does not match`);
    expect(alertLines().slice(before)).toEqual([`${DRILL} failed ${st.error}`]);
    expect(scratchLeft()).toEqual([]);
    expect(scratchServers()).toBe("");
  } finally {
    fs.writeFileSync(copy, saved);
  }
});

test("a change that never reached the binlog fails the drill on that table's checksum", async () => {
  await new Promise((r) => setTimeout(r, 1100));
  // written with binary logging off for the session: the server holds it, no binlog does
  server.sql(`SET sql_log_bin = 0; UPDATE ${DB}.salaires SET montant = montant + 1 WHERE id = 7;`);
  ship();
  const before = alertLines().length;
  const r = drill();
  expect(r.code).toBe(1);
  const st = box.status(DRILL);
  expect(st.result).toBe("failed");
  expect(st.phase).toBe("compare");
  const newest = checkpoints().at(-1)!;
  expect(st.checkpoint).toBe(newest.name);
  expect(String(st.error)).toMatch(
    new RegExp(
      `differs from what the server held then: ${DB}\\.salaires has checksum \\d+, the checkpoint recorded ${newest.body.tables[`${DB}.salaires`]}$`,
    ),
  );
  expect(alertLines().slice(before)).toEqual([`${DRILL} failed ${st.error}`]);
  expect(scratchLeft()).toEqual([]);
  expect(scratchServers()).toBe("");
  expectFileContracts(root);
});

test("tables above the size limit are recorded as skipped, not read", () => {
  const env = box.env("mariadb-binlogs", {}, "small");
  fs.appendFileSync(env, "MARIADB_CHECKPOINT_MAX_TABLE_MB=0\n");
  const r = box.runScript("mariadb-binlogs.sh", env);
  expect(r.code).toBe(0);
  const newest = checkpoints().at(-1)!.body;
  expect(newest.max_table_mb).toBe(0);
  for (const [t, v] of Object.entries(newest.tables)) {
    expect({ t, v }).toEqual({
      t,
      v: t.endsWith(".journal")
        ? "skipped: engine MyISAM has no consistent snapshot"
        : expect.stringMatching(/^skipped: 0 MiB, above the limit of 0 MiB$/),
    });
  }
});

test("a logical full: the drill recovers the dump and the binlogs of its one database, and compares the same way", async () => {
  const secrets = path.join(root, "etc", "secrets");
  createBackupUser(server, "backup_log", "Log0Pass", "logical", [DB], `${secrets}/log.cnf`);
  const o = {
    method: "logical" as const,
    compression: "gzip" as const,
    clientCnf: `${secrets}/log.cnf`,
    backupDir: path.join(root, "logical-backups"),
    binlogBackupDir: path.join(root, "logical-binlogs"),
  };
  expect(box.runScript("mariadb-full.sh", box.env("mariadb-full", o, "logical")).code).toBe(0);
  await new Promise((r) => setTimeout(r, 1100));
  server.sql(
    `INSERT INTO ${DB}.clients (nom, email) VALUES ('apres-logique', 'l@example.ma');` +
      `UPDATE ${DB}.produits SET prix = prix * 2 WHERE id % 5 = 0;`,
  );
  const ship = box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs", o, "logical"));
  expect(ship.stderr).toContain("finished: success");
  const env = box.env(DRILL, o, "logical");
  const r = box.runScript("mariadb-pitr-drill.sh", env);
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
  expect(box.status(DRILL)).toMatchObject({ result: "success", tables: 8, tables_skipped: 1 });
  expect(String(box.status(DRILL).file)).toMatch(/\.sql\.gz\.enc$/);
  expect(scratchLeft()).toEqual([]);
  expect(scratchServers()).toBe("");
});

test("a checkpoint goes when its binlog's copy goes (the drill could not replay to it)", () => {
  const before = checkpoints();
  const oldest = before[0];
  const copy = path.join(shipped(), `${oldest.body.binlog_identity}.zst.enc`);
  // the copy gone as pruning removes one, and the server's own binlog purged long ago
  const next = `mysql-bin.${String(Number(oldest.body.binlog_file.split(".")[1]) + 1).padStart(6, "0")}`;
  server.sql(`PURGE BINARY LOGS TO '${next}'`);
  fs.rmSync(copy);
  fs.rmSync(`${copy}.sha256`);
  ship();
  const after = checkpoints().map((c) => c.name);
  expect(after).not.toContain(oldest.name);
  // the others stay, and this run added its own
  expect(after.slice(0, -1)).toEqual(
    before.filter((c) => c.body.binlog_identity !== oldest.body.binlog_identity).map((c) => c.name),
  );
});
