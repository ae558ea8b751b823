// Fulls taken on a replica (mariadb.replica), with two real MariaDB 10.11 servers in real GTID
// replication over loopback: the primary carries nothing of the backup (sampled SHOW PROCESSLIST),
// the manifest records the primary's coordinates, and a PITR from the replica's full plus the
// primary's shipped binlogs equals the primary at the target. A replica that is stopped or lags
// beyond the limit gets no full: a failed status and an alert naming why.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run, waitFor } from "../harness/proc";
import { jobEnv, renderEnvFile } from "../../components/host/render";
import { monitorEnv } from "../../components/monitoring/render";
import {
  createBackupUser,
  fulls,
  installScripts,
  seedSchema,
  startOn,
  type Install,
} from "./mariadb-fixture";

const DB = "atlastech_db";
const USER = "backup_user";
let primary: MariaDbServer;
let replica: MariaDbServer;
let root: string;
/** The primary's host: binlog shipping and PITR. */
let onPrimary: Install;
/** The replica's host: the full job. */
let onReplica: Install;
let fullEnv: string;

const backups = () => path.join(root, "backups");

/** An alert hook recording "<job> <result> <message>" lines; returns the record's path. */
function recordAlerts(envFile: string, name: string): string {
  const alerts = path.join(root, `${name}-alerts.log`);
  const hook = path.join(root, `${name}-alert.sh`);
  fs.writeFileSync(hook, `#!/bin/sh\necho "$@" >> '${alerts}'\n`, { mode: 0o755 });
  fs.appendFileSync(envFile, `B321_ALERT=${hook}\n`);
  return alerts;
}

/**
 * monitor.sh on the replica's host with only the replica check configured (no job is registered
 * in this sandbox, which the monitor also reports): its status error and its metrics file.
 */
function monitorReplica(maxLagSeconds: number): { error: string; metrics: string } {
  const script = path.join(onReplica.lib, "monitor.sh");
  fs.copyFileSync(path.join(__dirname, "../../components/monitoring/scripts/monitor.sh"), script);
  fs.chmodSync(script, 0o755);
  const env = path.join(onReplica.etc, "monitor.env");
  const checks = {
    mounts: [],
    diskFullPercent: 90,
    smartDevices: [],
    resticRepos: [],
    staleLockHours: 1,
    restoreJobs: [],
    rtoHours: 4,
    replica: { socket: replica.socket, maxLagSeconds },
  };
  fs.writeFileSync(
    env,
    renderEnvFile("test monitor", {
      ...monitorEnv(checks),
      ...jobEnv(onReplica.paths, "monitor"),
      B321_ALERT: "/bin/true",
    }),
    { mode: 0o600 },
  );
  run(script, [env], { timeoutMs: 120_000 });
  return {
    error: String(onReplica.status("monitor").error ?? ""),
    metrics: fs.readFileSync(path.join(onReplica.paths.metrics, "monitor-checks.prom"), "utf8"),
  };
}

/** Per-table CHECKSUM TABLE of DB, "table checksum" lines. */
function checksums(sql: (q: string) => string): string {
  const tables = sql(
    `SELECT table_name FROM information_schema.tables WHERE table_schema='${DB}' AND table_type='BASE TABLE' ORDER BY 1`,
  )
    .trim()
    .split("\n");
  return sql(`CHECKSUM TABLE ${tables.map((t) => `\`${DB}\`.\`${t}\``).join(", ")}`);
}

/** A field of the replica's SHOW SLAVE STATUS. */
function replicaField(field: string): string | undefined {
  const out = run("mariadb", [...replica.clientArgs(), "-E", "-e", "SHOW SLAVE STATUS"]).stdout;
  return new RegExp(`^\\s*${field}: (.*)$`, "m").exec(out)?.[1];
}

async function caughtUp(): Promise<void> {
  const want = primary.sql("SELECT @@gtid_binlog_pos").trim();
  await waitFor(
    `the replica at ${want}`,
    () => replica.sql("SELECT @@gtid_slave_pos").trim() === want,
  );
}

/** Waits for the start of a new second and returns it as "YYYY-MM-DD HH:MM:SS" (UTC). */
async function nextSecond(): Promise<string> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));
  return new Date().toISOString().slice(0, 19).replace("T", " ");
}

beforeAll(async () => {
  primary = await startMariaDb();
  // The replica has its own binlog (no log_slave_updates): its coordinates are not the primary's.
  replica = await startMariaDb({ extraArgs: ["--server-id=2", "--read-only"] });
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-mdb-replica-"));
  fs.chmodSync(root, 0o755);
  primary.sql(
    "CREATE USER repl@'127.0.0.1' IDENTIFIED BY 'ReplPass1'; GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1';",
  );
  replica.sql(
    `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primary.port}, MASTER_USER='repl', MASTER_PASSWORD='ReplPass1', MASTER_USE_GTID=slave_pos; START SLAVE;`,
  );
  primary.sql(seedSchema(DB, 0.3));
  // The backup user is created on the primary only, as the component does: replication brings it
  // to the replica, where the full job logs in with it.
  const secrets = path.join(root, "etc", "secrets");
  createBackupUser(primary, USER, "Repl1Backup", "physical", [DB], `${secrets}/b.cnf`, true);
  const keyFile = `${secrets}/mariadb-backup.key`;
  fs.writeFileSync(keyFile, run("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
  const base = {
    method: "physical" as const,
    compression: "zstd" as const,
    databases: [DB],
    clientCnf: `${secrets}/b.cnf`,
    keyFile,
    backupDir: backups(),
    binlogBackupDir: path.join(root, "binlogs"),
    keepFulls: 4,
    timezone: "UTC",
  };
  onPrimary = installScripts(path.join(root, "primary"), primary, base);
  onReplica = installScripts(path.join(root, "replica"), replica, { ...base, replicaMaxLag: 60 });
  fullEnv = onReplica.env("mariadb-full");
  await caughtUp();
  // Some of the primary's binlogs are closed before the full, as in a running site.
  primary.sql("FLUSH BINARY LOGS");
}, 300_000);

afterAll(async () => {
  await replica?.stop();
  await primary?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("a full taken on the replica", () => {
  let full: string;
  let manifest: Record<string, unknown>;
  const primarySamples: string[][] = [];
  let replicaSawUser = 0;

  beforeAll(async () => {
    await caughtUp();
    const job = spawn(path.join(onReplica.lib, "mariadb-full.sh"), [fullEnv], { stdio: "ignore" });
    const exited = new Promise<number>((r) => job.once("exit", (c) => r(c ?? 1)));
    let code: number | undefined;
    void exited.then((c) => (code = c));
    while (code === undefined) {
      // SHOW FULL PROCESSLIST on both: the primary must never show the backup; the replica shows
      // it, which proves the sampling sees a backup session when there is one.
      primarySamples.push(primary.sql("SHOW FULL PROCESSLIST").trim().split("\n"));
      if (replica.sql("SHOW FULL PROCESSLIST").includes(`\t${USER}\t`)) replicaSawUser++;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(code).toBe(0);
    full = fulls(backups())[0];
    manifest = JSON.parse(fs.readFileSync(`${full}.manifest.json`, "utf8"));
  }, 300_000);

  test("the primary sees no session of the backup user and no lock, sampled all along", () => {
    expect(replicaSawUser).toBeGreaterThan(0);
    expect(primarySamples.length).toBeGreaterThan(5);
    const rows = primarySamples.flat().map((l) => l.split("\t"));
    // the replica's binlog dump thread is there: the samples do read the primary's sessions
    expect(rows.some((r) => r[1] === "repl" && r[4] === "Binlog Dump")).toBe(true);
    expect(rows.filter((r) => r[1] === USER)).toEqual([]);
    expect(
      rows.filter((r) => /lock/i.test(r[6] ?? "") || /FLUSH|LOCK|BACKUP/i.test(r[7] ?? "")),
    ).toEqual([]);
  });

  test("the manifest records the primary's coordinates and server_id, the status the replica's lag", () => {
    const status = onReplica.status("mariadb-full");
    expect(status.result).toBe("success");
    expect(Number(status.replica_lag_seconds)).toBeLessThanOrEqual(60);
    expect(manifest.binlog_server_id).toBe(1);
    expect(manifest.binlog_identity).toBe("");
    expect(manifest.gtid).toBe(replica.sql("SELECT @@gtid_slave_pos").trim());
    // a binlog of the primary's, where the replica had applied up to: the primary's own history
    // holds that position, the replica's binlog (its own few events) does not reach it
    const file = String(manifest.binlog_file);
    const pos = Number(manifest.binlog_position);
    const names = primary
      .sql("SHOW BINARY LOGS")
      .trim()
      .split("\n")
      .map((l) => l.split("\t"));
    const there = names.find((n) => n[0] === file);
    expect(there).toBeDefined();
    expect(pos).toBeLessThanOrEqual(Number(there?.[1]));
    const own = replica.sql("SHOW MASTER STATUS").trim().split("\t");
    expect(`${own[0]}:${own[1]}`).not.toBe(`${file}:${pos}`);
    expect(manifest.counted_binlog_file).toBe(file);
    expect(manifest.counted_binlog_position).toBe(pos);
    // the replica applies again
    expect(replicaField("Slave_SQL_Running")).toBe("Yes");
  });

  test("the monitor finds the replica replicating within its limit", () => {
    const m = monitorReplica(60);
    // the one other problem: no job is registered in this sandbox
    expect(m.error).toMatch(/^1 of 2 checks failed on .*\n- no backup job is registered in /);
    expect(m.metrics).toMatch(/^backup321_monitor_check_ok\{check="replica",target="[^"]+"\} 1$/m);
    expect(m.metrics).toMatch(/^backup321_replica_lag_seconds \d+$/m);
  });

  test("PITR from it plus the primary's shipped binlogs equals the primary at the target", async () => {
    primary.sql(
      `INSERT INTO ${DB}.clients (nom, email) SELECT CONCAT('apres-', seq), 'x@y' FROM seq_1_to_50;` +
        `UPDATE ${DB}.produits SET prix = prix * 2 WHERE id % 3 = 0;` +
        `DELETE FROM ${DB}.conges WHERE id % 4 = 0;`,
      DB,
    );
    primary.sql("FLUSH BINARY LOGS");
    primary.sql(`INSERT INTO ${DB}.commandes (client_id, total, cree_le) VALUES (1, 10, NOW())`);
    const until = await nextSecond();
    const atTarget = checksums((q) => primary.sql(q));
    await new Promise((r) => setTimeout(r, 1100));
    primary.sql(`DELETE FROM ${DB}.clients WHERE id < 40; UPDATE ${DB}.salaires SET montant = 0;`);
    expect(checksums((q) => primary.sql(q))).not.toBe(atTarget);

    const ship = onPrimary.runScript("mariadb-binlogs.sh", onPrimary.env("mariadb-binlogs"));
    expect(ship.code).toBe(0);
    expect(Number(onPrimary.status("mariadb-binlogs").shipped)).toBeGreaterThan(0);

    const target = path.join(root, "pitr-data");
    const r = onPrimary.pitr(onPrimary.env("mariadb-pitr"), until, target);
    expect(r.stderr).toContain(path.basename(full));
    expect(r.code).toBe(0);
    expect(Number(onPrimary.status("mariadb-pitr").binlogs_replayed)).toBeGreaterThan(0);
    const restored = await startOn(target);
    try {
      expect(checksums(restored.sql)).toBe(atTarget);
    } finally {
      await restored.stop();
    }
  }, 300_000);
});

test("a logical full on the replica records the primary's coordinates and passes the restore test on the primary's host", () => {
  const secrets = path.join(root, "etc", "secrets");
  createBackupUser(primary, "backup_log", "Log1Replica", "logical", [DB], `${secrets}/l.cnf`, true);
  const logical = {
    method: "logical" as const,
    compression: "gzip" as const,
    clientCnf: `${secrets}/l.cnf`,
    backupDir: path.join(root, "logical"),
  };
  const full = onReplica.runScript(
    "mariadb-full.sh",
    onReplica.env("mariadb-full", logical, "logical"),
  );
  expect(full.stderr).toContain("replica stopped applying at the primary's");
  expect(full.code).toBe(0);
  const [file] = fulls(logical.backupDir);
  const manifest = JSON.parse(fs.readFileSync(`${file}.manifest.json`, "utf8"));
  expect(manifest.binlog_server_id).toBe(1);
  expect(primary.sql("SHOW BINARY LOGS")).toContain(`${manifest.binlog_file}\t`);
  // the dump itself carries the same coordinates (--dump-slave), for building a new replica
  const head = run("bash", [
    "-c",
    'openssl enc -aes-256-cbc -d -pbkdf2 -pass "file:$1" -in "$2" | gzip -dc | grep -m1 "CHANGE MASTER .*MASTER_LOG_FILE"',
    "-",
    onReplica.keyFile,
    file,
  ]).stdout;
  expect(head).toContain(
    `MASTER_LOG_FILE='${manifest.binlog_file}', MASTER_LOG_POS=${manifest.binlog_position}`,
  );
  const rt = onPrimary.runScript(
    "mariadb-restore-test.sh",
    onPrimary.env("mariadb-restore-test", logical, "logical"),
  );
  expect(rt.code).toBe(0);
  expect(onPrimary.status("mariadb-restore-test").result).toBe("success");
  expect(replicaField("Slave_SQL_Running")).toBe("Yes");
}, 300_000);

describe("a replica that cannot give a current full gets none", () => {
  test("stopped: a failed status naming its state, and an alert", () => {
    const before = fulls(backups()).length;
    replica.sql("STOP SLAVE");
    try {
      const env = onReplica.env("mariadb-full", {}, "stopped");
      const alerts = recordAlerts(env, "stopped");
      const r = onReplica.runScript("mariadb-full.sh", env);
      expect(r.code).not.toBe(0);
      const status = onReplica.status("mariadb-full");
      expect(status.result).toBe("failed");
      expect(String(status.error)).toMatch(
        /replica is not replicating \(Slave_IO_Running=No, Slave_SQL_Running=No/,
      );
      expect(fs.readFileSync(alerts, "utf8")).toContain(`mariadb-full failed ${status.error}`);
      expect(fulls(backups()).length).toBe(before);
      // nothing of this run restarted it
      expect(replicaField("Slave_SQL_Running")).toBe("No");
      const m = monitorReplica(60);
      expect(m.error).toContain(
        `the replica on ${replica.socket} is not replicating (Slave_IO_Running=No, Slave_SQL_Running=No)`,
      );
      expect(m.metrics).toMatch(
        /^backup321_monitor_check_ok\{check="replica",target="[^"]+"\} 0$/m,
      );
    } finally {
      replica.sql("START SLAVE");
    }
  });

  test("lagging beyond the limit: a failed status naming the lag, and an alert", async () => {
    const before = fulls(backups()).length;
    replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=120; START SLAVE;");
    try {
      primary.sql(`INSERT INTO ${DB}.produits (nom, prix) VALUES ('tardif', 1)`);
      await waitFor(
        "the replica 3 s behind",
        () => Number(replicaField("Seconds_Behind_Master")) >= 3,
      );
      const env = onReplica.env("mariadb-full", { replicaMaxLag: 2 }, "lagging");
      const alerts = recordAlerts(env, "lagging");
      const r = onReplica.runScript("mariadb-full.sh", env);
      expect(r.code).not.toBe(0);
      const status = onReplica.status("mariadb-full");
      expect(status.result).toBe("failed");
      const lag =
        /the replica lags (\d+) s behind the primary, more than the limit of 2 s \(mariadb\.replica\.maxLagSeconds\)/.exec(
          String(status.error),
        );
      expect(Number(lag?.[1])).toBeGreaterThanOrEqual(3);
      expect(fs.readFileSync(alerts, "utf8")).toContain(`mariadb-full failed ${status.error}`);
      expect(fulls(backups()).length).toBe(before);
      expect(monitorReplica(2).error).toMatch(
        new RegExp(
          `the replica on ${replica.socket.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} lags \\d+ s behind the primary, more than the limit of 2 s \\(mariadb\\.replica\\.maxLagSeconds\\)`,
        ),
      );
    } finally {
      replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=0; START SLAVE;");
    }
  });
});
