// DumpUpload for real: the commands of a mock run replayed over SSH into a sandbox, then the job
// uploads to s3rver over TLS with the aws CLI, credentials only from the 0600 file. The binlogs it
// sends are the ones the real binlog shipper (mariadb-binlogs.sh) verified from a real MariaDB, and
// the ones the real binlog stream (mariadb-stream.sh) sealed from it.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ownerStamps } from "../harness/program";
import { useRig } from "../harness/rig";
import { run, runOk, type RunResult } from "../harness/proc";
import { createBackupUser, installScripts, type Install } from "./mariadb-fixture";
import { manifestFixture } from "../harness/manifest";
import { streamHost, streamWhile, type StreamHost } from "../harness/stream";

const BUCKET = "atlastech-backups";
const ACCESS = "S3RVER";
// s3rver checks signatures against its fixed key pair.
const SECRET = "S3RVER";

let backupDir: string;
let binlogDir: string;
let keyFile: string;
let alerts: string;
let mdb: Install;
let creds: string;
/** The test's own credentials for looking into the bucket. */
let testCreds: string;
/** The binlog stream's host (its files on this host: a stream host with no fulls has its own job). */
let stream: StreamHost;
/** The upload job of a stream host: no fulls, only the stream's sealed files. */
const STREAM_UPLOAD = "offsite-upload-stream";

/** The Object Lock retention the job asks for: 35 days from now, rounded up to midnight UTC. */
const LOCK_DAYS = 35;
/** The real aws CLI, behind the Object Lock stand-in (test/harness/aws-object-lock.py). */
let realAws: string;
let shimBin: string;
let shimStore: string;
let shimLog: string;

function upload(extra: Record<string, string> = {}, job = "offsite-upload"): RunResult {
  fs.writeFileSync(shimLog, "");
  return run(`${rig.box.paths.sbin}/b321-${job}`, [], {
    env: {
      ...process.env,
      PATH: `${shimBin}:${process.env.PATH ?? ""}`,
      AWS_SHIM_REAL: realAws,
      AWS_SHIM_STORE: shimStore,
      AWS_SHIM_LOG: shimLog,
      B321_ALERT: `${rig.box.root}/record-alert.sh`,
      ...extra,
    },
  });
}

interface Store {
  current: Record<string, string>;
  retention: Record<string, { Mode: string; RetainUntilDate: string }>;
}
const store = (): Store => JSON.parse(fs.readFileSync(shimStore, "utf8")) as Store;
/** The retention of the current version of a key, as the stand-in holds it. */
const retention = (key: string) => store().retention[store().current[key]];
/** The aws calls of the last run: "<service> <operation> <key>". */
const calls = () => fs.readFileSync(shimLog, "utf8").trim().split("\n").filter(Boolean);

/** The lock date asked for by a run started at `t` (ms): t + 35 days, up to the next midnight UTC. */
function lockDate(t: number): string {
  const day = 86_400_000;
  return new Date(Math.ceil((t + LOCK_DAYS * day) / day) * day).toISOString().replace(".000Z", "Z");
}

/** Runs the real binlog shipper; returns the copies it has verified so far (key order). */
function ship(): string[] {
  const r = mdb.runScript("mariadb-binlogs.sh", mdb.env("mariadb-binlogs"));
  expect(r.code).toBe(0);
  return fs
    .readdirSync(binlogDir)
    .filter((f) => /^mysql-bin\.\d+\.\d{8}T\d{6}Z\.s\d+\.zst\.enc$/.test(f))
    .sort();
}

/** The server's binlog a shipped copy was made from. */
const serverBinlogOf = (copy: string) =>
  path.join(path.dirname(rig.mariadb.binlogBasename), copy.split(".").slice(0, 2).join("."));

/** The object keys under a prefix of the bucket. */
function keys(prefix: string): string[] {
  const out = aws(["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", prefix]);
  expect(out.code).toBe(0);
  if (out.stdout.trim() === "") return [];
  return (JSON.parse(out.stdout) as { Contents?: { Key: string }[] })
    .Contents!.map((o) => o.Key)
    .sort();
}

function status(job = "offsite-upload"): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(`${rig.box.paths.status}/${job}.json`, "utf8"));
}

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

function head(key: string): { ContentLength: number; Metadata: Record<string, string> } {
  return JSON.parse(
    runOk(
      "aws",
      [
        "--endpoint-url",
        rig.s3.endpoint,
        "--ca-bundle",
        rig.s3.caFile,
        "s3api",
        "head-object",
        "--bucket",
        BUCKET,
        "--key",
        key,
      ],
      {
        env: {
          ...process.env,
          AWS_SHARED_CREDENTIALS_FILE: testCreds,
          AWS_CONFIG_FILE: "/dev/null",
          AWS_DEFAULT_REGION: "us-east-1",
        },
      },
    ).stdout,
  );
}

const sha256Of = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
const sha = (p: string) => sha256Of(fs.readFileSync(p));

/** A full as the MariaDB job leaves it: the file, then its manifest once verified. */
function writeFull(name: string, bytes: number, ageSeconds: number, verified = true): string {
  const file = `${backupDir}/${name}`;
  fs.writeFileSync(file, crypto.randomBytes(bytes));
  if (verified) {
    fs.writeFileSync(
      `${file}.manifest.json`,
      manifestFixture({ file: name, sha256: sha(file), bytes }),
    );
    const t = new Date(Date.now() - ageSeconds * 1000);
    fs.utimesSync(`${file}.manifest.json`, t, t);
  }
  return file;
}

const rig = useRig({
  prefix: "b321-upload-",
  s3Bucket: BUCKET,
  mariadb: true,
  host: { name: "db", hostName: "db" },
  prepare: ({ box, mariadb: server }) => {
    backupDir = box.at("backups/database");
    fs.mkdirSync(backupDir, { recursive: true });
    binlogDir = box.at("backups/binlogs");
    fs.mkdirSync(binlogDir, { recursive: true, mode: 0o700 });
    const secrets = box.at("mdb/etc/secrets");
    fs.mkdirSync(secrets, { recursive: true, mode: 0o700 });
    createBackupUser(
      server,
      "backup_phys",
      "Phys0Pass",
      "physical",
      ["atlastech_db"],
      `${secrets}/phys.cnf`,
    );
    keyFile = `${secrets}/mariadb-backup.key`;
    fs.writeFileSync(keyFile, runOk("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
    server.sql(
      "CREATE DATABASE atlastech_db; CREATE TABLE atlastech_db.t (id INT PRIMARY KEY, v VARCHAR(64))",
    );
    mdb = installScripts(box.at("mdb"), server, {
      method: "physical",
      compression: "zstd",
      databases: ["atlastech_db"],
      clientCnf: `${secrets}/phys.cnf`,
      keyFile,
      backupDir,
      binlogBackupDir: binlogDir,
      keepFulls: 4,
      timezone: "UTC",
    });
    stream = streamHost(server, { lib: mdb.lib, keyFile, root: box.at("streaming") });
    // made by the stream's first run, as soon as its service starts
    fs.mkdirSync(stream.dir, { recursive: true, mode: 0o700 });
    alerts = box.at("alerts.log");
    fs.writeFileSync(
      box.at("record-alert.sh"),
      `#!/bin/sh\nprintf '%s|%s|%s\\n' "$1" "$2" "$3" >> '${alerts}'\n`,
      { mode: 0o755 },
    );
    realAws = runOk("bash", ["-c", "command -v aws"]).stdout.trim();
    // the stand-in runs the real aws CLI's own jmespath for --query
    expect(run("python3", ["-c", "import jmespath"]).code).toBe(0);
    shimBin = box.at("aws-shim");
    fs.mkdirSync(shimBin);
    fs.copyFileSync(path.join(__dirname, "../harness/aws-object-lock.py"), `${shimBin}/aws`);
    fs.chmodSync(`${shimBin}/aws`, 0o755);
    shimStore = box.at("aws-shim-store.json");
    shimLog = box.at("aws-shim.log");
    creds = `${box.paths.secrets}/offsite-upload-aws`;
    testCreds = box.at("test-aws-credentials");
    fs.writeFileSync(
      testCreds,
      `[default]\naws_access_key_id = ${ACCESS}\naws_secret_access_key = ${SECRET}\n`,
      { mode: 0o600 },
    );
  },
  program: async ({ s3, mariadb: server }, host) => {
    const { DumpUpload } = await import("../../components/offsite");
    new DumpUpload("upload", {
      host,
      bucket: BUCKET,
      region: "us-east-1",
      prefix: "database/",
      backupDir,
      schedule: "0 5 * * 0",
      accessKeyId: ACCESS,
      secretAccessKey: pulumi.secret(SECRET),
      endpoint: s3.endpoint,
      caBundle: s3.caFile,
      checksumCalculation: "when_required",
      binlogs: { dir: binlogDir, basename: server.binlogBasename },
      stream: { dir: stream.dir, basename: server.binlogBasename },
      objectLock: { mode: "GOVERNANCE", days: LOCK_DAYS },
    });
    // the stream host's own upload: no fulls there, no shipped binlogs
    new DumpUpload("upload-stream", {
      host,
      job: STREAM_UPLOAD,
      bucket: BUCKET,
      region: "us-east-1",
      prefix: "database/",
      schedule: "30 5 * * *",
      accessKeyId: ACCESS,
      secretAccessKey: pulumi.secret(SECRET),
      endpoint: s3.endpoint,
      caBundle: s3.caFile,
      checksumCalculation: "when_required",
      stream: { dir: stream.dir, basename: server.binlogBasename },
      objectLock: { mode: "GOVERNANCE", days: LOCK_DAYS },
    });
  },
});

test("the secret key reaches the host only as a 0600 credentials file", () => {
  for (const s of rig.steps) {
    expect(s.create ?? "").not.toContain(SECRET);
    expect(s.update ?? "").not.toContain(SECRET);
    expect(s.delete ?? "").not.toContain(SECRET);
  }
  rig.applyCreates();
  rig.applyCreates();
  expect(fs.readFileSync(creds, "utf8")).toBe(
    `[default]\naws_access_key_id = ${ACCESS}\naws_secret_access_key = ${SECRET}\n`,
  );
  expect((fs.statSync(creds).mode & 0o777).toString(8)).toBe("600");
  const env = fs.readFileSync(`${rig.box.paths.etc}/offsite-upload.env`, "utf8");
  expect(env).not.toContain(SECRET);
  expect(env).toContain(`OFFSITE_ENDPOINT='${rig.s3.endpoint}'`);
  expect(env).toContain(`OFFSITE_BINLOG_DIR='${binlogDir}'\n`);
  expect(env).toContain(`OFFSITE_BINLOG_BASENAME='mysql-bin'\n`);
  // the shipper encrypted the binlogs: the upload host needs no key to send them
  expect(env).not.toContain("KEY_FILE");
  expect(env).toContain("OFFSITE_LOCK_DAYS='35'\nOFFSITE_LOCK_MODE='GOVERNANCE'\n");
  expect(env).toContain(`OFFSITE_STREAM_DIR='${stream.dir}'\n`);
  // the stream host's job: the stream's directory only
  const own = fs
    .readFileSync(`${rig.box.paths.etc}/${STREAM_UPLOAD}.env`, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("OFFSITE_"));
  expect(own).toEqual([
    "OFFSITE_BINLOG_BASENAME='mysql-bin'",
    `OFFSITE_BUCKET='${BUCKET}'`,
    "OFFSITE_CA_BUNDLE='" + rig.s3.caFile + "'",
    "OFFSITE_CHECKSUM_CALCULATION='when_required'",
    `OFFSITE_CREDENTIALS='${rig.box.paths.secrets}/${STREAM_UPLOAD}-aws'`,
    `OFFSITE_ENDPOINT='${rig.s3.endpoint}'`,
    "OFFSITE_LOCK_DAYS='35'",
    "OFFSITE_LOCK_MODE='GOVERNANCE'",
    "OFFSITE_PREFIX='database/'",
    "OFFSITE_REGION='us-east-1'",
    "OFFSITE_SSE='AES256'",
    `OFFSITE_STREAM_DIR='${stream.dir}'`,
  ]);
});

test("with no verified full the job fails and says why", () => {
  writeFull("atlastech_db_full_unverified.xb.zst.enc", 1000, 0, false);
  const r = upload();
  expect(r.code).toBe(1);
  expect(status()).toMatchObject({ result: "failed" });
  expect(String(status().error)).toContain("no verified full backup in");
});

test("the newest verified full and its manifest are uploaded to STANDARD and checked", () => {
  writeFull("atlastech_db_full_20260201.xb.zst.enc", 2000, 30 * 86400);
  const newest = writeFull("atlastech_db_full_20260208.xb.zst.enc", 9 * 1024 * 1024 + 17, 60);
  const r = upload();
  expect(r.stderr).toContain("verified");
  expect(r.code).toBe(0);
  const key = "database/atlastech_db_full_20260208.xb.zst.enc";
  const obj = head(key);
  expect(obj.ContentLength).toBe(fs.statSync(newest).size);
  expect(obj.Metadata).toEqual({ sha256: sha(newest) });
  const back = aws(["s3", "cp", `s3://${BUCKET}/${key}`, rig.box.at("back.bin")]);
  expect(back.code).toBe(0);
  expect(sha(rig.box.at("back.bin"))).toBe(sha(newest));
  expect(head(`${key}.manifest.json`).ContentLength).toBe(
    fs.statSync(`${newest}.manifest.json`).size,
  );
  const listed = aws(["s3", "ls", `s3://${BUCKET}/database/`]).stdout;
  expect(listed).not.toContain("20260201");
  expect(listed).not.toContain("unverified");
  expect(status()).toMatchObject({
    result: "success",
    key,
    sha256: sha(newest),
    bytes: fs.statSync(newest).size + fs.statSync(`${newest}.manifest.json`).size,
  });
});

test("the full and its manifest are locked in GOVERNANCE until now + 35 days, on the version written", () => {
  const key = "database/atlastech_db_full_20260208.xb.zst.enc";
  const s = status();
  const until = String(s.lock_until);
  expect([
    lockDate(Date.parse(String(s.started))),
    lockDate(Date.parse(String(s.ended))),
  ]).toContain(until);
  for (const k of [key, `${key}.manifest.json`]) {
    expect(retention(k)).toEqual({
      Mode: "GOVERNANCE",
      RetainUntilDate: until.replace("Z", ".000Z"),
    });
  }
  expect(s).toMatchObject({
    lock_mode: "GOVERNANCE",
    lock_set: 2,
    lock_proven: 2,
    full_locked_until: until,
    manifest_locked_until: until,
  });
});

test("a second run sends nothing when the same bytes are already there, and proves their lock", () => {
  const key = "database/atlastech_db_full_20260208.xb.zst.enc";
  const before = store();
  const r = upload();
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("is already there");
  expect(status()).toMatchObject({ result: "success", bytes: 0, lock_set: 0, lock_proven: 2 });
  expect(calls().filter((c) => c.startsWith("s3 cp"))).toEqual([]);
  expect(calls().filter((c) => c.includes("object-retention"))).toEqual([
    `s3api get-object-retention ${key}`,
    `s3api get-object-retention ${key}.manifest.json`,
  ]);
  expect(store()).toEqual(before);
});

test("an object already there without a retention, or a shorter one, is locked", () => {
  const key = "database/atlastech_db_full_20260208.xb.zst.enc";
  const s = store();
  // uploaded before the lock was on: no retention; the manifest locked for two days only
  delete s.retention[s.current[key]];
  const soon = new Date(Date.now() + 2 * 86_400_000).toISOString();
  s.retention[s.current[`${key}.manifest.json`]] = { Mode: "GOVERNANCE", RetainUntilDate: soon };
  fs.writeFileSync(shimStore, JSON.stringify(s));
  const r = upload();
  expect(r.code).toBe(0);
  const until = String(status().lock_until);
  expect(status()).toMatchObject({ result: "success", bytes: 0, lock_set: 2, lock_proven: 2 });
  for (const k of [key, `${key}.manifest.json`])
    expect(retention(k)).toEqual({
      Mode: "GOVERNANCE",
      RetainUntilDate: until.replace("Z", ".000Z"),
    });
  expect(calls().filter((c) => c.startsWith("s3 cp"))).toEqual([]);
});

test("an object found already there counts once this host read it back: changed bytes under the same metadata are caught", () => {
  const key = "database/atlastech_db_full_20260208.xb.zst.enc";
  const markers = `${rig.box.paths.state}/offsite-verified`;
  // the first runs read back what they uploaded, and said so per key
  expect(fs.readdirSync(markers)).toHaveLength(2);
  expect(upload().code).toBe(0);
  expect(status()).toMatchObject({ result: "success", read_back: 0 });
  // the object's bytes change in the bucket; its size and the sha256 this job wrote stay
  const object = path.join(rig.s3.directory, BUCKET, `${key}._S3rver_object`);
  const original = fs.readFileSync(object);
  const changed = Buffer.from(original);
  changed[changed.length >> 1] ^= 0xff;
  fs.writeFileSync(object, changed);
  fs.rmSync(markers, { recursive: true });
  try {
    const r = upload();
    expect(r.code).not.toBe(0);
    expect(String(status().error)).toContain(
      `s3://${BUCKET}/${key} read back has sha256 ${sha256Of(changed)}, expected ${sha256Of(original)}`,
    );
  } finally {
    fs.writeFileSync(object, original);
  }
  // whole again: read back once (the full and its manifest), then trusted by its marker
  expect(upload().code).toBe(0);
  expect(status()).toMatchObject({ result: "success", read_back: 2 });
  expect(upload().code).toBe(0);
  expect(status()).toMatchObject({ result: "success", read_back: 0 });
});

test("a HEAD answered 403 (a writer that cannot list the key) is taken as absent: the upload proves access", () => {
  const newer = writeFull("atlastech_db_full_20260211.xb.zst.enc", 2048, 0);
  try {
    const r = upload({ AWS_SHIM_HEAD_FORBIDDEN: "1" });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("HEAD forbidden, taken as absent");
    expect(status()).toMatchObject({ result: "success", key: `database/${path.basename(newer)}` });
    expect(head(`database/${path.basename(newer)}`).ContentLength).toBe(2048);
  } finally {
    fs.rmSync(newer);
    fs.rmSync(`${newer}.manifest.json`);
  }
});

test("a retention that cannot be set fails the run, with an alert naming the key", () => {
  const newest = writeFull("atlastech_db_full_20260210.xb.zst.enc", 3000, 30);
  const key = `database/${path.basename(newest)}`;
  fs.rmSync(alerts, { force: true });
  try {
    const r = upload({ AWS_SHIM_FAIL_RETENTION: key });
    expect(r.code).toBe(1);
    expect(status()).toMatchObject({ result: "failed" });
    expect(String(status().error)).toContain(
      `could not lock s3://${BUCKET}/${key} (version ${store().current[key]}) in GOVERNANCE until`,
    );
    expect(String(status().error)).toContain("AccessDenied");
    expect(fs.readFileSync(alerts, "utf8")).toContain(
      `offsite-upload|failed|could not lock s3://${BUCKET}/${key}`,
    );
    expect(retention(key)).toBeUndefined();
    // the next run finds it there and locks it, then sends and locks its manifest
    expect(upload().code).toBe(0);
    expect(status()).toMatchObject({ result: "success", key, lock_set: 2, lock_proven: 2 });
    expect(retention(key)?.Mode).toBe("GOVERNANCE");
    expect(retention(`${key}.manifest.json`)?.Mode).toBe("GOVERNANCE");
  } finally {
    fs.rmSync(newest);
    fs.rmSync(`${newest}.manifest.json`);
  }
});

test("an old newest full still goes up, but the run warns that fulls may have stopped", () => {
  const manifest = `${backupDir}/atlastech_db_full_20260208.xb.zst.enc.manifest.json`;
  const { mtime } = fs.statSync(manifest);
  const old = new Date(Date.now() - 200 * 3600 * 1000);
  fs.utimesSync(manifest, old, old);
  try {
    const r = upload();
    expect(r.code).toBe(0);
    expect(status()).toMatchObject({ result: "warning", full_age_hours: 200 });
    expect(String(status().error)).toContain(
      "is 200 h old (more than 192 h): are fulls still running?",
    );
  } finally {
    fs.utimesSync(manifest, mtime, mtime);
  }
});

test("a full changed after its verification is refused", () => {
  const file = writeFull("atlastech_db_full_20260215.xb.zst.enc", 4096, 0);
  fs.appendFileSync(file, "tampered");
  const r = upload();
  expect(r.code).toBe(1);
  expect(String(status().error)).toContain("changed since it was verified");
  expect(aws(["s3", "ls", `s3://${BUCKET}/database/`]).stdout).not.toContain("20260215");
  fs.rmSync(file);
  fs.rmSync(`${file}.manifest.json`);
});

test("every binlog the shipper verified goes up as the shipper encrypted it, and decrypts to its bytes", () => {
  for (let i = 1; i <= 3; i++) {
    rig.mariadb.sql(`INSERT INTO atlastech_db.t VALUES (${i}, REPEAT(MD5(${i}), 2))`);
    rig.mariadb.sql("FLUSH BINARY LOGS");
  }
  const shipped = ship();
  expect(shipped.length).toBeGreaterThanOrEqual(4);
  const active = rig.mariadb.sql("SHOW MASTER STATUS").split("\t")[0];
  expect(shipped.filter((b) => b.startsWith(`${active}.`))).toEqual([]);
  const r = upload();
  expect(r.code).toBe(0);
  expect(keys("database/binlogs/")).toEqual(shipped.map((b) => `database/binlogs/${b}`));
  let encBytes = 0;
  for (const b of shipped) {
    const key = `database/binlogs/${b}`;
    const got = rig.box.at(`got-${b}`);
    expect(aws(["s3", "cp", `s3://${BUCKET}/${key}`, got]).code).toBe(0);
    // the shipper's copy, byte for byte
    expect(sha(got)).toBe(sha(`${binlogDir}/${b}`));
    expect(head(key)).toMatchObject({
      ContentLength: fs.statSync(got).size,
      Metadata: { sha256: sha(got) },
    });
    encBytes += fs.statSync(got).size;
    // not the plain binlog: encrypted with the fulls' key
    expect(fs.readFileSync(got).subarray(0, 8).toString("latin1")).toBe("Salted__");
    const plain = runOk("bash", [
      "-c",
      `openssl enc -aes-256-cbc -d -pbkdf2 -pass "file:${keyFile}" -in "${got}" | zstd -d -q -c | sha256sum`,
    ]).stdout.split(" ")[0];
    expect(plain).toBe(sha(serverBinlogOf(b)));
  }
  expect(status()).toMatchObject({
    result: "success",
    binlogs_uploaded: shipped.length,
    binlogs_present: 0,
    bytes: encBytes,
    binlogs_locked: shipped.length,
    binlogs_locked_until: status().lock_until,
  });
  for (const b of shipped)
    expect(retention(`database/binlogs/${b}`)).toEqual({
      Mode: "GOVERNANCE",
      RetainUntilDate: String(status().lock_until).replace("Z", ".000Z"),
    });
});

test("a second run uploads nothing: every binlog is there with the same checksum", () => {
  const before = keys("database/");
  const r = upload();
  expect(r.code).toBe(0);
  expect(status()).toMatchObject({
    result: "success",
    binlogs_uploaded: 0,
    binlogs_present: ship().length - 1, // ship() just closed one more, not seen by that run
    bytes: 0,
    lock_set: 0,
  });
  expect(status().binlogs_locked).toBe(status().binlogs_present);
  expect(keys("database/")).toEqual(before);
  expect(calls().filter((c) => c.startsWith("s3api put-object-retention"))).toEqual([]);
});

test("a binlog being written, or copied but not verified by the shipper, is never uploaded", () => {
  const active = rig.mariadb.sql("SHOW MASTER STATUS").split("\t")[0];
  const live = path.join(path.dirname(rig.mariadb.binlogBasename), active);
  // the shipper's copy in progress, and a copy without its .sha256 (not verified)
  const unverified = `${binlogDir}/${active}.20991231T000000Z.s1.zst.enc`;
  fs.copyFileSync(live, `${unverified}.b321-partial`);
  fs.copyFileSync(live, unverified);
  try {
    const r = upload();
    expect(r.code).toBe(0);
    const listed = keys("database/binlogs/");
    expect(listed.some((k) => k.includes(active))).toBe(false);
    expect(listed.some((k) => k.includes("partial"))).toBe(false);
    // the one ship() closed in the previous test went up; nothing else
    expect(status()).toMatchObject({ result: "success", binlogs_uploaded: 1 });
  } finally {
    fs.rmSync(`${unverified}.b321-partial`);
    fs.rmSync(unverified);
  }
});

test("a shipped binlog changed after the shipper verified it is refused, with a failed status and an alert", () => {
  rig.mariadb.sql("INSERT INTO atlastech_db.t VALUES (100, 'tampered later')");
  const shipped = ship();
  const newest = shipped[shipped.length - 1];
  const file = `${binlogDir}/${newest}`;
  const good = fs.readFileSync(file);
  fs.appendFileSync(file, "tampered");
  fs.rmSync(alerts, { force: true });
  try {
    const r = upload();
    expect(r.code).toBe(1);
    expect(status()).toMatchObject({ result: "failed" });
    expect(String(status().error)).toContain(
      `shipped binlog ${file} has sha256 ${sha(file)} but the shipper verified ${sha256Of(good)} (changed since it was verified)`,
    );
    expect(fs.readFileSync(alerts, "utf8")).toContain("offsite-upload|failed|shipped binlog");
    expect(keys("database/binlogs/")).not.toContain(`database/binlogs/${newest}`);
  } finally {
    fs.writeFileSync(file, good);
  }
  expect(upload().code).toBe(0);
  expect(keys("database/binlogs/")).toContain(`database/binlogs/${newest}`);
});

test("an object already there with other bytes is never overwritten: the run fails naming both", () => {
  rig.mariadb.sql("INSERT INTO atlastech_db.t VALUES (101, 'next')");
  const shipped = ship();
  const newest = shipped[shipped.length - 1];
  const key = `database/binlogs/${newest}`;
  const other = rig.box.at("other-bytes");
  fs.writeFileSync(other, "another binlog under the same name");
  expect(aws(["s3", "cp", other, `s3://${BUCKET}/${key}`]).code).toBe(0);
  const r = upload();
  expect(r.code).toBe(1);
  expect(String(status().error)).toMatch(
    new RegExp(
      `^s3://${BUCKET}/${key.replace(/\./g, "\\.")} exists with other bytes .* it is never overwritten`,
    ),
  );
  const back = rig.box.at("back");
  expect(aws(["s3", "cp", `s3://${BUCKET}/${key}`, back]).code).toBe(0);
  expect(fs.readFileSync(back, "utf8")).toBe("another binlog under the same name");
  expect(aws(["s3", "rm", `s3://${BUCKET}/${key}`]).code).toBe(0);
  expect(upload().code).toBe(0);
  expect(keys("database/binlogs/")).toContain(key);
});

/** The plain binlog a sealed stream file decrypts to: its sha256, read with the stack's key. */
const unsealed = (file: string) =>
  runOk("bash", [
    "-c",
    'set -o pipefail; openssl enc -aes-256-cbc -d -pbkdf2 -pass "file:$1" -in "$2" | zstd -d -q -c | sha256sum',
    "_",
    keyFile,
    file,
  ]).stdout.split(" ")[0];

test("on the stream host, with no fulls: every sealed file of the real stream goes up to binlog-stream/, never its open binlog nor a seal in progress", async () => {
  await streamWhile(rig.mariadb, stream, () => {
    for (let i = 200; i < 203; i++) {
      rig.mariadb.sql(`INSERT INTO atlastech_db.t VALUES (${i}, 'streamed')`);
      rig.mariadb.sql("FLUSH BINARY LOGS");
    }
  });
  const sealed = stream.sealed();
  expect(sealed.length).toBeGreaterThanOrEqual(3);
  const [open] = stream.live();
  expect(open).toBe(rig.mariadb.sql("SHOW MASTER STATUS").split("\t")[0]);
  // a seal in progress, as the stream leaves it while it writes one
  const partial = `${stream.dir}/${open}.20991231T000000Z.s1.zst.enc`;
  fs.copyFileSync(`${stream.dir}/live/${open}`, `${partial}.b321-partial`);
  fs.writeFileSync(
    `${partial}.sha256.b321-partial`,
    `${"0".repeat(64)}  ${path.basename(partial)}\n`,
  );
  const shippedBefore = keys("database/binlogs/");
  try {
    const r = upload({}, STREAM_UPLOAD);
    expect({ code: r.code, err: r.code === 0 ? "" : r.stderr.slice(-1500) }).toEqual({
      code: 0,
      err: "",
    });
  } finally {
    fs.rmSync(`${partial}.b321-partial`);
    fs.rmSync(`${partial}.sha256.b321-partial`);
  }
  // exactly the sealed files, under their own prefix; the shipped copies untouched
  expect(keys("database/binlog-stream/")).toEqual(sealed.map((f) => `database/binlog-stream/${f}`));
  expect(keys("database/binlogs/")).toEqual(shippedBefore);
  let bytes = 0;
  for (const f of sealed) {
    const local = `${stream.dir}/${f}`;
    const key = `database/binlog-stream/${f}`;
    const got = rig.box.at(`got-stream-${f}`);
    expect(aws(["s3", "cp", `s3://${BUCKET}/${key}`, got]).code).toBe(0);
    // the stream's sealed file byte for byte, with the sha256 it recorded
    expect(sha(got)).toBe(sha(local));
    expect(fs.readFileSync(`${local}.sha256`, "utf8").split(" ")[0]).toBe(sha(got));
    expect(head(key).Metadata).toEqual({ sha256: sha(got) });
    // and it opens, with the stack's key, to the server's own binlog
    expect({ f, plain: unsealed(got) }).toEqual({ f, plain: sha(serverBinlogOf(f)) });
    bytes += fs.statSync(got).size;
  }
  const s = status(STREAM_UPLOAD);
  expect(s).toMatchObject({
    result: "success",
    stream_uploaded: sealed.length,
    stream_present: 0,
    stream_locked: sealed.length,
    stream_locked_until: s.lock_until,
    bytes,
  });
  // nothing of fulls or shipped binlogs on this host's job
  for (const k of ["file", "key", "full_age_hours", "binlogs_uploaded"])
    expect(s[k]).toBeUndefined();
  for (const f of sealed) expect(retention(`database/binlog-stream/${f}`)?.Mode).toBe("GOVERNANCE");
});

test("where the fulls are, one job sends the fulls, the shipped binlogs and the stream's sealed files", () => {
  const r = upload();
  expect(r.code).toBe(0);
  const sealed = stream.sealed();
  expect(status()).toMatchObject({
    result: "success",
    key: "database/atlastech_db_full_20260208.xb.zst.enc",
    stream_uploaded: 0,
    stream_present: sealed.length,
  });
  expect(Number(status().binlogs_present)).toBeGreaterThan(0);
});

test("a sealed stream file changed after the stream verified it is refused, with a failed status and an alert", async () => {
  await streamWhile(rig.mariadb, stream, () => {
    rig.mariadb.sql("INSERT INTO atlastech_db.t VALUES (210, 'streamed, then changed')");
    rig.mariadb.sql("FLUSH BINARY LOGS");
  });
  const sealed = stream.sealed();
  const newest = sealed[sealed.length - 1];
  const file = `${stream.dir}/${newest}`;
  const good = fs.readFileSync(file);
  fs.appendFileSync(file, "tampered");
  fs.rmSync(alerts, { force: true });
  try {
    const r = upload({}, STREAM_UPLOAD);
    expect(r.code).toBe(1);
    expect(status(STREAM_UPLOAD)).toMatchObject({ result: "failed" });
    expect(String(status(STREAM_UPLOAD).error)).toContain(
      `streamed binlog ${file} has sha256 ${sha(file)} but the stream verified ${sha256Of(good)} (changed since it was verified)`,
    );
    expect(fs.readFileSync(alerts, "utf8")).toContain(`${STREAM_UPLOAD}|failed|streamed binlog`);
    expect(keys("database/binlog-stream/")).not.toContain(`database/binlog-stream/${newest}`);
  } finally {
    fs.writeFileSync(file, good);
  }
  expect(upload({}, STREAM_UPLOAD).code).toBe(0);
  expect(keys("database/binlog-stream/")).toContain(`database/binlog-stream/${newest}`);
  expect(status(STREAM_UPLOAD)).toMatchObject({ result: "success", stream_uploaded: 1 });
});

test("a credentials file readable by others is refused", () => {
  fs.chmodSync(creds, 0o644);
  try {
    const r = upload();
    expect(r.code).toBe(1);
    expect(String(status().error)).toContain("must be mode 0600");
  } finally {
    fs.chmodSync(creds, 0o600);
  }
});

test("a wrong secret key fails the upload (the check does not pass on its own)", () => {
  const good = fs.readFileSync(creds, "utf8");
  fs.writeFileSync(creds, good.replace(SECRET, "wrong"), { mode: 0o600 });
  try {
    writeFull("atlastech_db_full_20260222.xb.zst.enc", 1024, 0);
    const r = upload();
    expect(r.code).toBe(1);
    expect(status()).toMatchObject({ result: "failed" });
  } finally {
    fs.writeFileSync(creds, good, { mode: 0o600 });
  }
});

test("deletes remove the job's files but never the uploaded dumps", () => {
  rig.applyDeletes();
  expect(fs.existsSync(creds)).toBe(false);
  expect(fs.existsSync(`${rig.box.paths.etc}/offsite-upload.env`)).toBe(false);
  expect(fs.existsSync(`${rig.box.paths.etc}/${STREAM_UPLOAD}.env`)).toBe(false);
  expect(ownerStamps(`${rig.box.paths.owners}`)).toEqual([]);
  expect(aws(["s3", "ls", `s3://${BUCKET}/database/`]).stdout).toContain("20260208");
});
