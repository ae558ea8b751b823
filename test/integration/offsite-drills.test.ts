// The drills of the NAS copy and of the offsite dumps, for real: the real MariaDB full job writes a
// physical full (and the shipper its binlogs), the real NAS sync sends them through a real sshd to
// the forced-command NAS receiver, the real upload sends the full to s3rver over TLS; then each drill
// reads its copy back and passes, and a damaged byte of either copy fails it with an alert and an
// empty scratch directory.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { useRig } from "../harness/rig";
import { nasSync, sandboxNas, type SandboxNas } from "../harness/nas";
import { run, type RunResult } from "../harness/proc";
import { authorizedKeyLine } from "../../components/offsite/render";
import {
  createBackupUser,
  keyFileFingerprint,
  physicalInstall,
  seedSchema,
  type Install,
} from "./mariadb-fixture";

const BUCKET = "atlastech-backups";
const ACCESS = "S3RVER";
// s3rver checks signatures against its fixed key pair.
const SECRET = "S3RVER";
const DB = "atlastech_db";

let backupDir: string;
let binlogDir: string;
let nas: SandboxNas;
let nasRoot: string;
let receiver: string;
let alerts: string;
let mdb: Install;
let keyFile: string;
let testCreds: string;

const read = (p: string) => fs.readFileSync(p, "utf8");
const sha = (p: string) => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
const status = (job: string) =>
  JSON.parse(read(`${rig.box.paths.status}/${job}.json`)) as Record<string, unknown>;
const alertLines = () => (fs.existsSync(alerts) ? read(alerts).trim().split("\n") : []);
const scratchLeft = (dir: string) => fs.readdirSync(`${rig.box.paths.state}/${dir}`);

/** A job through its entry point, as cron runs it, alerts recorded. */
function job(name: string): RunResult {
  return run(`${rig.box.paths.sbin}/b321-${name}`, [], {
    env: { ...process.env, B321_ALERT: `${rig.box.root}/record-alert.sh` },
    timeoutMs: 600_000,
  });
}

/** The test's own aws CLI, with s3rver's key: what someone with the bucket's admin key can do. */
function aws(args: string[]): RunResult {
  return run("aws", ["--endpoint-url", rig.s3.endpoint, "--ca-bundle", rig.s3.caFile, ...args], {
    env: {
      ...process.env,
      AWS_SHARED_CREDENTIALS_FILE: testCreds,
      AWS_CONFIG_FILE: "/dev/null",
      AWS_DEFAULT_REGION: "us-east-1",
      AWS_REQUEST_CHECKSUM_CALCULATION: "when_required",
    },
  });
}

/** The newest full the real job wrote, and the file in the NAS's newest snapshot. */
const newestFull = () =>
  fs
    .readdirSync(backupDir)
    .filter((f) => f.endsWith(".xb.zst.enc"))
    .sort()
    .at(-1)!;
const onNas = (p: string) => `${nasRoot}/${fs.readlinkSync(`${nasRoot}/latest`)}${p}`;

/** Runs the creates in order, as the engine would: the authorized_keys line is built from the real key. */
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
  prefix: "b321-drills-",
  s3Bucket: BUCKET,
  mariadb: true,
  host: { name: "db", hostName: "db" },
  timeoutMs: 300_000,
  prepare: ({ box, mariadb: server }) => {
    backupDir = box.at("backups/database");
    binlogDir = box.at("backups/binlogs");
    fs.mkdirSync(backupDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(binlogDir, { recursive: true, mode: 0o700 });
    nas = sandboxNas(box);
    ({ root: nasRoot, receiver } = nas);
    server.sql(seedSchema(DB, 0.2));
    mdb = physicalInstall(box.at("mdb"), server, DB, {
      backupDir,
      binlogBackupDir: binlogDir,
      keepFulls: 4,
      timezone: "UTC",
    }).box;
    keyFile = mdb.keyFile;
    alerts = box.at("alerts.log");
    fs.writeFileSync(
      box.at("record-alert.sh"),
      `#!/bin/sh\nprintf '%s %s %s\\n' "$1" "$2" "$3" >> '${alerts}'\n`,
      { mode: 0o755 },
    );
    testCreds = box.at("test-aws-credentials");
    fs.writeFileSync(
      testCreds,
      `[default]\naws_access_key_id = ${ACCESS}\naws_secret_access_key = ${SECRET}\n`,
      { mode: 0o600 },
    );
  },
  program: async ({ box, sshd, s3, mariadb: server }, db) => {
    const { DumpUpload } = await import("../../components/offsite");
    await nasSync(nas, box, sshd, db, {
      sources: [backupDir, binlogDir],
      keep: 3,
      drill: { schedule: "0 10 4 * *" },
    });
    new DumpUpload("upload", {
      host: db,
      bucket: BUCKET,
      region: "us-east-1",
      prefix: "database/",
      backupDir,
      schedule: "30 5 * * *",
      accessKeyId: ACCESS,
      secretAccessKey: pulumi.secret(SECRET),
      endpoint: s3.endpoint,
      caBundle: s3.caFile,
      checksumCalculation: "when_required",
      binlogs: { dir: binlogDir, basename: server.binlogBasename },
      drill: {
        schedule: "0 11 5 * *",
        keyFile: `${box.at("mdb")}/etc/secrets/mariadb-backup.key`,
        keyFingerprint: pulumi.output(keyFileFingerprint(keyFile)),
      },
    });
  },
});

test("pulumi up's commands install both drills as jobs, twice, with no secret in their env files", () => {
  for (const s of rig.steps) expect(`${s.create}${s.update}${s.delete}`).not.toContain(SECRET);
  applyCreates();
  applyCreates();
  // offsite-drill.sh reads fulls with the MariaDB scripts' library, which the MariaDB component
  // installs beside it on the database host
  fs.copyFileSync(`${mdb.lib}/mariadb-lib.sh`, `${rig.box.paths.lib}/mariadb-lib.sh`);
  const nasEnv = read(`${rig.box.paths.etc}/nas-sync-drill.env`);
  expect(nasEnv).toContain(`NAS_PATH='${nasRoot}'\n`);
  expect(nasEnv).toContain(`DRILL_SCRATCH='${rig.box.paths.state}/nas-scratch'\n`);
  const offEnv = read(`${rig.box.paths.etc}/offsite-upload-drill.env`);
  expect(offEnv).not.toContain(SECRET);
  expect(offEnv).toContain(`OFFSITE_CREDENTIALS='${rig.box.paths.secrets}/offsite-upload-aws'\n`);
  expect(offEnv).toContain(`MARIADB_KEY_FINGERPRINT='${keyFileFingerprint(keyFile)}'\n`);
  expect(offEnv).toContain(`DRILL_SCRATCH='${rig.box.paths.state}/offsite-scratch'\n`);
  for (const j of ["nas-sync-drill", "offsite-upload-drill"]) {
    expect((fs.statSync(`${rig.box.paths.etc}/${j}.env`).mode & 0o777).toString(8)).toBe("600");
    // the registry makes a drill that stops running overdue
    expect(fs.existsSync(`${rig.box.paths.etc}/jobs.d/${j}.json`)).toBe(true);
    expect(read(`${rig.box.paths.cron}/backup321-${j}`)).toContain(`/b321-cron.sh' '${j}' `);
  }
});

test("the real full, shipper, NAS sync and upload make the copies the drills read", () => {
  expect(mdb.runScript("mariadb-full.sh", mdb.env("mariadb-full")).code).toBe(0);
  rig.mariadb.sql(`INSERT INTO ${DB}.clients (nom, email) VALUES ('drill', 'd@example.ma')`);
  expect(mdb.runScript("mariadb-binlogs.sh", mdb.env("mariadb-binlogs")).code).toBe(0);
  expect(fs.readdirSync(binlogDir).filter((f) => f.endsWith(".zst.enc.sha256")).length).toBe(
    fs.readdirSync(binlogDir).filter((f) => f.endsWith(".zst.enc")).length,
  );
  const sync = job("nas-sync");
  expect(sync.code).toBe(0);
  const up = job("offsite-upload");
  expect(up.stderr).toContain("verified");
  expect(up.code).toBe(0);
  expect(sha(onNas(`${backupDir}/${newestFull()}`))).toBe(sha(`${backupDir}/${newestFull()}`));
});

test("the NAS drill reads the newest snapshot back and finds every full and binlog as recorded", () => {
  const r = job("nas-sync-drill");
  expect(r.stderr).toContain("read-back drill passed");
  expect(r.code).toBe(0);
  const binlogs = fs.readdirSync(binlogDir).filter((f) => f.endsWith(".zst.enc.sha256")).length;
  expect(binlogs).toBeGreaterThan(0);
  const full = `${backupDir}/${newestFull()}`;
  expect(status("nas-sync-drill")).toMatchObject({
    result: "success",
    snapshot: fs.readlinkSync(`${nasRoot}/latest`),
    fulls: 1,
    increments: 0,
    binlogs,
  });
  expect(Number(status("nas-sync-drill").bytes)).toBeGreaterThan(fs.statSync(full).size);
  expect(typeof status("nas-sync-drill").restore_seconds).toBe("number");
  // it read through the NAS's read-only path: nothing refused, nothing new on the NAS
  expect(fs.existsSync(`${nasRoot}/.refused`)).toBe(false);
  expect(scratchLeft("nas-scratch")).toEqual([]);
});

test("a damaged byte of a full on the NAS fails the NAS drill, with an alert and no scratch left", () => {
  const copy = onNas(`${backupDir}/${newestFull()}`);
  const original = fs.readFileSync(copy);
  const damaged = Buffer.from(original);
  damaged[Math.floor(damaged.length / 2)] ^= 0x01;
  const before = alertLines().length;
  try {
    fs.writeFileSync(copy, damaged);
    const r = job("nas-sync-drill");
    expect(r.code).toBe(1);
    const st = status("nas-sync-drill");
    expect(st.result).toBe("failed");
    expect(st.error).toContain(`${newestFull()} on the NAS has sha256 ${sha(copy)}`);
    expect(st.error).toContain(`its manifest recorded ${sha(`${backupDir}/${newestFull()}`)}`);
    expect(alertLines().slice(before)).toEqual([`nas-sync-drill failed ${String(st.error)}`]);
    expect(scratchLeft("nas-scratch")).toEqual([]);
  } finally {
    fs.writeFileSync(copy, original);
  }
  expect(job("nas-sync-drill").code).toBe(0);
});

test("a full and its manifest altered together on the NAS fail against this host's manifest", () => {
  const name = newestFull();
  const copy = onNas(`${backupDir}/${name}`);
  const manifest = `${copy}.manifest.json`;
  const [origFull, origManifest] = [fs.readFileSync(copy), read(manifest)];
  try {
    const damaged = Buffer.from(origFull);
    damaged[100] ^= 0xff;
    fs.writeFileSync(copy, damaged);
    fs.writeFileSync(manifest, origManifest.replace(sha(`${backupDir}/${name}`), sha(copy)));
    const r = job("nas-sync-drill");
    expect(r.code).toBe(1);
    expect(status("nas-sync-drill").error).toContain(
      `${name}.manifest.json on the NAS differs from the one this host wrote when the full was made`,
    );
    expect(scratchLeft("nas-scratch")).toEqual([]);
  } finally {
    fs.writeFileSync(copy, origFull);
    fs.writeFileSync(manifest, origManifest);
  }
});

test("a damaged shipped binlog on the NAS fails the NAS drill", () => {
  const name = fs
    .readdirSync(binlogDir)
    .filter((f) => f.endsWith(".zst.enc"))
    .sort()[0];
  const copy = onNas(`${binlogDir}/${name}`);
  const original = fs.readFileSync(copy);
  try {
    fs.writeFileSync(copy, Buffer.concat([original, Buffer.from("x")]));
    const r = job("nas-sync-drill");
    expect(r.code).toBe(1);
    expect(status("nas-sync-drill").error).toContain(
      `shipped binlog ${name} on the NAS has sha256`,
    );
    expect(scratchLeft("nas-scratch")).toEqual([]);
  } finally {
    fs.writeFileSync(copy, original);
  }
});

test("the offsite drill downloads the newest full, checks it, decrypts and prepares it", () => {
  const r = job("offsite-upload-drill");
  expect(r.stderr).toContain("offsite drill passed");
  expect(r.stderr).toContain("phase prepare: started");
  expect(r.code).toBe(0);
  const full = `${backupDir}/${newestFull()}`;
  const st = status("offsite-upload-drill");
  expect(st).toMatchObject({
    result: "success",
    key: `database/${newestFull()}`,
    storage_class: "STANDARD",
    method: "physical",
    sha256: sha(full),
    bytes: fs.statSync(full).size,
  });
  expect(typeof st.restore_seconds).toBe("number");
  expect(typeof st.phase_prepare_seconds).toBe("number");
  expect(scratchLeft("offsite-scratch")).toEqual([]);
});

test("a damaged byte of the bucket's full fails the offsite drill, with an alert and no scratch left", () => {
  const name = newestFull();
  const key = `database/${name}`;
  const full = `${backupDir}/${name}`;
  const damaged = rig.box.at("damaged.bin");
  const bytes = fs.readFileSync(full);
  bytes[Math.floor(bytes.length / 3)] ^= 0x01;
  fs.writeFileSync(damaged, bytes);
  // the same metadata the upload wrote: only the bytes differ
  const put = (file: string) =>
    expect(
      aws(["s3", "cp", "--metadata", `sha256=${sha(full)}`, file, `s3://${BUCKET}/${key}`]).code,
    ).toBe(0);
  const before = alertLines().length;
  try {
    put(damaged);
    const r = job("offsite-upload-drill");
    expect(r.code).toBe(1);
    const st = status("offsite-upload-drill");
    expect(st.result).toBe("failed");
    expect(st.error).toBe(
      `${key} from the bucket has sha256 ${sha(damaged)}, its manifest recorded ${sha(full)}`,
    );
    expect(alertLines().slice(before)).toEqual([`offsite-upload-drill failed ${String(st.error)}`]);
    expect(scratchLeft("offsite-scratch")).toEqual([]);
  } finally {
    put(full);
  }
  expect(job("offsite-upload-drill").code).toBe(0);
});

test("a newest full already in GLACIER is not read: the drill says so plainly", () => {
  const key = "database/atlastech_db_full_29991231_000000.xb.zst.enc";
  expect(
    aws([
      "s3",
      "cp",
      "--storage-class",
      "GLACIER",
      `${backupDir}/${newestFull()}`,
      `s3://${BUCKET}/${key}`,
    ]).code,
  ).toBe(0);
  try {
    const r = job("offsite-upload-drill");
    expect(r.code).toBe(1);
    expect(status("offsite-upload-drill")).toMatchObject({
      result: "failed",
      key,
      storage_class: "GLACIER",
    });
    expect(status("offsite-upload-drill").error).toContain(
      `the newest full in the bucket, ${key}, is in GLACIER: it cannot be read without a restore request`,
    );
    expect(r.stderr).not.toContain("downloading");
    expect(scratchLeft("offsite-scratch")).toEqual([]);
  } finally {
    expect(aws(["s3", "rm", `s3://${BUCKET}/${key}`]).code).toBe(0);
  }
});

test("a logical full: the offsite drill reads the dump to its trailer; the NAS drill checks both fulls and the increment", () => {
  // an increment of the physical full first: the NAS drill reads it back too, counted apart
  const incr = mdb.runScript("mariadb-incremental.sh", mdb.env("mariadb-incremental"));
  expect(incr.code).toBe(0);
  expect(fs.readdirSync(backupDir).filter((f) => /_incr_.*\.enc$/.test(f))).toHaveLength(1);
  const secrets = `${rig.box.at("mdb")}/etc/secrets`;
  createBackupUser(rig.mariadb, "backup_log", "Log0Pass", "logical", [DB], `${secrets}/log.cnf`);
  const full = mdb.runScript(
    "mariadb-full.sh",
    mdb.env("mariadb-full", { method: "logical", clientCnf: `${secrets}/log.cnf` }, "logical"),
  );
  expect(full.code).toBe(0);
  const logical = fs
    .readdirSync(backupDir)
    .filter((f) => f.endsWith(".sql.zst.enc"))
    .at(-1)!;
  expect(job("offsite-upload").code).toBe(0);
  const r = job("offsite-upload-drill");
  expect(r.stderr).toContain("offsite drill passed");
  expect(r.code).toBe(0);
  expect(status("offsite-upload-drill")).toMatchObject({
    key: `database/${logical}`,
    method: "logical",
    sha256: sha(`${backupDir}/${logical}`),
  });
  expect(status("offsite-upload-drill").phase_prepare_seconds).toBeUndefined();
  expect(scratchLeft("offsite-scratch")).toEqual([]);
  expect(job("nas-sync").code).toBe(0);
  expect(job("nas-sync-drill").code).toBe(0);
  expect(status("nas-sync-drill")).toMatchObject({ result: "success", fulls: 2, increments: 1 });
});

test("b321-evidence lists every drill run with the restore time its status recorded", () => {
  const r = run(`${rig.box.paths.sbin}/b321-evidence`, []);
  expect(r.code).toBe(0);
  const drills = r.stdout.split("## Drills and restores")[1].split("## ")[0];
  for (const j of ["nas-sync-drill", "offsite-upload-drill"]) {
    const st = status(j);
    const rows = drills.split("\n").filter((l) => l.includes(`| ${j} | drill |`));
    expect(rows.length).toBeGreaterThan(2);
    expect(rows.at(-1)).toBe(
      `| ${st.ended} | ${j} | drill | success | ${st.restore_seconds} s |  |`,
    );
    expect(drills).toContain(`| ${j} | drill | failed | `);
  }
});

test("deletes remove the drills' files and never a copy", () => {
  const uploaded = aws(["s3", "ls", `s3://${BUCKET}/database/`]).stdout;
  rig.applyDeletes();
  for (const j of ["nas-sync-drill", "offsite-upload-drill"]) {
    expect(fs.existsSync(`${rig.box.paths.etc}/${j}.env`)).toBe(false);
    expect(fs.existsSync(`${rig.box.paths.status}/${j}.json`)).toBe(false);
  }
  expect(fs.existsSync(`${backupDir}/${newestFull()}`)).toBe(true);
  expect(fs.existsSync(`${nasRoot}/latest`)).toBe(true);
  expect(aws(["s3", "ls", `s3://${BUCKET}/database/`]).stdout).toBe(uploaded);
});
