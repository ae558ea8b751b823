// What ends or breaks a host's life under a continuing stack, with the real engine: a host renamed
// in the model, a host unreachable during `pulumi up`, a wiped host rebuilt by raising its
// generation (then its database restored from the disk that survived), and `pulumi destroy`.
import * as fs from "node:fs";
import * as path from "node:path";
import { changes, summarize, type EngineStack } from "../harness/engine";
import { DATABASE } from "../harness/lifecycle";
import { startSshd } from "../harness/sshd";
import { startMariaDb } from "../harness/mariadb";
import { freePort, run } from "../harness/proc";
import { pasteOk, pasteStep } from "../harness/runbook";
import { clone } from "../harness/sites";
import { FILE, host, mariadb, repos, Scenario } from "../harness/scenario";
import { keySteps } from "../../components/site/runbook/keys";
import { scenarios } from "../../components/site/runbook/scenarios";
import { LAPTOP, stepScript, type Step } from "../../components/site/runbook/steps";
import { parseSite } from "../../stacks/load";
import type { SiteInput } from "../../stacks/schema";

let sc: Scenario;
type Laptop = ReturnType<EngineStack["laptop"]>;

beforeAll(async () => {
  sc = await Scenario.start("teardown");
});

afterAll(async () => {
  await sc?.stop();
});

test("first pulumi up installs the site; every job runs green", async () => {
  const steps = await sc.stack.up();
  expect(changes(steps).filter((s) => s.op !== "create")).toEqual([]);
  sc.jobsGreen();
});

test("a host renamed in the model: the new resources take over its files, the old ones delete nothing", async () => {
  const old = (await sc.commandNames()).filter(
    (n) => n.startsWith("backup321-files-") || n.startsWith("backup321-restic-files-"),
  );
  expect(old.length).toBeGreaterThan(10);
  const renamed = (n: string) => n.replace(/^backup321-(restic-)?files-/, "backup321-$1storage-");
  // The docs repository stays: its commands name the host they run on (the install marker).
  const docs = (await sc.commandsOf(["backup321-restic-docs-"])).filter(
    (u) => u !== "update backup321-restic-docs-init",
  );
  await sc.converge(
    (s) => {
      host(s, "files").name = "storage";
      for (const r of repos(s)) if (r.host === "files") r.host = "storage";
    },
    [
      ...old.map((n) => `delete ${n}`),
      ...old.map((n) => `create ${renamed(n)}`),
      ...docs,
      FILE("backup321-db-monitor-runbook"),
    ],
  );
});

test("a host unreachable during pulumi up: an error naming it, and the other host converges", async () => {
  const closed = await freePort();
  const next = clone(sc.site);
  host(next, "storage").port = closed;
  mariadb(next).schedules.full = "15 2 * * *";
  await sc.stack.configure(next, sc.secrets);
  const failed = await sc.stack.upApart({ continueOnError: true });
  expect(failed.error).toMatch(/backup321-storage-ready[\s\S]*connection refused/);
  const cron = path.join(sc.target.db.paths.cron, "backup321-mariadb-full");
  expect(fs.readFileSync(cron, "utf8")).toContain("15 2 * * * root");
  // The host is back: the same schedule converges, and only the unreachable host had work left.
  await sc.converge(
    (s) => {
      mariadb(s).schedules.full = "15 2 * * *";
    },
    [FILE("backup321-storage-monitor-runbook")],
  );
});

const RANDOM = "random:index/randomPassword:RandomPassword";
const utcNow = () => new Date().toISOString().slice(0, 19).replace("T", " ");
const table = (m: { sql(q: string): string }) =>
  m.sql(`SELECT id, v FROM ${DATABASE}.t ORDER BY id`);

/** RUNBOOK.md's scenario whose title starts so, rendered from the model deployed now. */
function scenario(title: string) {
  const found = scenarios(parseSite(sc.site), sc.stack.name).find((x) => x.title.startsWith(title));
  if (!found) throw new Error(`RUNBOOK.md has no scenario "${title}"`);
  // the very blocks the hosts' RUNBOOK.md prints
  const installed = fs.readFileSync(path.join(sc.target.files.paths.etc, "RUNBOOK.md"), "utf8");
  for (const step of found.steps) expect(installed).toContain(stepScript(step));
  return found;
}

/** One step pasted as RUNBOOK.md prints it: on the operator's laptop, or as root on its host. */
function paste(step: Step, laptop: Laptop, values: Record<string, string> = {}) {
  const on = step.on === LAPTOP ? { env: { ...process.env, ...laptop.env }, cwd: laptop.cwd } : {};
  return pasteOk(step, values, on);
}

test("the db host is lost: RUNBOOK.md's scenario, pasted as printed, brings back its database exactly", async () => {
  const { target } = sc;
  // A change after the newest full, shipped as a binlog: only the binlogs carry it.
  target.mariadb.sql(`INSERT INTO ${DATABASE}.t VALUES (10, 'after the full')`);
  const ship = run(path.join(target.db.paths.sbin, "b321-mariadb-binlogs"), []);
  expect(ship.stderr).toContain("finished: success");
  await new Promise((r) => setTimeout(r, 1100));
  const until = utcNow();
  const before = table(target.mariadb);
  const survived = sc.backupFiles();
  const lost = scenario("db is lost");
  expect(lost.steps.map((s) => s.on)).toEqual([LAPTOP, LAPTOP, "db", "db", LAPTOP]);
  const [login, rebuild, newest, pitr, rearm] = lost.steps;

  // The host dies: its root is wiped (the backup disk survives), it comes back at the same address
  // with a new host key, an empty MariaDB and nothing of backup321.
  await target.mariadb.stop();
  fs.rmSync(target.db.root, { recursive: true, force: true });
  fs.mkdirSync(target.db.root, { mode: 0o755 });
  const port = sc.servers.db.port;
  await sc.servers.db.stop();
  sc.servers = {
    ...sc.servers,
    db: await startSshd({ port, clientPrivateKey: sc.secrets.sshPrivateKey }),
  };
  const fresh = await startMariaDb({ dir: target.mariadb.dir });
  sc.target = { ...target, mariadb: fresh };

  // The rebuild raises the generation (every command on the host runs again) and disarms the
  // host: its jobs are installed but none is scheduled while its data comes back.
  const all = await sc.commandsOf([
    "backup321-db-",
    "backup321-mariadb-",
    "backup321-restic-db-",
    "backup321-restic-local-",
  ]);
  const laptop = sc.stack.laptop();
  paste(login, laptop);
  paste(rebuild, laptop);
  const [rebuilt] = laptop.ups();
  // (and the other host's RUNBOOK.md, whose rebuild command now names the next generation)
  expect(summarize(rebuilt.steps)).toEqual(
    [...all, FILE("backup321-storage-monitor-runbook")].sort(),
  );
  // `pulumi config set --path` edited inside the model, nothing else
  const model = (s: SiteInput) => JSON.parse(JSON.stringify(s)) as unknown;
  sc.site = clone(sc.site);
  Object.assign(host(sc.site, "db"), { generation: 2, disarmed: true });
  expect(JSON.parse(sc.stack.cli(["config", "get", "backup321:site"]).stdout)).toEqual(
    model(sc.site),
  );
  await sc.matchesFresh();
  expect(sc.backupFiles()).toEqual(survived);
  const cronDir = target.db.paths.cron;
  const cronFiles = fs.readdirSync(cronDir).filter((f) => f.startsWith("backup321-"));
  expect(cronFiles.length).toBeGreaterThan(3);
  const scheduled = () =>
    cronFiles.filter((f) =>
      fs
        .readFileSync(path.join(cronDir, f), "utf8")
        .split("\n")
        .some((l) => /^[0-9*]/.test(l)),
    );
  expect(scheduled()).toEqual([]);

  // The database from the disk: the newest full plus the shipped binlogs, to the moment before,
  // swapped in with the server's own stop and start.
  const full = survived.filter((f) => /_full_.*\.enc$/.test(f)).pop()!;
  expect(paste(newest, laptop)).toContain(`${path.basename(full)}: taken `);
  paste(pitr, laptop, { UNTIL: until });
  expect(table(fresh)).toBe(before);
  const datadirs = fs.readdirSync(fresh.dir).filter((d) => d.startsWith("data"));
  expect(datadirs).toEqual(["data", expect.stringMatching(/^data\.before-pitr-\d{8}T\d{6}$/)]);

  // The re-arm, once the restore is done: only the cron files change, and every job runs green.
  paste(rearm, laptop);
  expect(summarize(laptop.ups()[1].steps)).toEqual(
    all.filter((u) => u.endsWith("-crontab-file")).sort(),
  );
  host(sc.site, "db").disarmed = false;
  await sc.matchesFresh();
  expect(scheduled()).toEqual(cronFiles);
  sc.jobsGreen();
});

test("files are lost: RUNBOOK.md's restic restore, pasted as printed, brings them back, and refuses to run twice over them", () => {
  // (the files host is "storage" since the rename above)
  const step = scenario("files are lost").steps.find((s) => s.say.includes("repository docs"))!;
  expect(step.on).toBe("storage");
  const laptop = sc.stack.laptop();
  const into = path.join(sc.target.base, "restore", "docs");
  paste(step, laptop, { TARGET: into });
  const original = path.join(sc.target.files.root, "data", "report.txt");
  expect(fs.readFileSync(path.join(into, original), "utf8")).toBe(
    fs.readFileSync(original, "utf8"),
  );
  expect(fs.existsSync(`${into}.partial`)).toBe(false);
  const again = pasteStep(step, { TARGET: into });
  expect(again.code).not.toBe(0);
  expect(again.stderr).toContain(`${into} exists: restored already`);
});

test("pulumi destroy removes every managed file, cron entry and the backup user; backups and keys stay", async () => {
  const survived = sc.backupFiles();
  // README "Undeploy": the keys escrowed first (a destroy removes them from the state).
  const escrow = sc.stack.cli(["stack", "export", "--show-secrets"]);
  expect(escrow.code).toBe(0);
  for (const key of ["backup321-mariadb-key", "backup321-restic-local-password"]) {
    expect(escrow.stdout).toContain(`::${key}"`);
  }
  // RUNBOOK.md's key queries, pasted on the laptop, write what the hosts hold, each file 0600
  const laptop = sc.stack.laptop();
  const site = parseSite(sc.site);
  for (const step of keySteps(site, sc.stack.name)) paste(step, laptop);
  const keys = path.join(laptop.env.HOME!, "b321-keys");
  const held = {
    "restic-local.password": `${sc.target.db.paths.secrets}/restic-local.password`,
    "restic-docs.password": `${sc.target.files.paths.secrets}/restic-docs.password`,
    "mariadb.key": `${sc.target.db.paths.secrets}/mariadb-backup.key`,
  };
  expect(fs.readdirSync(keys).sort()).toEqual(Object.keys(held).sort());
  for (const [file, on] of Object.entries(held)) {
    const key = fs.readFileSync(on, "utf8").trim();
    expect(key.length).toBeGreaterThan(16);
    expect(fs.readFileSync(path.join(keys, file), "utf8").trim()).toBe(key);
    expect((fs.statSync(path.join(keys, file)).mode & 0o777).toString(8)).toBe("600");
  }
  // The MariaDB key is protected: destroy removes the rest, then stops at it.
  await expect(sc.stack.destroy()).rejects.toThrow(/protected/);
  for (const key of ["backup321-mariadb-key", "backup321-restic-local-password"])
    expect(await sc.stack.urn(RANDOM, key)).toContain(key);
  expect(sc.stack.cli(["state", "unprotect", "--all", "--yes"]).code).toBe(0);
  const steps = await sc.stack.destroy();
  expect(changes(steps).filter((s) => s.op !== "delete")).toEqual([]);

  const kept = {
    // the MariaDB key, the ring of every key it ever was, and the restic password
    db: [
      "etc/backup321/secrets/mariadb-backup.key",
      "etc/backup321/secrets/mariadb-backup.keyring",
      "etc/backup321/secrets/restic-local.password",
    ],
    files: ["etc/backup321/secrets/restic-docs.password"],
  };
  const trees = sc.target.trees();
  for (const h of ["db", "files"] as const) {
    const left = Object.entries(trees[h])
      .filter(([, e]) => e.type === "file")
      .map(([p]) => p)
      .sort();
    expect(left).toEqual(kept[h]);
  }
  for (const h of [sc.target.db, sc.target.files]) {
    expect(fs.readdirSync(h.paths.cron).filter((f) => f.startsWith("backup321"))).toEqual([]);
    // nor any job's status or metrics (PITR and restic init included): nothing reports a job gone
    for (const dir of [h.paths.status, h.paths.metrics]) {
      expect({ dir, left: fs.existsSync(dir) ? fs.readdirSync(dir) : [] }).toEqual({
        dir,
        left: [],
      });
    }
  }
  expect(sc.backupFiles()).toEqual(survived);
  expect(
    sc.target.mariadb.sql("SELECT COUNT(*) FROM mysql.user WHERE user='backup_user'").trim(),
  ).toBe("0");
  expect(summarize(await sc.stack.destroy())).toEqual([]);
});
