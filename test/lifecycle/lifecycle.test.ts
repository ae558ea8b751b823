// The real engine deploys a site, changes it the way users do, and every change converges: the
// preview shows exactly the expected steps, `pulumi up` does them, each host's managed tree then
// equals what a fresh deploy of the new model writes on empty hosts, every job runs green, and no
// backup is lost.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { changes, summarize } from "../harness/engine";
import { DATABASE, SUDO_USER } from "../harness/lifecycle";
import { run, waitFor } from "../harness/proc";
import { FILE, host, mariadb, repos, Scenario, type RepoInput } from "../harness/scenario";
import { startOn } from "../integration/mariadb-fixture";

let sc: Scenario;

beforeAll(async () => {
  sc = await Scenario.start("lifecycle");
});

afterAll(async () => {
  await sc?.stop();
});

/** What `pulumi up` does to a restic repository's resources (URN prefix) when it comes or goes. */
const repositorySteps = (op: "create" | "delete", repo: string) => [
  ...["env", "bin", "cron-crontab", "registry"].map((f) => `${op} ${repo}-backup-${f}-file`),
  ...["exclude-file", "init-env-file", "init", "password", "password-file"].map(
    (r) => `${op} ${repo}-${r}`,
  ),
];

test("first pulumi up installs the site; every job runs green", async () => {
  const steps = await sc.stack.up();
  expect(changes(steps).length).toBeGreaterThan(50);
  expect(changes(steps).filter((s) => s.op !== "create")).toEqual([]);
  sc.jobsGreen();
  expect(sc.backupFiles().some((f) => f.endsWith(".manifest.json"))).toBe(true);
});

test("a second pulumi up with no change has zero steps", async () => {
  expect(summarize(await sc.stack.preview())).toEqual([]);
  expect(summarize(await sc.stack.up())).toEqual([]);
});

test("a schedule change updates the job's cron file, its monitor entry and the runbooks", async () => {
  await sc.converge(
    (s) => {
      mariadb(s).schedules.full = "30 1 * * *";
    },
    [
      FILE("backup321-mariadb-full-cron-crontab"),
      FILE("backup321-mariadb-full-registry"),
      FILE("backup321-db-monitor-runbook"),
      FILE("backup321-files-monitor-runbook"),
    ],
  );
});

test("a retention change updates only the env files that carry it", async () => {
  await sc.converge(
    (s) => {
      mariadb(s).retention = { ...(mariadb(s).retention ?? {}), fulls: 3 };
    },
    ["full", "binlogs", "restore-test", "pitr"].map((j) => FILE(`backup321-mariadb-${j}-env`)),
  );
});

test("a new version of a shipped script is an update of that file on every host", async () => {
  // The repository's own script changes, as in a release: the next pulumi up ships it.
  const script = path.resolve(__dirname, "../../components/monitoring/scripts/monitor.sh");
  const shipped = fs.readFileSync(script, "utf8");
  const updates = [FILE("backup321-db-monitor-script"), FILE("backup321-files-monitor-script")];
  try {
    fs.writeFileSync(script, `${shipped}# v2\n`);
    await sc.converge(() => undefined, updates);
    expect(fs.readFileSync(path.join(sc.target.db.paths.lib, "monitor.sh"), "utf8")).toMatch(
      /# v2\n$/,
    );
  } finally {
    fs.writeFileSync(script, shipped);
  }
  await sc.converge(() => undefined, updates);
});

const RANDOM = "random:index/randomPassword:RandomPassword";

async function protectedUrns(): Promise<string[]> {
  const state = JSON.parse(sc.stack.cli(["stack", "export"]).stdout) as {
    deployment: { resources: { urn: string; protect?: boolean }[] };
  };
  return state.deployment.resources.filter((r) => r.protect).map((r) => r.urn);
}

function restic(repo: string, passwordFile: string, ...args: string[]) {
  return run("restic", ["--repo", repo, "--password-file", passwordFile, "--no-cache", ...args]);
}

test("rotating the restic password adds a key; the old one goes after the next verified backup: the repository stays", async () => {
  const repo = `${sc.target.db.disk}/restic`;
  const pwFile = path.join(sc.target.db.paths.secrets, "restic-local.password");
  const before = fs.readFileSync(pwFile, "utf8");
  const snapshots = JSON.parse(restic(repo, pwFile, "snapshots", "--json").stdout).length;
  expect(snapshots).toBeGreaterThan(0);
  const urn = await sc.stack.urn(RANDOM, "backup321-restic-local-password");
  // Protected: a replacement is refused until it is unprotected (README "Rotations").
  // (apart: the engine ends the refused run while the inline program still has calls in flight)
  const refused = await sc.stack.upApart({ replace: [urn] });
  expect(refused.error).toMatch(/protect/);
  expect(fs.readFileSync(pwFile, "utf8")).toBe(before);
  expect(sc.stack.cli(["state", "unprotect", urn, "--yes"]).code).toBe(0);
  await sc.converge(
    () => undefined,
    [
      "create-replacement backup321-restic-local-password",
      "replace backup321-restic-local-password",
      "delete-replaced backup321-restic-local-password",
      "update backup321-restic-local-password-file",
    ],
    { replace: [urn] },
  );
  expect(fs.readFileSync(pwFile, "utf8")).not.toBe(before);
  expect(await protectedUrns()).toContain(urn);
  const keys = JSON.parse(restic(repo, pwFile, "key", "list", "--json").stdout) as unknown[];
  expect(keys).toHaveLength(1);
  // keep-daily=5 keeps one snapshot a day: the same count, now opened with the new password.
  expect(JSON.parse(restic(repo, pwFile, "snapshots", "--json").stdout).length).toBe(snapshots);
  fs.writeFileSync(path.join(sc.target.base, "old.password"), before, { mode: 0o600 });
  expect(restic(repo, path.join(sc.target.base, "old.password"), "cat", "config").code).not.toBe(0);
});

test("rotating the MariaDB backup user's password alters the user: it is never dropped", async () => {
  const urn = await sc.stack.urn(RANDOM, "backup321-mariadb-password");
  const cnf = path.join(sc.target.db.paths.secrets, "mariadb-backup.cnf");
  const before = fs.readFileSync(cnf, "utf8");
  await sc.converge(
    () => undefined,
    [
      "create-replacement backup321-mariadb-password",
      "replace backup321-mariadb-password",
      "delete-replaced backup321-mariadb-password",
      "update backup321-mariadb-user",
      FILE("backup321-mariadb-client-cnf"),
    ],
    { replace: [urn] },
  );
  expect(fs.readFileSync(cnf, "utf8")).not.toBe(before);
  expect(sc.target.mariadb.sql("SELECT user FROM mysql.user WHERE user='backup_user'").trim()).toBe(
    "backup_user",
  );
});

const DB_PREFIXES = [
  "backup321-db-",
  "backup321-mariadb-",
  "backup321-restic-db-",
  "backup321-restic-local-",
];

test("the db host's SSH user changes from root to a sudo user and back: every command updates in place", async () => {
  const all = await sc.commandsOf(DB_PREFIXES);
  expect(all.length).toBeGreaterThan(20);
  await sc.converge((s) => {
    host(s, "db").user = SUDO_USER;
  }, all);
  await sc.converge((s) => {
    delete host(s, "db").user;
  }, all);
});

test("a removed job leaves nothing of it on the host, and touches nothing else", async () => {
  const job = "backup321-restic-docs-check";
  // What its runs wrote: metrics that would go on saying it succeeded, and its status.
  const state = sc.target.files.paths.state;
  const results = (j: string) => [`${state}/metrics/${j}.prom`, `${state}/status/${j}.json`];
  for (const f of results("restic-docs-check"))
    expect({ f, exists: fs.existsSync(f) }).toEqual({ f, exists: true });
  expect(fs.readFileSync(`${state}/metrics/restic-docs-check.prom`, "utf8")).toContain(
    'backup321_job_success{job="restic-docs-check"} 1',
  );
  const others = results("restic-docs").map((f) => fs.readFileSync(f, "utf8"));
  await sc.converge(
    (s) => {
      delete repos(s).find((r) => r.name === "docs")!.check;
    },
    [...["env", "bin", "cron-crontab", "registry"].map((f) => `delete ${job}-${f}-file`)],
    { runJobs: false },
  );
  expect(fs.existsSync(path.join(sc.target.files.paths.cron, "backup321-restic-docs-check"))).toBe(
    false,
  );
  for (const f of results("restic-docs-check"))
    expect({ f, exists: fs.existsSync(f) }).toEqual({ f, exists: false });
  // the repository's backup job, still there, keeps its own as they were
  expect(results("restic-docs").map((f) => fs.readFileSync(f, "utf8"))).toEqual(others);
  sc.jobsGreen();
});

test("the files host is reached as a sudo user", () => {
  expect(host(sc.site, "files").user).toBe(SUDO_USER);
  const owner = fs.statSync(path.join(sc.target.files.paths.lib, "common.sh")).uid;
  expect(owner).toBe(0);
  expect(run("id", ["-u", SUDO_USER]).code).toBe(0);
  expect(repos(sc.site).map((r) => r.name)).toEqual(["local", "docs"]);
  expect(DATABASE).toBe("lcdb");
});

test("a restic repository added and one removed: the removed one's data and password stay", async () => {
  const docsRepo = `${sc.target.files.disk}/restic`;
  const docsPassword = path.join(sc.target.files.paths.secrets, "restic-docs.password");
  expect(fs.existsSync(path.join(docsRepo, "config"))).toBe(true);
  const docs = "backup321-restic-docs";
  const extra = "backup321-restic-extra";
  // README "Rotations": a removed repository's password is unprotected first.
  const docsUrn = await sc.stack.urn(RANDOM, `${docs}-password`);
  expect(await protectedUrns()).toContain(docsUrn);
  expect(sc.stack.cli(["state", "unprotect", docsUrn, "--yes"]).code).toBe(0);
  await sc.converge(
    (s) => {
      const r = repos(s);
      const i = r.findIndex((x) => x.name === "docs");
      r.splice(i, 1, {
        ...r[i],
        name: "extra",
        path: `${sc.target.files.disk}/restic-extra`,
        check: undefined,
      } as RepoInput);
    },
    [
      ...repositorySteps("delete", docs),
      ...repositorySteps("create", extra),
      FILE("backup321-db-monitor-runbook"),
      FILE("backup321-files-monitor-runbook"),
      // The monitor watches the repositories of its host.
      FILE("backup321-files-monitor-job-env"),
    ],
    { kept: { files: ["etc/backup321/secrets/restic-docs.password"] } },
  );
  expect(fs.existsSync(path.join(docsRepo, "config"))).toBe(true);
  expect(restic(docsRepo, docsPassword, "cat", "config").code).toBe(0);
  expect(fs.existsSync(path.join(sc.target.files.disk, "restic-extra", "config"))).toBe(true);
});

/** The stream's own resources: created when it is turned on, deleted when it is turned off. */
const STREAM_RESOURCES = [
  // the stream user on the primary and its password, in a 0600 option file on the files host
  "password",
  "user",
  "cnf-file",
  // what the files host needs to seal binlogs: the key, the ring, mariadb-lib.sh
  "key-file-file",
  "keyring-file",
  "script-lib-file",
  // the program and its watchdog, the program's env file
  "script-stream-file",
  "script-stream-watch-file",
  "job-env-file",
  // the watchdog, a job every minute
  ...["env", "bin", "cron-crontab", "registry"].map((f) => `watch-${f}-file`),
  // the supervised program
  "service-service",
].map((r) => `backup321-mariadb-stream-${r}`);
/** What the stream's coming or going changes beside its own resources. */
const STREAM_AROUND = [
  // the runbooks say how the database comes back with the stream; the monitor watches its lag
  FILE("backup321-db-monitor-runbook"),
  FILE("backup321-files-monitor-runbook"),
  FILE("backup321-files-monitor-job-env"),
  // the files host's tool check: mariadb-binlog, zstd, openssl, setsid
  "update backup321-files-ready",
];
const STREAM_ON = [...STREAM_RESOURCES.map((r) => `create ${r}`), ...STREAM_AROUND];
const STREAM_OFF = [...STREAM_RESOURCES.map((r) => `delete ${r}`), ...STREAM_AROUND];
/** maxLagSeconds: in the program's and the watchdog's env, the monitor's and the runbooks' too. */
const STREAM_LAG_CHANGE = [
  ...STREAM_AROUND.slice(0, 3),
  FILE("backup321-mariadb-stream-job-env"),
  FILE("backup321-mariadb-stream-watch-env"),
  // an update of the service (restartOn: the env's hash), never a replacement
  "update backup321-mariadb-stream-service-service",
];

// The binlog stream (mariadb.stream): the one Service of the site, a program kept running on the
// files host by the plain supervisor (no systemd here), proved on, changed and off.
const STREAM_USER = "b321_stream";
const streamDir = () => `${sc.target.files.disk}/binlog-stream`;
/** The supervisor's run directory and cron file (components/host Service without systemd). */
const streamRunDir = () => path.join(sc.target.files.paths.state, "services", "mariadb-stream");
const streamCron = () => path.join(sc.target.files.paths.cron, "backup321-service-mariadb-stream");
/** What the stream's removal keeps for the binlogs it sealed: the key and ring that open them. */
const STREAM_KEYS = ["mariadb-backup.key", "mariadb-backup.keyring"].map(
  (f) => `etc/backup321/secrets/${f}`,
);
const DOCS_PASSWORD = "etc/backup321/secrets/restic-docs.password";

const alive = (pid: number) => fs.existsSync(`/proc/${pid}`);

/** The supervised program's pid (child.pid; absent while it restarts): a live mariadb-stream.sh. */
async function streamPid(): Promise<number> {
  const file = path.join(streamRunDir(), "child.pid");
  await waitFor("the supervisor's child.pid", () => fs.existsSync(file), 30_000);
  const pid = Number(fs.readFileSync(file, "utf8").trim());
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  expect(argv).toContain(path.join(sc.target.files.paths.lib, "mariadb-stream.sh"));
  expect(argv).toContain(path.join(sc.target.files.paths.etc, "mariadb-stream.env"));
  return pid;
}

/** The stream's sealed binlogs: name -> sha256 and mtime (a rewrite changes one or the other). */
function sealedFiles(): Record<string, string> {
  const d = streamDir();
  return Object.fromEntries(
    fs
      .readdirSync(d)
      .filter((f) => /\.zst\.enc(\.sha256)?$/.test(f))
      .sort()
      .map((f) => {
        const p = path.join(d, f);
        const sha = createHash("sha256").update(fs.readFileSync(p)).digest("hex");
        return [f, `${sha} ${fs.statSync(p).mtimeMs}`];
      }),
  );
}

/** The binlogs the stream holds, sealed or open (live/), by name. */
function streamedBinlogs(): string[] {
  const names = fs
    .readdirSync(streamDir())
    .filter((f) => f.endsWith(".zst.enc"))
    .map((f) => f.split(".").slice(0, 2).join("."));
  return [...new Set([...names, ...fs.readdirSync(path.join(streamDir(), "live"))])].sort();
}

/** The stream's connections on the primary (a binlog dump each). */
const dumps = () =>
  Number(
    sc.target.mariadb
      .sql(
        `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER='${STREAM_USER}' AND COMMAND LIKE 'Binlog Dump%'`,
      )
      .trim(),
  );

/**
 * A row written on the primary now reaches the stream host within 30 s: its copy of the primary's
 * open binlog holds the primary's bytes up to the primary's position, the row among them.
 */
async function streamsAWrite(id: number): Promise<void> {
  const mark = `stream-${id}-${Date.now()}`;
  sc.target.mariadb.sql(`INSERT INTO ${DATABASE}.t VALUES (${id}, '${mark}')`);
  const [file, at] = sc.target.mariadb.sql("SHOW MASTER STATUS").trim().split("\t");
  const pos = Number(at);
  const copy = path.join(streamDir(), "live", file);
  await waitFor(
    `${file} up to ${pos} on the stream host`,
    () => fs.existsSync(copy) && fs.statSync(copy).size >= pos,
    30_000,
  );
  const theirs = fs.readFileSync(path.join(path.dirname(sc.target.mariadb.binlogBasename), file));
  const ours = fs.readFileSync(copy);
  // past the format description event: the server flags its open file in use, the dump does not
  const from = 4 + theirs.readUInt32LE(4 + 9);
  expect(ours.subarray(from, pos).equals(theirs.subarray(from, pos))).toBe(true);
  expect(ours.subarray(0, pos).includes(mark)).toBe(true);
}

test("the binlog stream turned on: a supervised program streams every binlog write to the files host", async () => {
  let pid = 0;
  await sc.converge(
    (s) => {
      mariadb(s).stream = { host: "files", port: sc.target.mariadb.port, dir: streamDir() };
    },
    STREAM_ON,
    {
      kept: { files: [DOCS_PASSWORD] },
      afterUp: async () => {
        pid = await streamPid();
      },
    },
  );
  // The same program all along: neither the fresh deploy's stream (same server id, another
  // server's password) nor the jobs (a full, a binlog flush) made it end.
  expect(await streamPid()).toBe(pid);
  expect(dumps()).toBe(1);
  const supervisor = path.join(streamRunDir(), "supervise.sh");
  expect(run(supervisor, ["status", streamRunDir()]).code).toBe(0);
  expect(fs.readFileSync(streamCron(), "utf8")).toContain(`${supervisor}' 'start'`);
  await streamsAWrite(1001);
  // the shipping job's flush closed a binlog since the stream started: it is sealed
  expect(Object.keys(sealedFiles()).length).toBeGreaterThan(0);
  const primary = sc.target.mariadb.sql("SHOW BINARY LOGS").trim().split("\n");
  expect(streamedBinlogs()).toEqual(expect.arrayContaining(primary.map((l) => l.split("\t")[0])));
});

test("a stream setting changed: the service is updated in place, its program restarted, nothing streamed lost", async () => {
  const before = await streamPid();
  const sealed = sealedFiles();
  const streamed = streamedBinlogs();
  expect(Object.keys(sealed).length).toBeGreaterThan(0);
  let after = 0;
  await sc.converge(
    (s) => {
      mariadb(s).stream!.maxLagSeconds = 120;
    },
    STREAM_LAG_CHANGE,
    {
      kept: { files: [DOCS_PASSWORD] },
      afterUp: async () => {
        after = await streamPid();
      },
    },
  );
  expect(after).not.toBe(before);
  expect(alive(before)).toBe(false);
  expect(await streamPid()).toBe(after);
  expect(dumps()).toBe(1);
  expect(
    fs.readFileSync(path.join(sc.target.files.paths.etc, "mariadb-stream.env"), "utf8"),
  ).toMatch(/^MARIADB_STREAM_MAX_LAG='120'$/m);
  // every sealed file as it was, and every binlog it had still there (sealed since, or open)
  expect(sealedFiles()).toMatchObject(sealed);
  expect(streamedBinlogs()).toEqual(expect.arrayContaining(streamed));
  await streamsAWrite(1002);
});

test("the binlog stream turned off: its service and user go, what it streamed stays", async () => {
  const pid = await streamPid();
  const sealed = sealedFiles();
  const streamed = streamedBinlogs();
  const status = path.join(sc.target.files.paths.status, "mariadb-stream.json");
  expect(fs.existsSync(status)).toBe(true);
  // README "Rotations": the key and ring that open the sealed binlogs are protected, kept on removal
  const keys = (await protectedUrns()).filter((u) => /::backup321-mariadb-stream-key/.test(u));
  expect(keys.length).toBeGreaterThan(0);
  for (const urn of keys) expect(sc.stack.cli(["state", "unprotect", urn, "--yes"]).code).toBe(0);
  await sc.converge(
    (s) => {
      delete mariadb(s).stream;
    },
    STREAM_OFF,
    { kept: { files: [DOCS_PASSWORD, ...STREAM_KEYS] } },
  );
  expect(alive(pid)).toBe(false);
  for (const gone of [streamRunDir(), streamCron(), status])
    expect({ gone, exists: fs.existsSync(gone) }).toEqual({ gone, exists: false });
  expect(dumps()).toBe(0);
  expect(
    sc.target.mariadb.sql(`SELECT COUNT(*) FROM mysql.user WHERE user='${STREAM_USER}'`).trim(),
  ).toBe("0");
  expect(sealedFiles()).toMatchObject(sealed);
  expect(streamedBinlogs()).toEqual(expect.arrayContaining(streamed));
});

/** What one key rotation does (README "Rotations by the calendar"). */
const rotationSteps = (generation: number) => [
  `create backup321-mariadb-key-${generation}`,
  FILE("backup321-mariadb-keyring"),
  FILE("backup321-mariadb-key-file"),
  "create-replacement backup321-mariadb-password",
  "replace backup321-mariadb-password",
  "delete-replaced backup321-mariadb-password",
  "update backup321-mariadb-user",
  FILE("backup321-mariadb-client-cnf"),
  // the new key's fingerprint, in every MariaDB job's env file
  ...["full", "binlogs", "restore-test", "pitr"].map((j) => FILE(`backup321-mariadb-${j}-env`)),
  // each restic repository's next password, its own protected resource; the file's update rekeys
  ...["local", "extra"].flatMap((r) => [
    `create backup321-restic-${r}-password-${generation}`,
    `update backup321-restic-${r}-password-file`,
  ]),
  // RUNBOOK.md lists the generations
  FILE("backup321-db-monitor-runbook"),
  FILE("backup321-files-monitor-runbook"),
];

test("two monthly key rotations: a full from before each rotation and the newest restore", async () => {
  const db = sc.target.db;
  const sql = (q: string) => sc.target.mariadb.sql(q, DATABASE);
  const keyFile = path.join(db.paths.secrets, "mariadb-backup.key");
  const ring = path.join(db.paths.secrets, "mariadb-backup.keyring");
  const pause = () => new Promise((r) => setTimeout(r, 1100));
  /** A full now (the real job), then the time just after it: PITR to there starts from it. */
  const full = async (): Promise<{ file: string; until: string }> => {
    const r = run(path.join(db.paths.sbin, "b321-mariadb-full"), [], { timeoutMs: 300_000 });
    expect(r.code).toBe(0);
    const file = String(
      JSON.parse(fs.readFileSync(path.join(db.paths.status, "mariadb-full.json"), "utf8")).file,
    );
    await pause();
    const until = new Date().toISOString().slice(0, 19).replace("T", " ");
    await pause();
    return { file, until };
  };
  sql("CREATE TABLE rotation_marks (g INT PRIMARY KEY)");
  sql("INSERT INTO rotation_marks VALUES (0)");
  const marks = [await full()];
  const resticRepo = `${db.disk}/restic`;
  const resticPassword = path.join(db.paths.secrets, "restic-local.password");
  const repoId = () =>
    JSON.parse(restic(resticRepo, resticPassword, "cat", "config").stdout).id as string;
  const idBefore = repoId();
  const saved = process.env.BACKUP321_NOW;
  try {
    for (const [generation, when] of [
      [1, "2027-01-10T09:00:00Z"],
      [2, "2027-02-10T09:00:00Z"],
    ] as const) {
      const before = fs.readFileSync(keyFile, "utf8");
      const oldPassword = path.join(sc.target.base, `restic-local-generation-${generation - 1}`);
      fs.copyFileSync(resticPassword, oldPassword);
      process.env.BACKUP321_NOW = when;
      await sc.converge(
        (s) => {
          s.rotation = { months: 1, since: "2026-12" };
          // every full of this test stays (each converge's jobs make one too)
          mariadb(s).retention = { ...(mariadb(s).retention ?? {}), fulls: 12 };
        },
        rotationSteps(generation),
        // the removed repository's password and the removed stream's keys, kept by the tests above;
        // the jobs run below
        { kept: { files: [DOCS_PASSWORD, ...STREAM_KEYS] }, runJobs: false },
      );
      // the new restic password opens the repository; the old one too, until a verified backup
      const keys = () =>
        JSON.parse(restic(resticRepo, resticPassword, "key", "list", "--json").stdout);
      expect(fs.readFileSync(resticPassword, "utf8")).not.toBe(
        fs.readFileSync(oldPassword, "utf8"),
      );
      expect(keys()).toHaveLength(2);
      expect(restic(resticRepo, oldPassword, "cat", "config").code).toBe(0);
      sc.jobsGreen();
      expect(keys()).toHaveLength(1);
      expect(restic(resticRepo, oldPassword, "cat", "config").code).not.toBe(0);
      expect(fs.readFileSync(keyFile, "utf8")).not.toBe(before);
      const lines = fs.readFileSync(ring, "utf8").trim().split("\n");
      expect(lines).toHaveLength(generation + 1);
      expect(lines).toContain(fs.readFileSync(keyFile, "utf8").trim());
      expect(fs.statSync(ring).mode & 0o777).toBe(0o600);
      sql(`INSERT INTO rotation_marks VALUES (${generation})`);
      marks.push(await full());
    }
  } finally {
    process.env.BACKUP321_NOW = saved;
  }
  // the same repository, every pack (those written before the rotations too) read with the newest
  expect(repoId()).toBe(idBefore);
  expect(restic(resticRepo, resticPassword, "check", "--read-data").code).toBe(0);
  // every generation escrowed, in a secret output only
  expect(sc.stack.cli(["stack", "output", "resticPasswords"]).stdout).toContain("[secret]");
  const escrow = JSON.parse(
    sc.stack.cli(["stack", "output", "resticPasswords", "--json", "--show-secrets"]).stdout,
  ) as Record<string, Record<string, string>>;
  expect(Object.keys(escrow.local)).toEqual([
    "generation 0 (from 2026-12)",
    "generation 1 (from 2027-01)",
    "generation 2 (from 2027-02)",
  ]);
  expect(escrow.local["generation 2 (from 2027-02)"]).toBe(
    fs.readFileSync(resticPassword, "utf8").replace(/\n$/, ""),
  );
  const fingerprints = marks.map(
    (m) => JSON.parse(fs.readFileSync(`${m.file}.manifest.json`, "utf8")).key_fingerprint,
  );
  expect(new Set(fingerprints).size).toBe(3);
  // each full restores with its own key, and its binlogs replay up to just after it
  for (const [i, m] of marks.entries()) {
    const target = path.join(sc.target.base, `rotation-restore-${i}`);
    const r = run(
      path.join(db.paths.sbin, "b321-mariadb-pitr"),
      ["--until", m.until, "--tz", "UTC", "--target-datadir", target],
      { timeoutMs: 300_000 },
    );
    expect([i, r.code, r.stderr.slice(-400)]).toEqual([i, 0, expect.anything()]);
    expect(r.stderr).toContain(path.basename(m.file));
    const restored = await startOn(target);
    try {
      expect(restored.sql(`SELECT g FROM ${DATABASE}.rotation_marks ORDER BY g`).trim()).toBe(
        Array.from({ length: i + 1 }, (_, g) => String(g)).join("\n"),
      );
    } finally {
      await restored.stop();
      fs.rmSync(target, { recursive: true, force: true });
    }
  }
});
