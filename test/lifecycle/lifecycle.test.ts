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
import { run } from "../harness/proc";
import { clone } from "../harness/sites";
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
  // keep-daily=5 keeps one snapshot a day: the same count, now opened with the new password.
  expect(JSON.parse(restic(repo, pwFile, "snapshots", "--json").stdout).length).toBe(snapshots);
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
      // The monitor watches the repositories of its host.
      FILE("backup321-files-monitor-job-env"),
    ],
    { kept: { files: ["etc/backup321/secrets/restic-docs.password"] } },
  );
  expect(fs.existsSync(path.join(docsRepo, "config"))).toBe(true);
  expect(restic(docsRepo, docsPassword, "cat", "config").code).toBe(0);
  expect(fs.existsSync(path.join(target.files.disk, "restic-extra", "config"))).toBe(true);
});
