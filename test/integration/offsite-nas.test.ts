// NasSync for real: the commands a mock run registers are replayed over SSH (the source host and
// the NAS are both 127.0.0.1 through a real sshd, each rooted in a sandbox), then the installed
// job runs: day 1, a deletion and a "ransomware" rewrite at the source, day 2, then retention.
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { startSshd, type Sshd } from "../harness/sshd";
import { makeSandbox, type Sandbox } from "../harness/sandbox";
import {
  applyDeletes,
  ownerStamps,
  remoteSteps,
  runMocked,
  type RemoteStep,
} from "../harness/program";
import { run, runOk, type RunResult } from "../harness/proc";
import { authorizedKeyLine } from "../../components/offsite/render";

let sshd: Sshd;
let box: Sandbox;
let steps: RemoteStep[];
let nasRoot: string;
let receiver: string;
const src = { db: "", binlogs: "" };
const KEEP = 3;

/** Runs the creates in order, as the engine would: the authorized_keys line is built from the real key. */
function applyCreates(): RunResult[] {
  let publicKey = "";
  return steps.map((s) => {
    let stdin = s.stdin;
    if (s.name === "sync-authorized-key") {
      stdin =
        authorizedKeyLine({
          receiver,
          path: nasRoot,
          keep: KEEP,
          minAgeMinutes: 0,
          publicKey,
          sourceHost: "db",
        }) + "\n";
    }
    const r = s.create ? sshd.exec(s.create, stdin) : { code: 0, stdout: "", stderr: "" };
    if (r.code !== 0) throw new Error(`create of ${s.name} failed (${r.code}):\n${r.stderr}`);
    if (s.name === "sync-key") publicKey = r.stdout.trim();
    return r;
  });
}

function sync(): RunResult {
  return run(`${box.paths.sbin}/b321-nas-sync`, []);
}

function snapshots(): string[] {
  return fs
    .readdirSync(nasRoot)
    .filter((d) => /^\d{8}-\d{6}$/.test(d))
    .sort();
}

const nasOwners = () => box.at("nas/home/.backup321/owners");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inode = (p: string) => fs.statSync(p).ino;
const read = (p: string) => fs.readFileSync(p, "utf8");

beforeAll(async () => {
  sshd = await startSshd();
  box = makeSandbox("b321-nas-");
  nasRoot = box.at("nas/backups/atlastech");
  src.db = box.at("backups/database");
  src.binlogs = box.at("backups/binlogs");
  fs.mkdirSync(src.db, { recursive: true });
  fs.mkdirSync(src.binlogs, { recursive: true });
  const nasHome = box.at("nas/home");
  receiver = `${nasHome}/.backup321/nas-receive.sh`;
  const hostKey = fs.readFileSync(path.join(sshd.dir, "host_ed25519.pub"), "utf8");
  const recorded = await runMocked(async () => {
    const { Host } = await import("../../components/host");
    const { NasSync } = await import("../../components/offsite");
    const common = {
      address: "127.0.0.1",
      port: sshd.port,
      privateKey: pulumi.secret(sshd.privateKey),
    };
    const db = new Host("db", { ...common, hostName: "db", paths: box.paths });
    const nas = new Host("nas", {
      ...common,
      hostName: "nas",
      paths: box.paths,
      installLibrary: false,
    });
    new NasSync("sync", {
      host: db,
      nas,
      nasAddress: "127.0.0.1",
      nasPort: sshd.port,
      nasUser: "root",
      nasHostKey: hostKey,
      path: nasRoot,
      sources: [src.db, src.binlogs],
      keep: KEEP,
      minAgeMinutes: 0,
      schedule: "45 * * * *",
      nasHome,
      authorizedKeysFile: path.join(sshd.dir, "authorized_keys"),
    });
  });
  steps = remoteSteps(recorded);
}, 120_000);

afterAll(async () => {
  await sshd?.stop();
  box?.remove();
});

test("pulumi up's commands install the key, the NAS receiver and the restricted key line, twice", () => {
  applyCreates();
  const keyFile = `${box.paths.etc}/secrets/nas-sync_ed25519`;
  expect((fs.statSync(keyFile).mode & 0o777).toString(8)).toBe("600");
  const pub = runOk("ssh-keygen", ["-y", "-f", keyFile]).stdout.split(" ").slice(0, 2).join(" ");
  const lines = read(path.join(sshd.dir, "authorized_keys")).trim().split("\n");
  expect(lines).toHaveLength(2);
  expect(lines[1]).toBe(
    `restrict,command="${receiver} ${nasRoot} ${KEEP} 0" ${pub} backup321-nas-sync@db`,
  );
  const before = read(path.join(sshd.dir, "authorized_keys"));
  applyCreates();
  expect(read(path.join(sshd.dir, "authorized_keys"))).toBe(before);
  expect(read(`${box.paths.etc}/nas-sync.known_hosts`)).toMatch(
    new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 \\S+\\n$`),
  );
  // The NAS account (no sudo) keeps its owner stamps in its own home.
  expect(ownerStamps(nasOwners())).toEqual(
    [
      `sync-authorized-key authorized-key:${path.join(sshd.dir, "authorized_keys")}:db`,
      `sync-receiver ${receiver}`,
    ].sort(),
  );
});

test("a file deleted or encrypted at the source is still intact in yesterday's snapshot", async () => {
  fs.writeFileSync(`${src.db}/full_1.xb.zst.enc`, "day-1 full backup\n");
  fs.writeFileSync(`${src.db}/full_1.xb.zst.enc.manifest.json`, '{"sha256":"x"}\n');
  fs.writeFileSync(`${src.binlogs}/mysql-bin.000001.zst.enc`, "binlog one\n");
  const day1 = sync();
  expect(day1.stderr).toContain("complete");
  expect(day1.code).toBe(0);
  const [s1] = snapshots();
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(s1);
  const status1 = JSON.parse(read(`${box.paths.state}/status/nas-sync.json`));
  expect(status1).toMatchObject({ result: "success", snapshot: s1 });
  expect(status1.bytes).toBeGreaterThan(0);

  await sleep(1100);
  fs.rmSync(`${src.db}/full_1.xb.zst.enc.manifest.json`);
  fs.writeFileSync(`${src.db}/full_1.xb.zst.enc`, "ENCRYPTED BY RANSOMWARE\n");
  fs.writeFileSync(`${src.binlogs}/mysql-bin.000002.zst.enc`, "binlog two\n");
  const day2 = sync();
  expect(day2.stderr).toContain("complete");
  expect(day2.code).toBe(0);
  const [first, s2] = snapshots();
  expect(first).toBe(s1);
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(s2);
  const at = (s: string, p: string) => `${nasRoot}/${s}${p}`;
  // yesterday keeps both originals
  expect(read(at(s1, `${src.db}/full_1.xb.zst.enc`))).toBe("day-1 full backup\n");
  expect(read(at(s1, `${src.db}/full_1.xb.zst.enc.manifest.json`))).toBe('{"sha256":"x"}\n');
  // today mirrors the source, damage included
  expect(read(at(s2, `${src.db}/full_1.xb.zst.enc`))).toBe("ENCRYPTED BY RANSOMWARE\n");
  expect(fs.existsSync(at(s2, `${src.db}/full_1.xb.zst.enc.manifest.json`))).toBe(false);
  // an unchanged file is one inode shared by both snapshots (hard link), a changed one is not
  expect(inode(at(s2, `${src.binlogs}/mysql-bin.000001.zst.enc`))).toBe(
    inode(at(s1, `${src.binlogs}/mysql-bin.000001.zst.enc`)),
  );
  expect(inode(at(s2, `${src.db}/full_1.xb.zst.enc`))).not.toBe(
    inode(at(s1, `${src.db}/full_1.xb.zst.enc`)),
  );
});

test("the NAS keeps its own count of snapshots, the newest always", async () => {
  for (let i = 0; i < 3; i++) {
    await sleep(1100);
    fs.writeFileSync(`${src.binlogs}/mysql-bin.00001${i}.zst.enc`, `binlog ${i}\n`);
    expect(sync().code).toBe(0);
  }
  const kept = snapshots();
  expect(kept).toHaveLength(KEEP);
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(kept[KEEP - 1]);
  expect(fs.readdirSync(nasRoot).filter((d) => d.endsWith(".partial"))).toEqual([]);
});

test("a symlink at the source is stored inert on the NAS (nothing is written through it)", async () => {
  await sleep(1100);
  fs.symlinkSync(box.at("nas/home"), `${src.db}/escape`);
  try {
    expect(sync().code).toBe(0);
    const latest = fs.readlinkSync(`${nasRoot}/latest`);
    expect(fs.readlinkSync(`${nasRoot}/${latest}${src.db}/escape`)).toBe(
      `/rsyncd-munged/${box.at("nas/home")}`,
    );
  } finally {
    fs.rmSync(`${src.db}/escape`);
  }
});

test("the sync key can add snapshots but cannot delete or rewrite older ones, nor get a shell", () => {
  const keyFile = `${box.paths.etc}/secrets/nas-sync_ed25519`;
  const ssh = [
    "-i",
    keyFile,
    "-p",
    String(sshd.port),
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${box.paths.etc}/nas-sync.known_hosts`,
  ];
  const oldest = snapshots()[0];
  const victim = `${nasRoot}/${oldest}${src.binlogs}/mysql-bin.000001.zst.enc`;
  const shell = run("ssh", [...ssh, "root@127.0.0.1", `rm -rf ${nasRoot}`]);
  expect(shell.code).not.toBe(0);
  expect(shell.stderr).toContain("refused");
  const del = run("rsync", [
    "-a",
    "--delete",
    "-e",
    `ssh ${ssh.join(" ")}`,
    `${box.root}/etc/`,
    `root@127.0.0.1:${nasRoot}/${oldest}/`,
  ]);
  expect(del.code).not.toBe(0);
  const overwrite = run("rsync", [
    "-a",
    "-e",
    `ssh ${ssh.join(" ")}`,
    `${box.paths.etc}/nas-sync.env`,
    `root@127.0.0.1:${victim}`,
  ]);
  expect(overwrite.code).not.toBe(0);
  const read1 = run("rsync", [
    "-a",
    "-e",
    `ssh ${ssh.join(" ")}`,
    `root@127.0.0.1:${nasRoot}/`,
    box.at("stolen/"),
  ]);
  expect(read1.code).not.toBe(0);
  expect(fs.existsSync(box.at("stolen"))).toBe(false);
  expect(read(victim)).toBe("binlog one\n");
  expect(snapshots()).toHaveLength(KEEP);
});

test("a flood of new snapshots cannot push out one finished less than MIN_AGE ago; no future names", () => {
  const root = box.at("flood");
  const finish = (stamp: string) => {
    fs.mkdirSync(`${root}/${stamp}.partial`, { recursive: true });
    return run("sh", [receiver, root, "1", "60"], {
      env: { ...process.env, SSH_ORIGINAL_COMMAND: `finish ${stamp}` },
    });
  };
  expect(finish("20260101-000000").code).toBe(0);
  expect(finish("20260101-000001").code).toBe(0);
  expect(finish("20260101-000002").code).toBe(0);
  // keep is 1, but all three finished seconds ago: none may go yet
  const kept = () =>
    fs
      .readdirSync(root)
      .filter((d) => /^\d{8}-\d{6}$/.test(d))
      .sort();
  expect(kept()).toEqual(["20260101-000000", "20260101-000001", "20260101-000002"]);
  // once a snapshot finished more than an hour ago, retention applies again
  const old = new Date(Date.now() - 2 * 3600 * 1000);
  fs.utimesSync(`${root}/.finished/20260101-000000`, old, old);
  expect(finish("20260101-000003").code).toBe(0);
  expect(kept()).toEqual(["20260101-000001", "20260101-000002", "20260101-000003"]);
  const future = finish("29990101-000000");
  expect(future.code).toBe(1);
  expect(future.stderr).toContain("is in the future");
});

test("an unreachable NAS fails the job with a clear status, and no snapshot is made", () => {
  const envFile = `${box.paths.etc}/nas-sync.env`;
  const env = read(envFile);
  fs.writeFileSync(envFile, env.replace(`NAS_PORT='${sshd.port}'`, "NAS_PORT='1'"));
  try {
    const before = snapshots();
    const r = sync();
    expect(r.code).toBe(1);
    const status = JSON.parse(read(`${box.paths.state}/status/nas-sync.json`));
    expect(status.result).toBe("failed");
    expect(status.error).toContain("cannot reach the NAS 127.0.0.1:1");
    expect(snapshots()).toEqual(before);
  } finally {
    fs.writeFileSync(envFile, env);
  }
});

test("deletes remove the key line and the receiver, never the snapshots", () => {
  applyDeletes(sshd, steps);
  applyDeletes(sshd, steps);
  expect(read(path.join(sshd.dir, "authorized_keys"))).not.toContain("backup321-nas-sync@db");
  expect(fs.existsSync(receiver)).toBe(false);
  expect(snapshots()).toHaveLength(KEEP);
  // Every delete forgot its owner stamp, on the NAS and on the source host.
  expect(ownerStamps(nasOwners())).toEqual([]);
  expect(ownerStamps(`${box.paths.state}/owners`)).toEqual([]);
});
