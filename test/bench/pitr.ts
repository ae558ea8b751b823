// npm run bench -- pitr: a week of the 2M-row database recovered to its last committed transaction,
// the seed's way and backup321's, in the same run; then a kill test of the database host.
//   week:     a full at day 0, then six "days" of writes, each changing 5 % of the order lines (in
//             5,000-row transactions: one region of the table a day, as a batch of orders moves on;
//             B321_BENCH_SCATTER=1 spreads them over every page instead) and inserting 1 % new
//             ones; the shipping job and an increment after each day.
//   seed:     openssl -d | gunzip | mysql of the logical full (source MariaDB §16.10.4) into a fresh
//             server, then mysqlbinlog of the six days from the dump's binlog position | mysql
//             (§16.10.5, given the exact position rather than a start time, to its advantage).
//   ours:     mariadb-pitr.sh to the same point, from the physical full, its newest increment and
//             the shipped binlogs after it.
//   Both results are compared with the source by CHECKSUM TABLE of every table at the target.
//   kill:     a writer commits numbered transactions and records each acknowledgement; the server
//             is killed (SIGKILL) at a random moment after a shipping run and its binlogs are lost
//             with the host; recovery uses what the other hosts hold. The acknowledged transactions
//             missing from it are counted, and the seconds of acknowledged writes lost.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import {
  awaitIdleFlush,
  flushDirtyPages,
  startMariaDb,
  type MariaDbServer,
} from "../harness/mariadb";
import { run, runAsync, waitFor } from "../harness/proc";
import { streamHost } from "../harness/stream";
import { fulls, startOn, type Install } from "../integration/mariadb-fixture";
import { benchInstall, build, DB, phases, SERVER_ARGS, seedDump, sh, timed } from "./db";

const ROWS = Number(process.env.B321_BENCH_ROWS ?? 2_000_000);
const DAYS = 6;
const CHUNK = 100_000;
const SCATTER = process.env.B321_BENCH_SCATTER === "1";
/** The longest the bench waits for a night's idle flushing (a real night lasts hours). */
const NIGHT_MS = 180_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const utc = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");

/**
 * One "day" of writes: 5 % of the order lines changed, 1 % new ones, in small transactions. The
 * changed lines are one region of the table (the day's sixth of it), or with SCATTER every
 * twentieth line, which changes every page: an increment is then as large as the full.
 */
function day(server: MariaDbServer, d: number): void {
  const statements: string[] = [];
  const changed = ROWS / 20;
  const from = Math.floor(((d - 1) * ROWS) / DAYS);
  if (SCATTER)
    for (let lo = 0; lo < ROWS; lo += CHUNK)
      statements.push(
        `UPDATE journal_commandes SET montant = montant + ${d}, statut = ELT(1 + (id + ${d}) MOD 4, 'nouvelle', 'payee', 'livree', 'annulee')
         WHERE id > ${lo} AND id <= ${lo + CHUNK} AND id MOD 20 = ${d};`,
      );
  else
    for (let lo = from; lo < from + changed; lo += 5000)
      statements.push(
        `UPDATE journal_commandes SET montant = montant + ${d}, statut = ELT(1 + (id + ${d}) MOD 4, 'nouvelle', 'payee', 'livree', 'annulee')
         WHERE id > ${lo} AND id <= ${lo + 5000};`,
      );
  const added = Math.ceil(ROWS / 100);
  const first = ROWS + (d - 1) * added;
  for (let lo = 0; lo < added; lo += 5000)
    statements.push(
      `INSERT INTO journal_commandes SELECT ${first} + seq, seq DIV 3, seq MOD 50021, (seq MOD 99991) / 7,
         '2026-06-01' + INTERVAL seq SECOND, 'nouvelle', CONCAT('jour ${d} ', MD5(seq))
         FROM seq_${lo + 1}_to_${Math.min(lo + 5000, added)};`,
    );
  server.sql(statements.join("\n"), DB);
}

/** CHECKSUM TABLE of every table of DB, as "table<TAB>checksum" lines. */
function checksums(sql: (q: string) => string, tables: readonly string[]): string {
  return sql(`CHECKSUM TABLE ${tables.map((t) => `${DB}.${t}`).join(", ")}`);
}

/** The binlog position the seed's dump recorded (--master-data=2). */
function dumpPosition(seedFile: string, keyFile: string): { file: string; pos: number } {
  const head = run("bash", [
    "-o",
    "pipefail",
    "-c",
    `openssl enc -aes-256-cbc -d -pbkdf2 -pass file:${keyFile} -in ${seedFile} | gunzip | head -n 40`,
  ]).stdout;
  const m = /MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)/.exec(head);
  if (!m) throw new Error("the seed's dump has no binlog position");
  return { file: m[1], pos: Number(m[2]) };
}

interface Ack {
  readonly n: number;
  readonly at: number;
}

/**
 * Commits numbered transactions one at a time through one client session, recording each
 * acknowledgement (the SELECT after the INSERT answers only once the INSERT has committed).
 */
function writer(server: MariaDbServer): { acks: Ack[]; stop: () => Promise<void> } {
  const client = spawn("mariadb", [...server.clientArgs(), "-N", "-B", "--unbuffered", DB], {
    stdio: ["pipe", "pipe", "ignore"],
  });
  const acks: Ack[] = [];
  let n = 0;
  let buffer = "";
  const next = () => {
    n += 1;
    client.stdin.write(`INSERT INTO acks VALUES (${n}, NOW(6)); SELECT ${n};\n`, () => undefined);
  };
  client.stdin.on("error", () => undefined);
  client.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    let i: number;
    while ((i = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, i).trim();
      buffer = buffer.slice(i + 1);
      if (line === String(n)) {
        acks.push({ n, at: Date.now() });
        next();
      }
    }
  });
  next();
  const exited = new Promise((r) => client.once("exit", r));
  return {
    acks,
    stop: async () => {
      client.stdin.destroy();
      client.kill("SIGKILL");
      await exited;
    },
  };
}

/** SIGKILL of the server's mariadbd: no shutdown, nothing flushed. */
function killServer(server: MariaDbServer): void {
  run("pkill", ["-KILL", "-f", `mariadbd.*--socket=${server.socket}`]);
}

interface KillResult {
  readonly acked: number;
  readonly lostTxn: number;
  readonly lostSeconds: number;
  readonly windowSeconds: number;
}

/** Whether the stream's open file holds everything the primary has written. */
function streamCaughtUp(server: MariaDbServer, dir: string): boolean {
  const [file, pos] = server.sql("SHOW MASTER STATUS").split("\t");
  const live = path.join(dir, "live", file);
  return fs.existsSync(live) && fs.statSync(live).size >= Number(pos);
}

/**
 * The kill test: a full, then either a shipping run (hourly shipping: the last one before the kill)
 * or the stream running and caught up; writes for a random 5 to 15 s, SIGKILL, the server's
 * binlogs gone with the host; recovery from the full and the shipped binlogs, or the streamed ones.
 */
async function killTest(
  server: MariaDbServer,
  box: Install,
  root: string,
  mode: "hourly" | "stream",
): Promise<KillResult> {
  server.sql(
    "CREATE TABLE IF NOT EXISTS acks (n INT PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB",
    DB,
  );
  server.sql("TRUNCATE TABLE acks", DB);
  const full = box.runScript("mariadb-full.sh", box.env("mariadb-full"));
  if (full.code !== 0) throw new Error(full.stderr);
  const pitrEnv = box.env("mariadb-pitr", {}, `kill-${mode}`);
  let stream: ReturnType<typeof runAsync> | undefined;
  if (mode === "hourly") {
    const ship = box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs"));
    if (ship.code !== 0) throw new Error(ship.stderr);
  } else {
    const host = streamHost(server, { lib: box.lib, keyFile: box.keyFile, root });
    stream = runAsync(path.join(box.lib, "mariadb-stream.sh"), [host.env]);
    await waitFor("the stream to catch up", () => streamCaughtUp(server, host.dir), 120_000);
    // PITR on the stream host: its files are the binlogs (the open one plain, the sealed ones)
    fs.appendFileSync(
      pitrEnv,
      `MARIADB_BINLOG_BACKUP_DIR=${host.dir}\nMARIADB_BINLOG_BASENAME=${path.join(host.dir, "live", path.basename(server.binlogBasename))}\n`,
    );
  }
  const windowMs = 5000 + Math.floor(Math.random() * 10_000);
  const w = writer(server);
  await sleep(windowMs);
  const killedAt = Date.now();
  killServer(server);
  await w.stop();
  if (stream) {
    // what reached the stream host before the kill is all there is: the stream ends by itself
    await sleep(2000);
    stream.kill("SIGTERM");
    await stream.done;
  }
  // the host is lost: its own binlogs with it
  const binlogs = path.dirname(server.binlogBasename);
  fs.renameSync(binlogs, `${binlogs}.lost`);
  const target = path.join(root, `kill-recovered-${mode}`);
  try {
    const r = box.pitr(pitrEnv, utc(Date.now() + 1000), target);
    if (r.code !== 0) throw new Error(r.stderr);
    const recovered = await startOn(target);
    let present: Set<number>;
    try {
      present = new Set(
        recovered
          .sql(`SELECT n FROM ${DB}.acks`)
          .trim()
          .split("\n")
          .filter((x) => x !== "")
          .map(Number),
      );
    } finally {
      await recovered.stop();
    }
    const lost = w.acks.filter((a) => !present.has(a.n));
    return {
      acked: w.acks.length,
      lostTxn: lost.length,
      lostSeconds: lost.length > 0 ? (killedAt - lost[0].at) / 1000 : 0,
      windowSeconds: windowMs / 1000,
    };
  } finally {
    // the host comes back for the next test: its binlogs, its server (crash recovery)
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(`${binlogs}.lost`, binlogs);
    await server.start();
  }
}

export async function run_(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-bench-pitr-"));
  fs.chmodSync(root, 0o755);
  const server = await startMariaDb({
    parent: root,
    extraArgs: SERVER_ARGS,
  });
  let seedServer: MariaDbServer | undefined;
  try {
    console.error(`building ${ROWS} rows ...`);
    timed("build", () => build(server));
    timed("flush dirty pages", () => flushDirtyPages(server));
    const { secrets, keyFile, box } = benchInstall(root, server);

    // day 0: both fulls
    const seedFile = path.join(root, "seed", `${DB}_full_seed.sql.gz.enc`);
    timed("day 0: seed full (mysqldump | gzip | openssl)", () =>
      seedDump(server, secrets, keyFile, seedFile, ["--master-data=2"]),
    );
    timed("day 0: backup321 full", () => {
      const r = box.runScript("mariadb-full.sh", box.env("mariadb-full"));
      if (r.code !== 0) throw new Error(r.stderr);
    });
    const shipEnv = box.env("mariadb-binlogs");
    const incrEnv = box.env("mariadb-incremental");
    for (let d = 1; d <= DAYS; d++)
      timed(`day ${d}: writes, shipping and an increment`, () => {
        day(server, d);
        const r = box.runScript("mariadb-binlogs.sh", shipEnv);
        if (r.code !== 0) throw new Error(r.stderr);
        // the night before the increment: the server flushes on its own (its settings are backup321's)
        const t0 = Date.now();
        const flushed = awaitIdleFlush(server, NIGHT_MS);
        console.error(
          `    idle until the increment: ${((Date.now() - t0) / 1000).toFixed(1)} s${flushed ? ", every dirty page flushed" : ", dirty pages left"}`,
        );
        const i = box.runScript("mariadb-incremental.sh", incrEnv);
        if (i.code !== 0) throw new Error(i.stderr);
      });
    // the target: just after the last committed transaction of day 6
    await sleep(1100);
    const until = utc(Date.now());
    await sleep(1100);
    const tables = server
      .sql(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = '${DB}' ORDER BY 1`,
      )
      .trim()
      .split("\n");
    const source = checksums((q) => server.sql(q), tables);
    const rows = Number(server.sql(`SELECT COUNT(*) FROM ${DB}.journal_commandes`).trim());

    // the seed's path into a fresh server
    seedServer = await startMariaDb({
      parent: root,
      extraArgs: SERVER_ARGS,
    });
    const s = seedServer;
    const start = dumpPosition(seedFile, keyFile);
    const binlogDir = path.dirname(server.binlogBasename);
    const files = fs
      .readdirSync(binlogDir)
      .filter((f) => /^mysql-bin\.\d+$/.test(f) && f >= start.file)
      .sort()
      .map((f) => path.join(binlogDir, f));
    s.sql(`CREATE DATABASE ${DB}`);
    const seedRestore = timed("seed restore (openssl -d | gunzip | mysql)", () =>
      sh(
        `openssl enc -aes-256-cbc -d -pbkdf2 -pass file:${keyFile} -in ${seedFile} | gunzip | mariadb --no-defaults --socket=${s.socket} -uroot ${DB}`,
      ),
    );
    const seedReplay = timed(`seed replay (mysqlbinlog of ${files.length} binlogs | mysql)`, () =>
      sh(
        `mariadb-binlog --start-position=${start.pos} ${files.join(" ")} | mariadb --no-defaults --socket=${s.socket} -uroot`,
      ),
    );
    const seedEqual = checksums((q) => s.sql(q), tables) === source;
    await s.stop();
    seedServer = undefined;

    // backup321's PITR to the same point
    const target = path.join(root, "recovered");
    const ours = timed("backup321 PITR (mariadb-pitr.sh)", () => {
      const r = box.pitr(box.env("mariadb-pitr", {}, "bench"), until, target);
      if (r.code !== 0) throw new Error(r.stderr);
    });
    const steps = phases(box.status("mariadb-pitr"));
    const recovered = await startOn(target);
    const oursEqual = checksums((q) => recovered.sql(q), tables) === source;
    await recovered.stop();
    fs.rmSync(target, { recursive: true, force: true });

    const rawMb = (f: string) =>
      (JSON.parse(fs.readFileSync(`${f}.manifest.json`, "utf8")).raw_bytes as number) / 1048576;
    const chain = `full ${rawMb(fulls(path.join(root, "backups"))[0]).toFixed(0)} MB, increments ${fulls(
      path.join(root, "backups"),
      "incr",
    )
      .map((f) => rawMb(f).toFixed(0))
      .join(" / ")} MB (raw)`;
    const hourly = await killTest(server, box, root, "hourly");
    const streamed = await killTest(server, box, root, "stream");
    const seed = seedRestore + seedReplay;
    console.log("");
    console.log(
      `seed: restore ${seedRestore.toFixed(1)} s + replay ${seedReplay.toFixed(1)} s; equal to the source: ${seedEqual ? "yes" : "NO"}`,
    );
    console.log(
      `backup321 PITR: ${ours.toFixed(1)} s (${steps}); equal to the source: ${oursEqual ? "yes" : "NO"}`,
    );
    console.log(
      `kill test, hourly shipping: killed ${hourly.windowSeconds.toFixed(1)} s after the last shipping run; ${hourly.acked} acknowledged, ${hourly.lostTxn} lost (${hourly.lostSeconds.toFixed(1)} s of writes)`,
    );
    console.log(
      `kill test, streaming: killed ${streamed.windowSeconds.toFixed(1)} s into the writes; ${streamed.acked} acknowledged, ${streamed.lostTxn} lost (${streamed.lostSeconds.toFixed(1)} s of writes)`,
    );
    console.log(
      `database: ${rows} order lines after ${DAYS} days (${SCATTER ? "scattered" : "clustered"} changes); ${chain}; ${os.cpus().length} cores`,
    );
    console.log(
      `pitr-bench rows=${rows} days=${DAYS} restore_vs_seed=${(ours / seed).toFixed(2)} lost_txn_stream=${streamed.lostTxn} lost_s_stream=${streamed.lostSeconds.toFixed(1)} lost_s_hourly=${hourly.lostSeconds.toFixed(1)}`,
    );
    if (!seedEqual || !oursEqual) process.exitCode = 1;
  } finally {
    await seedServer?.stop();
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export { run_ as run };
