// npm run bench -- db: the seed's backup pipeline against this project's, on one database of 2M+
// rows (~350 MB InnoDB) in a local MariaDB 10.11, all timed in the same run.
//   seed backup:   mysqldump | gzip | openssl enc -aes-256-cbc          (source MariaDB §16.10.2)
//   seed restore:  openssl -d | gunzip | mysql                            (source MariaDB §16.10.4)
//   ours:          mariadb-full.sh (backup + end-to-end verify + manifest) and the restore into a
//                  scratch instance (restore + start + row counts checked), for each method
//   copy limit:    tar of the datadir to a pipe (reads every byte once)
// Caches are warm for every contender alike (the data was just written); the disk is synced before
// each one, untimed (timed).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { flushDirtyPages, startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run } from "../harness/proc";
import { mariadb } from "../../stacks/model/mariadb";
import {
  createBackupUser,
  fulls,
  physicalInstall,
  seedSchema,
  startOn,
  tableCounts,
  type Install,
} from "../integration/mariadb-fixture";

export const DB = "atlastech_db";
const ROWS = Number(process.env.B321_BENCH_ROWS ?? 2_000_000);

/** The benches' servers: sized for 2M rows, flushing as backup321 sets it (mariadb.dirtyPagesLwmPct). */
export const SERVER_ARGS = [
  "--innodb-buffer-pool-size=2G",
  "--innodb-log-file-size=512M",
  `--innodb-max-dirty-pages-pct-lwm=${mariadb.shape.dirtyPagesLwmPct.parse(undefined)}`,
];

/** A status file's phase durations, in the order they ran: "check 0 s, restore 2 s, ...". */
export function phases(status: Record<string, unknown>): string {
  return Object.entries(status)
    .filter(([k]) => /^phase_.*_seconds$/.test(k))
    .map(([k, v]) => `${k.slice(6, -8)} ${String(v)} s`)
    .join(", ");
}

/**
 * Times f. The disk is synced first, untimed: each contender starts with nothing of the one before
 * still being written back, and pays for its own writes (a restore's fsyncs) only.
 */
export function timed(what: string, f: () => void): number {
  run("sync", []);
  const t0 = process.hrtime.bigint();
  f();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.error(`  ${what}: ${s.toFixed(1)} s`);
  return s;
}

export function sh(script: string): void {
  const r = run("bash", ["-o", "pipefail", "-c", script], { timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`failed (${r.code}): ${script}\n${r.stderr.slice(-2000)}`);
}

export function build(server: MariaDbServer): void {
  server.sql(seedSchema(DB));
  // 2M order lines with incompressible-ish text, like real customer data.
  server.sql(
    `CREATE TABLE journal_commandes (id INT PRIMARY KEY, commande_id INT NOT NULL,
       client_id INT NOT NULL, montant DECIMAL(12,2) NOT NULL, cree_le DATETIME NOT NULL,
       statut VARCHAR(16) NOT NULL, note VARCHAR(160) NOT NULL, KEY (client_id))
     ENGINE=InnoDB;
     SET SESSION unique_checks = 0;
     INSERT INTO journal_commandes
       SELECT seq, seq DIV 3, seq MOD 50021, (seq MOD 99991) / 7,
         '2026-01-01' + INTERVAL (seq MOD 5000000) SECOND,
         ELT(1 + seq MOD 4, 'nouvelle', 'payee', 'livree', 'annulee'),
         CONCAT(MD5(seq), ' ', SHA1(seq * 7), ' ', MD5(seq * 13), ' ', LEFT(SHA1(seq), 10))
       FROM seq_1_to_${ROWS};`,
    DB,
  );
}

/**
 * The backup users of both methods (option files in <root>/etc/secrets), a fresh key and the
 * scripts, physical zstd fulls in <root>/backups and shipped binlogs in <root>/binlogs.
 */
export function benchInstall(
  root: string,
  server: MariaDbServer,
): { secrets: string; keyFile: string; box: Install } {
  const { box, secrets } = physicalInstall(root, server, DB, {
    backupDir: path.join(root, "backups"),
    binlogBackupDir: path.join(root, "binlogs"),
    keepFulls: 10,
    timezone: "UTC",
  });
  createBackupUser(server, "backup_user", "Log1Pass", "logical", [DB], `${secrets}/log.cnf`);
  return { secrets, keyFile: box.keyFile, box };
}

/**
 * The seed's full, as documented (the password in the backup user's option file instead of -p on
 * argv), into FILE; `--master-data=2` also records its binlog position, for a replay from it.
 */
export function seedDump(
  server: MariaDbServer,
  secrets: string,
  keyFile: string,
  file: string,
  extra: readonly string[] = [],
): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  sh(
    `mysqldump --defaults-extra-file=${secrets}/log.cnf --socket=${server.socket} --single-transaction ${extra.join(" ")} --routines --triggers --events --hex-blob ${DB} | gzip | openssl enc -aes-256-cbc -salt -pbkdf2 -pass file:${keyFile} -out ${file}`,
  );
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export async function run_(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-bench-db-"));
  fs.chmodSync(root, 0o755);
  const server = await startMariaDb({ parent: root, extraArgs: SERVER_ARGS });
  try {
    console.error(`building ${ROWS} rows ...`);
    timed("build", () => build(server));
    server.sql("ANALYZE TABLE journal_commandes; FLUSH TABLES;", DB);
    // As on a server at 02:00: the data files hold the data (no backlog of dirty pages in memory or
    // of redo since the last checkpoint), so every contender, tar included, reads the real bytes.
    timed("flush dirty pages", () => flushDirtyPages(server));
    const mb = Number(
      server
        .sql(
          `SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM information_schema.tables WHERE table_schema = '${DB}'`,
        )
        .trim(),
    );
    const source = tableCounts(server.sql, DB);
    const totalRows = Object.values(source).reduce((a, b) => a + b, 0);
    console.error(`database: ${totalRows} rows, ${mb} MB InnoDB (data + indexes)`);

    const { secrets, keyFile, box } = benchInstall(root, server);

    // The seed, as documented (the password via the same option file instead of -p on argv).
    const seedFile = path.join(root, "seed", `${DB}_full_seed.sql.gz.enc`);
    const seedBackup = timed("seed backup (mysqldump | gzip | openssl)", () =>
      seedDump(server, secrets, keyFile, seedFile),
    );

    const results: { name: string; backup: number; restore: number; mb: number; equal: boolean }[] =
      [
        {
          name: "seed: mysqldump|gzip|openssl",
          backup: seedBackup,
          restore: 0,
          mb: fs.statSync(seedFile).size / 1048576,
          equal: false,
        },
      ];
    for (const [method, compression, cnf] of [
      ["physical", "zstd", "phys.cnf"],
      ["logical", "zstd", "log.cnf"],
    ] as const) {
      const env = box.env(
        "mariadb-full",
        { method, compression, clientCnf: `${secrets}/${cnf}` },
        method,
      );
      const backup = timed(`${method} backup (mariadb-full.sh)`, () => {
        const r = box.runScript("mariadb-full.sh", env);
        if (r.code !== 0) throw new Error(r.stderr);
      });
      const file = fulls(path.join(root, "backups")).at(-1)!;
      const manifest = JSON.parse(fs.readFileSync(`${file}.manifest.json`, "utf8"));
      const restore = timed(`${method} restore (mariadb-restore-test.sh)`, () => {
        const r = box.runScript("mariadb-restore-test.sh", box.env("mariadb-restore-test"));
        if (r.code !== 0) throw new Error(r.stderr);
      });
      console.error(`    ${phases(box.status("mariadb-restore-test"))}`);
      const recorded = Object.fromEntries(
        Object.entries(manifest.tables as Record<string, number>).map(([k, v]) => [
          k.slice(DB.length + 1),
          v,
        ]),
      );
      results.push({
        name: `backup321 ${method} (${compression})`,
        backup,
        restore,
        mb: manifest.bytes / 1048576,
        equal:
          JSON.stringify(recorded) === JSON.stringify(source) &&
          box.status("mariadb-restore-test").result === "success",
      });
    }
    // The physical restore, checked table by table with CHECKSUM TABLE against the source.
    const target = path.join(root, "restored");
    const until = new Date(Date.now() + 2000).toISOString().slice(0, 19).replace("T", " ");
    await sleep(2500);
    const pitr = box.pitr(box.env("mariadb-pitr", {}, "bench"), until, target);
    if (pitr.code !== 0) throw new Error(pitr.stderr);
    const restored = await startOn(target);
    const checksums = (sql: (q: string) => string) =>
      sql(
        `CHECKSUM TABLE ${Object.keys(source)
          .map((t) => `${DB}.${t}`)
          .join(", ")}`,
      );
    const sameChecksums = checksums(restored.sql) === checksums((q) => server.sql(q));
    await restored.stop();

    // The seed's restore goes last: loading 2M rows into the source server grows its system
    // tablespace (undo), which a physical copy taken afterwards would carry.
    server.sql("CREATE DATABASE seed_restore");
    const seedRestore = timed("seed restore (openssl -d | gunzip | mysql)", () =>
      sh(
        `openssl enc -aes-256-cbc -d -pbkdf2 -pass file:${keyFile} -in ${seedFile} | gunzip | mysql --no-defaults --socket=${server.socket} -uroot seed_restore`,
      ),
    );
    const seedEqual =
      JSON.stringify(tableCounts(server.sql, "seed_restore")) === JSON.stringify(source);
    server.sql("DROP DATABASE seed_restore");
    results[0].restore = seedRestore;
    results[0].equal = seedEqual;
    // A live datadir changes under tar (InnoDB's background work): tar then exits 1, which only
    // says so; every byte was still read once, which is all this limit measures.
    const copy = timed("tar of the datadir (copy limit)", () =>
      sh(
        `tar --warning=no-file-changed -cf - -C ${server.datadir} . | cat > /dev/null; [ "\${PIPESTATUS[0]}" -le 1 ]`,
      ),
    );

    const pad = (s: string, n: number) => s.padEnd(n);
    console.log("");
    console.log(
      `${pad("pipeline", 34)}${pad("backup s", 10)}${pad("restore s", 11)}${pad("size MB", 9)}restored = source`,
    );
    for (const r of results) {
      console.log(
        `${pad(r.name, 34)}${pad(r.backup.toFixed(1), 10)}${pad(r.restore.toFixed(1), 11)}${pad(r.mb.toFixed(0), 9)}${r.equal ? "yes" : "NO"}`,
      );
    }
    console.log(
      `${pad("tar of the datadir", 34)}${pad(copy.toFixed(1), 10)}${pad("-", 11)}${pad("-", 9)}-`,
    );
    console.log(
      `physical restore CHECKSUM TABLE equal to the source: ${sameChecksums ? "yes" : "NO"}`,
    );
    console.log(`database: ${totalRows} rows, ${mb} MB InnoDB; ${os.cpus().length} cores`);
    const ours = results[1];
    const ratio = (a: number, b: number) => (a / b).toFixed(2);
    console.log(
      `db-bench rows=${totalRows} backup_vs_seed=${ratio(ours.backup, seedBackup)} restore_vs_seed=${ratio(ours.restore, seedRestore)} backup_vs_copy=${ratio(ours.backup, copy)}`,
    );
    if (!results.every((r) => r.equal) || !sameChecksums) process.exitCode = 1;
  } finally {
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export { run_ as run };
