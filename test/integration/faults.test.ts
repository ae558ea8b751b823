// Fault injection: for every backup job of the site, the faults it can meet in real life (source
// down, killed mid-way, disk full, destination unreachable, wrong key, corrupted backup, unmounted
// USB SSD, concurrent run), each against the real services. The jobs are a table: each says how it
// runs, where its good backups are, which faults it meets, how each is injected and what its
// status must say; one loop makes a test of every fault of every job. Each test first makes a good
// backup, then injects the fault and runs the job's script with its env file, and requires: a
// non-zero exit, a failed status file, an alert received by a webhook receiver on loopback (through
// the real alert.sh and alert.env), the good backup byte for byte intact, and no new file that
// looks complete (leftovers, if any, are *.partial). The few faults that are one of a kind (a
// SIGKILLed job, a full state disk) have their own tests. The suite prints a table: fault | job |
// outcome.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import {
  jobEntry,
  jobEnv,
  jobFiles,
  renderEnvFile,
  renderJobEntry,
} from "../../components/host/render";
import { hostPaths } from "../../stacks/model/hosts";
import { renderAlertEnv } from "../../components/monitoring/render";
import { authorizedKeyLine, renderCredentialsFile } from "../../components/offsite/render";
import { knownHostsLine } from "../../components/host/ssh-trust";
import { backupEnv, repositoryEnv } from "../../components/restic/render";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import {
  freePort as freePortOf,
  run,
  runAsync,
  runOk,
  waitFor,
  type RunResult,
} from "../harness/proc";
import { startS3rver, type S3rverServer } from "../harness/s3rver";
import { startSshd, type Sshd } from "../harness/sshd";
import { installProxmoxShims, type ProxmoxShims } from "../harness/proxmoxShims";
import { startWebhookReceiver, type WebhookReceiver } from "../harness/webhook";
import { createBackupUser, installScripts, seedSchema, type Install } from "./mariadb-fixture";
import { expectFileContracts } from "../harness/contracts";

const ROOT = path.join(__dirname, "..", "..");
const DB = "atlastech_db";
/** Who every alert names (site.contacts). */
const CONTACTS = ["Ibtissam Elghbali (DBA, +212 6 00 00 00 02)", "Oumayma Lafridi (IT manager)"];

let server: MariaDbServer;
let s3: S3rverServer;
let hook: WebhookReceiver;
let root: string;
let box: Install;
const mounts: string[] = [];
/** What the fixtures started beyond the suite's services (stopped at the end). */
const stops: (() => Promise<void>)[] = [];
const table: { fault: string; job: string; outcome: string }[] = [];

const at = (p: string) => path.join(root, p);
const secret = (name: string) => path.join(box.paths.secrets, name);
/** A pause past the second: backups and snapshots are named by theirs. */
const nextSecond = () => new Promise((r) => setTimeout(r, 1100));

/** A small tmpfs at DIR (a disk that can fill up, or a USB SSD that can be unplugged). */
function mountTmpfs(dir: string, size: string): void {
  fs.mkdirSync(dir, { recursive: true });
  runOk("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
  mounts.push(dir);
}

/** DISK seen at MNT (a USB SSD plugged in at its mount point). */
function bindMount(disk: string, mnt: string): void {
  runOk("mount", ["--bind", disk, mnt]);
  mounts.push(mnt);
}

function unmount(dir: string): void {
  runOk("umount", [dir]);
  if (mounts.includes(dir)) mounts.splice(mounts.indexOf(dir), 1);
}

/** Remounts the tmpfs at DISK with other options (ro, rw, size=…). */
const remount = (disk: string, options: string) =>
  void runOk("mount", ["-o", `remount,${options}`, disk]);

/** df's column (avail, used) for the file system holding DIR, in KiB. */
const dfKb = (dir: string, column: "avail" | "used") =>
  Number(
    runOk("df", [`--output=${column}`, "-k", dir])
      .stdout.trim()
      .split("\n")[1],
  );

/** Fills the file system holding DIR, leaving about FREE_KB free; returns the filler's path. */
function fill(dir: string, freeKb: number): string {
  const filler = path.join(dir, ".filler");
  const kb = Math.max(0, dfKb(dir, "avail") - freeKb);
  runOk("dd", ["if=/dev/zero", `of=${filler}`, "bs=1K", `count=${kb}`, "status=none"]);
  return filler;
}

/** A file of MB MiB that does not compress (data to back up that grew). */
const randomFile = (file: string, mb: number) =>
  void runOk("dd", ["if=/dev/urandom", `of=${file}`, "bs=1M", `count=${mb}`, "status=none"]);

/** A new random key file, as the stack's key is made. */
function newKey(file: string): string {
  fs.writeFileSync(file, run("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
  return file;
}

/** Copies a component's scripts (all of DIR's, or FILES) into the lib dir, executable. */
function installLib(dir: string, files = fs.readdirSync(path.join(ROOT, dir))): void {
  for (const f of files) {
    fs.copyFileSync(path.join(ROOT, dir, f), path.join(box.lib, f));
    fs.chmodSync(path.join(box.lib, f), 0o755);
  }
}

/** Every file under the dirs, by absolute path, with its sha256. */
function fingerprints(dirs: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name !== ".filler")
        out.set(p, createHash("sha256").update(fs.readFileSync(p)).digest("hex"));
    }
  };
  dirs.forEach(walk);
  return out;
}

function status(job: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(jobFiles(box.paths, job).statusFile, "utf8"));
}

/** Whether a process whose command line matches PATTERN (pgrep -f) is running. */
const running = (pattern: string): boolean => run("pgrep", ["-f", pattern]).code === 0;

/** The run records (<runs>/<job>.<pid>.json) of a job, as the job wrote them. */
function runRecords(job: string): Record<string, unknown>[] {
  const dir = box.paths.runs;
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${job}.`) && f.endsWith(".json"))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")));
}

/**
 * The real monitor.sh, watching only the jobs given (registry entries as ScheduledJob renders them),
 * with the real alert.sh; returns its exit code and the status file it wrote.
 */
function runMonitor(jobs: readonly string[]): { code: number; status: Record<string, unknown> } {
  installLib("components/monitoring/scripts", ["monitor.sh"]);
  const registry = at("monitor-jobs.d");
  fs.rmSync(registry, { recursive: true, force: true });
  fs.mkdirSync(registry, { recursive: true });
  for (const job of jobs) {
    const entry = renderJobEntry(jobEntry(job, "0 2 * * *", "UTC", 24));
    fs.writeFileSync(path.join(registry, `${job}.json`), entry);
  }
  const env = writeEnv("monitor", { B321_JOBS_DIR: registry });
  const r = run(path.join(box.lib, "monitor.sh"), [env], { timeoutMs: 120_000 });
  return { code: r.code, status: status("monitor") };
}

/** Replaces the test's /bin/true alert hook by the real alert.sh, which reads <etc>/alert.env. */
function withRealAlerts(envFile: string): string {
  const text = fs.readFileSync(envFile, "utf8").replace(/^B321_ALERT=.*\n/m, "");
  fs.writeFileSync(envFile, text, { mode: 0o600 });
  return envFile;
}

/** A MariaDB job's env file as the component renders it (OVERRIDES under TAG), real alerts. */
const mariadbEnv = (job: string, overrides: Parameters<Install["env"]>[1] = {}, tag = "") =>
  withRealAlerts(box.env(job, overrides, tag));

function writeEnv(job: string, vars: Record<string, string | number>): string {
  const file = path.join(box.etc, `${job}.env`);
  fs.writeFileSync(file, renderEnvFile(`test ${job}`, { ...jobEnv(box.paths, job), ...vars }), {
    mode: 0o600,
  });
  return file;
}

/** How a job is run: its script in the lib dir, with an env file (and the PATH it needs). */
interface Run {
  readonly job: string;
  readonly script: string;
  readonly env: () => string;
  readonly procEnv?: () => NodeJS.ProcessEnv;
}

const runJob = (c: Run): RunResult =>
  run(path.join(box.lib, c.script), [c.env()], { timeoutMs: 300_000, env: c.procEnv?.() });

/** A run that must have succeeded (its stderr shown when it did not). */
function expectOk(r: RunResult): void {
  expect({ code: r.code, err: r.code ? r.stderr : "" }).toEqual({ code: 0, err: "" });
}

/** One fault as a job meets it: how it is injected, and what the job's status must say. */
interface Fault {
  readonly fault: string;
  /** What the status file's error (and so the alert) must say. */
  readonly error: RegExp;
  /** A tmpfs mounted at <root>/NAME for this fault (the job's backups on a disk of their own). */
  readonly disk?: { readonly name: string; readonly size: string };
  /** The job configured elsewhere for this fault (its good run too). Default: the job's. */
  readonly env?: () => string;
  readonly watched?: () => string[];
  /** New files allowed after the failed run. Default: the job's, else only *.partial ones. */
  readonly allowNew?: (file: string) => boolean;
  readonly arrange?: () => void | Promise<void>;
  /** Runs the job under the fault (default: the script with its env file). */
  readonly act?: (c: Run) => Promise<RunResult>;
  readonly restore?: () => void | Promise<void>;
  /** What else the fault must leave behind, checked after the common assertions. */
  readonly verify?: () => void;
}

/** A backup job of the site and the faults it meets. */
interface Job extends Run {
  /** Where the good backups are: their files must come out byte for byte unchanged. */
  readonly watched: () => string[];
  readonly allowNew?: (file: string) => boolean;
  /** Makes the good backup (default: one successful run of the job). */
  readonly good?: (c: Run) => void;
  /** The job's fixtures (scripts, secrets, disks, services), before its first fault. */
  readonly setup?: () => void | Promise<void>;
  readonly faults: readonly Fault[];
}

async function check(j: Job, f: Fault): Promise<void> {
  const c: Run = { ...j, env: f.env ?? j.env };
  const watched = f.watched ?? j.watched;
  let outcome = "";
  if (f.disk) mountTmpfs(at(f.disk.name), f.disk.size);
  try {
    (j.good ?? ((g: Run) => expectOk(runJob(g))))(c);
    const before = fingerprints(watched());
    expect(before.size).toBeGreaterThan(0);
    hook.clear();
    let r: RunResult;
    try {
      await f.arrange?.();
      r = await (f.act ?? (async (g: Run) => runJob(g)))(c);
    } finally {
      await f.restore?.();
    }
    expect({ code: r.code === 0 ? 0 : "non-zero" }).toEqual({ code: "non-zero" });
    const s = status(j.job);
    expect(s).toMatchObject({ job: j.job, result: "failed", exit_code: r.code });
    expect(String(s.error)).toMatch(f.error);
    await waitFor("the webhook alert", () => hook.received().some((a) => a.job === j.job), 30_000);
    const alert = hook.received().find((a) => a.job === j.job)!;
    expect(alert).toMatchObject({
      job: j.job,
      result: "failed",
      host: os.hostname(),
      contacts: CONTACTS.join("; "),
    });
    expect(alert.message).toBe(String(s.error));
    const after = fingerprints(watched());
    for (const [file, sha] of before) expect({ file, sha: after.get(file) }).toEqual({ file, sha });
    const fresh = [...after.keys()].filter((file) => !before.has(file));
    const allowed = f.allowNew ?? j.allowNew ?? (() => false);
    expect(fresh.filter((file) => !/partial(\/|$)/.test(file) && !allowed(file))).toEqual([]);
    f.verify?.();
    const why = String(s.error).replaceAll(root, "<sandbox>").slice(0, 80);
    outcome = `exit ${r.code}, failed, alerted, good intact: ${why}`;
  } catch (e) {
    outcome = `NOT OK: ${String(e instanceof Error ? e.message : e)
      .split("\n")
      .find((l) => l.trim())
      ?.slice(0, 90)}`;
    throw e;
  } finally {
    table.push({ fault: f.fault, job: j.job, outcome });
    if (f.disk) unmount(at(f.disk.name));
  }
}

// The faults most jobs meet, injected the same way for each: a row of the table names the job's
// own reason for it.

/** The database server down for the run. */
const sourceDown = (error: RegExp): Fault => ({
  fault: "source down",
  arrange: () => server.kill(),
  restore: () => server.start(),
  error,
});

/** Another run of the job holding its lock. */
const concurrentRun = (error: RegExp): Fault => ({
  fault: "concurrent run",
  act: async (c) => {
    const lock = path.join(box.paths.locks, `${c.job}.lock`);
    return run("flock", [lock, path.join(box.lib, c.script), c.env()], { env: c.procEnv?.() });
  },
  error,
});

/**
 * The job run with another env file than its good run's (a dead endpoint, a wrong key): ENV gets
 * a free port on loopback, where nothing listens.
 */
const misconfigured =
  (env: (deadPort: number) => string) =>
  async (c: Run): Promise<RunResult> => {
    const file = env(await freePortOf());
    return runJob({ ...c, env: () => file });
  };

const unreachable = (env: (deadPort: number) => string, error: RegExp): Fault => ({
  fault: "destination unreachable",
  act: misconfigured(env),
  error,
});

const wrongKey = (fault: string, env: () => string, error: RegExp): Fault => ({
  fault,
  act: misconfigured(env),
  error,
});

/** The disk seen at MNT unplugged for the run; nothing may be written in its place. */
const unplugged = (disk: () => string, mnt: () => string, error: RegExp): Fault => ({
  fault: "unmounted USB SSD",
  arrange: () => unmount(mnt()),
  restore: () => {
    expect(fs.readdirSync(mnt())).toEqual([]);
    bindMount(disk(), mnt());
  },
  error,
});

/**
 * The job killed mid-way: once a process matching PATTERN runs (and DELAY ms later), SIGNAL is
 * sent to that process, or to the job itself.
 */
const killedMidWay =
  (o: { pattern: () => string; signal: NodeJS.Signals; to: "child" | "job"; delayMs?: number }) =>
  async (c: Run): Promise<RunResult> => {
    const job = runAsync(path.join(box.lib, c.script), [c.env()], { env: c.procEnv?.() });
    let pid = 0;
    await waitFor(`${o.pattern()} to start`, () => {
      const r = run("pgrep", ["-f", o.pattern()]);
      pid = Number(r.stdout.trim().split("\n")[0]);
      return r.code === 0 && pid > 0;
    });
    if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
    if (o.to === "job") job.kill(o.signal);
    else process.kill(pid, o.signal);
    return job.done;
  };

/** The disk holding DISK left with FREE_KB free once GROW has made the next backup bigger. */
function diskFull(
  disk: () => string,
  freeKb: number,
  grow: { arrange: () => void | Promise<void>; restore: () => void },
): Pick<Fault, "arrange" | "restore"> {
  let filler = "";
  return {
    arrange: async () => {
      await grow.arrange();
      filler = fill(disk(), freeKb);
    },
    restore: () => {
      if (filler) fs.rmSync(filler, { force: true });
      grow.restore();
    },
  };
}

/** A file of MB MiB at FILE for the run (what makes the backup bigger than the room left). */
const bigFile = (file: () => string, mb: number) => ({
  arrange: () => randomFile(file(), mb),
  restore: () => fs.rmSync(file(), { force: true }),
});

// The fixtures of the jobs: each made once, before the first job that needs it.

const once = (make: () => void | Promise<void>) => {
  let made: Promise<void> | undefined;
  return () => (made ??= Promise.resolve().then(make));
};

/** A 300,000-row table: a dump long enough to be killed mid-way. */
const journal = {
  arrange: () =>
    void server.sql(
      "CREATE TABLE IF NOT EXISTS atlastech_db.journal (id INT PRIMARY KEY, msg VARCHAR(255));" +
        "INSERT IGNORE INTO atlastech_db.journal SELECT seq, REPEAT(MD5(seq), 7) FROM seq_1_to_300000;",
      DB,
    ),
  restore: () => void server.sql("DROP TABLE IF EXISTS atlastech_db.journal"),
};
const dumping = () => `mariadb-dump --defaults-extra-file=${root}/`;

/** The option file of a backup user for physical fulls. */
function physicalCnf(): string {
  const cnf = secret("phys.cnf");
  if (!fs.existsSync(cnf))
    createBackupUser(server, "backup_phys", "Phys0Pass", "physical", [DB], cnf);
  return cnf;
}

const mariadbFull: Run = {
  job: "mariadb-full",
  script: "mariadb-full.sh",
  env: () => mariadbEnv("mariadb-full"),
};
const binlogSource = () =>
  void server.sql(`INSERT INTO ${DB}.clients (nom) VALUES ('binlog-${Date.now()}')`);

const HOST_TAG = "docker-srv";
const usb = {
  disk: () => at("usb-disk"),
  mount: () => at("mnt/usb-ssd"),
  repo: () => at("usb-disk/restic"),
  src: () => at("srv/data"),
};
const cloudDir = () => [path.join(s3.directory, s3.bucket, "restic", "cloud")];
const onlyNoSnapshot = (f: string) => !f.includes("/snapshots/");
const resticCache = () => path.join(box.state, "cache", "restic");

const usbEnv = (job: string, o: { passwordFile?: string } = {}) =>
  writeEnv(job, {
    ...repositoryEnv({
      repo: "usb",
      url: `${usb.mount()}/restic`,
      files: { passwordFile: o.passwordFile ?? secret("restic-usb.password"), excludeFile: "" },
      mountpoint: usb.mount(),
      hostTag: HOST_TAG,
      restic: "restic",
      cacheDir: resticCache(),
    }),
    ...backupEnv({ paths: [usb.src()], tags: ["system"], retention: { keepLast: 5 } }),
  });

const cloudEnv = (job: string, o: { passwordFile?: string; endpoint?: string } = {}) =>
  writeEnv(job, {
    ...repositoryEnv({
      repo: "cloud",
      url: `s3:${o.endpoint ?? s3.endpoint}/${s3.bucket}/restic/cloud`,
      files: {
        passwordFile: o.passwordFile ?? secret("restic-cloud.password"),
        s3CredentialsFile: secret("restic-cloud.s3"),
        caFile: s3.caFile,
        excludeFile: "",
      },
      hostTag: HOST_TAG,
      restic: "restic",
      cacheDir: resticCache(),
      from: {
        repo: "usb",
        url: `${usb.mount()}/restic`,
        passwordFile: secret("restic-usb.password"),
        mountpoint: usb.mount(),
      },
    }),
    ...backupEnv({ paths: [], tags: [], retention: { keepLast: 5 } }),
    COPY_LOCK_WAIT: 2,
  });

/** A password file that is not the repository's. */
function wrongPassword(name: string): string {
  fs.writeFileSync(secret(name), "not-the-password\n", { mode: 0o600 });
  return secret(name);
}

const resticFixture = once(() => {
  fs.mkdirSync(usb.mount(), { recursive: true });
  mountTmpfs(usb.disk(), "400m");
  bindMount(usb.disk(), usb.mount());
  fs.mkdirSync(usb.src(), { recursive: true });
  fs.writeFileSync(`${usb.src()}/app.conf`, "setting=1\n");
  fs.writeFileSync(`${usb.src()}/blob.bin`, randomBytes(4 * 1024 * 1024));
  for (const r of ["usb", "cloud"]) {
    const password = `${randomBytes(24).toString("hex")}\n`;
    fs.writeFileSync(secret(`restic-${r}.password`), password, { mode: 0o600 });
  }
  const s3Credentials = renderCredentialsFile(s3.accessKeyId, s3.secretAccessKey);
  fs.writeFileSync(secret("restic-cloud.s3"), s3Credentials, { mode: 0o600 });
  for (const env of [usbEnv("restic-usb-init"), cloudEnv("restic-cloud-init")]) {
    const r = run(path.join(box.lib, "restic-init.sh"), [env]);
    if (r.code !== 0) throw new Error(`${env}: ${r.stderr}`);
  }
});

const offsiteEnv = (o: { endpoint?: string; credentials?: string } = {}) =>
  writeEnv("offsite-upload", {
    OFFSITE_BUCKET: s3.bucket,
    OFFSITE_PREFIX: "database/",
    OFFSITE_REGION: "us-east-1",
    OFFSITE_CREDENTIALS: o.credentials ?? secret("offsite-upload-aws"),
    OFFSITE_BACKUP_DIR: at("backups/mariadb"),
    OFFSITE_SSE: "AES256",
    OFFSITE_ENDPOINT: o.endpoint ?? s3.endpoint,
    OFFSITE_CA_BUNDLE: s3.caFile,
    OFFSITE_CHECKSUM_CALCULATION: "when_required",
  });

let shims: ProxmoxShims;
const proxmoxFixture = once(() => {
  shims = installProxmoxShims(at("pve-tools"));
  installLib("components/pbs/scripts", ["pbs-guard.sh", "pbs-lib.sh"]);
  installLib("components/proxmox/scripts", ["pve-snapshots.sh"]);
});
const pbs = { disk: () => at("pbs-disk"), mount: () => at("mnt/pbs-usb") };
const pbsStore = () => `${pbs.mount()}/datastore`;

let nasPort: number;
const nasDisk = () => at("nas-disk");
const nasRoot = () => `${nasDisk()}/backups/atlastech`;
const nasEnv = (o: { port?: number } = {}) =>
  writeEnv("nas-sync", {
    NAS_USER: "root",
    NAS_ADDRESS: "127.0.0.1",
    NAS_PORT: o.port ?? nasPort,
    NAS_PATH: nasRoot(),
    NAS_KEY: secret("nas-sync_ed25519"),
    NAS_KNOWN_HOSTS: path.join(box.etc, "nas-sync.known_hosts"),
    NAS_SOURCES: `${at("backups/mariadb")} ${at("backups/binlogs")}`,
    NAS_TIMEOUT: 120,
  });

async function nasFixture(): Promise<void> {
  const sshd: Sshd = await startSshd();
  stops.push(() => sshd.stop());
  nasPort = sshd.port;
  mountTmpfs(nasDisk(), "300m");
  for (const d of ["backups/mariadb", "backups/binlogs"]) fs.mkdirSync(at(d), { recursive: true });
  fs.writeFileSync(at("backups/binlogs/README"), "shipped binlogs\n");
  fs.mkdirSync(nasRoot(), { recursive: true });
  const receiver = at("nas-home/nas-receive.sh");
  fs.mkdirSync(path.dirname(receiver), { recursive: true });
  fs.copyFileSync(path.join(ROOT, "components/offsite/scripts/nas-receive.sh"), receiver);
  fs.chmodSync(receiver, 0o755);
  installLib("components/offsite/scripts", ["nas-sync.sh"]);
  const key = secret("nas-sync_ed25519");
  runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
  const line = authorizedKeyLine({
    receiver,
    path: nasRoot(),
    keep: 5,
    minAgeMinutes: 0,
    minIntervalMinutes: 0,
    publicKey: fs.readFileSync(`${key}.pub`, "utf8"),
    sourceHost: "db",
  });
  fs.appendFileSync(path.join(sshd.dir, "authorized_keys"), `${line}\n`);
  const hostKey = fs.readFileSync(path.join(sshd.dir, "host_ed25519.pub"), "utf8");
  fs.writeFileSync(
    path.join(box.etc, "nas-sync.known_hosts"),
    `${knownHostsLine("127.0.0.1", nasPort, hostKey)}\n`,
  );
}

// The table: every job, the faults it meets, and what its status must say for each.
const jobs: readonly Job[] = [
  {
    ...mariadbFull,
    watched: () => [at("backups/mariadb")],
    faults: [
      sourceDown(/does not answer/),
      {
        fault: "killed mid-way",
        ...journal,
        act: killedMidWay({ pattern: dumping, signal: "SIGKILL", to: "child" }),
        error: /mariadb-dump failed/,
      },
      {
        fault: "killed mid-way (SIGTERM)",
        ...journal,
        act: killedMidWay({ pattern: dumping, signal: "SIGTERM", to: "job" }),
        error: /interrupted by signal TERM/,
      },
      // A disk remounted read-only after I/O errors: the error says so.
      {
        fault: "backup dir read-only",
        disk: { name: "ro-disk", size: "64m" },
        env: () => mariadbEnv("mariadb-full", { backupDir: at("ro-disk/mariadb") }, "ro"),
        watched: () => [at("ro-disk/mariadb")],
        arrange: () => remount(at("ro-disk"), "ro"),
        restore: () => remount(at("ro-disk"), "rw"),
        error: /ro-disk\/mariadb is on a read-only file system \(after disk errors\? see dmesg/,
      },
      // Filled by the backup alone: the cleanup frees it, and the disk is named.
      {
        fault: "disk full (backup too big)",
        disk: { name: "small-disk", size: "64m" },
        env: () => mariadbEnv("mariadb-full", { backupDir: at("small-disk/mariadb") }, "small"),
        watched: () => [at("small-disk/mariadb")],
        arrange: async () => {
          // Backup names carry the second: the faulty run must not collide with the good one.
          await nextSecond();
          // About 4 MiB of backup that does not compress (a small binlog, for the binlog tests).
          server.sql(
            "CREATE TABLE atlastech_db.noise (id INT PRIMARY KEY, b VARCHAR(300));" +
              "INSERT INTO atlastech_db.noise SELECT seq, CONCAT(SHA2(RAND(), 512), SHA2(RAND(), 512)) FROM seq_1_to_30000;",
            DB,
          );
          // 2 MiB left: above what counts as full, below this backup. No filler file: once the
          // failed run's partial file is removed, the disk has its 2 MiB again.
          remount(at("small-disk"), `size=${dfKb(at("small-disk"), "used") + 2048}k`);
        },
        restore: () => void server.sql("DROP TABLE atlastech_db.noise"),
        verify: () => expect(dfKb(at("small-disk"), "avail")).toBeGreaterThan(1024),
        error:
          /small-disk\/mariadb was full when the run failed \(\d+ KiB free; \d+ KiB once the run's partial files were removed\): the backup does not fit$/,
      },
      // A physical full too big for its disk: its check reads the stream as it is written and
      // unpacks nothing, so the full itself is what does not fit, and the disk is named.
      {
        fault: "disk full (physical backup too big)",
        disk: { name: "small-phys-disk", size: "512m" },
        env: () =>
          mariadbEnv(
            "mariadb-full",
            {
              method: "physical",
              clientCnf: physicalCnf(),
              backupDir: at("small-phys-disk/mariadb"),
            },
            "phys-small",
          ),
        watched: () => [at("small-phys-disk/mariadb")],
        arrange: async () => {
          await nextSecond();
          const bytes = Number(status("mariadb-full").bytes);
          // Room for half of the new full (about as big as the good one).
          const disk = at("small-phys-disk");
          remount(disk, `size=${dfKb(disk, "used") + Math.round(bytes / 2 / 1024)}k`);
        },
        error:
          /small-phys-disk\/mariadb was full when the run failed \(\d+ KiB free; \d+ KiB once the run's partial files were removed\): the backup does not fit$/,
      },
      concurrentRun(/another run holds the lock/),
    ],
  },
  {
    job: "mariadb-binlogs",
    script: "mariadb-binlogs.sh",
    env: () => mariadbEnv("mariadb-binlogs"),
    watched: () => [at("backups/binlogs")],
    // A write since the last run: there is a binlog to ship.
    good: (c) => {
      binlogSource();
      expectOk(runJob(c));
    },
    faults: [
      sourceDown(/does not answer/),
      {
        fault: "disk full",
        disk: { name: "small-binlog-disk", size: "256m" },
        env: () =>
          mariadbEnv(
            "mariadb-binlogs",
            { binlogBackupDir: at("small-binlog-disk/binlogs") },
            "small",
          ),
        watched: () => [at("small-binlog-disk/binlogs")],
        // A binlog bigger than what is left on the disk.
        ...diskFull(() => at("small-binlog-disk"), 256, {
          arrange: () =>
            void server.sql(
              `CREATE TABLE ${DB}.bulk (id INT PRIMARY KEY, b VARCHAR(255));` +
                `INSERT INTO ${DB}.bulk SELECT seq, REPEAT(MD5(seq), 7) FROM seq_1_to_20000;`,
              DB,
            ),
          restore: () => void server.sql(`DROP TABLE ${DB}.bulk`),
        }),
        error: /small-binlog-disk\/binlogs is full \(\d+ KiB free\)$/,
      },
      concurrentRun(/another run holds the lock/),
    ],
  },
  {
    job: "mariadb-restore-test",
    script: "mariadb-restore-test.sh",
    env: () => mariadbEnv("mariadb-restore-test"),
    watched: () => [at("backups/mariadb")],
    good: () => expectOk(runJob(mariadbFull)),
    faults: [
      wrongKey(
        "wrong key",
        () =>
          mariadbEnv("mariadb-restore-test", { keyFile: newKey(secret("wrong.key")) }, "wrongkey"),
        /wrong\.key is not the stack's encryption key \(fingerprint [0-9a-f]{64}, the stack's is [0-9a-f]{64}\)/,
      ),
      // One corrupt full among intact ones is a warning (the restore test uses the newest intact
      // one, see mariadb-scripts.test.ts); with every full corrupt there is nothing left to test.
      (() => {
        const saved = new Map<string, Buffer>();
        return {
          fault: "corrupted backup",
          arrange: () => {
            const dir = at("backups/mariadb");
            for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".enc"))) {
              const file = path.join(dir, f);
              saved.set(file, fs.readFileSync(file));
              const bad = Buffer.from(saved.get(file)!);
              bad.write("CORRUPTED", Math.floor(bad.length / 2));
              fs.writeFileSync(file, bad);
            }
          },
          restore: () => saved.forEach((bytes, file) => fs.writeFileSync(file, bytes)),
          error:
            /^no intact full backup in .*: .*_full_\d{8}_\d{6}\.sql\.zst\.enc: sha256 [0-9a-f]{64} differs from its manifest/,
        };
      })(),
    ],
  },
  {
    job: "restic-usb",
    script: "restic-backup.sh",
    env: () => usbEnv("restic-usb"),
    watched: () => [usb.repo()],
    setup: resticFixture,
    faults: [
      unplugged(usb.disk, usb.mount, /is not mounted/),
      wrongKey(
        "wrong key",
        () => usbEnv("restic-usb", { passwordFile: wrongPassword("restic-usb.wrong") }),
        /password|wrong/i,
      ),
      concurrentRun(/another run holds the lock/),
      {
        fault: "killed mid-way",
        allowNew: onlyNoSnapshot,
        ...bigFile(() => `${usb.src()}/big.bin`, 150),
        act: killedMidWay({
          pattern: () => `restic --repo ${usb.mount()}/restic .* backup`,
          signal: "SIGKILL",
          to: "child",
          delayMs: 300,
        }),
        error: /backup|restic/,
      },
      {
        fault: "disk full",
        allowNew: onlyNoSnapshot,
        ...diskFull(
          usb.disk,
          2048,
          bigFile(() => `${usb.src()}/big.bin`, 20),
        ),
        error: /backup|restic|space/,
      },
    ],
  },
  {
    job: "restic-cloud",
    script: "restic-copy.sh",
    env: () => cloudEnv("restic-cloud"),
    watched: cloudDir,
    allowNew: onlyNoSnapshot,
    setup: resticFixture,
    faults: [
      unreachable(
        (port) => cloudEnv("restic-cloud", { endpoint: `https://127.0.0.1:${port}` }),
        /./,
      ),
      wrongKey(
        "wrong key",
        () => cloudEnv("restic-cloud", { passwordFile: wrongPassword("restic-cloud.wrong") }),
        /password|wrong/i,
      ),
    ],
  },
  {
    job: "offsite-upload",
    script: "offsite-upload.sh",
    env: () => offsiteEnv(),
    watched: () => [path.join(s3.directory, s3.bucket, "database")],
    // A new full, uploaded.
    good: (c) => {
      expectOk(runJob(mariadbFull));
      expectOk(runJob(c));
    },
    setup: () => {
      installLib("components/offsite/scripts", ["offsite-upload.sh"]);
      for (const [name, id, key] of [
        ["offsite-upload-aws", s3.accessKeyId, s3.secretAccessKey],
        ["offsite-upload-wrong", "AKIAREVOKEDKEY", "WRONG-SECRET"],
      ])
        fs.writeFileSync(secret(name), renderCredentialsFile(id, key), { mode: 0o600 });
    },
    faults: [
      unreachable(
        (port) => offsiteEnv({ endpoint: `https://127.0.0.1:${port}` }),
        /cannot check|failed|Could not connect/,
      ),
      wrongKey(
        "wrong credentials",
        () => offsiteEnv({ credentials: secret("offsite-upload-wrong") }),
        /cannot check|failed|Forbidden|SignatureDoesNotMatch/,
      ),
    ],
  },
  {
    job: "pbs-guard-usb-ssd",
    script: "pbs-guard.sh",
    env: () =>
      writeEnv("pbs-guard-usb-ssd", {
        PBS_PREFIX: `env PATH=${shims.bin}:/usr/bin:/bin`,
        PBS_DATASTORE: "usb-ssd",
        PBS_PATH: pbsStore(),
        PBS_MOUNT: pbs.mount(),
        PBS_UUID: "3f9c2a10-0000-4000-8000-usbssd000001",
        PBS_MIN_FREE_PERCENT: 1,
      }),
    watched: () => [pbs.disk()],
    setup: async () => {
      await proxmoxFixture();
      fs.mkdirSync(pbs.disk(), { recursive: true });
      fs.mkdirSync(pbs.mount(), { recursive: true });
      bindMount(pbs.disk(), pbs.mount());
      const manager = path.join(shims.bin, "proxmox-backup-manager");
      runOk(manager, ["datastore", "create", "usb-ssd", pbsStore()]);
      fs.writeFileSync(`${pbsStore()}/.chunks/0001`, randomBytes(4096));
    },
    faults: [
      {
        ...unplugged(pbs.disk, pbs.mount, /is not mounted: datastore usb-ssd is offline/),
        verify: () => {
          const ds = (shims.pbsState().datastores as Record<string, unknown>[])[0];
          expect(ds["maintenance-mode"]).toBe("type=offline");
        },
      },
    ],
  },
  {
    job: "pve-snapshots",
    script: "pve-snapshots.sh",
    env: () =>
      writeEnv("pve-snapshots", {
        SNAP_NODE: "proxmox-srv",
        SNAP_VMS: "100",
        SNAP_CONTAINERS: "",
        SNAP_KEEP: 3,
      }),
    procEnv: () => ({ ...process.env, PATH: `${shims.bin}:${process.env.PATH ?? ""}` }),
    watched: () => [path.join(shims.root, "state", "guests")],
    good: (c) => {
      expectOk(runJob(c));
      expect(shims.snapshots("qemu", 100)).toHaveLength(2);
    },
    setup: async () => {
      await proxmoxFixture();
      shims.addGuest("qemu", 100, ["before-upgrade"]);
    },
    faults: [
      {
        fault: "guest failing",
        arrange: async () => {
          await nextSecond();
          shims.failSnapshot("qm", 100, "VM 100 qmp command 'savevm-start' failed - disk full");
        },
        restore: () => shims.failSnapshot("qm", 100, undefined),
        error: /100/,
      },
    ],
  },
  {
    job: "nas-sync",
    script: "nas-sync.sh",
    env: () => nasEnv(),
    watched: () => [nasRoot()],
    setup: nasFixture,
    faults: [
      unreachable((port) => nasEnv({ port }), /NAS|ssh|refused/i),
      {
        fault: "disk full (NAS)",
        ...diskFull(nasDisk, 1024, {
          arrange: async () => {
            await nextSecond();
            randomFile(at("backups/mariadb/big-upload.bin"), 8);
          },
          restore: () => fs.rmSync(at("backups/mariadb/big-upload.bin"), { force: true }),
        }),
        error: /rsync to the NAS exited/,
      },
    ],
  },
];

beforeAll(async () => {
  [server, s3, hook] = await Promise.all([
    startMariaDb(),
    startS3rver({ bucket: "atlastech-backups" }),
    startWebhookReceiver(),
  ]);
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-faults-"));
  fs.chmodSync(root, 0o755);
  server.sql(seedSchema(DB));
  const secrets = path.join(root, "etc", "secrets");
  const clientCnf = `${secrets}/log.cnf`;
  createBackupUser(server, "backup_user", "Log1Pass", "logical", [DB], clientCnf);
  box = installScripts(root, server, {
    keyFile: newKey(`${secrets}/mariadb-backup.key`),
    clientCnf,
    databases: [DB],
    method: "logical",
    compression: "zstd",
    backupDir: at("backups/mariadb"),
    binlogBackupDir: at("backups/binlogs"),
    keepFulls: 3,
    timezone: "UTC",
  });
  // The shared library as the Host component installs it, and the alert channel as monitoring does.
  installLib("components/host/scripts", ["alert.sh"]);
  installLib("components/restic/scripts");
  fs.writeFileSync(`${secrets}/alert-webhook`, `${hook.url}\n`, { mode: 0o600 });
  fs.writeFileSync(
    path.join(box.etc, "alert.env"),
    renderAlertEnv({
      email: [],
      webhookFile: `${secrets}/alert-webhook`,
      webhookStyle: "json",
      pingOnSuccess: false,
      contacts: CONTACTS,
    }),
    { mode: 0o600 },
  );
}, 300_000);

afterAll(async () => {
  for (const m of [...mounts].reverse()) run("umount", ["-l", m]);
  if (table.length > 0) {
    const w = [5, 3].map((_, i) =>
      Math.max(...table.map((t) => (i === 0 ? t.fault.length : t.job.length)), 5),
    );
    const lines = [
      `${"fault".padEnd(w[0])} | ${"job".padEnd(w[1])} | outcome`,
      `${"-".repeat(w[0])}-|-${"-".repeat(w[1])}-|--------`,
      ...table.map((t) => `${t.fault.padEnd(w[0])} | ${t.job.padEnd(w[1])} | ${t.outcome}`),
    ];
    const text = lines.join("\n");
    console.log(`fault-injection results\n${text}`);
    fs.writeFileSync(path.join(os.tmpdir(), "backup321-faults-table.txt"), `${text}\n`);
  }
  await Promise.all([server?.stop(), s3?.stop(), hook?.stop(), ...stops.map((stop) => stop())]);
  if (root) {
    try {
      expectFileContracts(root);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}, 120_000);

describe.each(jobs)("$job", (j) => {
  if (j.setup) beforeAll(j.setup, 120_000);
  test.each(j.faults)("$fault", (f) => check(j, f));
});

// The faults that are one of a kind: what they leave behind is not a failed status.
describe("mariadb-full: one of a kind", () => {
  // SIGKILL of the job itself (OOM killer, kill -9): no trap can run, so no failed status and no
  // alert from the job. Its watchdog stops its children, the run record it wrote at start stays,
  // and the monitor's next run alerts; the job's next run reports it too.
  test("job SIGKILLed: its children die with it, and the monitor alerts naming the run", async () => {
    expectOk(runJob(mariadbFull));
    const statusFile = jobFiles(box.paths, "mariadb-full").statusFile;
    const good = fs.readFileSync(statusFile, "utf8");
    expect(JSON.parse(good)).toMatchObject({ result: "success" });
    expect(runRecords("mariadb-full")).toEqual([]);
    // A session holding a table's write lock: the dump waits on it, and so would any orphan.
    const sleeping = "SELECT SLEEP(300)";
    const locker = runAsync("mariadb", [
      "--no-defaults",
      `--socket=${server.socket}`,
      "-uroot",
      "-e",
      `LOCK TABLES atlastech_db.clients WRITE; ${sleeping}`,
    ]);
    const held = () =>
      server.sql(`SELECT id FROM information_schema.processlist WHERE info LIKE '${sleeping}%'`);
    const unlock = async () => {
      locker.kill("SIGKILL");
      for (const id of held().split("\n").filter(Boolean)) server.sql(`KILL ${id}`);
      await locker.done;
    };
    const encrypt = `openssl enc -aes-256-cbc -salt -pbkdf2 -pass file:${box.keyFile}`;
    const children: number[] = [];
    try {
      await waitFor("the table lock", () => held().trim().split("\n").filter(Boolean).length === 1);
      hook.clear();
      const job = runAsync(path.join(box.lib, mariadbFull.script), [mariadbFull.env()]);
      await waitFor(
        "mariadb-dump and openssl to start",
        () => running(dumping()) && running(encrypt),
      );
      const pids = (p: string) => run("pgrep", ["-f", p]).stdout.trim().split("\n").map(Number);
      children.push(...pids(dumping()), ...pids(encrypt));
      job.kill("SIGKILL");
      // (Its end is awaited only after its children's: they hold its stdout and stderr.)
      await waitFor("the job to die", () => !fs.existsSync(`/proc/${job.pid}`));
      await waitFor(
        "the job's children to end",
        () => !running(dumping()) && !running(encrypt),
        10_000,
      );
      expect((await job.done).code).not.toBe(0);
      await unlock();
      // Nothing from the job itself: its status is the good run's, last_success intact, no alert.
      expect(fs.readFileSync(statusFile, "utf8")).toBe(good);
      expect(hook.received().filter((a) => a.job === "mariadb-full")).toEqual([]);
      const records = runRecords("mariadb-full");
      expect(records).toEqual([
        expect.objectContaining({ job: "mariadb-full", pid: job.pid, started: expect.any(String) }),
      ]);
      const started = String(records[0].started);

      const m = runMonitor(["mariadb-full"]);
      expect(m.code).toBe(1);
      expect(m.status).toMatchObject({ result: "failed", checks_failed: 1 });
      expect(String(m.status.error)).toContain(
        `- job mariadb-full: the run started at ${started} (pid ${job.pid}) ended without recording a result: it was killed (kill -9, the OOM killer)`,
      );
      await waitFor("the monitor's alert", () => hook.received().some((a) => a.job === "monitor"));
      const alert = hook.received().find((a) => a.job === "monitor")!;
      expect(alert).toMatchObject({ result: "failed", message: String(m.status.error) });

      // The job's next run succeeds, reports the killed run as a warning and removes its record.
      hook.clear();
      expect(runJob(mariadbFull).code).toBe(0);
      expect(status("mariadb-full")).toMatchObject({ result: "warning", exit_code: 0 });
      expect(String(status("mariadb-full").error)).toContain(
        `an earlier run (started ${started}, pid ${job.pid}) ended without recording a result`,
      );
      await waitFor("the warning", () => hook.received().some((a) => a.job === "mariadb-full"));
      expect(runRecords("mariadb-full")).toEqual([]);
      expect(runMonitor(["mariadb-full"])).toMatchObject({
        code: 0,
        status: { result: "success" },
      });
    } finally {
      // Orphans left by a watchdog that did not do its job: ours, stopped by their pid.
      for (const pid of children) {
        const cmd = run("cat", [`/proc/${pid}/cmdline`]).stdout;
        if (cmd.includes(root) || cmd.includes(box.keyFile)) process.kill(pid, "SIGKILL");
      }
      await unlock();
    }
  });

  test("job SIGKILLed: nothing that looks complete is left, and the next run clears the leftovers", async () => {
    const dir = at("backups/mariadb");
    const good = fingerprints([dir]);
    journal.arrange();
    try {
      const job = runAsync(path.join(box.lib, mariadbFull.script), [mariadbFull.env()]);
      await waitFor("mariadb-dump to start", () => running(dumping()));
      job.kill("SIGKILL");
      expect((await job.done).code).not.toBe(0);
      await waitFor("the orphaned dump to end", () => !running(dumping()));
      const left = [...fingerprints([dir]).keys()].filter((f) => !good.has(f));
      expect(left.filter((f) => !/(partial|\/\.b321-full\.[^/]+\/.*)$/.test(f))).toEqual([]);
      expect(runJob(mariadbFull).code).toBe(0);
      expect(
        fs.readdirSync(dir).filter((f) => f.includes("partial") || f.startsWith(".b321")),
      ).toEqual([]);
      // The good fulls still there (retention keeps the newest ones) are byte for byte unchanged.
      const now = fingerprints([dir]);
      for (const [file, sha] of good) {
        if (now.has(file)) expect({ file, sha: now.get(file) }).toEqual({ file, sha });
      }
    } finally {
      journal.restore();
    }
  });

  // The state disk full when the run writes its status: the previous status (and last_success)
  // and metrics stay as they were, no temp file is left, and the run says so in syslog and in an
  // alert.
  test("a status that cannot be written keeps the previous one, and alerts", async () => {
    const disk = at("small-state");
    mountTmpfs(disk, "1m");
    // the job's status, metrics, locks and run records on that disk
    const onDisk = hostPaths.parse({ etc: box.paths.etc, lib: box.paths.lib, state: disk });
    try {
      const small: Run = {
        ...mariadbFull,
        env: () => {
          const file = mariadbEnv("mariadb-full", {}, "small-state");
          fs.appendFileSync(
            file,
            renderEnvFile("on the small disk", jobEnv(onDisk, "mariadb-full")),
          );
          return file;
        },
      };
      const { statusFile, metricsFile: promFile } = jobFiles(onDisk, "mariadb-full");
      expect(runJob(small).code).toBe(0);
      const goodStatus = fs.readFileSync(statusFile, "utf8");
      const goodProm = fs.readFileSync(promFile, "utf8");
      expect(JSON.parse(goodStatus)).toMatchObject({ result: "success" });
      await nextSecond();
      const filler = fill(disk, 0);
      hook.clear();
      const r = runJob(small);
      fs.rmSync(filler);
      // The backup itself succeeded: the exit code is the script's own.
      expect(r.code).toBe(0);
      expect(fs.readFileSync(statusFile, "utf8")).toBe(goodStatus);
      expect(JSON.parse(goodStatus).last_success).toMatch(/^\d{4}-/);
      expect(fs.readFileSync(promFile, "utf8")).toBe(goodProm);
      expect(fs.readdirSync(path.dirname(statusFile))).toEqual(["mariadb-full.json"]);
      expect(fs.readdirSync(path.dirname(promFile))).toEqual(["mariadb-full.prom"]);
      const why = `its status could not be written to ${onDisk.status} (the previous status file is kept); ${onDisk.status} is full (0 KiB free)`;
      expect(r.stderr).toContain(why);
      await waitFor("the alert", () => hook.received().some((a) => a.job === "mariadb-full"));
      expect(hook.received().find((a) => a.job === "mariadb-full")).toMatchObject({
        result: "failed",
        message: `the run ended with success, but ${why}`,
      });
      table.push({
        fault: "state disk full",
        job: "mariadb-full",
        outcome: "status kept, alerted",
      });
    } finally {
      unmount(disk);
    }
  });
});
