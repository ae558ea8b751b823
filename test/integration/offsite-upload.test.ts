// DumpUpload for real: the commands of a mock run replayed over SSH into a sandbox, then the job
// uploads to s3rver over TLS with the aws CLI, credentials only from the 0600 file.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { startSshd, type Sshd } from "../harness/sshd";
import { makeSandbox, type Sandbox } from "../harness/sandbox";
import { startS3rver, type S3rverServer } from "../harness/s3rver";
import {
  applyCreates,
  applyDeletes,
  remoteSteps,
  runMocked,
  type RemoteStep,
} from "../harness/program";
import { run, runOk, type RunResult } from "../harness/proc";

const BUCKET = "atlastech-backups";
const ACCESS = "S3RVER";
// s3rver checks signatures against its fixed key pair.
const SECRET = "S3RVER";

let sshd: Sshd;
let box: Sandbox;
let s3: S3rverServer;
let steps: RemoteStep[];
let backupDir: string;
let creds: string;
/** The test's own credentials for looking into the bucket. */
let testCreds: string;

function upload(): RunResult {
  return run(`${box.paths.sbin}/b321-offsite-upload`, []);
}

function status(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(`${box.paths.state}/status/offsite-upload.json`, "utf8"));
}

function aws(args: string[]): RunResult {
  return run("aws", ["--endpoint-url", s3.endpoint, "--ca-bundle", s3.caFile, ...args], {
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
        s3.endpoint,
        "--ca-bundle",
        s3.caFile,
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

const sha = (p: string) => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");

/** A full as the MariaDB job leaves it: the file, then its manifest once verified. */
function writeFull(name: string, bytes: number, ageSeconds: number, verified = true): string {
  const file = `${backupDir}/${name}`;
  fs.writeFileSync(file, crypto.randomBytes(bytes));
  if (verified) {
    fs.writeFileSync(
      `${file}.manifest.json`,
      JSON.stringify({ file: name, sha256: sha(file), bytes }, null, 2) + "\n",
    );
    const t = new Date(Date.now() - ageSeconds * 1000);
    fs.utimesSync(`${file}.manifest.json`, t, t);
  }
  return file;
}

beforeAll(async () => {
  [sshd, s3] = await Promise.all([startSshd(), startS3rver({ bucket: BUCKET })]);
  box = makeSandbox("b321-upload-");
  backupDir = box.at("backups/database");
  fs.mkdirSync(backupDir, { recursive: true });
  const recorded = await runMocked(async () => {
    const { Host } = await import("../../components/host");
    const { DumpUpload } = await import("../../components/offsite");
    const host = new Host("db", {
      hostName: "db",
      address: "127.0.0.1",
      port: sshd.port,
      privateKey: pulumi.secret(sshd.privateKey),
      paths: box.paths,
    });
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
    });
  });
  steps = remoteSteps(recorded);
  creds = `${box.paths.etc}/secrets/offsite-upload-aws`;
  testCreds = box.at("test-aws-credentials");
  fs.writeFileSync(
    testCreds,
    `[default]\naws_access_key_id = ${ACCESS}\naws_secret_access_key = ${SECRET}\n`,
    { mode: 0o600 },
  );
}, 120_000);

afterAll(async () => {
  await sshd?.stop();
  await s3?.stop();
  box?.remove();
});

test("the secret key reaches the host only as a 0600 credentials file", () => {
  for (const s of steps) {
    expect(s.create ?? "").not.toContain(SECRET);
    expect(s.delete ?? "").not.toContain(SECRET);
  }
  applyCreates(sshd, steps);
  applyCreates(sshd, steps);
  expect(fs.readFileSync(creds, "utf8")).toBe(
    `[default]\naws_access_key_id = ${ACCESS}\naws_secret_access_key = ${SECRET}\n`,
  );
  expect((fs.statSync(creds).mode & 0o777).toString(8)).toBe("600");
  const env = fs.readFileSync(`${box.paths.etc}/offsite-upload.env`, "utf8");
  expect(env).not.toContain(SECRET);
  expect(env).toContain(`OFFSITE_ENDPOINT='${s3.endpoint}'`);
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
  const back = aws(["s3", "cp", `s3://${BUCKET}/${key}`, box.at("back.bin")]);
  expect(back.code).toBe(0);
  expect(sha(box.at("back.bin"))).toBe(sha(newest));
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

test("a second run sends nothing when the same bytes are already there", () => {
  const r = upload();
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("is already there");
  expect(status()).toMatchObject({ result: "success", bytes: 0 });
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
  applyDeletes(sshd, steps);
  expect(fs.existsSync(creds)).toBe(false);
  expect(fs.existsSync(`${box.paths.etc}/offsite-upload.env`)).toBe(false);
  expect(aws(["s3", "ls", `s3://${BUCKET}/database/`]).stdout).toContain("20260208");
});
