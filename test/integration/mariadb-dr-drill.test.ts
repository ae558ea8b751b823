// The yearly disaster-recovery drill, for real: a real MariaDB source, the real full job and binlog
// shipper, the real NAS sync through a real sshd to the forced-command NAS receiver; then a standby
// (its own sandbox paths) gets what MariaDbDrDrill registers, replayed over SSH twice as pulumi up
// would run it: its own key (the real key command), that key authorized on the NAS read-only (the
// real authorized_keys command), the NAS's host key pinned, the scripts and the scheduled job. The
// drill rebuilds the database from the NAS alone with the real restore test and point-in-time
// recovery, timed end to end. The standby's key cannot write to the NAS, a damaged byte in the NAS
// copy fails the drill with an alert and no scratch left, and the deletes keep every copy and key.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { useRig } from "../harness/rig";
import { nasSync, sandboxNas, type SandboxNas } from "../harness/nas";
import { run, type RunResult } from "../harness/proc";
import { authorizedKeyLine, readOnlyKeyLine } from "../../components/offsite/render";
import { DR_DRILL_JOB, mariadbEnv } from "../../components/mariadb/render";
import { rootedPaths } from "../harness/sandbox";
import { sandboxHost } from "../harness/program";
import type { HostPaths } from "../../stacks/model/hosts";
import { keyFileFingerprint, physicalInstall, seedSchema, type Install } from "./mariadb-fixture";

const DB = "atlastech_db";

let backupDir: string;
let binlogDir: string;
let nas: SandboxNas;
let nasRoot: string;
let nasHome: string;
let receiver: string;
let alerts: string;
let mdb: Install;
/** The standby's own layout, apart from the database host's. */
let standby: HostPaths;
let readerKey: string;

const read = (p: string) => fs.readFileSync(p, "utf8");
const sha = (p: string) => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
const alertLines = () => (fs.existsSync(alerts) ? read(alerts).trim().split("\n") : []);
const refusals = () => nas.refused();
const newestFull = () =>
  fs
    .readdirSync(backupDir)
    .filter((f) => f.endsWith(".xb.zst.enc"))
    .sort()
    .at(-1)!;
const onNas = (p: string) => `${nasRoot}/${fs.readlinkSync(`${nasRoot}/latest`)}${p}`;
const scratch = () => `${standby.state}/dr-scratch`;
const scratchLeft = () => (fs.existsSync(scratch()) ? fs.readdirSync(scratch()) : []);
/** The drill through its entry point on the standby, as cron runs it, alerts recorded. */
const drill = (): RunResult =>
  run(`${standby.sbin}/b321-${DR_DRILL_JOB}`, [], {
    env: { ...process.env, B321_ALERT: rig.box.at("record-alert.sh") },
    timeoutMs: 900_000,
  });
const status = () =>
  JSON.parse(read(`${standby.status}/${DR_DRILL_JOB}.json`)) as Record<string, unknown>;
/** ssh options of the standby's key, as its drill uses them. */
const readerSsh = () => [
  "-i",
  readerKey,
  "-p",
  String(rig.sshd.port),
  "-o",
  "BatchMode=yes",
  "-o",
  "IdentitiesOnly=yes",
  "-o",
  "StrictHostKeyChecking=yes",
  "-o",
  `UserKnownHostsFile=${standby.etc}/${DR_DRILL_JOB}.known_hosts`,
];

/**
 * Runs the creates in order, as the engine would: each authorized_keys line is built from the real
 * key the step before made (the mocks only know a placeholder).
 */
function applyCreates(): void {
  const keys: Record<string, string> = {};
  for (const s of rig.steps) {
    let stdin = s.stdin;
    if (s.name === "sync-authorized-key")
      stdin =
        authorizedKeyLine({
          receiver,
          path: nasRoot,
          keep: 3,
          minAgeMinutes: 0,
          minIntervalMinutes: 0,
          publicKey: keys.sync,
          sourceHost: "db",
        }) + "\n";
    if (s.name === "drill-authorized-key")
      stdin =
        readOnlyKeyLine({
          receiver,
          path: nasRoot,
          publicKey: keys.drill,
          readerHost: "standby",
        }) + "\n";
    const r = s.create ? rig.sshd.exec(s.create, stdin) : { code: 0, stdout: "", stderr: "" };
    if (r.code !== 0) throw new Error(`create of ${s.name} failed (${r.code}):\n${r.stderr}`);
    if (s.name === "sync-key") keys.sync = r.stdout.trim();
    if (s.name === "drill-key") keys.drill = r.stdout.trim();
  }
}

const rig = useRig({
  prefix: "b321-dr-",
  mariadb: true,
  host: { name: "db", hostName: "db" },
  timeoutMs: 300_000,
  prepare: ({ box, mariadb: server }) => {
    backupDir = box.at("backups/database");
    binlogDir = box.at("backups/binlogs");
    fs.mkdirSync(backupDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(binlogDir, { recursive: true, mode: 0o700 });
    nas = sandboxNas(box);
    ({ root: nasRoot, home: nasHome, receiver } = nas);
    server.sql(seedSchema(DB, 0.2));
    mdb = physicalInstall(box.at("mdb"), server, DB, {
      backupDir,
      binlogBackupDir: binlogDir,
      keepFulls: 4,
      timezone: "UTC",
    }).box;
    standby = rootedPaths(box.at("standby"));
    readerKey = `${standby.secrets}/nas-read_ed25519`;
    alerts = box.at("alerts.log");
    fs.writeFileSync(
      box.at("record-alert.sh"),
      `#!/bin/sh\nprintf '%s %s %s\\n' "$1" "$2" "$3" >> '${alerts}'\n`,
      { mode: 0o755 },
    );
  },
  program: async ({ box, sshd, mariadb: server }, db) => {
    const { MariaDbDrDrill } = await import("../../components/mariadb");
    const { nas: nasAsHost } = await nasSync(nas, box, sshd, db, {
      sources: [backupDir, binlogDir],
      keep: 3,
    });
    // The standby: another host (its own layout) with the MariaDB key and scripts (installed below,
    // as MariaDbBackup installs them on it), and the drill MariaDbDrDrill registers.
    const standbyHost = await sandboxHost("standby", "standby", sshd, standby);
    new MariaDbDrDrill("drill", {
      host: standbyHost,
      schedule: "0 6 10 3 *",
      nas: {
        host: nasAsHost,
        address: "127.0.0.1",
        port: sshd.port,
        user: "root",
        hostKey: read(path.join(sshd.dir, "host_ed25519.pub")),
        path: nasRoot,
        home: nasHome,
        authorizedKeys: path.join(sshd.dir, "authorized_keys"),
        receiver,
      },
      sources: [backupDir, binlogDir],
      env: mariadbEnv({
        socket: server.socket,
        clientCnf: `${standby.secrets}/mariadb-backup.cnf`,
        keyFile: `${standby.secrets}/mariadb-backup.key`,
        keyFingerprint: keyFileFingerprint(mdb.keyFile),
        databases: [DB],
        method: "physical",
        compression: "zstd",
        backupDir,
        binlogBackupDir: binlogDir,
        binlogBasename: server.binlogBasename,
        prefix: DB,
        keepFulls: 4,
        binlogKeepDays: 7,
        timezone: "UTC",
        scratchDir: `${standby.state}/mariadb-scratch`,
        serverUser: "mysql",
        checkpointMaxTableMb: 256,
      }),
    });
  },
});

test("the real full, shipper and NAS sync put the database host's copies on the NAS", () => {
  applyCreates();
  expect(mdb.runScript("mariadb-full.sh", mdb.env("mariadb-full")).code).toBe(0);
  rig.mariadb.sql(`INSERT INTO ${DB}.clients (nom, email) VALUES ('after', 'a@example.ma')`);
  expect(mdb.runScript("mariadb-binlogs.sh", mdb.env("mariadb-binlogs")).code).toBe(0);
  expect(
    fs.readdirSync(binlogDir).filter((f) => f.endsWith(".zst.enc.sha256")).length,
  ).toBeGreaterThan(0);
  const sync = run(`${rig.box.paths.sbin}/b321-nas-sync`, []);
  expect(sync.code).toBe(0);
  expect(sha(onNas(`${backupDir}/${newestFull()}`))).toBe(sha(`${backupDir}/${newestFull()}`));
});

test("pulumi up's commands give the standby its own key, read-only on the NAS, and the drill's job, twice", () => {
  // the MariaDB key file and scripts, as MariaDbBackup installs them on the standby
  fs.mkdirSync(standby.secrets, { recursive: true, mode: 0o700 });
  fs.copyFileSync(mdb.keyFile, `${standby.secrets}/mariadb-backup.key`);
  fs.mkdirSync(standby.lib, { recursive: true });
  for (const f of fs.readdirSync(path.join(__dirname, "../../components/mariadb/scripts")))
    if (f !== "mariadb-dr-drill.sh") {
      fs.copyFileSync(
        path.join(__dirname, "../../components/mariadb/scripts", f),
        path.join(standby.lib, f),
      );
      fs.chmodSync(path.join(standby.lib, f), 0o755);
    }
  applyCreates();
  const pub = read(`${readerKey}.pub`);
  applyCreates();
  // the key is made once and kept
  expect(read(`${readerKey}.pub`)).toBe(pub);
  expect((fs.statSync(readerKey).mode & 0o777).toString(8)).toBe("600");
  const lines = read(path.join(rig.sshd.dir, "authorized_keys")).trim().split("\n");
  const mine = lines.filter((l) => l.endsWith(" backup321-nas-read@standby"));
  expect(mine).toEqual([
    `restrict,command="${receiver} --read-only ${nasRoot}" ${pub.split(" ").slice(0, 2).join(" ")} backup321-nas-read@standby`,
  ]);
  // the sync key's line is there too, untouched
  expect(lines.filter((l) => l.endsWith(" backup321-nas-sync@db"))).toHaveLength(1);
  expect(read(`${standby.etc}/${DR_DRILL_JOB}.known_hosts`)).toBe(
    `[127.0.0.1]:${rig.sshd.port} ${read(path.join(rig.sshd.dir, "host_ed25519.pub")).trim().split(" ").slice(0, 2).join(" ")}\n`,
  );
  const env = read(`${standby.etc}/${DR_DRILL_JOB}.env`);
  expect(env).toContain(`NAS_KEY='${readerKey}'\n`);
  expect(env).toContain(`DRILL_SCRATCH='${scratch()}'\n`);
  expect(env).toContain(`MARIADB_BACKUP_DIR='${backupDir}'\n`);
  expect((fs.statSync(`${standby.etc}/${DR_DRILL_JOB}.env`).mode & 0o777).toString(8)).toBe("600");
  expect(fs.existsSync(`${standby.jobs}/${DR_DRILL_JOB}.json`)).toBe(true);
  expect(read(`${standby.cron}/backup321-${DR_DRILL_JOB}`)).toContain("0 6 10 3 * root ");
  for (const f of ["mariadb-dr-drill.sh", "nas-pull.sh", "common.sh"])
    expect(fs.existsSync(`${standby.lib}/${f}`)).toBe(true);
});

test("the drill rebuilds the database from the NAS alone and records its time end to end", () => {
  const r = drill();
  expect(r.stderr).toContain("disaster-recovery drill passed");
  expect(r.code).toBe(0);
  const st = status();
  const binlogs = fs.readdirSync(binlogDir).filter((f) => f.endsWith(".zst.enc.sha256")).length;
  expect(st).toMatchObject({
    result: "success",
    snapshot: fs.readlinkSync(`${nasRoot}/latest`),
    fulls: 1,
    binlogs,
    file: newestFull(),
    phase: "open",
  });
  // the real restore test and the real recovery ran on the copy, and it took them some time
  expect(r.stderr).toContain("restore test passed");
  expect(r.stderr).toContain("the recovered instance opens: ");
  // the recovery replayed the shipped binlogs of the copy (the row added after the full)
  expect(r.stderr).toMatch(/\[mariadb-dr-drill-pitr\]: replaying [1-9]\d* binlog\(s\)/);
  const phases = ["pull", "verify", "test", "recover", "open"].map((p) =>
    Number(st[`phase_${p}_seconds`]),
  );
  for (const s of phases) expect(Number.isInteger(s)).toBe(true);
  const total = Number(st.restore_seconds);
  expect(total).toBeGreaterThanOrEqual(phases.reduce((a, b) => a + b, 0));
  expect(total).toBeGreaterThanOrEqual(Number(st.restore_test_seconds) + Number(st.pitr_seconds));
  expect(total).toBeGreaterThan(0);
  expect(total).toBeLessThanOrEqual(Number(st.duration_seconds));
  expect(Number(st.bytes)).toBeGreaterThan(fs.statSync(`${backupDir}/${newestFull()}`).size);
  // only the drill's own status and history on the standby; nothing refused on the NAS
  expect(fs.readdirSync(standby.status)).toEqual([`${DR_DRILL_JOB}.json`]);
  expect(refusals()).toEqual([]);
  expect(scratchLeft()).toEqual([]);
  expect(alertLines()).toEqual([]);
  // the run is in the standby's history, as a drill with its restore time
  const history = fs
    .readdirSync(standby.history)
    .map((f) => read(path.join(standby.history, f)))
    .join("");
  expect(history).toContain(`\t${DR_DRILL_JOB}\tdrill\tsuccess\t`);
  expect(history).toContain(`\t${total}\t${String(st.bytes)}\t`);
});

test("the standby's key reads but cannot write: an upload with it is refused and recorded", () => {
  const snapshots = () =>
    fs
      .readdirSync(nasRoot)
      .filter((f) => !f.startsWith(".refused"))
      .sort();
  const before = snapshots();
  const upload = run("rsync", [
    "-a",
    "--relative",
    "--stats",
    "--timeout=600",
    "-e",
    `ssh ${readerSsh().join(" ")}`,
    standby.etc,
    `root@127.0.0.1:${nasRoot}/20990101-000000.partial/`,
  ]);
  expect(upload.code).not.toBe(0);
  expect(upload.stderr).toContain("refused: read-only key");
  expect(refusals().at(-1)).toContain("read-only key: command 'rsync --server -");
  const finish = run("ssh", [...readerSsh(), "root@127.0.0.1", "finish 20990101-000000"]);
  expect(finish.code).not.toBe(0);
  expect(refusals().at(-1)).toContain("read-only key: command 'finish 20990101-000000'");
  expect(snapshots()).toEqual(before);
});

test("a damaged byte of the full on the NAS fails the drill, with an alert and no scratch left", () => {
  const copy = onNas(`${backupDir}/${newestFull()}`);
  const original = fs.readFileSync(copy);
  const damaged = Buffer.from(original);
  damaged[Math.floor(damaged.length / 2)] ^= 0x01;
  const before = alertLines().length;
  try {
    fs.writeFileSync(copy, damaged);
    const r = drill();
    expect(r.code).toBe(1);
    const st = status();
    expect(st.result).toBe("failed");
    expect(st.phase).toBe("verify");
    expect(st.error).toContain(`${newestFull()} on the NAS has sha256 ${sha(copy)}`);
    expect(typeof st.restore_seconds).toBe("number");
    expect(alertLines().slice(before)).toEqual([`${DR_DRILL_JOB} failed ${String(st.error)}`]);
    expect(scratchLeft()).toEqual([]);
  } finally {
    fs.writeFileSync(copy, original);
  }
});

test("a damaged shipped binlog on the NAS fails the drill before anything is restored", () => {
  const name = fs
    .readdirSync(binlogDir)
    .filter((f) => f.endsWith(".zst.enc"))
    .sort()
    .at(-1)!;
  const copy = onNas(`${binlogDir}/${name}`);
  const original = fs.readFileSync(copy);
  const damaged = Buffer.from(original);
  damaged[damaged.length - 1] ^= 0x01;
  try {
    fs.writeFileSync(copy, damaged);
    const r = drill();
    expect(r.code).toBe(1);
    const st = status();
    expect(st.error).toContain(`shipped binlog ${name} on the NAS has sha256 ${sha(copy)}`);
    expect(r.stderr).not.toContain("restore test passed");
    expect(scratchLeft()).toEqual([]);
  } finally {
    fs.writeFileSync(copy, original);
  }
  expect(drill().code).toBe(0);
});

test("a row count that the restore does not give back fails the drill in its restore test, naming it", () => {
  // the manifest says one more client than the full holds (its sha256 and size still match the
  // full: only restoring it can tell). The sandbox's standby sees the source's disk too, so both
  // copies of the manifest say it, as on a standby that holds none of the source's manifests.
  const manifest = onNas(`${backupDir}/${newestFull()}.manifest.json`);
  const local = `${backupDir}/${newestFull()}.manifest.json`;
  const original = read(manifest);
  expect(read(local)).toBe(original);
  const m = /^ {4}"atlastech_db\.clients": (\d+)/m.exec(original)!;
  const changed = original.replace(m[0], m[0].replace(m[1], String(Number(m[1]) + 1)));
  expect(changed).not.toBe(original);
  const before = alertLines().length;
  try {
    fs.writeFileSync(manifest, changed);
    fs.writeFileSync(local, changed);
    const r = drill();
    expect(r.code).toBe(1);
    const st = status();
    expect(st.phase).toBe("test");
    expect(st.error).toContain(
      `the restore-test on the NAS copy failed (mariadb-restore-test.sh, exit 1): restored data differs from the manifest: atlastech_db.clients has ${m[1]} rows, the manifest recorded ${Number(m[1]) + 1}`,
    );
    expect(alertLines().slice(before)).toEqual([`${DR_DRILL_JOB} failed ${String(st.error)}`]);
    expect(scratchLeft()).toEqual([]);
    // no scratch server is left running either
    expect(run("pgrep", ["-f", `datadir=${scratch()}`]).code).toBe(1);
  } finally {
    fs.writeFileSync(manifest, original);
    fs.writeFileSync(local, original);
  }
  expect(drill().code).toBe(0);
});

test("b321-evidence on the standby lists every drill with the restore time it measured", () => {
  const r = run(`${standby.sbin}/b321-evidence`, []);
  expect(r.code).toBe(0);
  const drills = r.stdout.split("## Drills and restores")[1].split("## ")[0];
  const rows = drills.split("\n").filter((l) => l.includes(`| ${DR_DRILL_JOB} | drill |`));
  const st = status();
  expect(rows.at(-1)).toBe(
    `| ${String(st.ended)} | ${DR_DRILL_JOB} | drill | success | ${String(st.restore_seconds)} s |  |`,
  );
  expect(drills).toContain(`| ${DR_DRILL_JOB} | drill | failed | `);
  // the restore test and the recovery inside the drill are not runs of the standby's own
  expect(drills).not.toContain(`${DR_DRILL_JOB}-`);
});

test("deletes remove the drill's job, scripts and key line on the NAS, never a copy or a key", () => {
  const snapshot = fs.readlinkSync(`${nasRoot}/latest`);
  rig.applyDeletes();
  rig.applyDeletes();
  expect(read(path.join(rig.sshd.dir, "authorized_keys"))).not.toContain(
    "backup321-nas-read@standby",
  );
  for (const f of [
    `${standby.etc}/${DR_DRILL_JOB}.env`,
    `${standby.cron}/backup321-${DR_DRILL_JOB}`,
    `${standby.jobs}/${DR_DRILL_JOB}.json`,
    `${standby.lib}/mariadb-dr-drill.sh`,
    `${standby.etc}/${DR_DRILL_JOB}.known_hosts`,
  ])
    expect(fs.existsSync(f)).toBe(false);
  // the key stays (like every key), and so do the NAS's snapshots and the source's copies
  expect(fs.existsSync(readerKey)).toBe(true);
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(snapshot);
  expect(fs.existsSync(onNas(`${backupDir}/${newestFull()}`))).toBe(true);
  expect(fs.existsSync(`${backupDir}/${newestFull()}`)).toBe(true);
});
