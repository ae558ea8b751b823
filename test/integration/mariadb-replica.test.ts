// Fulls taken on a replica (mariadb.replica), with two real MariaDB 10.11 servers in real GTID
// replication over loopback: the primary carries nothing of the backup (sampled SHOW PROCESSLIST),
// the manifest records the primary's coordinates, the verified full is handed to the primary over
// a real sshd (the replica's key restricted to mariadb-receive.sh there, installed by the
// component's own commands), and a PITR on the primary from the handed full plus its shipped
// binlogs equals the primary at the target. A replica that is stopped or lags beyond the limit
// gets no full, and a full the primary refuses fails the job: a failed status and an alert.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run, runOk, waitFor } from "../harness/proc";
import { startSshd, type Sshd } from "../harness/sshd";
import {
  ensureKeyCommand,
  installAuthorizedKeyCommand,
  keyComment,
  knownHostsLine,
} from "../../components/host/ssh-trust";
import { HANDOFF_PURPOSE, handoffKeyLine, type Handoff } from "../../components/mariadb/render";
import { jobEnv, renderEnvFile } from "../../components/host/render";
import { monitorEnv, type MonitorChecks } from "../../components/monitoring/render";
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
let sshd: Sshd;
let handoff: Handoff;

/** The primary's backupDir, where the handoff puts the fulls. */
const backups = () => path.join(root, "backups");
/** The replica's own backupDir (the same path on another host). */
const replicaBackups = () => path.join(root, "replica-backups");

/** Runs a command on the primary as the replica's handoff key (what a stolen key can do). */
function asHandoffKey(command: string): { code: number; stdout: string; stderr: string } {
  return run("ssh", [
    "-i",
    handoff.key,
    "-p",
    String(handoff.port),
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${handoff.knownHosts}`,
    "root@127.0.0.1",
    command,
  ]);
}

/** Sends FILE and FILE.manifest.json into the primary's .incoming with the handoff key, as the full job does. */
function sendToPrimary(file: string): void {
  const ssh = `ssh -i ${handoff.key} -p ${handoff.port} -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=${handoff.knownHosts}`;
  runOk("rsync", [
    "-t",
    "--timeout=60",
    "-e",
    ssh,
    "--",
    file,
    `${file}.manifest.json`,
    `root@127.0.0.1:${backups()}/.incoming/`,
  ]);
}

/** An alert hook recording "<job> <result> <message>" lines; returns the record's path. */
function recordAlerts(envFile: string, name: string): string {
  const alerts = path.join(root, `${name}-alerts.log`);
  const hook = path.join(root, `${name}-alert.sh`);
  fs.writeFileSync(hook, `#!/bin/sh\necho "$@" >> '${alerts}'\n`, { mode: 0o755 });
  fs.appendFileSync(envFile, `B321_ALERT=${hook}\n`);
  return alerts;
}

/**
 * monitor.sh on a host with only the given checks configured (no job is registered in this
 * sandbox, which the monitor also reports): its status error and its metrics file.
 */
function monitorOn(on: Install, only: Partial<MonitorChecks>): { error: string; metrics: string } {
  const script = path.join(on.lib, "monitor.sh");
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
    ...only,
  };
  fs.writeFileSync(
    env,
    renderEnvFile("test monitor", {
      ...monitorEnv(checks),
      ...jobEnv(on.paths, "monitor"),
      B321_ALERT: "/bin/true",
    }),
    { mode: 0o600 },
  );
  run(script, [env], { timeoutMs: 120_000 });
  return {
    error: String(on.status("monitor").error ?? ""),
    metrics: fs.readFileSync(path.join(on.paths.metrics, "monitor-checks.prom"), "utf8"),
  };
}

/** The monitor on the replica's host with its replica check only. */
const monitorReplica = (maxLagSeconds: number) =>
  monitorOn(onReplica, { replica: { socket: replica.socket, maxLagSeconds } });

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
  // The handoff, set up by the component's own commands: the replica's key, made there; its line
  // in the primary's authorized_keys (here the test sshd's); the primary's host key pinned.
  sshd = await startSshd();
  const replicaSecrets = path.join(root, "replica", "etc", "secrets");
  const key = `${replicaSecrets}/${HANDOFF_PURPOSE}_ed25519`;
  const comment = keyComment(HANDOFF_PURPOSE, "db-replica");
  fs.mkdirSync(replicaSecrets, { recursive: true, mode: 0o700 });
  const publicKey = runOk("bash", ["-c", ensureKeyCommand(key, comment)]).stdout;
  const line = handoffKeyLine({
    receiver: path.join(onPrimary.lib, "mariadb-receive.sh"),
    backupDir: backups(),
    keep: 2,
    publicKey,
    comment,
  });
  runOk(
    "bash",
    ["-c", installAuthorizedKeyCommand(path.join(sshd.dir, "authorized_keys"), comment)],
    {
      input: `${line}\n`,
    },
  );
  fs.chmodSync(path.join(sshd.dir, "authorized_keys"), 0o644);
  const knownHosts = path.join(root, "replica", "etc", "mariadb-handoff.known_hosts");
  const hostKey = fs.readFileSync(path.join(sshd.dir, "host_ed25519.pub"), "utf8");
  fs.writeFileSync(knownHosts, knownHostsLine("127.0.0.1", sshd.port, hostKey));
  handoff = {
    user: "root",
    address: "127.0.0.1",
    port: sshd.port,
    dir: backups(),
    key,
    knownHosts,
  };
  onReplica = installScripts(path.join(root, "replica"), replica, {
    ...base,
    backupDir: replicaBackups(),
    replicaMaxLag: 60,
    handoff,
  });
  fullEnv = onReplica.env("mariadb-full");
  await caughtUp();
  // Some of the primary's binlogs are closed before the full, as in a running site.
  primary.sql("FLUSH BINARY LOGS");
}, 300_000);

afterAll(async () => {
  await sshd?.stop();
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

  test("the verified full is handed to the primary: the same bytes and manifest on both hosts", () => {
    const status = onReplica.status("mariadb-full");
    expect(status.handed_to).toBe("127.0.0.1");
    const [mine] = fulls(replicaBackups());
    expect(path.basename(mine)).toBe(path.basename(full));
    expect(fs.readFileSync(full).equals(fs.readFileSync(mine))).toBe(true);
    expect(fs.readFileSync(`${full}.manifest.json`, "utf8")).toBe(
      fs.readFileSync(`${mine}.manifest.json`, "utf8"),
    );
    expect(fs.statSync(full).mode & 0o777).toBe(0o600);
    // nothing is left in the primary's incoming directory
    expect(fs.readdirSync(path.join(backups(), ".incoming"))).toEqual([]);
    expect(asHandoffKey("list").stdout).toBe(`${path.basename(full)}\n`);
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

  test("the monitor on the primary finds the chain from the handed full to its shipped binlogs whole", () => {
    const pitr = { binlogDir: path.join(root, "binlogs"), fullDir: backups(), graceHours: 0 };
    const whole = monitorOn(onPrimary, { pitr });
    expect(whole.metrics).toMatch(/^backup321_pitr_binlogs_missing\{dir="[^"]+"\} 0$/m);
    // the full's own binlog goes missing from the shipped ones: the check sees the gap
    const own = fs
      .readdirSync(pitr.binlogDir)
      .filter((f) => f.startsWith(`${String(manifest.binlog_file)}.`) && f.endsWith(".zst.enc"));
    expect(own).toHaveLength(1);
    const gone = path.join(root, own[0]);
    fs.renameSync(path.join(pitr.binlogDir, own[0]), gone);
    try {
      expect(monitorOn(onPrimary, { pitr }).error).toContain(
        `point-in-time recovery has a gap: ${String(manifest.binlog_file)} missing`,
      );
    } finally {
      fs.renameSync(gone, path.join(pitr.binlogDir, own[0]));
    }
  });
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
  // no handoff: the logical full stays where the restore test on the primary's host reads it
  const full = onReplica.runScript(
    "mariadb-full.sh",
    onReplica.env("mariadb-full", { ...logical, handoff: undefined }, "logical"),
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

describe("the primary takes from the handoff key only newer verified fulls", () => {
  const names = () => fulls(backups()).map((f) => path.basename(f));
  /** A copy of the newest full under another stamp, its manifest naming it (the same bytes). */
  function forge(stamp: string, damage = false): string {
    const [src] = fulls(replicaBackups()).slice(-1);
    const dir = fs.mkdtempSync(path.join(root, "forged-"));
    const name = path.basename(src).replace(/_full_\d{8}_\d{6}\./, `_full_${stamp}.`);
    const file = path.join(dir, name);
    const bytes = fs.readFileSync(src);
    if (damage) bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(file, bytes);
    fs.writeFileSync(
      `${file}.manifest.json`,
      fs.readFileSync(`${src}.manifest.json`, "utf8").replace(path.basename(src), name),
    );
    return file;
  }

  test("no other command: a shell, another rsync destination", () => {
    const before = names();
    const shell = asHandoffKey("cat /etc/shadow");
    expect(shell.code).not.toBe(0);
    expect(shell.stderr).toContain("refused: command 'cat'");
    const elsewhere = run("rsync", [
      "-t",
      "--timeout=60",
      "-e",
      `ssh -i ${handoff.key} -p ${handoff.port} -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=${handoff.knownHosts}`,
      "--",
      handoff.knownHosts,
      "root@127.0.0.1:/tmp/",
    ]);
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stderr).toContain("refused: destination /tmp/");
    expect(names()).toEqual(before);
  });

  test("a damaged full, an older one and one within the hour are refused and leave nothing", () => {
    const before = names();
    const damaged = forge("29991231_000000", true);
    sendToPrimary(damaged);
    let r = asHandoffKey(`accept ${path.basename(damaged)}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/has sha256 [0-9a-f]{64}, its manifest recorded [0-9a-f]{64}/);
    const older = forge("20000101_000000");
    sendToPrimary(older);
    r = asHandoffKey(`accept ${path.basename(older)}`);
    expect(r.stderr).toContain(`is not newer than ${before[before.length - 1]}`);
    const sound = forge("29991231_000000");
    sendToPrimary(sound);
    r = asHandoffKey(`accept ${path.basename(sound)}`);
    expect(r.stderr).toContain("too frequent: a full was accepted here less than 60 minutes ago");
    expect(names()).toEqual(before);
    expect(fs.readdirSync(path.join(backups(), ".incoming"))).toEqual([]);
  });

  test("a full the primary refuses fails the job with an alert; the replica keeps it", async () => {
    await caughtUp();
    const before = names();
    const env = onReplica.env("mariadb-full", {}, "refused");
    const alerts = recordAlerts(env, "refused");
    const r = onReplica.runScript("mariadb-full.sh", env);
    expect(r.code).not.toBe(0);
    const status = onReplica.status("mariadb-full");
    expect(status.result).toBe("failed");
    expect(String(status.error)).toMatch(
      /the primary 127\.0\.0\.1 did not accept the full \(.*too frequent.*\): \S+ is verified and kept here, but the primary's PITR, NAS sync and upload still have only the previous full/,
    );
    expect(fs.readFileSync(alerts, "utf8")).toContain(`mariadb-full failed ${status.error}`);
    expect(names()).toEqual(before);
    expect(fulls(replicaBackups()).map((f) => path.basename(f))).toContain(
      path.basename(String(status.file)),
    );
  }, 300_000);

  test("after the hour, the next fulls are accepted and the primary keeps its newest two", async () => {
    const first = names();
    expect(first).toHaveLength(1);
    const handed: string[] = [];
    for (const run of ["next", "after"]) {
      // the hour has passed, by the primary's clock
      const past = new Date(Date.now() - 2 * 3600_000);
      fs.utimesSync(path.join(backups(), ".last-accepted"), past, past);
      await caughtUp();
      const r = onReplica.runScript("mariadb-full.sh", onReplica.env("mariadb-full", {}, run));
      expect(r.code).toBe(0);
      handed.push(path.basename(String(onReplica.status("mariadb-full").file)));
    }
    // keep 2 (the authorized_keys line's): the first full went, nothing forged came in
    expect(names()).toEqual(handed);
    expect(fs.existsSync(path.join(backups(), `${first[0]}.manifest.json`))).toBe(false);
  }, 300_000);

  test("an increment on the replica goes to the primary beside its full, which then stays; PITR there restores both", async () => {
    const base = names().at(-1)!;
    primary.sql(
      `UPDATE ${DB}.produits SET prix = prix + 1; INSERT INTO ${DB}.clients (nom, email) SELECT CONCAT('incr-', seq), 'i@y' FROM seq_1_to_30;`,
      DB,
    );
    await caughtUp();
    const r = onReplica.runScript("mariadb-incremental.sh", onReplica.env("mariadb-incremental"));
    expect(r.code).toBe(0);
    const status = onReplica.status("mariadb-incremental");
    expect(status).toMatchObject({
      result: "success",
      level: "incremental",
      base_full: base,
      handed_to: "127.0.0.1",
    });
    const incr = path.basename(String(status.file));
    const onThePrimary = path.join(backups(), incr);
    expect(fulls(backups(), "incr")).toEqual([onThePrimary]);
    expect(fs.readFileSync(onThePrimary)).toEqual(fs.readFileSync(String(status.file)));
    // PITR on the primary: the handed full, the increment, then the primary's binlogs after it
    primary.sql(`DELETE FROM ${DB}.conges WHERE id % 5 = 0`);
    const until = await nextSecond();
    const atTarget = checksums((q) => primary.sql(q));
    await new Promise((r) => setTimeout(r, 1100));
    expect(onPrimary.runScript("mariadb-binlogs.sh", onPrimary.env("mariadb-binlogs")).code).toBe(
      0,
    );
    const target = path.join(root, "pitr-incr");
    const pitr = onPrimary.pitr(onPrimary.env("mariadb-pitr"), until, target);
    expect(pitr.code).toBe(0);
    expect(onPrimary.status("mariadb-pitr")).toMatchObject({
      file: path.join(backups(), base),
      increment: onThePrimary,
    });
    const restored = await startOn(target);
    try {
      expect(checksums(restored.sql)).toBe(atTarget);
    } finally {
      await restored.stop();
    }
    // an increment of a full the primary does not have is refused
    const orphan = path.join(
      fs.mkdtempSync(path.join(root, "orphan-")),
      incr.replace(/_incr_\d{8}_\d{6}\./, "_incr_29991231_000000."),
    );
    fs.copyFileSync(String(status.file), orphan);
    fs.writeFileSync(
      `${orphan}.manifest.json`,
      fs
        .readFileSync(`${String(status.file)}.manifest.json`, "utf8")
        .replace(incr, path.basename(orphan))
        .replace(
          `"base_full": "${base}"`,
          `"base_full": "${base.replace(/_full_\d{8}/, "_full_20000101")}"`,
        ),
    );
    sendToPrimary(orphan);
    const refused = asHandoffKey(`accept ${path.basename(orphan)}`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/builds on \S+_full_20000101_\d{6}\S*, which is not here/);
    // two newer fulls: the primary keeps its newest two, and the increment's full besides them
    for (const tag of ["third", "fourth"]) {
      const past = new Date(Date.now() - 2 * 3600_000);
      fs.utimesSync(path.join(backups(), ".last-accepted"), past, past);
      await caughtUp();
      const r = onReplica.runScript("mariadb-full.sh", onReplica.env("mariadb-full", {}, tag));
      expect(r.code).toBe(0);
    }
    expect(names()).toHaveLength(3);
    expect(names()).toContain(base);
    expect(fulls(backups(), "incr")).toEqual([onThePrimary]);
  }, 300_000);
});
