// The restic component for real: the commands of a mock run executed over SSH against a sandbox
// (a local repository on a "USB SSD" mount point, and a copy in s3rver over TLS), then the jobs run
// by their entry points exactly as cron would. A password rotation (the password file's update)
// rekeys each repository without touching its data, and the old key goes after a verified backup.
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { resticRestoreStep } from "../../components/site/runbook/scenarios";
import { pasteOk } from "../harness/runbook";
import { parseSite } from "../../stacks/load";
import { ownerStamps } from "../harness/program";
import { useRig } from "../harness/rig";
import { run, runOk, waitFor, type RunResult } from "../harness/proc";

const HOST_TAG = "docker-srv";

let usbMount: string;
let usbRepo: string;
let src: string;
let alerts: string;
let mounted = false;

const etc = () => rig.box.paths.etc;
const status = (job: string) =>
  JSON.parse(fs.readFileSync(`${rig.box.paths.status}/${job}.json`, "utf8"));
const cloudUrl = () => `s3:${rig.s3.endpoint}/${rig.s3.bucket}/restic/cloud`;

/** Runs a job's entry point as cron does, with a recording alert hook. */
function job(name: string, wrap: string[] = []): RunResult {
  const entry = `${rig.box.paths.sbin}/b321-${name}`;
  const [file, ...args] = [...wrap, entry];
  return run(file, args, { env: { ...process.env, B321_ALERT: alerts } });
}

/** restic on one of the sandbox repositories, outside the jobs (what an operator would type). */
function restic(repo: "usb" | "cloud", args: string[]): RunResult {
  const common = repo === "usb" ? ["-r", usbRepo] : ["-r", cloudUrl(), "--cacert", rig.s3.caFile];
  return run(
    "restic",
    [
      ...common,
      "--password-file",
      `${etc()}/secrets/restic-${repo}.password`,
      "--no-cache",
      ...args,
    ],
    {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: rig.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: rig.s3.secretAccessKey,
      },
    },
  );
}

function snapshots(repo: "usb" | "cloud"): { id: string; hostname: string; tags?: string[] }[] {
  const r = restic(repo, ["snapshots", "--json"]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

function dirBytes(dir: string): number {
  return Number(runOk("du", ["-sb", dir]).stdout.split("\t")[0]);
}

function alertLines(): string[] {
  return fs.existsSync(`${alerts}.log`)
    ? fs.readFileSync(`${alerts}.log`, "utf8").trim().split("\n")
    : [];
}

const rig = useRig({
  prefix: "b321-restic-",
  s3Bucket: "atlastech-backups",
  host: { hostName: HOST_TAG },
  timeoutMs: 180_000,
  prepare: ({ box }) => {
    usbMount = box.at("mnt/usb-ssd");
    usbRepo = `${usbMount}/restic`;
    fs.mkdirSync(usbMount, { recursive: true });
    src = box.at("srv/data");
    fs.mkdirSync(`${src}/etc`, { recursive: true });
    fs.writeFileSync(`${src}/etc/app.conf`, "setting=1\n");
    fs.writeFileSync(`${src}/scratch.tmp`, "excluded\n");
    // 4 MiB of incompressible data: big enough for deduplication to show in byte counts.
    fs.writeFileSync(`${src}/blob.bin`, randomBytes(4 * 1024 * 1024));
    alerts = box.at("alert.sh");
    fs.writeFileSync(alerts, `#!/bin/bash\necho "$1 $2 $3" >> ${alerts}.log\n`, { mode: 0o755 });
  },
  program: async ({ s3 }, host) => {
    const { ResticScripts, ResticRepository } = await import("../../components/restic");
    const caPem = fs.readFileSync(s3.caFile, "utf8");
    const scripts = new ResticScripts("restic-h", { host });
    const usb = new ResticRepository("usb", {
      scripts,
      repo: "usb",
      location: { kind: "local", path: usbRepo, mountpoint: usbMount },
      hostTag: HOST_TAG,
      schedule: "0 3 * * *",
      paths: [src],
      excludes: ["*.tmp"],
      tags: ["system", "database"],
      retention: { keepLast: 2 },
      check: { schedule: "0 6 * * *", subsets: 3 },
      drill: { schedule: "0 5 15 * *", files: 1, maxMb: 16 },
    });
    new ResticRepository("cloud", {
      scripts,
      repo: "cloud",
      location: {
        kind: "s3",
        bucket: s3.bucket,
        prefix: "restic/cloud",
        endpoint: s3.endpoint,
      },
      s3: {
        accessKeyId: pulumi.secret(s3.accessKeyId),
        secretAccessKey: pulumi.secret(s3.secretAccessKey),
      },
      caCertificate: caPem,
      hostTag: HOST_TAG,
      schedule: "0 4 * * 0",
      retention: { keepLast: 3 },
      check: { schedule: "0 8 * * 0", subsets: 2 },
      drill: { schedule: "0 9 16 * *", files: 20, maxMb: 16 },
      copyFrom: usb,
      copyLockWaitSeconds: 2,
    });
  },
  cleanup: () => {
    if (mounted) run("umount", [usbMount]);
  },
});

test("no secret reaches a command line, and the password goes only through stdin", () => {
  const passwords = rig.steps.filter((s) => s.name.endsWith("-password-file"));
  expect(passwords.map((s) => s.name)).toEqual(["usb-password-file", "cloud-password-file"]);
  for (const p of passwords) expect(p.stdin).toBe(`mock-password-${p.name.split("-")[0]}-password`);
  const secrets = passwords.map((p) => p.stdin as string);
  const creds = rig.steps.find((s) => s.name === "cloud-s3-credentials-file");
  expect(creds?.stdin).toBe(
    `[default]\naws_access_key_id = ${rig.s3.accessKeyId}\naws_secret_access_key = ${rig.s3.secretAccessKey}\n`,
  );
  for (const s of rig.steps) {
    for (const secret of secrets) {
      expect(s.create ?? "").not.toContain(secret);
      expect(s.update ?? "").not.toContain(secret);
      expect(s.delete ?? "").not.toContain(secret);
    }
  }
});

test("the USB repository refuses to be created while the disk is not mounted", () => {
  rig.applyCreates(rig.steps.filter((s) => !s.name.endsWith("-init")));
  const init = rig.step("usb-init");
  const r0 = rig.sshd.exec(init.create as string);
  expect(r0.code).toBe(1);
  expect(fs.existsSync(`${usbRepo}/config`)).toBe(false);
  const st = status("restic-usb-init");
  expect(st.result).toBe("failed");
  expect(st.error).toBe(
    `${usbMount} is not mounted (is the USB SSD plugged in and in /etc/fstab by UUID?)`,
  );
  // the jobs refuse too, and alert
  const r = job("restic-usb");
  expect(r.code).toBe(1);
  expect(status("restic-usb")).toMatchObject({ result: "failed" });
  expect(status("restic-usb").error).toContain("is not mounted");
  expect(alertLines()).toContain(
    `restic-usb failed ${usbMount} is not mounted (is the USB SSD plugged in and in /etc/fstab by UUID?)`,
  );
});

test("once mounted, both repositories are created; a second run changes nothing", () => {
  runOk("mount", ["--bind", usbMount, usbMount]);
  mounted = true;
  rig.applyCreates();
  expect(status("restic-usb-init")).toMatchObject({ result: "success", created: "true" });
  expect(status("restic-cloud-init")).toMatchObject({ result: "success", created: "true" });
  const pw = `${etc()}/secrets/restic-usb.password`;
  expect((fs.statSync(pw).mode & 0o777).toString(8)).toBe("600");
  expect((fs.statSync(`${etc()}/secrets/restic-cloud.s3`).mode & 0o777).toString(8)).toBe("600");
  const usbConfig = JSON.parse(restic("usb", ["cat", "config"]).stdout);
  const cloudConfig = JSON.parse(restic("cloud", ["cat", "config"]).stdout);
  // same chunker: restic copy deduplicates
  expect(cloudConfig.chunker_polynomial).toBe(usbConfig.chunker_polynomial);
  expect(cloudConfig.id).not.toBe(usbConfig.id);
  const configMtime = fs.statSync(`${usbRepo}/config`).mtimeMs;
  const keys = fs.readdirSync(`${usbRepo}/keys`);

  rig.applyCreates();
  expect(status("restic-usb-init")).toMatchObject({ result: "success", created: "false" });
  expect(status("restic-cloud-init")).toMatchObject({ result: "success", created: "false" });
  expect(fs.statSync(`${usbRepo}/config`).mtimeMs).toBe(configMtime);
  expect(fs.readdirSync(`${usbRepo}/keys`)).toEqual(keys);
  expect(JSON.parse(restic("cloud", ["cat", "config"]).stdout).id).toBe(cloudConfig.id);
});

test("a different password never replaces the one that opens the repository", () => {
  const step = rig.step("usb-password-file");
  const r = rig.sshd.exec(step.create as string, "another-password");
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("refusing to replace");
  expect(restic("usb", ["cat", "config"]).code).toBe(0);
});

test("backup: one snapshot with the stable host and tags, excludes applied, status filled", () => {
  // what a full backup leaves while it runs (the same names the jobs use): never in a snapshot
  const db = `${src}/var/backups/mariadb`;
  fs.mkdirSync(`${db}/.b321-full.x1Yz/verify`, { recursive: true });
  fs.writeFileSync(`${db}/.b321-full.x1Yz/verify/ibdata1`, "half");
  fs.writeFileSync(`${db}/atlastech_db_full_20261204T020000Z.xb.zst.enc.partial`, "half");
  fs.writeFileSync(
    `${db}/atlastech_db_full_20261204T020000Z.xb.zst.enc.partial.manifest.json`,
    "{",
  );
  fs.writeFileSync(`${db}/mysql-bin.000007.b321-partial`, "half");
  const r = job("restic-usb");
  expect(r.stderr).toContain("finished: success");
  expect(r.code).toBe(0);
  const st = status("restic-usb");
  expect(st.result).toBe("success");
  expect(st.bytes).toBeGreaterThan(4_000_000);
  expect(st.files).toBe(2);
  const snaps = snapshots("usb");
  expect(snaps).toHaveLength(1);
  expect(snaps[0]).toMatchObject({ hostname: HOST_TAG, tags: ["system", "database"] });
  expect(snaps[0].id.startsWith(st.snapshot)).toBe(true);
  const listed = restic("usb", ["ls", "latest"]).stdout;
  expect(listed).toContain(`${src}/etc/app.conf`);
  expect(listed).not.toContain("scratch.tmp");
  expect(listed).toContain(`${src}/var/backups/mariadb`);
  expect(listed).not.toMatch(/partial|\.b321-full/);
  fs.rmSync(`${src}/var`, { recursive: true });
});

test("forget keeps the tier's count per host and tag set, and leaves other groups alone", () => {
  // a snapshot of another tag set: its own group
  const other = restic("usb", [
    "backup",
    "--host",
    HOST_TAG,
    "--tag",
    "manual",
    "--",
    `${src}/etc`,
  ]);
  expect(other.code).toBe(0);
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(`${src}/etc/app.conf`, `setting=${i + 2}\n`);
    expect(job("restic-usb").code).toBe(0);
  }
  const snaps = snapshots("usb");
  const main = snaps.filter((s) => s.tags?.join(",") === "system,database");
  const manual = snaps.filter((s) => s.tags?.join(",") === "manual");
  expect(main).toHaveLength(2);
  expect(manual).toHaveLength(1);
  expect(status("restic-usb").snapshots).toBe(3);
});

test("a failed backup never forgets anything", () => {
  const main = () => snapshots("usb").filter((s) => s.tags?.join(",") === "system,database");
  // one snapshot more than the tier keeps, made by hand
  const extra = restic("usb", [
    "backup",
    "--host",
    HOST_TAG,
    "--tag",
    "system,database",
    "--",
    src,
  ]);
  expect(extra.code).toBe(0);
  expect(main()).toHaveLength(3);
  const envFile = `${etc()}/restic-usb.env`;
  const env = fs.readFileSync(envFile, "utf8");
  fs.writeFileSync(envFile, env.replace(/^BACKUP_PATHS=.*$/m, `BACKUP_PATHS='${src}/missing'`));
  try {
    const r = job("restic-usb");
    expect(r.code).toBe(1);
    const st = status("restic-usb");
    expect(st.result).toBe("failed");
    expect(st.error).toMatch(/^restic backup of usb failed \(exit 1\): /);
    expect(main()).toHaveLength(3);
  } finally {
    fs.writeFileSync(envFile, env);
  }
  expect(job("restic-usb").code).toBe(0);
  expect(main()).toHaveLength(2);
});

test("copy to the cloud repository deduplicates: a second copy and a renamed duplicate add ~nothing", () => {
  const prefixDir = path.join(rig.s3.directory, rig.s3.bucket, "restic", "cloud");
  const r1 = job("restic-cloud");
  expect(r1.stderr).toContain("finished: success");
  const first = status("restic-cloud");
  expect(first.bytes).toBeGreaterThan(4_000_000);
  expect(snapshots("cloud")).toHaveLength(3);
  const size1 = dirBytes(prefixDir);

  // nothing new: nothing copied
  expect(job("restic-cloud").code).toBe(0);
  expect(status("restic-cloud").bytes).toBe(0);
  const size2 = dirBytes(prefixDir);
  expect(size2 - size1).toBeLessThan(64 * 1024);

  // the same 4 MiB under a new name: a new snapshot, but its data is already in the cloud
  fs.copyFileSync(`${src}/blob.bin`, `${src}/blob-copy.bin`);
  expect(job("restic-usb").code).toBe(0);
  expect(status("restic-usb").bytes).toBeLessThan(64 * 1024);
  expect(job("restic-cloud").code).toBe(0);
  const third = status("restic-cloud");
  expect(third.bytes).toBeLessThan(64 * 1024);
  expect(dirBytes(prefixDir) - size2).toBeLessThan(256 * 1024);
  // the cloud tier keeps 3 per group
  expect(snapshots("cloud").filter((s) => s.tags?.join(",") === "system,database")).toHaveLength(3);
});

test("the S3 keys reach restic only through the 0600 credentials file, never an environment", () => {
  const env = `${etc()}/restic-cloud.env`;
  const original = fs.readFileSync(env, "utf8");
  // restic as the job starts it, recording the environment it was given
  const seen = rig.box.at("restic-env.txt");
  const recording = rig.box.at("restic-recording-env");
  fs.writeFileSync(recording, `#!/bin/bash\nenv > ${seen}\nexec restic "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(env, `${original}RESTIC_BIN=${recording}\n`);
  try {
    // keys in the caller's environment (a stray export) would win over the file: they are dropped
    const r = run(`${rig.box.paths.sbin}/b321-restic-cloud`, [], {
      env: {
        ...process.env,
        B321_ALERT: alerts,
        AWS_ACCESS_KEY_ID: "AKIASTRAY",
        AWS_SECRET_ACCESS_KEY: "stray-secret",
      },
    });
    expect(r.stderr).toContain("finished: success");
  } finally {
    fs.writeFileSync(env, original);
  }
  const given = fs.readFileSync(seen, "utf8");
  expect(given).toContain(`AWS_SHARED_CREDENTIALS_FILE=${etc()}/secrets/restic-cloud.s3\n`);
  expect(given).not.toMatch(/^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)=/m);
  expect(given).not.toContain(rig.s3.secretAccessKey);
  expect(given).not.toContain(rig.s3.accessKeyId);
});

test("RUNBOOK.md's restore blocks, pasted as printed, bring back the source from either repository", () => {
  const site = parseSite({
    name: "atlastech",
    targets: { hostLoss: "none", siteLoss: { rpoHours: 192, rtoHours: 24 } },
    hosts: [{ name: HOST_TAG, address: "127.0.0.1", roles: ["restic"], paths: rig.box.paths }],
    retention: { last2: { keepLast: 2 }, last3: { keepLast: 3 } },
    restic: {
      repositories: [
        {
          name: "usb",
          host: HOST_TAG,
          kind: "local",
          path: usbRepo,
          schedule: "0 3 * * *",
          paths: [src],
          tags: ["system", "database"],
          retention: "last2",
        },
        {
          name: "cloud",
          host: HOST_TAG,
          kind: "s3",
          prefix: "restic/cloud",
          endpoint: rig.s3.endpoint,
          copyFrom: "usb",
          schedule: "0 4 * * 0",
          retention: "last3",
        },
      ],
    },
    offsite: { bucket: { name: rig.s3.bucket, region: "us-east-1", objectLock: false } },
    monitoring: {},
  });
  fs.rmSync(`${src}/scratch.tmp`); // excluded: not in any snapshot
  try {
    for (const repo of ["usb", "cloud"]) {
      const target = rig.box.at(`restore/${repo}`);
      const step = resticRestoreStep(site, repo);
      expect(step.on).toBe(HOST_TAG);
      pasteOk(step, { TARGET: target });
      const diff = run("diff", ["-r", `${target}${src}`, src]);
      expect(diff.stdout + diff.stderr).toBe("");
      expect(diff.code).toBe(0);
    }
  } finally {
    fs.writeFileSync(`${src}/scratch.tmp`, "excluded\n");
  }
});

test("check reads a different subset each run, wrapping around", () => {
  const subsets = [1, 2, 3, 4].map(() => {
    const r = job("restic-usb-check");
    expect(r.code).toBe(0);
    return status("restic-usb-check").subset;
  });
  expect(subsets).toEqual(["1/3", "2/3", "3/3", "1/3"]);
  const cloud = [1, 2, 3].map(() => {
    expect(job("restic-cloud-check").code).toBe(0);
    return status("restic-cloud-check").subset;
  });
  expect(cloud).toEqual(["1/2", "2/2", "1/2"]);
});

/** The files a drill run restored, from its log. */
const sampled = (r: RunResult) =>
  [...r.stderr.matchAll(/sample: (\S+) \(\d+ bytes\)/g)].map((m) => path.relative(src, m[1]));
const scratchLeft = () => fs.readdirSync(`${rig.box.paths.state}/restic-scratch`);
/** The files of a repository's newest snapshot, in the snapshot's order, relative to the source. */
function newestFiles(repo: "usb" | "cloud"): string[] {
  const r = restic(repo, ["ls", "--json", "latest"]);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { struct_type: string; type?: string; path?: string })
    .filter((n) => n.struct_type === "node" && n.type === "file")
    .map((n) => path.relative(src, n.path!));
}

test("the drill restores a sample of the newest snapshot, verified, and moves on each run", () => {
  const newest = snapshots("usb").at(-1)!;
  const files = newestFiles("usb");
  expect(files.length).toBeGreaterThan(1);
  const runs = [...files, files[0]].map(() => {
    const r = job("restic-usb-drill");
    expect(r.code).toBe(0);
    expect(status("restic-usb-drill")).toMatchObject({
      result: "success",
      snapshot: newest.id.slice(0, 8),
      files: 1,
      live_compared: 1,
    });
    expect(typeof status("restic-usb-drill").restore_seconds).toBe("number");
    return sampled(r);
  });
  // one file per drill: each in turn, then round again
  expect(runs).toEqual([...files, files[0]].map((f) => [f]));
  expect(status("restic-usb-drill").bytes).toBe(fs.statSync(`${src}/${files[0]}`).size);
  expect(scratchLeft()).toEqual([]);
});

test("the cloud copy's drill downloads the sample; a source changed since is verified by restic only", () => {
  const files = newestFiles("cloud");
  expect(files).toContain("etc/app.conf");
  fs.writeFileSync(`${src}/etc/app.conf`, "setting=2\n");
  try {
    const r = job("restic-cloud-drill");
    expect(r.code).toBe(0);
    expect(sampled(r).sort()).toEqual([...files].sort());
    expect(status("restic-cloud-drill")).toMatchObject({
      files: files.length,
      live_compared: files.length - 1,
    });
  } finally {
    fs.writeFileSync(`${src}/etc/app.conf`, "setting=1\n");
  }
});

test("a damaged pack fails the drill with an alert, and the next run tries the same sample", () => {
  const files = newestFiles("usb");
  const next = Number(fs.readFileSync(`${rig.box.paths.state}/restic/usb.drill-next`, "utf8"));
  // the next sample is one of the 4 MiB files, whose data is in the biggest pack
  expect(fs.statSync(`${src}/${files[next % files.length]}`).size).toBe(4 * 1024 * 1024);
  const packs = runOk("find", [`${usbRepo}/data`, "-type", "f"])
    .stdout.trim()
    .split("\n");
  const biggest = packs.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
  const original = fs.readFileSync(biggest);
  const damaged = Buffer.from(original);
  for (let i = 100; i < damaged.length - 100; i += 4096) damaged[i] ^= 0xff;
  fs.chmodSync(biggest, 0o600);
  fs.writeFileSync(biggest, damaged);
  const before = alertLines().length;
  try {
    const r = job("restic-usb-drill");
    expect(r.code).toBe(1);
    expect(sampled(r)).toEqual([files[next % files.length]]);
    const st = status("restic-usb-drill");
    expect(st.result).toBe("failed");
    expect(st.error).toContain("restic restore --verify of the sample of snapshot");
    expect(alertLines().slice(before)).toEqual([`restic-usb-drill failed ${st.error}`]);
    expect(scratchLeft()).toEqual([]);
    fs.writeFileSync(biggest, original);
    const again = job("restic-usb-drill");
    expect(again.code).toBe(0);
    expect(sampled(again)).toEqual(sampled(r));
  } finally {
    fs.writeFileSync(biggest, original);
  }
});

test("b321-evidence lists every drill run with the restore time its status recorded", () => {
  const r = run(`${rig.box.paths.sbin}/b321-evidence`, []);
  expect(r.code).toBe(0);
  const drills = r.stdout.split("## Drills and restores")[1].split("## ")[0];
  const rows = drills.split("\n").filter((l) => / \| restic-(usb|cloud)-drill \| /.test(l));
  const history = fs
    .readdirSync(rig.box.paths.history)
    .flatMap((f) => fs.readFileSync(`${rig.box.paths.history}/${f}`, "utf8").split("\n"))
    .filter((l) => /\trestic-(usb|cloud)-drill\tdrill\t/.test(l));
  expect(rows).toHaveLength(history.length);
  expect(rows.length).toBeGreaterThan(4);
  // the last usb drill's row carries the seconds its status file recorded
  const st = status("restic-usb-drill");
  expect(rows.filter((l) => l.includes("| restic-usb-drill |")).at(-1)).toBe(
    `| ${st.ended} | restic-usb-drill | drill | success | ${st.restore_seconds} s |  |`,
  );
  expect(drills).toContain("| restic-usb-drill | drill | failed | - | restic restore --verify");
});

test("a run while another holds the repository's lock is refused", () => {
  const lock = `${rig.box.paths.locks}/restic-usb.lock`;
  const before = snapshots("usb").length;
  const r = run("flock", [lock, `${rig.box.paths.sbin}/b321-restic-usb`], {
    env: { ...process.env, B321_ALERT: alerts },
  });
  expect(r.code).toBe(1);
  expect(status("restic-usb").error).toBe(`another run holds the lock ${lock}`);
  // the copy locks its source too (after waiting its COPY_LOCK_WAIT for it)
  const t0 = Date.now();
  const c = run("flock", [lock, `${rig.box.paths.sbin}/b321-restic-cloud`], {
    env: { ...process.env, B321_ALERT: alerts },
  });
  expect(c.code).toBe(1);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
  expect(status("restic-cloud").error).toBe(`another run holds the lock ${lock}`);
  expect(snapshots("usb")).toHaveLength(before);
});

test("a stale restic lock is removed before forget, with a warning", async () => {
  // a restic process that dies holding its lock (kill -9): the lock stays in the repository
  const child = spawn(
    "restic",
    [
      "-r",
      usbRepo,
      "--password-file",
      `${etc()}/secrets/restic-usb.password`,
      "--no-cache",
      "backup",
      "--stdin",
      "--stdin-filename",
      "x",
    ],
    { stdio: ["pipe", "ignore", "ignore"] },
  );
  await waitFor(
    "a restic lock",
    () => restic("usb", ["--no-lock", "list", "locks"]).stdout.trim() !== "",
  );
  child.kill("SIGKILL");
  await new Promise((r) =>
    child.exitCode !== null || child.signalCode ? r(null) : child.once("exit", r),
  );
  child.stdin?.destroy();
  // without unlock, forget cannot run
  const blocked = restic("usb", ["forget", "--keep-last", "2"]);
  expect(blocked.code).toBe(1);
  expect(blocked.stderr).toContain("repository is already locked");

  const r = job("restic-usb");
  expect(r.code).toBe(0);
  const st = status("restic-usb");
  expect(st.result).toBe("warning");
  expect(st.stale_locks_removed).toBe(1);
  expect(st.error).toBe("removed 1 stale restic lock(s) from usb (an earlier run died)");
  expect(restic("usb", ["--no-lock", "list", "locks"]).stdout.trim()).toBe("");
  expect(snapshots("usb").filter((s) => s.tags?.join(",") === "system,database")).toHaveLength(2);
});

test("exit code 3 (unreadable file) is a warning naming the file, and skips forget", () => {
  const secret = `${src}/etc/unreadable.key`;
  fs.writeFileSync(secret, "x\n", { mode: 0o000 });
  const before = snapshots("usb").filter((s) => s.tags?.join(",") === "system,database").length;
  // root reads everything: drop the capabilities that let it ignore file modes
  const r = job("restic-usb", [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
  ]);
  fs.rmSync(secret);
  expect(r.code).toBe(0);
  const st = status("restic-usb");
  expect(st.result).toBe("warning");
  expect(st.unreadable).toBe(1);
  expect(st.error).toBe(
    `snapshot made but 1 file(s) could not be read (forget skipped): ${secret}`,
  );
  expect(alertLines()).toContain(`restic-usb warning ${st.error}`);
  const after = snapshots("usb").filter((s) => s.tags?.join(",") === "system,database").length;
  expect(after).toBe(before + 1);
});

/** The ids of a repository's keys. */
const keyIds = (repo: "usb" | "cloud") =>
  (JSON.parse(restic(repo, ["key", "list", "--json"]).stdout) as { id: string }[]).map((k) => k.id);

/** Whether a password file opens the repository (the last --password-file is the one restic reads). */
const opens = (repo: "usb" | "cloud", passwordFile: string) =>
  restic(repo, ["cat", "config", "--password-file", passwordFile]).code === 0;

/** A rotation as pulumi up does it: the password file's update with the new password on stdin. */
function rotate(repo: "usb" | "cloud"): { previous: string; next: string } {
  const pw = `${etc()}/secrets/restic-${repo}.password`;
  const previous = rig.box.at(`previous-${repo}-${randomBytes(4).toString("hex")}.password`);
  fs.copyFileSync(pw, previous);
  const next = `rotated-${repo}-${randomBytes(8).toString("hex")}\n`;
  const r = rig.sshd.exec(rig.step(`${repo}-password-file`).update as string, next);
  expect({ repo, code: r.code, stderr: r.code ? r.stderr : "" }).toEqual({
    repo,
    code: 0,
    stderr: "",
  });
  return { previous, next };
}

test("a rotation adds the new key; the old one goes only after a verified backup with the new password", () => {
  const rotated = (["usb", "cloud"] as const).map((repo) => {
    const pw = `${etc()}/secrets/restic-${repo}.password`;
    const before = keyIds(repo);
    expect(before).toHaveLength(1);
    const config = JSON.parse(restic(repo, ["cat", "config"]).stdout);
    const { previous, next } = rotate(repo);
    expect(fs.readFileSync(pw, "utf8")).toBe(next);
    expect((fs.statSync(pw).mode & 0o777).toString(8)).toBe("600");
    expect(status(`restic-${repo}-init`)).toMatchObject({ result: "success", rotated: "true" });
    // The new password opens the same repository (same id, same chunker): nothing re-encrypted.
    expect(JSON.parse(restic(repo, ["cat", "config"]).stdout)).toEqual(config);
    // Both keys, until a backup has been made and checked with the new one.
    expect(keyIds(repo)).toHaveLength(2);
    expect(opens(repo, previous)).toBe(true);
    // The same update again (pulumi up retrying) changes no key.
    expect(rig.sshd.exec(rig.step(`${repo}-password-file`).update as string, next).code).toBe(0);
    expect(keyIds(repo)).toHaveLength(2);
    expect(fs.readdirSync(`${etc()}/secrets`).filter((f) => f.includes(".b321."))).toEqual([]);
    return { repo, previous, old: before[0] };
  });
  // The backup, then the copy, each with the new password: each retires its repository's old key.
  for (const { repo, previous, old } of rotated) {
    const r = job(`restic-${repo}`);
    expect({ repo, code: r.code }).toEqual({ repo, code: 0 });
    expect(status(`restic-${repo}`)).toMatchObject({ result: "success", old_keys_removed: 1 });
    expect(keyIds(repo)).toHaveLength(1);
    expect(keyIds(repo)).not.toContain(old);
    const denied = restic(repo, ["cat", "config", "--password-file", previous]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/wrong password|no key found/);
  }
  expect(fs.readdirSync(rig.box.paths.state).filter((f) => f.endsWith(".retired-key"))).toEqual([]);
  // every snapshot made before the rotations still restores with the new password
  expect(restic("usb", ["check", "--read-data"]).code).toBe(0);
});

test("a backup whose check fails keeps the old key and fails; two rotations' keys go with the next verified one", () => {
  const env = `${etc()}/restic-usb.env`;
  const original = fs.readFileSync(env, "utf8");
  const first = rotate("usb");
  const second = rotate("usb");
  expect(keyIds("usb")).toHaveLength(3);
  // restic whose check fails, as on a damaged repository
  const flaky = rig.box.at("restic-check-fails");
  fs.writeFileSync(
    flaky,
    `#!/bin/bash\nfor a in "$@"; do [ "$a" = check ] && { echo "pack 1234: not found" >&2; exit 1; }; done\nexec restic "$@"\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(env, `${original}RESTIC_BIN=${flaky}\n`);
  try {
    const r = job("restic-usb");
    expect(r.code).not.toBe(0);
    expect(status("restic-usb")).toMatchObject({
      result: "failed",
      error: "restic check failed on usb after the rotation's first backup: the old key stays",
    });
    expect(alertLines().some((l) => l.startsWith("restic-usb failed restic check failed"))).toBe(
      true,
    );
  } finally {
    fs.writeFileSync(env, original);
  }
  expect(keyIds("usb")).toHaveLength(3);
  expect(opens("usb", first.previous)).toBe(true);
  expect(opens("usb", second.previous)).toBe(true);
  // the next verified backup removes both
  expect(job("restic-usb").code).toBe(0);
  expect(status("restic-usb")).toMatchObject({ result: "success", old_keys_removed: 2 });
  expect(keyIds("usb")).toHaveLength(1);
  expect(opens("usb", first.previous)).toBe(false);
  expect(opens("usb", second.previous)).toBe(false);
  expect(opens("usb", `${etc()}/secrets/restic-usb.password`)).toBe(true);
});

test("deletes remove the jobs but never the repositories nor their passwords", () => {
  rig.applyDeletes();
  rig.applyDeletes();
  expect(fs.existsSync(`${rig.box.paths.cron}/backup321-restic-usb`)).toBe(false);
  expect(fs.existsSync(`${rig.box.paths.sbin}/b321-restic-cloud`)).toBe(false);
  expect(fs.existsSync(`${etc()}/secrets/restic-usb.password`)).toBe(true);
  expect(fs.existsSync(`${etc()}/secrets/restic-cloud.password`)).toBe(true);
  expect(restic("usb", ["cat", "config"]).code).toBe(0);
  expect(restic("cloud", ["cat", "config"]).code).toBe(0);
  // Every delete forgot its owner stamp (the password files have none: they are never deleted).
  expect(ownerStamps(`${rig.box.paths.owners}`)).toEqual([]);
});
