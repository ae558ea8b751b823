// NasSync for real: the commands a mock run registers are replayed over SSH (the source host and
// the NAS are both 127.0.0.1 through a real sshd, each rooted in a sandbox), then the installed
// job runs: day 1, a deletion and a "ransomware" rewrite at the source, day 2, then retention. A
// second source host, the binlog stream's, syncs the files the real mariadb-stream.sh sealed from a
// real MariaDB to a path of its own on the same NAS, through the same receiver.
import * as fs from "node:fs";
import * as path from "node:path";
import { ownerStamps, sandboxHost } from "../harness/program";
import { rootedPaths } from "../harness/sandbox";
import { streamHost, streamWhile, type StreamHost } from "../harness/stream";
import { streamUnsealed } from "../../components/mariadb/render";
import type { HostPaths } from "../../stacks/model/hosts";
import { useRig } from "../harness/rig";
import { nasSync, sandboxNas, type SandboxNas } from "../harness/nas";
import { nasFetchStep } from "../../components/site/runbook/scenarios";
import { pasteOk, pasteStep } from "../harness/runbook";
import { parseSite } from "../../stacks/load";
import { run, runOk, type RunResult } from "../harness/proc";
import {
  authorizedKeyLine,
  nasReaderKeyComment,
  readOnlyKeyLine,
} from "../../components/offsite/render";
import { ensureKeyCommand, installAuthorizedKeyCommand } from "../../components/host/ssh-trust";

let nas: SandboxNas;
let nasRoot: string;
let receiver: string;
const src = { db: "", binlogs: "" };
const KEEP = 3;
/** The binlog stream's host: its own directories, its stream, its path on the NAS. */
let streamer: HostPaths;
let stream: StreamHost;
let streamRoot: string;

/** Each sync's key line: its key's step, its NAS path, its source host. */
const KEY_LINES: Record<string, { key: string; path: () => string; host: string }> = {
  "sync-authorized-key": { key: "sync-key", path: () => nasRoot, host: "db" },
  "sync-stream-authorized-key": {
    key: "sync-stream-key",
    path: () => streamRoot,
    host: "streamer",
  },
};

/** Runs the creates in order, as the engine would: the authorized_keys lines are built from the real keys. */
function applyCreates(): RunResult[] {
  const publicKeys: Record<string, string> = {};
  return rig.steps.map((s) => {
    let stdin = s.stdin;
    const line = KEY_LINES[s.name];
    if (line) {
      stdin =
        authorizedKeyLine({
          receiver,
          path: line.path(),
          keep: KEEP,
          minAgeMinutes: 0,
          minIntervalMinutes: 0,
          publicKey: publicKeys[line.key],
          sourceHost: line.host,
        }) + "\n";
    }
    const r = s.create ? rig.sshd.exec(s.create, stdin) : { code: 0, stdout: "", stderr: "" };
    if (r.code !== 0) throw new Error(`create of ${s.name} failed (${r.code}):\n${r.stderr}`);
    if (s.name.endsWith("-key")) publicKeys[s.name] = r.stdout.trim();
    return r;
  });
}

function sync(): RunResult {
  return run(`${rig.box.paths.sbin}/b321-nas-sync`, []);
}

function snapshots(): string[] {
  return fs
    .readdirSync(nasRoot)
    .filter((d) => /^\d{8}-\d{6}$/.test(d))
    .sort();
}

const nasOwners = () => rig.box.at("nas/home/.backup321/owners");
/** ssh as the source host's sync key (what a compromised source host holds). */
const syncSsh = () => [
  "-i",
  `${rig.box.paths.secrets}/nas-sync_ed25519`,
  "-p",
  String(rig.sshd.port),
  "-o",
  "BatchMode=yes",
  "-o",
  "IdentitiesOnly=yes",
  "-o",
  "StrictHostKeyChecking=yes",
  "-o",
  `UserKnownHostsFile=${rig.box.paths.etc}/nas-sync.known_hosts`,
];
/** The real rsync client with the sync key, as an attacker on the source host would run it. */
const push = (args: string[], inject = "") => {
  // an ssh wrapper that adds words to the server command line after --server
  const wrapper = rig.box.at("evil-ssh");
  fs.writeFileSync(
    wrapper,
    '#!/bin/bash\nargs=()\nfor a in "$@"; do args+=("$a"); if [ "$a" = --server ]; then args+=($INJECT); fi; done\nexec ssh "${args[@]}"\n',
    { mode: 0o755 },
  );
  return run("rsync", ["-e", `${wrapper} ${syncSsh().join(" ")}`, ...args], {
    env: { ...process.env, INJECT: inject },
  });
};
const nasCommand = (command: string) => run("ssh", [...syncSsh(), "root@127.0.0.1", command]);
const authorizedKeys = () => path.join(rig.sshd.dir, "authorized_keys");
/** Rewrites the forced command's parameters (after ROOT) of the sync key's line. */
const setReceiverParams = (params: string) =>
  fs.writeFileSync(
    authorizedKeys(),
    read(authorizedKeys()).replace(
      new RegExp(`command="${receiver} ${nasRoot} [^"]*"`),
      `command="${receiver} ${nasRoot} ${params}"`,
    ),
  );
const refusals = () => nas.refused();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inode = (p: string) => fs.statSync(p).ino;
const read = (p: string) => fs.readFileSync(p, "utf8");
/** A snapshot name (UTC): YYYYmmdd-HHMMSS. */
const stampOf = (d: Date) => d.toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");

const rig = useRig({
  prefix: "b321-nas-",
  mariadb: true,
  host: { name: "db", hostName: "db" },
  prepare: ({ box, mariadb }) => {
    nas = sandboxNas(box);
    ({ root: nasRoot, receiver } = nas);
    streamRoot = `${nasRoot}/binlog-stream`;
    src.db = box.at("backups/database");
    src.binlogs = box.at("backups/binlogs");
    fs.mkdirSync(src.db, { recursive: true });
    fs.mkdirSync(src.binlogs, { recursive: true });
    streamer = rootedPaths(box.at("streamer"));
    const keyFile = box.at("mariadb-backup.key");
    fs.writeFileSync(keyFile, runOk("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
    stream = streamHost(mariadb, {
      lib: box.at("stream-lib"),
      keyFile,
      root: box.at("streamer/backups"),
    });
  },
  program: async ({ box, sshd }, db) => {
    const main = await nasSync(nas, box, sshd, db, { sources: [src.db, src.binlogs], keep: KEEP });
    // the binlog stream's host: its sealed files only, to a path of its own, the receiver shared
    const host = await sandboxHost("streamer", "streamer", sshd, streamer);
    await nasSync(
      nas,
      box,
      sshd,
      host,
      {
        sources: [stream.dir],
        excludes: streamUnsealed(stream.dir),
        keep: KEEP,
        path: streamRoot,
        sharedReceiver: main.sync,
      },
      { name: "sync-stream", nas: main.nas },
    );
  },
});

test("pulumi up's commands install the key, the NAS receiver and the restricted key line, twice", () => {
  applyCreates();
  const keyFile = `${rig.box.paths.secrets}/nas-sync_ed25519`;
  expect((fs.statSync(keyFile).mode & 0o777).toString(8)).toBe("600");
  const pub = runOk("ssh-keygen", ["-y", "-f", keyFile]).stdout.split(" ").slice(0, 2).join(" ");
  const lines = read(path.join(rig.sshd.dir, "authorized_keys")).trim().split("\n");
  expect(lines).toHaveLength(3);
  expect(lines[1]).toBe(
    `restrict,command="${receiver} ${nasRoot} ${KEEP} 0 0" ${pub} backup321-nas-sync@db`,
  );
  // the stream host's own key, forced into its own path with the same receiver
  const streamPub = runOk("ssh-keygen", ["-y", "-f", `${streamer.secrets}/nas-sync_ed25519`])
    .stdout.split(" ")
    .slice(0, 2)
    .join(" ");
  expect(streamPub).not.toBe(pub);
  expect(lines[2]).toBe(
    `restrict,command="${receiver} ${streamRoot} ${KEEP} 0 0" ${streamPub} backup321-nas-sync@streamer`,
  );
  // one receiver, installed by the first sync only
  expect(rig.steps.filter((x) => x.name.endsWith("-receiver")).map((x) => x.name)).toEqual([
    "sync-receiver",
  ]);
  const before = read(path.join(rig.sshd.dir, "authorized_keys"));
  applyCreates();
  expect(read(path.join(rig.sshd.dir, "authorized_keys"))).toBe(before);
  expect(read(`${rig.box.paths.etc}/nas-sync.known_hosts`)).toMatch(
    new RegExp(`^\\[127\\.0\\.0\\.1\\]:${rig.sshd.port} ssh-ed25519 \\S+\\n$`),
  );
  // The NAS account (no sudo) keeps its owner stamps in its own home.
  expect(ownerStamps(nasOwners())).toEqual(
    [
      `sync-authorized-key authorized-key:${path.join(rig.sshd.dir, "authorized_keys")}:db`,
      `sync-receiver ${receiver}`,
      `sync-stream-authorized-key authorized-key:${path.join(rig.sshd.dir, "authorized_keys")}:streamer`,
    ].sort(),
  );
});

test("a file deleted or encrypted at the source is still intact in yesterday's snapshot", async () => {
  fs.writeFileSync(`${src.db}/full_1.xb.zst.enc`, "day-1 full backup\n");
  fs.writeFileSync(`${src.db}/full_1.xb.zst.enc.sha256`, "0123abcd  full_1.xb.zst.enc\n");
  fs.writeFileSync(`${src.binlogs}/mysql-bin.000001.zst.enc`, "binlog one\n");
  const day1 = sync();
  expect(day1.stderr).toContain("complete");
  expect(day1.code).toBe(0);
  const [s1] = snapshots();
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(s1);
  const status1 = JSON.parse(read(`${rig.box.paths.status}/nas-sync.json`));
  expect(status1).toMatchObject({ result: "success", snapshot: s1 });
  expect(status1.bytes).toBeGreaterThan(0);

  await sleep(1100);
  fs.rmSync(`${src.db}/full_1.xb.zst.enc.sha256`);
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
  expect(read(at(s1, `${src.db}/full_1.xb.zst.enc.sha256`))).toBe("0123abcd  full_1.xb.zst.enc\n");
  // today mirrors the source, damage included
  expect(read(at(s2, `${src.db}/full_1.xb.zst.enc`))).toBe("ENCRYPTED BY RANSOMWARE\n");
  expect(fs.existsSync(at(s2, `${src.db}/full_1.xb.zst.enc.sha256`))).toBe(false);
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

test("the binlog stream's host sends the real stream's sealed files to its own path on the NAS, never its open binlog nor a seal in progress", async () => {
  const before = { snapshots: snapshots(), latest: fs.readlinkSync(`${nasRoot}/latest`) };
  await streamWhile(rig.mariadb, stream, () => {
    rig.mariadb.sql("CREATE DATABASE IF NOT EXISTS s; CREATE TABLE IF NOT EXISTS s.t (id INT)");
    for (let i = 0; i < 3; i++) {
      rig.mariadb.sql(`INSERT INTO s.t VALUES (${i})`);
      rig.mariadb.sql("FLUSH BINARY LOGS");
    }
  });
  const sealed = stream.sealed();
  expect(sealed.length).toBeGreaterThanOrEqual(3);
  const [open] = stream.live();
  expect(open).toMatch(/^mysql-bin\.\d+$/);
  // a seal in progress, as the stream leaves it while it writes one
  const partial = `${stream.dir}/${open}.20991231T000000Z.s1.zst.enc.b321-partial`;
  fs.copyFileSync(`${stream.dir}/live/${open}`, partial);
  let r: RunResult;
  try {
    r = run(`${streamer.sbin}/b321-nas-sync`, []);
  } finally {
    fs.rmSync(partial);
  }
  expect({ code: r.code, err: r.code === 0 ? "" : r.stderr.slice(-1500) }).toEqual({
    code: 0,
    err: "",
  });
  const taken = fs.readdirSync(streamRoot).filter((d) => /^\d{8}-\d{6}$/.test(d));
  expect(taken).toHaveLength(1);
  expect(fs.readlinkSync(`${streamRoot}/latest`)).toBe(taken[0]);
  const copy = `${streamRoot}/${taken[0]}${stream.dir}`;
  // exactly the sealed files and their .sha256, as the stream wrote them
  expect(fs.readdirSync(copy).sort()).toEqual(sealed.flatMap((f) => [f, `${f}.sha256`]).sort());
  for (const f of sealed.flatMap((x) => [x, `${x}.sha256`]))
    expect({
      f,
      same: fs.readFileSync(`${copy}/${f}`).equals(fs.readFileSync(`${stream.dir}/${f}`)),
    }).toEqual({
      f,
      same: true,
    });
  const status = JSON.parse(read(`${streamer.status}/nas-sync.json`));
  expect(status).toMatchObject({ result: "success", snapshot: taken[0] });
  // the database host's snapshots are untouched: the stream's live beside them, not among them
  expect(snapshots()).toEqual(before.snapshots);
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(before.latest);
});

test("a symlink at the source is stored inert on the NAS (nothing is written through it)", async () => {
  await sleep(1100);
  fs.symlinkSync(rig.box.at("nas/home"), `${src.db}/escape`);
  try {
    expect(sync().code).toBe(0);
    const latest = fs.readlinkSync(`${nasRoot}/latest`);
    expect(fs.readlinkSync(`${nasRoot}/${latest}${src.db}/escape`)).toBe(
      `/rsyncd-munged/${rig.box.at("nas/home")}`,
    );
  } finally {
    fs.rmSync(`${src.db}/escape`);
  }
});

test("the sync key can add snapshots but cannot delete or rewrite older ones, nor get a shell", () => {
  const ssh = syncSsh();
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
    `${rig.box.root}/etc/`,
    `root@127.0.0.1:${nasRoot}/${oldest}/`,
  ]);
  expect(del.code).not.toBe(0);
  const overwrite = run("rsync", [
    "-a",
    "-e",
    `ssh ${ssh.join(" ")}`,
    `${rig.box.paths.etc}/nas-sync.env`,
    `root@127.0.0.1:${victim}`,
  ]);
  expect(overwrite.code).not.toBe(0);
  const read1 = run("rsync", [
    "-a",
    "-e",
    `ssh ${ssh.join(" ")}`,
    `root@127.0.0.1:${nasRoot}/`,
    rig.box.at("stolen/"),
  ]);
  expect(read1.code).not.toBe(0);
  expect(fs.existsSync(rig.box.at("stolen"))).toBe(false);
  expect(read(victim)).toBe("binlog one\n");
  expect(snapshots()).toHaveLength(KEEP);
});

test("the receiver accepts only the server command line the real sender produces", () => {
  // What nas-sync.sh's rsync sends, recorded by a forced command in front of the receiver.
  const log = rig.box.at("recorded-commands");
  const recorder = rig.box.at("record.sh");
  fs.writeFileSync(
    recorder,
    `#!/bin/sh\nprintf '%s\\n' "$SSH_ORIGINAL_COMMAND" >> ${log}\nexec "$@"\n`,
    { mode: 0o755 },
  );
  const line = read(authorizedKeys());
  fs.writeFileSync(
    authorizedKeys(),
    line.replace(`command="${receiver} `, `command="${recorder} ${receiver} `),
  );
  let r: RunResult;
  try {
    r = sync();
  } finally {
    fs.writeFileSync(authorizedKeys(), line);
  }
  expect(r.code).toBe(0);
  const recorded = read(log).trim().split("\n");
  expect(recorded).toHaveLength(3);
  expect(recorded[0]).toBe("latest");
  expect(recorded[2]).toMatch(/^finish \d{8}-\d{6}$/);
  const stamp = /^finish (\S+)$/.exec(recorded[2])![1];
  const flags = recorded[1].split(" ")[2];
  expect(recorded[1]).toBe(
    `rsync --server ${flags} --timeout=600 --stats --link-dest ${nasRoot}/${snapshots()[KEEP - 2]} . ${nasRoot}/${stamp}.partial/`,
  );
  expect(flags).toMatch(/^-logDtprRe\.[A-Za-z]+$/);

  // Anything else is refused before rsync starts, and leaves no trace outside ROOT.
  const elsewhere = rig.box.at("elsewhere");
  fs.mkdirSync(elsewhere, { recursive: true });
  const secret = rig.box.at("nas/shadow");
  fs.writeFileSync(secret, "root:SECRET-HASH:19000:0:99999:7:::\n");
  const evil = rig.box.at("evil-src");
  fs.mkdirSync(evil, { recursive: true });
  fs.writeFileSync(`${evil}/payload`, "payload\n");
  const dest = `root@127.0.0.1:${nasRoot}/20260102-030405.partial/`;
  const attempts: [string, string[]][] = [
    [`-T${elsewhere}`, ["-a", `${evil}/`, dest]],
    [`-T ${elsewhere}`, ["-a", `${evil}/`, dest]],
    [`-f._${secret}`, ["-a", `${evil}/`, dest]],
    [`-f._${secret}`, ["-a", "--relative", "--stats", "--timeout=600", `${evil}/`, dest]],
    ["--delete", ["-a", `${evil}/`, dest]],
    ["--remove-source-files", ["-a", `${evil}/`, dest]],
    ["", ["-a", "--delete", `${evil}/`, dest]],
    ["", ["-a", "--remove-source-files", `${evil}/`, dest]],
    ["", ["-a", `${evil}/`, `root@127.0.0.1:${rig.box.at("outside")}/20260102-030405.partial/`]],
    ["", ["-a", `${evil}/`, `root@127.0.0.1:${nasRoot}/../20260102-030405.partial/`]],
    ["", ["-a", "-T", elsewhere, `${evil}/`, dest]],
    ["", ["-a", "--relative", "--stats", "--timeout=600", "--link-dest=/etc", `${evil}/`, dest]],
  ];
  for (const [inject, args] of attempts) {
    const a = push(args, inject);
    const outcome = {
      inject,
      args,
      leaked: a.stderr.includes("SECRET-HASH"),
      elsewhere: fs.readdirSync(elsewhere),
      refused: a.code !== 0 && a.stderr.includes("refused"),
    };
    expect(outcome).toEqual({ inject, args, leaked: false, elsewhere: [], refused: true });
  }
  expect(fs.readdirSync(elsewhere)).toEqual([]);
  expect(fs.existsSync(rig.box.at("outside"))).toBe(false);
  expect(fs.existsSync(`${nasRoot}/20260102-030405.partial`)).toBe(false);
  expect(fs.existsSync(`${evil}/payload`)).toBe(true);
});

test("a second receive into a .partial cannot change a file of a finished snapshot", () => {
  const newest = snapshots()[KEEP - 1];
  const file = `${src.binlogs}/mysql-bin.000001.zst.enc`;
  const finished = `${nasRoot}/${newest}${file}`;
  const modeOf = (p: string) => (fs.statSync(p).mode & 0o7777).toString(8);
  const before = modeOf(finished);
  // The attacker's copy of the source: same content and time, so --link-dest links the file.
  const evil = rig.box.at("evil-relink");
  fs.mkdirSync(`${evil}${src.binlogs}`, { recursive: true });
  fs.copyFileSync(file, `${evil}${file}`);
  const st = fs.statSync(file);
  fs.utimesSync(`${evil}${file}`, st.atime, st.mtime);
  fs.chmodSync(`${evil}${file}`, fs.statSync(file).mode & 0o7777);
  const args = (extra: string[]) => [
    "-a",
    "--relative",
    "--stats",
    "--timeout=600",
    ...extra,
    `${evil}/.${file}`,
    `root@127.0.0.1:${nasRoot}/20260103-000000.partial/`,
  ];
  const first = push(args([`--link-dest=${nasRoot}/${newest}`]));
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  expect(inode(`${nasRoot}/20260103-000000.partial${file}`)).toBe(inode(finished));
  fs.chmodSync(`${evil}${file}`, 0o777);
  const second = push(args([]));
  expect(modeOf(finished)).toBe(before);
  expect(second.code).not.toBe(0);
  expect(second.stderr).toContain("refused");
});

test("a compromised sender cannot empty the NAS with empty or too frequent snapshots", async () => {
  const genuine = snapshots();
  expect(genuine).toHaveLength(KEEP);
  const empty = rig.box.at("evil-empty");
  fs.mkdirSync(empty, { recursive: true });
  // KEEP empty snapshots named a day ahead, each finished at once.
  const ahead = stampOf(new Date(Date.now() + 20 * 3600 * 1000)).slice(0, -1);
  const finishes: RunResult[] = [];
  for (let i = 0; i < KEEP; i++) {
    const stamp = `${ahead}${i}`;
    push([
      "-a",
      "--relative",
      "--stats",
      "--timeout=600",
      `${empty}/`,
      `root@127.0.0.1:${nasRoot}/${stamp}.partial/`,
    ]);
    finishes.push(nasCommand(`finish ${stamp}`));
  }
  expect(snapshots()).toEqual(genuine);
  for (const f of finishes) {
    expect(f.code).not.toBe(0);
    expect(f.stderr).toContain("refused: empty snapshot");
  }
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(genuine[KEEP - 1]);

  // Non-empty junk, at most one per minimum interval (by the NAS's clock, named by the NAS).
  setReceiverParams(`${KEEP} 0 60`);
  try {
    const junk = rig.box.at("evil-junk");
    fs.mkdirSync(junk, { recursive: true });
    fs.writeFileSync(`${junk}/junk`, "junk\n");
    const flood = (stamp: string) => {
      const r = push([
        "-a",
        "--relative",
        "--stats",
        "--timeout=600",
        `${junk}/`,
        `root@127.0.0.1:${nasRoot}/${stamp}.partial/`,
      ]);
      return r.code === 0 ? nasCommand(`finish ${stamp}`) : r;
    };
    const tooSoon = flood("29991231-235959");
    expect(tooSoon.code).not.toBe(0);
    expect(tooSoon.stderr).toContain("refused: too frequent");
    expect(snapshots()).toEqual(genuine);
    // an hour later (the NAS's own record of its last accepted snapshot)
    const old = new Date(Date.now() - 2 * 3600 * 1000);
    for (const f of fs.readdirSync(`${nasRoot}/.finished`))
      fs.utimesSync(`${nasRoot}/.finished/${f}`, old, old);
    const accepted = flood("29991231-235958");
    expect(accepted.code).toBe(0);
    const name = /snapshot (\d{8}-\d{6}) complete/.exec(accepted.stdout)![1];
    expect(accepted.stdout).toMatch(/^warning: refused \d+ upload\(s\) since the last snapshot/m);
    expect(name <= stampOf(new Date())).toBe(true);
    expect(snapshots()).toEqual([...genuine.slice(1), name]);
    await sleep(1100);
    const again = flood("29991231-235957");
    expect(again.stderr).toContain("refused: too frequent");
    expect(snapshots()).toEqual([...genuine.slice(1), name]);
  } finally {
    setReceiverParams(`${KEEP} 0 0`);
  }
  // The source host's job hears of refusals at its next snapshot: a warning, so an alert.
  expect(sync().code).toBe(0);
  const status = JSON.parse(read(`${rig.box.paths.status}/nas-sync.json`));
  expect({ result: status.result, error: status.error }).toEqual({
    result: "warning",
    error: `the NAS refused 1 upload(s) since the last snapshot (see ${nasRoot}/.refused on the NAS)`,
  });
  // The NAS keeps a record of every refusal for its own alerting.
  const log = refusals();
  expect(log.filter((l) => l.includes("empty snapshot"))).toHaveLength(KEEP);
  expect(log.filter((l) => l.includes("too frequent"))).toHaveLength(2);
  for (const l of log) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ refused: /);
});

test("a flood of new snapshots cannot push out one accepted less than MIN_AGE ago", async () => {
  const root = rig.box.at("flood");
  const finish = async (id: string) => {
    await sleep(1100);
    fs.mkdirSync(`${root}/${id}.partial`, { recursive: true });
    fs.writeFileSync(`${root}/${id}.partial/data`, `${id}\n`);
    return run("sh", [receiver, root, "1", "60", "0"], {
      env: { ...process.env, SSH_ORIGINAL_COMMAND: `finish ${id}` },
    });
  };
  const kept = () =>
    fs
      .readdirSync(root)
      .filter((d) => /^\d{8}-\d{6}$/.test(d))
      .sort();
  const names: string[] = [];
  for (const id of ["29990101-000000", "29990101-000001", "29990101-000002"]) {
    const r = await finish(id);
    expect(r.code).toBe(0);
    names.push(/^snapshot (\d{8}-\d{6}) complete$/m.exec(r.stdout)![1]);
  }
  // keep is 1, but all three were accepted seconds ago: none may go yet
  expect(kept()).toEqual(names);
  // named by the NAS's clock, whatever the sender called the upload
  expect(names.every((n) => n < "29990101")).toBe(true);
  // once a snapshot was accepted more than an hour ago, retention applies again
  const old = new Date(Date.now() - 2 * 3600 * 1000);
  fs.utimesSync(`${root}/.finished/${names[0]}`, old, old);
  const r = await finish("29990101-000003");
  expect(r.code).toBe(0);
  expect(kept()).toEqual([...names.slice(1), /^snapshot (\S+) complete$/m.exec(r.stdout)![1]]);
});

test("an unreachable NAS fails the job with a clear status, and no snapshot is made", () => {
  const envFile = `${rig.box.paths.etc}/nas-sync.env`;
  const env = read(envFile);
  fs.writeFileSync(envFile, env.replace(`NAS_PORT='${rig.sshd.port}'`, "NAS_PORT='1'"));
  try {
    const before = snapshots();
    const r = sync();
    expect(r.code).toBe(1);
    const status = JSON.parse(read(`${rig.box.paths.status}/nas-sync.json`));
    expect(status.result).toBe("failed");
    expect(status.error).toContain("cannot reach the NAS 127.0.0.1:1");
    expect(snapshots()).toEqual(before);
  } finally {
    fs.writeFileSync(envFile, env);
  }
});

test("RUNBOOK.md's NAS step brings the newest snapshot back with the sync key, read-only, adding only what the disk lacks", () => {
  const site = parseSite({
    name: "atlastech",
    targets: { hostLoss: "none" },
    hosts: [
      { name: "db", address: "127.0.0.1", roles: ["mariadb"], paths: rig.box.paths },
      { name: "nas", address: "127.0.0.1", roles: ["nas"] },
    ],
    mariadb: {
      host: "db",
      databases: ["atlastech_db"],
      backupDir: src.db,
      binlogBackupDir: src.binlogs,
    },
    offsite: { nas: { host: "nas", path: nasRoot, schedule: "45 1 * * *" } },
    monitoring: {},
  });
  const step = nasFetchStep(site);
  expect(step.on).toBe("db");
  const latest = fs.readlinkSync(`${nasRoot}/latest`);
  const held = (dir: string) =>
    fs.readdirSync(`${nasRoot}/${latest}${dir}`).map((f) => `${dir}/${f}`);
  const [gone, changed] = [...held(src.binlogs), ...held(src.db)];
  const saved = read(`${nasRoot}/${latest}${gone}`);
  fs.rmSync(gone);
  fs.writeFileSync(changed, "NEWER ON THE DISK\n");
  const into = rig.box.at("restore/nas");
  pasteOk(step, { TARGET: into });
  expect(read(gone)).toBe(saved);
  expect(read(changed)).toBe("NEWER ON THE DISK\n");
  expect(read(`${into}${gone}`)).toBe(saved);
  expect(fs.existsSync(`${into}.partial`)).toBe(false);
  const again = pasteStep(step, { TARGET: into });
  expect(again.stderr).toContain(`${into} exists: fetched already`);
  // the key reads the newest snapshot only: an older one is refused
  const older = snapshots().find((d) => d !== latest)!;
  const old = run("rsync", [
    "-a",
    "--timeout=600",
    "-e",
    `ssh ${syncSsh().join(" ")}`,
    `root@127.0.0.1:${nasRoot}/${older}/`,
    rig.box.at("old/"),
  ]);
  expect(old.code).not.toBe(0);
  expect(refusals().at(-1)).toContain(`rsync source . ${nasRoot}/${older}/`);
});

test("a reader's key (read-only mode) reads the newest snapshot and can neither send nor finish one", () => {
  // the reader's own key, made by the real command, and its line installed by the real command
  const readerKey = rig.box.at("standby/secrets/nas-read_ed25519");
  const made = rig.sshd.exec(ensureKeyCommand(readerKey, nasReaderKeyComment("standby")));
  expect(made.code).toBe(0);
  const line = readOnlyKeyLine({
    receiver,
    path: nasRoot,
    publicKey: made.stdout,
    readerHost: "standby",
  });
  const install = installAuthorizedKeyCommand(authorizedKeys(), nasReaderKeyComment("standby"));
  for (let i = 0; i < 2; i++) expect(rig.sshd.exec(install, `${line}\n`).code).toBe(0);
  const keys = read(authorizedKeys());
  expect(keys).toContain(`command="${receiver} --read-only ${nasRoot}"`);
  expect(keys.split("\n").filter((l) => l.endsWith(" backup321-nas-read@standby"))).toHaveLength(1);
  // the sync key's line is untouched
  expect(keys).toContain(" backup321-nas-sync@db");
  const ssh = [...syncSsh()];
  ssh[1] = readerKey;
  const before = snapshots();
  const latest = fs.readlinkSync(`${nasRoot}/latest`);
  const asked = run("ssh", [...ssh, "root@127.0.0.1", "latest"]);
  expect(asked.stdout.trim()).toBe(latest);
  const into = rig.box.at("standby/pulled/");
  const pulled = run("rsync", [
    "-a",
    "--timeout=600",
    "-e",
    `ssh ${ssh.join(" ")}`,
    `root@127.0.0.1:${nasRoot}/latest/`,
    into,
  ]);
  expect(pulled.stderr).toBe("");
  expect(pulled.code).toBe(0);
  expect(fs.readdirSync(`${into}${src.db}`).sort()).toEqual(
    fs.readdirSync(`${nasRoot}/${latest}${src.db}`).sort(),
  );
  // an upload with exactly nas-sync.sh's command line is refused, and recorded
  const id = "20990101-000000";
  const upload = run("rsync", [
    "-a",
    "--relative",
    "--stats",
    "--timeout=600",
    "-e",
    `ssh ${ssh.join(" ")}`,
    src.db,
    `root@127.0.0.1:${nasRoot}/${id}.partial/`,
  ]);
  expect(upload.code).not.toBe(0);
  expect(upload.stderr).toContain("refused: read-only key");
  expect(refusals().at(-1)).toContain("refused: read-only key: command 'rsync --server -");
  const finish = run("ssh", [...ssh, "root@127.0.0.1", `finish ${id}`]);
  expect(finish.code).not.toBe(0);
  expect(refusals().at(-1)).toContain(`read-only key: command 'finish ${id}'`);
  const shell = run("ssh", [...ssh, "root@127.0.0.1", `rm -rf ${nasRoot}`]);
  expect(shell.code).not.toBe(0);
  expect(refusals().at(-1)).toContain(`read-only key: command 'rm -rf ${nasRoot}'`);
  expect(fs.existsSync(`${nasRoot}/${id}.partial`)).toBe(false);
  expect(snapshots()).toEqual(before);
  expect(fs.readlinkSync(`${nasRoot}/latest`)).toBe(latest);
});

test("deletes remove the key line and the receiver, never the snapshots", () => {
  rig.applyDeletes();
  rig.applyDeletes();
  expect(read(path.join(rig.sshd.dir, "authorized_keys"))).not.toContain("backup321-nas-sync@db");
  expect(read(path.join(rig.sshd.dir, "authorized_keys"))).not.toContain(
    "backup321-nas-sync@streamer",
  );
  expect(fs.readdirSync(streamRoot).filter((d) => /^\d{8}-\d{6}$/.test(d))).toHaveLength(1);
  expect(fs.existsSync(receiver)).toBe(false);
  expect(snapshots()).toHaveLength(KEEP);
  // Every delete forgot its owner stamp, on the NAS and on the source host.
  expect(ownerStamps(nasOwners())).toEqual([]);
  expect(ownerStamps(`${rig.box.paths.owners}`)).toEqual([]);
  expect(ownerStamps(streamer.owners)).toEqual([]);
});
