// What ends or breaks a host's life under a continuing stack, with the real engine: a host renamed
// in the model, a host unreachable during `pulumi up`, a wiped host rebuilt by raising its
// generation (then its database restored from the disk that survived), and `pulumi destroy`.
import * as fs from "node:fs";
import * as path from "node:path";
import { changes, summarize } from "../harness/engine";
import { DATABASE } from "../harness/lifecycle";
import { startSshd } from "../harness/sshd";
import { startMariaDb } from "../harness/mariadb";
import { freePort, run } from "../harness/proc";
import { clone } from "../harness/sites";
import { FILE, host, mariadb, repos, Scenario } from "../harness/scenario";
import { stateFilter } from "../../stacks/runbook";

let sc: Scenario;

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

test("a wiped db host comes back with its generation raised, then its database from the surviving disk", async () => {
  const { target } = sc;
  // A change after the newest full, shipped as a binlog: only the binlogs carry it.
  target.mariadb.sql(`INSERT INTO ${DATABASE}.t VALUES (10, 'after the full')`);
  const ship = run(path.join(target.db.paths.sbin, "b321-mariadb-binlogs"), []);
  expect(ship.stderr).toContain("finished: success");
  await new Promise((r) => setTimeout(r, 1100));
  const until = utcNow();
  const before = table(target.mariadb);
  const survived = sc.backupFiles();

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

  // RUNBOOK.md's command raises the generation (every command on the host runs again) and disarms
  // the host: its jobs are installed but none is scheduled while its data comes back.
  const all = await sc.commandsOf([
    "backup321-db-",
    "backup321-mariadb-",
    "backup321-restic-db-",
    "backup321-restic-local-",
  ]);
  await sc.converge(
    (s) => {
      host(s, "db").generation = 2;
      host(s, "db").disarmed = true;
    },
    all,
    { runJobs: false },
  );
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
  // RUNBOOK.md's re-arm, once the restore is done: only the cron files change.
  await sc.converge(
    (s) => {
      host(s, "db").disarmed = false;
    },
    all.filter((u) => u.endsWith("-crontab-file")),
  );
  expect(scheduled()).toEqual(cronFiles);
});

test("pulumi destroy removes every managed file, cron entry and the backup user; backups and keys stay", async () => {
  const survived = sc.backupFiles();
  // README "Undeploy": the keys escrowed first (a destroy removes them from the state).
  const escrow = sc.stack.cli(["stack", "export", "--show-secrets"]);
  expect(escrow.code).toBe(0);
  for (const key of ["backup321-mariadb-key", "backup321-restic-local-password"]) {
    expect(escrow.stdout).toContain(`::${key}"`);
  }
  // RUNBOOK.md's query of a restic password, on this export, gives what the host holds
  const query = run(
    "jq",
    ["-r", stateFilter("backup321-restic-local-password", ".outputs.result | reveal")],
    {
      input: escrow.stdout,
    },
  );
  const held = fs.readFileSync(`${sc.target.db.paths.etc}/secrets/restic-local.password`, "utf8");
  expect(held.trim().length).toBeGreaterThan(16);
  expect(query.stdout.trim()).toBe(held.trim());
  // The MariaDB key is protected: destroy removes the rest, then stops at it.
  await expect(sc.stack.destroy()).rejects.toThrow(/protected/);
  for (const key of ["backup321-mariadb-key", "backup321-restic-local-password"])
    expect(await sc.stack.urn(RANDOM, key)).toContain(key);
  expect(sc.stack.cli(["state", "unprotect", "--all", "--yes"]).code).toBe(0);
  const steps = await sc.stack.destroy();
  expect(changes(steps).filter((s) => s.op !== "delete")).toEqual([]);

  const kept = {
    db: ["etc/backup321/secrets/mariadb-backup.key", "etc/backup321/secrets/restic-local.password"],
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
    for (const d of ["status", "metrics"]) {
      const dir = path.join(h.paths.state, d);
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
