// What each strategy adds offsite on the day after a full, for a 2-million-row database of which
// 1 % of the rows changed (uniformly at random: the worst case for chunk deduplication):
//   seed           the seeds' daily job: a new full, mariadb-dump | gzip | openssl enc (a new copy)
//   restic         a restic backup of a fresh dump into the repository holding the first one
//   backup321      this project's daily increment, by the real host scripts: mariadb-binlogs.sh
//                  ships the closed binlogs, then offsite-upload.sh sends the new ones, zstd +
//                  openssl, to an S3 API (s3rver); the bytes are the upload's own count (fulls are
//                  weekly, so the day-2 run finds the full already there)
// Last line: offsite-bench second_backup_added_vs_full=<backup321 bytes / seed's full bytes>.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { runOk } from "../harness/proc";
import { startS3rver, type S3rverServer } from "../harness/s3rver";
import { jobEnv, renderEnvFile } from "../../components/host/render";
import { createBackupUser, installScripts, type Install } from "../integration/mariadb-fixture";

const ROWS = 2_000_000;
const DB = "atlastech_db";

function sh(script: string, env: NodeJS.ProcessEnv = {}): string {
  return runOk("bash", ["-c", `set -Eeuo pipefail\n${script}`], {
    env: { ...process.env, ...env },
    timeoutMs: 1_200_000,
  }).stdout;
}

const size = (p: string) => fs.statSync(p).size;
const dirBytes = (d: string) => Number(sh(`du -sb -- "${d}" | cut -f1`).trim());
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

function seedFull(db: MariaDbServer, key: string, out: string): number {
  const client = db.clientArgs().join(" ");
  sh(
    `mariadb-dump ${client} --single-transaction --routines --triggers --events --hex-blob ${DB} | gzip | openssl enc -aes-256-cbc -salt -pbkdf2 -pass "file:${key}" -out "${out}"`,
  );
  return size(out);
}

function plainDump(db: MariaDbServer, out: string): number {
  const client = db.clientArgs().join(" ");
  sh(
    `mariadb-dump ${client} --single-transaction --routines --triggers --events --hex-blob --skip-dump-date ${DB} > "${out}"`,
  );
  return size(out);
}

/** The binlog files the server has closed, oldest first (the last one listed is being written). */
function closedBinlogs(db: MariaDbServer): string[] {
  const rows = db
    .sql("SHOW BINARY LOGS")
    .trim()
    .split("\n")
    .map((l) => l.split("\t")[0]);
  return rows.slice(0, -1);
}

const ROOT = path.join(__dirname, "..", "..");

/** The upload job as the component installs it (its script beside common.sh), against s3rver. */
function uploadJob(box: Install, s3: S3rverServer, binlogDir: string, binlogBasename: string) {
  fs.copyFileSync(
    path.join(ROOT, "components/offsite/scripts/offsite-upload.sh"),
    path.join(box.lib, "offsite-upload.sh"),
  );
  fs.chmodSync(path.join(box.lib, "offsite-upload.sh"), 0o755);
  const creds = path.join(box.paths.secrets, "offsite-upload-aws");
  fs.writeFileSync(
    creds,
    `[default]\naws_access_key_id = ${s3.accessKeyId}\naws_secret_access_key = ${s3.secretAccessKey}\n`,
    { mode: 0o600 },
  );
  const env = path.join(box.etc, "offsite-upload.env");
  fs.writeFileSync(
    env,
    renderEnvFile("bench offsite-upload", {
      ...jobEnv(box.paths, "offsite-upload"),
      B321_ALERT: "/bin/true",
      OFFSITE_BUCKET: s3.bucket,
      OFFSITE_PREFIX: "database/",
      OFFSITE_REGION: "us-east-1",
      OFFSITE_CREDENTIALS: creds,
      OFFSITE_BACKUP_DIR: path.join(box.root, "backups"),
      OFFSITE_ENDPOINT: s3.endpoint,
      OFFSITE_CA_BUNDLE: s3.caFile,
      OFFSITE_CHECKSUM_CALCULATION: "when_required",
      OFFSITE_BINLOG_DIR: binlogDir,
      OFFSITE_BINLOG_BASENAME: path.basename(binlogBasename),
      OFFSITE_BINLOG_KEY_FILE: box.keyFile,
    }),
    { mode: 0o600 },
  );
  return (): Record<string, unknown> => {
    const r = box.runScript("offsite-upload.sh", env);
    if (r.code !== 0) throw new Error(`offsite-upload.sh failed: ${r.stderr}`);
    return box.status("offsite-upload");
  };
}

export async function run(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "b321-bench-offsite-"));
  const t0 = Date.now();
  const step = (what: string) =>
    console.error(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${what}`);
  const [db, s3] = await Promise.all([
    startMariaDb({ extraArgs: ["--innodb-buffer-pool-size=512M"] }),
    startS3rver({ bucket: "bench-backups" }),
  ]);
  try {
    const secrets = path.join(work, "host", "etc", "secrets");
    fs.mkdirSync(secrets, { recursive: true, mode: 0o700 });
    const key = path.join(secrets, "mariadb-backup.key");
    sh(`openssl rand -base64 32 > "${key}"; chmod 600 "${key}"`);
    createBackupUser(db, "backup_phys", "Phys0Pass", "physical", [DB], `${secrets}/phys.cnf`);
    const shipped = path.join(work, "host", "binlogs");
    const box = installScripts(path.join(work, "host"), db, {
      method: "physical",
      compression: "zstd",
      databases: [DB],
      clientCnf: `${secrets}/phys.cnf`,
      keyFile: key,
      backupDir: path.join(work, "host", "backups"),
      binlogBackupDir: shipped,
      keepFulls: 4,
      timezone: "UTC",
    });
    fs.mkdirSync(path.join(work, "host", "backups"), { recursive: true });
    const shipEnv = box.env("mariadb-binlogs");
    const ship = () => {
      const r = box.runScript("mariadb-binlogs.sh", shipEnv);
      if (r.code !== 0) throw new Error(`mariadb-binlogs.sh failed: ${r.stderr}`);
    };
    const upload = uploadJob(box, s3, shipped, db.binlogBasename);
    const resticPass = path.join(work, "restic-password");
    sh(`openssl rand -base64 32 > "${resticPass}"; chmod 600 "${resticPass}"`);
    const repo = path.join(work, "restic-repo");
    const restic = { RESTIC_REPOSITORY: repo, RESTIC_PASSWORD_FILE: resticPass };

    step(`loading ${ROWS} rows`);
    db.sql(`CREATE DATABASE ${DB}`);
    db.sql(
      `CREATE TABLE commandes (
         id INT PRIMARY KEY,
         client_id INT NOT NULL,
         reference CHAR(32) NOT NULL,
         statut VARCHAR(16) NOT NULL,
         montant DECIMAL(10,2) NOT NULL,
         cree_le DATETIME NOT NULL
       ) ENGINE=InnoDB`,
      DB,
    );
    db.sql(
      `INSERT INTO commandes
       SELECT seq, 1 + (seq * 7919) % 50000, MD5(seq),
              ELT(1 + seq % 4, 'nouvelle', 'payee', 'expediee', 'livree'),
              ROUND(((seq * 104729) % 100000) / 100, 2),
              '2025-01-01' + INTERVAL (seq * 13) MINUTE
       FROM seq_1_to_${ROWS}`,
      DB,
    );
    db.sql("FLUSH BINARY LOGS");

    step("day 1: seed full, first restic backup, binlogs shipped and the first upload");
    const seed1 = seedFull(db, key, path.join(work, "full1.sql.gz.enc"));
    // the weekly full as the upload sees it: the file and the manifest written once verified
    const full = path.join(work, "host", "backups", `${DB}_full_1.sql.gz.enc`);
    fs.copyFileSync(path.join(work, "full1.sql.gz.enc"), full);
    const fullSha = sh(`sha256sum -- "${full}" | cut -d' ' -f1`).trim();
    fs.writeFileSync(`${full}.manifest.json`, `{\n  "sha256": "${fullSha}"\n}\n`);
    ship();
    const day1 = upload();
    const dump1 = path.join(work, "dump", `${DB}.sql`);
    fs.mkdirSync(path.dirname(dump1));
    const plain1 = plainDump(db, dump1);
    sh("restic init -q", restic);
    sh(`restic backup -q --tag ${DB} -- "${dump1}"`, restic);
    const repo1 = dirBytes(repo);

    step("the day's change: 1 % of rows, uniformly at random");
    const before = new Set(closedBinlogs(db));
    db.sql("FLUSH BINARY LOGS");
    const changed = db.sql(
      "UPDATE commandes SET statut = 'remboursee', montant = montant + 1 WHERE RAND() < 0.01; SELECT ROW_COUNT()",
      DB,
    );
    db.sql("FLUSH BINARY LOGS");
    const dayBinlogs = closedBinlogs(db).filter((b) => !before.has(b));
    const binlogDir = path.dirname(db.binlogBasename);

    step("day 2: each strategy's next job");
    const seed2 = seedFull(db, key, path.join(work, "full2.sql.gz.enc"));
    const plain2 = plainDump(db, dump1);
    sh(`restic backup -q --tag ${DB} -- "${dump1}"`, restic);
    const resticAdded = dirBytes(repo) - repo1;

    // The real jobs: the shipper's hourly run, then the daily upload (the full is already there).
    ship();
    const day2 = upload();
    const binlogAdded = Number(day2.bytes);
    let binlogRaw = 0;
    for (const b of dayBinlogs) binlogRaw += size(path.join(binlogDir, b));

    const rows: [string, number][] = [
      ["seed: new encrypted full (mariadb-dump | gzip | openssl)", seed2],
      ["restic: backup of a fresh plain dump (dedup against day 1)", resticAdded],
      ["backup321: day-2 upload run (binlogs, zstd + openssl)", binlogAdded],
    ];
    console.log(`offsite bench: ${ROWS} rows, ${changed.trim()} rows changed (1 % at random)`);
    console.log(
      `  day-1 seed full ${mb(seed1)}; plain dump ${mb(plain1)} then ${mb(plain2)}; restic repo after day 1 ${mb(repo1)}`,
    );
    console.log(`  binlogs of the change: ${dayBinlogs.join(", ")} (${mb(binlogRaw)} raw)`);
    console.log(
      `  upload runs: day 1 sent ${mb(Number(day1.bytes))} (full + ${String(day1.binlogs_uploaded)} binlog(s)); day 2 sent ${String(day2.binlogs_uploaded)} binlog(s), ${String(day2.binlogs_present)} already there`,
    );
    console.log("  bytes added offsite on day 2:");
    for (const [what, bytes] of rows) {
      console.log(
        `    ${what.padEnd(62)} ${String(bytes).padStart(12)} B  ${mb(bytes).padStart(10)}  ${((100 * bytes) / seed2).toFixed(1).padStart(6)} % of the seed's full`,
      );
    }
    console.log(
      "  (backup321 adds a weekly full on top: over a week ~ 1 full + 6 days of binlogs, the seed 7 fulls)",
    );
    step("done");
    console.log(`offsite-bench second_backup_added_vs_full=${(binlogAdded / seed2).toFixed(4)}`);
  } finally {
    await Promise.all([db.stop(), s3.stop()]);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
