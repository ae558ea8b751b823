// Shared by the MariaDB integration tests and the benchmark: the seed's schema with data, the
// backup user per method, the host scripts installed in a sandbox with their env files.
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { jobEnv, jobFiles, renderEnvFile } from "../../components/host/render";
import { hostPaths, type HostPaths } from "../../stacks/model/hosts";
import {
  keyFingerprint,
  mariadbEnv,
  renderOptionFile,
  userCommand,
  type Compression,
  type Handoff,
  type Method,
} from "../../components/mariadb/render";
import type { MariaDbServer } from "../harness/mariadb";
import { run, waitFor, type RunResult } from "../harness/proc";

const ROOT = path.join(__dirname, "..", "..");

/** The eight tables of the seed's atlastech_db, with a view, a routine, a trigger and an event. */
/** The model of a sandboxed host's database (its dirs under `at`), as Pulumi.<stack>.yaml writes it. */
export function sandboxMariaDbModel(
  at: (p: string) => string,
  server: MariaDbServer,
  db: string,
): { [k: string]: unknown } {
  return {
    host: "db-srv",
    databases: [db],
    backupDir: at("backups/database"),
    binlogBackupDir: at("backups/binlogs"),
    binlogBasename: server.binlogBasename,
    confDir: at("etc/mysql/mariadb.conf.d"),
  };
}

export function seedSchema(db: string, scale = 1): string {
  const n = (k: number) => Math.max(1, Math.round(k * scale));
  return `
CREATE DATABASE ${db};
USE ${db};
CREATE TABLE departements (id INT PRIMARY KEY, nom VARCHAR(50) NOT NULL);
CREATE TABLE employes (id INT AUTO_INCREMENT PRIMARY KEY, nom VARCHAR(50), departement_id INT,
  photo BLOB, KEY (departement_id));
CREATE TABLE salaires (id INT AUTO_INCREMENT PRIMARY KEY, employe_id INT, montant DECIMAL(10,2));
CREATE TABLE conges (id INT AUTO_INCREMENT PRIMARY KEY, employe_id INT, debut DATE, fin DATE);
CREATE TABLE clients (id INT AUTO_INCREMENT PRIMARY KEY, nom VARCHAR(80), email VARCHAR(120));
CREATE TABLE produits (id INT AUTO_INCREMENT PRIMARY KEY, nom VARCHAR(80), prix DECIMAL(10,2));
CREATE TABLE commandes (id INT AUTO_INCREMENT PRIMARY KEY, client_id INT, total DECIMAL(12,2),
  cree_le DATETIME);
CREATE TABLE details_commande (id INT AUTO_INCREMENT PRIMARY KEY, commande_id INT, produit_id INT,
  quantite INT);
INSERT INTO departements SELECT seq, CONCAT('dept-', seq) FROM seq_1_to_8;
INSERT INTO employes (nom, departement_id, photo)
  SELECT CONCAT('employe-', seq), 1 + seq % 8, UNHEX(SHA2(seq, 256)) FROM seq_1_to_${n(300)};
INSERT INTO salaires (employe_id, montant) SELECT seq, 2000 + seq FROM seq_1_to_${n(300)};
INSERT INTO conges (employe_id, debut, fin)
  SELECT seq, '2026-01-01' + INTERVAL seq DAY, '2026-01-05' + INTERVAL seq DAY FROM seq_1_to_${n(120)};
INSERT INTO clients (nom, email) SELECT CONCAT('client-', seq), CONCAT('c', seq, '@example.ma')
  FROM seq_1_to_${n(500)};
INSERT INTO produits (nom, prix) SELECT CONCAT('produit-', seq), seq * 1.25 FROM seq_1_to_${n(80)};
INSERT INTO commandes (client_id, total, cree_le)
  SELECT 1 + seq % ${n(500)}, seq * 3.5, '2026-02-01' + INTERVAL seq MINUTE FROM seq_1_to_${n(2000)};
INSERT INTO details_commande (commande_id, produit_id, quantite)
  SELECT 1 + seq % ${n(2000)}, 1 + seq % ${n(80)}, 1 + seq % 5 FROM seq_1_to_${n(5000)};
CREATE VIEW v_employes AS SELECT e.nom, d.nom AS departement FROM employes e
  JOIN departements d ON d.id = e.departement_id;
CREATE PROCEDURE nb_commandes() SELECT COUNT(*) FROM commandes;
CREATE TRIGGER commandes_total BEFORE INSERT ON commandes FOR EACH ROW
  SET NEW.total = GREATEST(NEW.total, 0);
CREATE EVENT purge_conges ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM conges WHERE fin < '2000-01-01';
`;
}

/** Row counts of every base table of a database, as "table count" sorted lines. */
export function tableCounts(
  sql: (q: string, db?: string) => string,
  db: string,
): Record<string, number> {
  const tables = sql(
    `SELECT table_name FROM information_schema.tables WHERE table_schema='${db}' AND table_type='BASE TABLE' ORDER BY 1`,
  )
    .trim()
    .split("\n")
    .filter(Boolean);
  return Object.fromEntries(
    tables.map((t) => [t, Number(sql(`SELECT COUNT(*) FROM \`${db}\`.\`${t}\``).trim())]),
  );
}

export interface Install {
  readonly root: string;
  readonly lib: string;
  readonly etc: string;
  readonly state: string;
  /** The host's directories, as jobEnv gives them to the scripts. */
  readonly paths: HostPaths;
  readonly keyFile: string;
  /** Writes <etc>/<job>[-tag].env for a job and returns its path. */
  env(job: string, overrides?: Partial<EnvOptions>, tag?: string): string;
  /** Runs a script with an env file. */
  runScript(script: string, envFile: string, args?: string[]): RunResult;
  /** mariadb-pitr.sh: recovers up to UNTIL (read in TZ) into a new datadir TARGET. */
  pitr(envFile: string, until: string, target: string, tz?: string): RunResult;
  status(job: string): Record<string, unknown>;
}

export interface EnvOptions {
  readonly method: Method;
  readonly compression: Compression;
  readonly databases: readonly string[];
  readonly clientCnf: string;
  readonly keyFile: string;
  /** The stack's key fingerprint. Defaults to that of the key file given to installScripts. */
  readonly keyFingerprint?: string;
  readonly backupDir: string;
  readonly binlogBackupDir: string;
  readonly keepFulls: number;
  /** mariadb.retention.incrementDays. Defaults to none (increments go with their full). */
  readonly keepIncrementDays?: number;
  readonly timezone: string;
  /** The full job runs on a replica with this lag limit (mariadb.replica.maxLagSeconds). */
  readonly replicaMaxLag?: number;
  /** ...and hands each verified full to the primary this way. */
  readonly handoff?: Handoff;
  /** Every key ever used, one per line (key rotation). Defaults to none. */
  readonly keyring?: string;
  /** The shipping checkpoint's table size limit. Defaults to 256. */
  readonly checkpointMaxTableMb?: number;
}

/** keyFingerprint of a key file's first line (what openssl -pass file: reads). */
export function keyFileFingerprint(file: string): string {
  return keyFingerprint(fs.readFileSync(file, "utf8").split("\n")[0]);
}

/** Creates the backup user for a method (exactly the rendered SQL) and its option file. */
export function createBackupUser(
  server: MariaDbServer,
  user: string,
  password: string,
  method: Method,
  databases: readonly string[],
  cnfPath: string,
  onReplica = false,
): void {
  const spec = { user, method, databases, onReplica };
  const r = run("bash", ["-c", userCommand(server.socket, spec)], {
    input: `${password}\n`,
  });
  if (r.code !== 0) throw new Error(`creating ${user} failed: ${r.stderr}`);
  fs.mkdirSync(path.dirname(cnfPath), { recursive: true, mode: 0o700 });
  fs.writeFileSync(cnfPath, renderOptionFile(user, password), { mode: 0o600 });
}

/**
 * The common setup of a physical install: the backup user backup_phys (<root>/etc/secrets/phys.cnf),
 * a fresh stack key (<root>/etc/secrets/mariadb-backup.key) and the scripts, zstd-compressed fulls.
 */
export function physicalInstall(
  root: string,
  server: MariaDbServer,
  db: string,
  dirs: Pick<EnvOptions, "backupDir" | "binlogBackupDir" | "keepFulls" | "timezone">,
): { box: Install; secrets: string } {
  const secrets = path.join(root, "etc", "secrets");
  createBackupUser(server, "backup_phys", "Phys0Pass", "physical", [db], `${secrets}/phys.cnf`);
  const keyFile = `${secrets}/mariadb-backup.key`;
  fs.writeFileSync(keyFile, run("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
  const box = installScripts(root, server, {
    method: "physical",
    compression: "zstd",
    databases: [db],
    clientCnf: `${secrets}/phys.cnf`,
    keyFile,
    ...dirs,
  });
  return { box, secrets };
}

/**
 * The scripts in <root>/lib as the component installs them. base.keyFile is the stack's key: its
 * fingerprint goes into every env file (an override of keyFile alone is a key file that changed).
 */
export function installScripts(root: string, server: MariaDbServer, base: EnvOptions): Install {
  const stackFingerprint = base.keyFingerprint ?? keyFileFingerprint(base.keyFile);
  const lib = path.join(root, "lib");
  const etc = path.join(root, "etc");
  const state = path.join(root, "state");
  const paths = hostPaths.parse({ lib, etc, state });
  fs.mkdirSync(lib, { recursive: true });
  fs.mkdirSync(path.join(etc, "secrets"), { recursive: true, mode: 0o700 });
  fs.copyFileSync(
    path.join(ROOT, "components/host/scripts/common.sh"),
    path.join(lib, "common.sh"),
  );
  for (const f of fs.readdirSync(path.join(ROOT, "components/mariadb/scripts"))) {
    fs.copyFileSync(path.join(ROOT, "components/mariadb/scripts", f), path.join(lib, f));
    fs.chmodSync(path.join(lib, f), 0o755);
  }
  const env = (job: string, o: Partial<EnvOptions> = {}, tag = "") => {
    const e = { ...base, ...o };
    const file = path.join(etc, `${job}${tag ? `-${tag}` : ""}.env`);
    fs.writeFileSync(
      file,
      renderEnvFile(`test ${job}`, {
        ...mariadbEnv({
          socket: server.socket,
          clientCnf: e.clientCnf,
          keyFile: e.keyFile,
          keyFingerprint: e.keyFingerprint ?? stackFingerprint,
          keyring: e.keyring,
          databases: e.databases,
          method: e.method,
          compression: e.compression,
          backupDir: e.backupDir,
          binlogBackupDir: e.binlogBackupDir,
          binlogBasename: server.binlogBasename,
          prefix: e.databases.length === 1 ? e.databases[0] : "site",
          keepFulls: e.keepFulls,
          keepIncrementDays: e.keepIncrementDays,
          binlogKeepDays: 7,
          timezone: e.timezone,
          scratchDir: path.join(root, "scratch"),
          serverUser: "mysql",
          replicaMaxLag: e.replicaMaxLag,
          handoff: e.handoff,
          checkpointMaxTableMb: e.checkpointMaxTableMb ?? 256,
        }),
        ...jobEnv(paths, job),
        B321_ALERT: "/bin/true",
      }),
      { mode: 0o600 },
    );
    return file;
  };
  const runScript = (script: string, envFile: string, args: string[] = []) =>
    run(path.join(lib, script), [envFile, ...args], { timeoutMs: 600_000 });
  return {
    root,
    lib,
    etc,
    state,
    paths,
    keyFile: base.keyFile,
    env,
    runScript,
    pitr: (envFile, until, target, tz = "UTC") =>
      runScript("mariadb-pitr.sh", envFile, [
        "--until",
        until,
        "--tz",
        tz,
        "--target-datadir",
        target,
      ]),
    status: (job) => JSON.parse(fs.readFileSync(jobFiles(paths, job).statusFile, "utf8")),
  };
}

/** Row counts of every table of DB in a restored datadir, read by a throwaway server on it. */
export async function countsIn(datadir: string, db: string): Promise<Record<string, number>> {
  const restored = await startOn(datadir);
  try {
    return tableCounts(restored.sql, db);
  } finally {
    await restored.stop();
  }
}

/** Starts a throwaway mariadbd on a restored datadir; returns its SQL runner and a stop function. */
export async function startOn(
  datadir: string,
): Promise<{ sql: (q: string) => string; stop: () => Promise<void> }> {
  const rundir = fs.mkdtempSync(path.join(path.dirname(datadir), "check-run-"));
  fs.chmodSync(rundir, 0o755);
  run("chown", ["-R", "mysql:mysql", rundir, datadir]);
  const socket = path.join(rundir, "s.sock");
  const proc = spawn(
    "mariadbd",
    [
      "--no-defaults",
      "--user=mysql",
      `--datadir=${datadir}`,
      `--socket=${socket}`,
      "--skip-networking",
      "--skip-log-bin",
      `--pid-file=${rundir}/pid`,
      `--log-error=${rundir}/error.log`,
    ],
    { stdio: "ignore" },
  );
  const sql = (q: string) => {
    const r = run("mariadb", ["--no-defaults", `--socket=${socket}`, "-uroot", "-N", "-B"], {
      input: q,
    });
    if (r.code !== 0) throw new Error(`SQL failed: ${r.stderr}`);
    return r.stdout;
  };
  await waitFor(
    `mariadbd on ${datadir}`,
    () =>
      proc.exitCode === null &&
      run("mariadb", ["--no-defaults", `--socket=${socket}`, "-uroot", "-e", "SELECT 1"]).code ===
        0,
    60_000,
  );
  return {
    sql,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
      }
      fs.rmSync(rundir, { recursive: true, force: true });
    },
  };
}

/** Verified fulls (or increments) in a directory (data files with a manifest), oldest first. */
export function fulls(dir: string, kind: "full" | "incr" = "full"): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter(
      (f) =>
        f.includes(`_${kind}_`) &&
        f.endsWith(".enc") &&
        fs.existsSync(path.join(dir, `${f}.manifest.json`)),
    )
    .sort()
    .map((f) => path.join(dir, f));
}

/** sha256 and manifest text of a full: what "left untouched" is checked against. */
export function fingerprint(file: string): string {
  const sha = run("sha256sum", [file]).stdout.split(" ")[0];
  return `${sha}\n${fs.readFileSync(`${file}.manifest.json`, "utf8")}`;
}
