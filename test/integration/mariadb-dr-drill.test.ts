// The yearly disaster-recovery drill, for real: a real MariaDB source, the real full job and binlog
// shipper, the real NAS sync through a real sshd to the forced-command NAS receiver; then a standby
// (its own sandbox paths, its own key made by the real key command, authorized on the NAS read-only
// by the real authorized_keys command, the NAS's host key pinned) rebuilds the database from the
// NAS alone with the real restore test and point-in-time recovery, timed end to end. The standby's
// key cannot write to the NAS, and a damaged byte in the NAS copy fails the drill with an alert and
// no scratch left.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { useRig } from "../harness/rig";
import { run, type RunResult } from "../harness/proc";
import {
  authorizedKeyLine,
  nasReaderKeyComment,
  readOnlyKeyLine,
} from "../../components/offsite/render";
import {
  ensureKeyCommand,
  installAuthorizedKeyCommand,
  knownHostsLine,
} from "../../components/host/ssh-trust";
import { renderEnvFile } from "../../components/host/render";
import { DR_DRILL_JOB, drDrillEnv } from "../../components/mariadb/render";
import { installScripts, physicalInstall, seedSchema, type Install } from "./mariadb-fixture";

const DB = "atlastech_db";

let backupDir: string;
let binlogDir: string;
let nasRoot: string;
let nasHome: string;
let receiver: string;
let alerts: string;
let mdb: Install;
let standby: Install;
let readerKey: string;
let drillEnv: string;

const read = (p: string) => fs.readFileSync(p, "utf8");
const sha = (p: string) => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
const alertLines = () => (fs.existsSync(alerts) ? read(alerts).trim().split("\n") : []);
const refusals = () =>
  fs.existsSync(`${nasRoot}/.refused`) ? read(`${nasRoot}/.refused`).trim().split("\n") : [];
const newestFull = () =>
  fs
    .readdirSync(backupDir)
    .filter((f) => f.endsWith(".xb.zst.enc"))
    .sort()
    .at(-1)!;
const onNas = (p: string) => `${nasRoot}/${fs.readlinkSync(`${nasRoot}/latest`)}${p}`;
const scratch = () => `${standby.state}/dr-scratch`;
const scratchLeft = () => (fs.existsSync(scratch()) ? fs.readdirSync(scratch()) : []);
const drill = (): RunResult =>
  run(`${standby.lib}/mariadb-dr-drill.sh`, [drillEnv], { timeoutMs: 900_000 });
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

/** The source host's creates, in order, as the engine would run them. */
function applyCreates(): void {
  let publicKey = "";
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
          publicKey,
          sourceHost: "db",
        }) + "\n";
    const r = s.create ? rig.sshd.exec(s.create, stdin) : { code: 0, stdout: "", stderr: "" };
    if (r.code !== 0) throw new Error(`create of ${s.name} failed (${r.code}):\n${r.stderr}`);
    if (s.name === "sync-key") publicKey = r.stdout.trim();
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
    nasRoot = box.at("nas/backups/atlastech");
    nasHome = box.at("nas/home");
    receiver = `${nasHome}/.backup321/nas-receive.sh`;
    server.sql(seedSchema(DB, 0.2));
    mdb = physicalInstall(box.at("mdb"), server, DB, {
      backupDir,
      binlogBackupDir: binlogDir,
      keepFulls: 4,
      timezone: "UTC",
    }).box;
    alerts = box.at("alerts.log");
    fs.writeFileSync(
      box.at("record-alert.sh"),
      `#!/bin/sh\nprintf '%s %s %s\\n' "$1" "$2" "$3" >> '${alerts}'\n`,
      { mode: 0o755 },
    );
  },
  program: async ({ box, sshd }, db) => {
    const { Host } = await import("../../components/host");
    const { NasSync } = await import("../../components/offsite");
    const nas = new Host("nas", {
      hostName: "nas",
      address: "127.0.0.1",
      port: sshd.port,
      privateKey: pulumi.secret(sshd.privateKey),
      paths: box.paths,
      installLibrary: false,
    });
    new NasSync("sync", {
      host: db,
      nas,
      nasAddress: "127.0.0.1",
      nasPort: sshd.port,
      nasUser: "root",
      nasHostKey: read(path.join(sshd.dir, "host_ed25519.pub")),
      path: nasRoot,
      sources: [backupDir, binlogDir],
      keep: 3,
      minAgeMinutes: 0,
      minIntervalMinutes: 0,
      schedule: "45 * * * *",
      nasHome,
      authorizedKeysFile: path.join(sshd.dir, "authorized_keys"),
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

test("the standby gets its own key, read-only on the NAS, and the NAS's pinned host key", () => {
  const root = rig.box.at("standby");
  // the standby's own paths and scripts, and the stack's key (the same key file as the source's)
  const secrets = path.join(root, "etc", "secrets");
  fs.mkdirSync(secrets, { recursive: true, mode: 0o700 });
  fs.copyFileSync(mdb.keyFile, `${secrets}/mariadb-backup.key`);
  standby = installScripts(root, rig.mariadb, {
    method: "physical",
    compression: "zstd",
    databases: [DB],
    // the standby holds no option file of the source's server: nothing here logs into it
    clientCnf: `${secrets}/mariadb-backup.cnf`,
    keyFile: `${secrets}/mariadb-backup.key`,
    backupDir,
    binlogBackupDir: binlogDir,
    keepFulls: 4,
    timezone: "UTC",
  });
  fs.copyFileSync(
    path.join(__dirname, "../../components/offsite/scripts/nas-pull.sh"),
    path.join(standby.lib, "nas-pull.sh"),
  );
  readerKey = `${secrets}/nas-read_ed25519`;
  const made = rig.sshd.exec(ensureKeyCommand(readerKey, nasReaderKeyComment("standby")));
  expect(made.code).toBe(0);
  // run twice: the key stays the same
  expect(rig.sshd.exec(ensureKeyCommand(readerKey, nasReaderKeyComment("standby"))).stdout).toBe(
    made.stdout,
  );
  const authorizedKeys = path.join(rig.sshd.dir, "authorized_keys");
  const line = readOnlyKeyLine({
    receiver,
    path: nasRoot,
    publicKey: made.stdout,
    readerHost: "standby",
  });
  const install = installAuthorizedKeyCommand(authorizedKeys, nasReaderKeyComment("standby"));
  for (let i = 0; i < 2; i++) expect(rig.sshd.exec(install, `${line}\n`).code).toBe(0);
  expect(read(authorizedKeys)).toContain(
    `command="${receiver} --read-only ${nasRoot}" ssh-ed25519 `,
  );
  fs.writeFileSync(
    `${standby.etc}/${DR_DRILL_JOB}.known_hosts`,
    knownHostsLine("127.0.0.1", rig.sshd.port, read(path.join(rig.sshd.dir, "host_ed25519.pub"))),
  );
  drillEnv = standby.env(DR_DRILL_JOB);
  fs.appendFileSync(
    drillEnv,
    renderEnvFile("the drill's", {
      ...drDrillEnv({
        nas: {
          user: "root",
          address: "127.0.0.1",
          port: rig.sshd.port,
          path: nasRoot,
          key: readerKey,
          knownHosts: `${standby.etc}/${DR_DRILL_JOB}.known_hosts`,
        },
        sources: [backupDir, binlogDir],
        scratch: scratch(),
      }),
      B321_ALERT: rig.box.at("record-alert.sh"),
    }),
  );
});

test("the drill rebuilds the database from the NAS alone and records its time end to end", () => {
  const r = drill();
  expect(r.stderr).toContain("disaster-recovery drill passed");
  expect(r.code).toBe(0);
  const st = standby.status(DR_DRILL_JOB);
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
  expect(fs.readdirSync(standby.paths.status)).toEqual([`${DR_DRILL_JOB}.json`]);
  expect(refusals()).toEqual([]);
  expect(scratchLeft()).toEqual([]);
  expect(alertLines()).toEqual([]);
  // the run is in the standby's history, as a drill with its restore time
  const history = fs
    .readdirSync(standby.paths.history)
    .map((f) => read(path.join(standby.paths.history, f)))
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
    const st = standby.status(DR_DRILL_JOB);
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
    const st = standby.status(DR_DRILL_JOB);
    expect(st.error).toContain(`shipped binlog ${name} on the NAS has sha256 ${sha(copy)}`);
    expect(r.stderr).not.toContain("restore test passed");
    expect(scratchLeft()).toEqual([]);
  } finally {
    fs.writeFileSync(copy, original);
  }
  expect(drill().code).toBe(0);
});
