// The real engine deploys a site, changes it the way users do, and every change converges: the
// preview shows exactly the expected steps, `pulumi up` does them, each host's managed tree then
// equals what a fresh deploy of the new model writes on empty hosts, every job runs green, and no
// backup is lost.
import * as fs from "node:fs";
import * as path from "node:path";
import { changes, engineStack, summarize, type EngineStack } from "../harness/engine";
import {
  DATABASE,
  ensureSudoUser,
  lifecycleSecrets,
  lifecycleSite,
  startServers,
  startTarget,
  SUDO_USER,
  type Servers,
  type Target,
} from "../harness/lifecycle";
import { treeDiff } from "../harness/tree";
import { freePort, run } from "../harness/proc";
import { clone } from "../harness/sites";
import { startSshd } from "../harness/sshd";
import { startMariaDb } from "../harness/mariadb";
import type { SiteInput } from "../../stacks/schema";

type HostInput = { name: string; user?: string; port?: number; generation?: number };
type RepoInput = { name: string; host: string; check?: unknown; path?: string; paths?: string[] };
const hosts = (s: SiteInput) => s.hosts as HostInput[];
const host = (s: SiteInput, name: string) => hosts(s).find((h) => h.name === name)!;
const repos = (s: SiteInput) => (s.restic as { repositories: RepoInput[] }).repositories;
const mariadb = (s: SiteInput) =>
  s.mariadb as { schedules: Record<string, string>; retention?: Record<string, number> };

let servers: Servers;
let target: Target;
let stack: EngineStack;
/** The model deployed now, written against `target`'s paths. */
let site: SiteInput;
let secrets: Record<string, string>;

beforeAll(async () => {
  ensureSudoUser();
  servers = await startServers();
  target = await startTarget("lifecycle");
  site = lifecycleSite(target, servers);
  secrets = lifecycleSecrets(servers);
  stack = await engineStack("lifecycle");
  await stack.configure(site, secrets);
});

afterAll(async () => {
  stack?.dispose();
  await target?.mariadb.stop(); // the rebuilt host's server, when the rebuild replaced it
  await target?.stop();
  await servers?.db.stop();
  await servers?.files.stop();
});

/** The model for another target: the same model with `target`'s directories moved to `t`'s. */
function onTarget(model: SiteInput, t: Target): SiteInput {
  return JSON.parse(JSON.stringify(model).split(target.base).join(t.base)) as SiteInput;
}

/** What a fresh `pulumi up` of the model writes on empty hosts: the reference trees. */
async function freshTrees(model: SiteInput) {
  const fresh = await startTarget("fresh");
  const s = await engineStack("lifecycle");
  try {
    await s.configure(onTarget(model, fresh), secrets);
    await s.up();
    return fresh.trees();
  } finally {
    s.dispose();
    await fresh.stop();
  }
}

/** Names of every backup file on the db host's disk (fulls, manifests, shipped binlogs). */
function backupFiles(): string[] {
  const out: string[] = [];
  for (const dir of ["database", "binlogs"]) {
    const d = path.join(target.db.disk, dir);
    if (fs.existsSync(d)) out.push(...fs.readdirSync(d).map((f) => `${dir}/${f}`));
  }
  return out.filter((f) => !/\.partial|\.work/.test(f)).sort();
}

function jobsGreen(): void {
  expect(target.runJobs(target.db, ["b321-mariadb-pitr"])).toEqual([]);
  expect(target.runJobs(target.files)).toEqual([]);
}

/**
 * One change of the catalogue: the preview lists exactly `expected` ("op name" lines), up does the
 * same, the trees equal a fresh deploy's, the jobs run green and every earlier backup is still there.
 */
async function converge(
  change: (s: SiteInput) => void,
  expected: readonly string[],
  opts: {
    replace?: string[];
    runJobs?: boolean;
    /** Files a fresh deploy does not write but this one must keep (the keys of retained backups). */
    kept?: Partial<Record<"db" | "files", string[]>>;
  } = {},
): Promise<void> {
  const before = backupFiles();
  const next = clone(site);
  change(next);
  await stack.configure(next, secrets);
  expect(summarize(await stack.preview({ replace: opts.replace }))).toEqual([...expected].sort());
  expect(summarize(await stack.up({ replace: opts.replace }))).toEqual([...expected].sort());
  site = next;
  const fresh = await freshTrees(next);
  const now = target.trees();
  for (const h of ["db", "files"] as const) {
    const kept = opts.kept?.[h] ?? [];
    for (const k of kept) expect(now[h][k]).toMatchObject({ type: "file", mode: "600" });
    expect(treeDiff(now[h], fresh[h]).filter((d) => !kept.some((k) => d === `extra ${k}`))).toEqual(
      [],
    );
  }
  if (opts.runJobs !== false) jobsGreen();
  expect(lost(before, backupFiles())).toEqual([]);
}

/**
 * Backups of before that are gone though retention keeps them: fulls among the newest `fulls` of
 * all seen (retention prunes older ones once a newer full is verified), and the newest binlog.
 */
function lost(before: readonly string[], after: readonly string[]): string[] {
  const keep = mariadb(site).retention?.fulls ?? 4;
  const isFull = (f: string) => /_full_.*\.enc$/.test(f);
  const kept = [...new Set([...before, ...after].filter(isFull))].sort().slice(-keep);
  const fulls = before.filter((f) => kept.includes(f));
  const binlogs = before.filter((f) => f.startsWith("binlogs/")).slice(-1);
  return [...fulls, ...binlogs].filter((f) => !after.includes(f));
}

const FILE = (name: string) => `update ${name}-file`;

test("first pulumi up installs the site; every job runs green", async () => {
  const steps = await stack.up();
  expect(changes(steps).length).toBeGreaterThan(50);
  expect(changes(steps).filter((s) => s.op !== "create")).toEqual([]);
  jobsGreen();
  expect(backupFiles().some((f) => f.endsWith(".manifest.json"))).toBe(true);
});

test("a second pulumi up with no change has zero steps", async () => {
  expect(summarize(await stack.preview())).toEqual([]);
  expect(summarize(await stack.up())).toEqual([]);
});

test("a schedule change updates the job's cron file, its monitor entry and the runbooks", async () => {
  await converge(
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
  await converge(
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
    await converge(() => undefined, updates);
    expect(fs.readFileSync(path.join(target.db.paths.lib, "monitor.sh"), "utf8")).toMatch(
      /# v2\n$/,
    );
  } finally {
    fs.writeFileSync(script, shipped);
  }
  await converge(() => undefined, updates);
});

const RANDOM = "random:index/randomPassword:RandomPassword";

function restic(repo: string, passwordFile: string, ...args: string[]) {
  return run("restic", ["--repo", repo, "--password-file", passwordFile, "--no-cache", ...args]);
}

test("rotating the restic password adds a key and removes the old one: the repository stays", async () => {
  const repo = `${target.db.disk}/restic`;
  const pwFile = path.join(target.db.paths.etc, "secrets", "restic-local.password");
  const before = fs.readFileSync(pwFile, "utf8");
  const snapshots = JSON.parse(restic(repo, pwFile, "snapshots", "--json").stdout).length;
  expect(snapshots).toBeGreaterThan(0);
  const urn = await stack.urn(RANDOM, "backup321-restic-local-password");
  await converge(
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
  const keys = JSON.parse(restic(repo, pwFile, "key", "list", "--json").stdout) as unknown[];
  expect(keys).toHaveLength(1);
  expect(JSON.parse(restic(repo, pwFile, "snapshots", "--json").stdout).length).toBeGreaterThan(
    snapshots,
  );
  fs.writeFileSync(path.join(target.base, "old.password"), before, { mode: 0o600 });
  expect(restic(repo, path.join(target.base, "old.password"), "cat", "config").code).not.toBe(0);
});

test("rotating the MariaDB backup user's password alters the user: it is never dropped", async () => {
  const urn = await stack.urn(RANDOM, "backup321-mariadb-password");
  const cnf = path.join(target.db.paths.etc, "secrets", "mariadb-backup.cnf");
  const before = fs.readFileSync(cnf, "utf8");
  await converge(
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
  expect(target.mariadb.sql("SELECT user FROM mysql.user WHERE user='backup_user'").trim()).toBe(
    "backup_user",
  );
});

/** Every command of a host's resources, as "update <name>" lines (its SSH user changed). */
async function commandsOf(prefixes: readonly string[]): Promise<string[]> {
  return (await stack.resources())
    .filter((r) => r.type === "command:remote:Command")
    .map((r) => r.urn.split("::").pop()!)
    .filter((n) => prefixes.some((p) => n.startsWith(p)))
    .map((n) => `update ${n}`);
}

const DB_PREFIXES = [
  "backup321-db-",
  "backup321-mariadb-",
  "backup321-restic-db-",
  "backup321-restic-local-",
];

test("the db host's SSH user changes from root to a sudo user and back: every command updates in place", async () => {
  const all = await commandsOf(DB_PREFIXES);
  expect(all.length).toBeGreaterThan(20);
  await converge((s) => {
    host(s, "db").user = SUDO_USER;
  }, all);
  await converge((s) => {
    delete host(s, "db").user;
  }, all);
});

test("a removed job leaves nothing of it on the host, and touches nothing else", async () => {
  const job = "backup321-restic-docs-check";
  await converge(
    (s) => {
      delete repos(s).find((r) => r.name === "docs")!.check;
    },
    [...["env", "bin", "cron-crontab", "registry"].map((f) => `delete ${job}-${f}-file`)],
  );
  expect(fs.existsSync(path.join(target.files.paths.cron, "backup321-restic-docs-check"))).toBe(
    false,
  );
});

test("the files host is reached as a sudo user", () => {
  expect(host(site, "files").user).toBe(SUDO_USER);
  const owner = fs.statSync(path.join(target.files.paths.lib, "common.sh")).uid;
  expect(owner).toBe(0);
  expect(run("id", ["-u", SUDO_USER]).code).toBe(0);
  expect(repos(site).map((r) => r.name)).toEqual(["local", "docs"]);
  expect(DATABASE).toBe("lcdb");
});

test("a restic repository added and one removed: the removed one's data and password stay", async () => {
  const docsRepo = `${target.files.disk}/restic`;
  const docsPassword = path.join(target.files.paths.etc, "secrets", "restic-docs.password");
  expect(fs.existsSync(path.join(docsRepo, "config"))).toBe(true);
  const docs = "backup321-restic-docs";
  const extra = "backup321-restic-extra";
  await converge(
    (s) => {
      const r = repos(s);
      const i = r.findIndex((x) => x.name === "docs");
      r.splice(i, 1, {
        ...r[i],
        name: "extra",
        path: `${target.files.disk}/restic-extra`,
        check: undefined,
      } as RepoInput);
    },
    [
      ...["env", "bin", "cron-crontab", "registry"].map((f) => `delete ${docs}-backup-${f}-file`),
      `delete ${docs}-exclude-file`,
      `delete ${docs}-init-env-file`,
      `delete ${docs}-init`,
      `delete ${docs}-password`,
      `delete ${docs}-password-file`,
      ...["env", "bin", "cron-crontab", "registry"].map((f) => `create ${extra}-backup-${f}-file`),
      `create ${extra}-exclude-file`,
      `create ${extra}-init-env-file`,
      `create ${extra}-init`,
      `create ${extra}-password`,
      `create ${extra}-password-file`,
      FILE("backup321-db-monitor-runbook"),
      FILE("backup321-files-monitor-runbook"),
    ],
    { kept: { files: ["etc/backup321/secrets/restic-docs.password"] } },
  );
  expect(fs.existsSync(path.join(docsRepo, "config"))).toBe(true);
  expect(restic(docsRepo, docsPassword, "cat", "config").code).toBe(0);
  expect(fs.existsSync(path.join(target.files.disk, "restic-extra", "config"))).toBe(true);
});

/** Commands in the state, by name. */
async function commandNames(): Promise<string[]> {
  return (await stack.resources())
    .filter((r) => r.type === "command:remote:Command")
    .map((r) => r.urn.split("::").pop()!);
}

test("a host renamed in the model: the new resources take over its files, the old ones delete nothing", async () => {
  const old = (await commandNames()).filter(
    (n) => n.startsWith("backup321-files-") || n.startsWith("backup321-restic-files-"),
  );
  const renamed = (n: string) => n.replace(/^backup321-(restic-)?files-/, "backup321-$1storage-");
  await converge(
    (s) => {
      host(s, "files").name = "storage";
      for (const r of repos(s)) if (r.host === "files") r.host = "storage";
    },
    [
      ...old.map((n) => `delete ${n}`),
      ...old.map((n) => `create ${renamed(n)}`),
      // What names the host: the runbook, and the restic job's host tag.
      FILE("backup321-db-monitor-runbook"),
      FILE("backup321-restic-extra-backup-env"),
      FILE("backup321-restic-extra-init-env"),
    ],
    { kept: { files: ["etc/backup321/secrets/restic-docs.password"] } },
  );
});

test("a host unreachable during pulumi up: an error naming it, and the other host converges", async () => {
  const closed = await freePort();
  const next = clone(site);
  host(next, "storage").port = closed;
  mariadb(next).schedules.full = "0 2 * * *";
  await stack.configure(next, secrets);
  const failed = stack.up({ continueOnError: true });
  await expect(failed).rejects.toThrow(/backup321-storage-ready[\s\S]*connection refused/);
  const cron = fs.readFileSync(path.join(target.db.paths.cron, "backup321-mariadb-full"), "utf8");
  expect(cron).toContain("0 2 * * * root");
  // The host is back: the same model converges.
  host(next, "storage").port = servers.files.port;
  await converge(
    (s) => {
      mariadb(s).schedules.full = "0 2 * * *";
    },
    [FILE("backup321-storage-monitor-runbook")],
    { kept: { files: ["etc/backup321/secrets/restic-docs.password"] } },
  );
});

const utcNow = () => new Date().toISOString().slice(0, 19).replace("T", " ");
const table = (m: { sql(q: string): string }) =>
  m.sql(`SELECT id, v FROM ${DATABASE}.t ORDER BY id`);

test("a wiped db host comes back with its generation raised, then its database from the surviving disk", async () => {
  // A change after the newest full, shipped as a binlog: only the binlogs carry it.
  target.mariadb.sql(`INSERT INTO ${DATABASE}.t VALUES (10, 'after the full')`);
  const ship = run(path.join(target.db.paths.sbin, "b321-mariadb-binlogs"), []);
  expect(ship.stderr).toContain("finished: success");
  await new Promise((r) => setTimeout(r, 1100));
  const until = utcNow();
  const before = table(target.mariadb);
  const survived = backupFiles();

  // The host dies: its root is wiped (the USB disk survives), it comes back at the same address
  // with a new host key, an empty MariaDB and nothing of backup321.
  await target.mariadb.stop();
  fs.rmSync(target.db.root, { recursive: true, force: true });
  fs.mkdirSync(target.db.root, { mode: 0o755 });
  const port = servers.db.port;
  await servers.db.stop();
  servers = {
    ...servers,
    db: await startSshd({ port, clientPrivateKey: secrets.sshPrivateKey }),
  };
  const fresh = await startMariaDb({ dir: target.mariadb.dir });
  target = { ...target, mariadb: fresh };

  // RUNBOOK.md's command raises the generation: every command on the host runs again.
  const all = await commandsOf(DB_PREFIXES);
  await converge(
    (s) => {
      host(s, "db").generation = 2;
    },
    [...all, FILE("backup321-storage-monitor-runbook")],
    { runJobs: false, kept: { files: ["etc/backup321/secrets/restic-docs.password"] } },
  );
  expect(backupFiles()).toEqual(survived);

  // The database from the disk: the newest full plus the shipped binlogs, to the moment before.
  const into = `${fresh.dir}/data.restored`;
  const pitr = run(path.join(target.db.paths.sbin, "b321-mariadb-pitr"), [
    "--until",
    until,
    "--tz",
    "UTC",
    "--target-datadir",
    into,
  ]);
  expect(pitr.stderr).toContain("finished: success");
  await fresh.kill();
  fs.renameSync(fresh.datadir, `${fresh.dir}/data.empty`);
  fs.renameSync(into, fresh.datadir);
  run("chown", ["-R", "mysql:mysql", fresh.datadir]);
  await fresh.start();
  expect(table(fresh)).toBe(before);
  jobsGreen();
});

test("pulumi destroy removes every managed file, cron entry and the backup user; backups and keys stay", async () => {
  const survived = backupFiles();
  // The keys are protected: destroy refuses until they are escrowed and unprotected (README "Undeploy").
  await expect(stack.destroy()).rejects.toThrow(/protected/);
  const escrow = stack.cli(["stack", "export", "--show-secrets"]);
  expect(escrow.code).toBe(0);
  expect(stack.cli(["state", "unprotect", "--all", "--yes"]).code).toBe(0);
  const steps = await stack.destroy();
  expect(changes(steps).filter((s) => s.op !== "delete")).toEqual([]);

  const kept = {
    db: ["etc/backup321/secrets/mariadb-backup.key", "etc/backup321/secrets/restic-local.password"],
    files: [
      "etc/backup321/secrets/restic-docs.password",
      "etc/backup321/secrets/restic-extra.password",
    ],
  };
  for (const h of ["db", "files"] as const) {
    const left = Object.entries(target.trees()[h])
      .filter(([, e]) => e.type === "file")
      .map(([p]) => p)
      .sort();
    expect(left).toEqual(kept[h]);
  }
  expect(backupFiles()).toEqual(survived);
  expect(
    target.mariadb.sql("SELECT COUNT(*) FROM mysql.user WHERE user='backup_user'").trim(),
  ).toBe("0");
  expect(summarize(await stack.destroy())).toEqual([]);
});
