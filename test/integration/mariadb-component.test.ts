// The commands MariaDbBackup registers, taken from a mock run and executed over real SSH against a
// sandbox and a real MariaDB: twice (the second run changes nothing and does not restart the
// server), the installed jobs run, a password rotation (an update) moves user and file together,
// delete drops the user. Every install records its resource as the owner (<state>/owners) and every
// delete forgets it.
import * as fs from "node:fs";
import { startSshd, type Sshd } from "../harness/sshd";
import { makeSandbox, type Sandbox } from "../harness/sandbox";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import {
  applyCreates,
  applyDeletes,
  applyUpdates,
  ownerStamps,
  remoteSteps,
  runMocked,
  type RemoteStep,
  sandboxHost,
} from "../harness/program";
import { run } from "../harness/proc";
import { sandboxMariaDbModel, seedSchema, tableCounts } from "./mariadb-fixture";

const DB = "atlastech_db";
let sshd: Sshd;
let box: Sandbox;
let server: MariaDbServer;
let steps: RemoteStep[];

const restarts = () =>
  fs.existsSync(box.at("restarts.log"))
    ? fs.readFileSync(box.at("restarts.log"), "utf8").trim().split("\n").length
    : 0;

const owners = () => `${box.paths.owners}`;

/**
 * What a second apply must leave as it is: every file under the sandbox with its mtime and mode,
 * except the owner stamps, which each install writes again: those by name, mode and content.
 */
const files = () =>
  run("find", [
    box.root,
    "-path",
    owners(),
    "-prune",
    "-o",
    "-type",
    "f",
    "-printf",
    "%p %T@ %m\\n",
  ]).stdout +
  run("find", [owners(), "-type", "f", "-printf", "%p %m ", "-exec", "cat", "{}", ";"]).stdout;

const grants = () =>
  server
    .sql("SHOW GRANTS FOR 'backup_user'@'localhost'")
    .trim()
    .split("\n")
    .map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']*'/, ""))
    .sort();

beforeAll(async () => {
  sshd = await startSshd();
  box = makeSandbox("b321-mdb-comp-");
  server = await startMariaDb();
  server.sql(seedSchema(DB));
  const recorded = await runMocked(async () => {
    const { MariaDbBackup } = await import("../../components/mariadb");
    const { mariadb } = await import("../../stacks/model/mariadb");
    const host = await sandboxHost("db", "db-srv", sshd, box.paths);
    new MariaDbBackup("mdb", {
      host,
      siteName: "atlastech",
      timezone: "Europe/Paris",
      socket: server.socket,
      restartCommand: `echo restart >> ${box.at("restarts.log")}`,
      config: mariadb.parse(sandboxMariaDbModel(box.at, server, DB)),
    });
  });
  steps = remoteSteps(recorded);
}, 120_000);

afterAll(async () => {
  await sshd?.stop();
  await server?.stop();
  box?.remove();
});

test("first apply: user with exactly the physical grants, 0600 option and key files, drop-in, one restart", () => {
  applyCreates(sshd, steps);
  expect(grants()).toEqual([
    "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO `backup_user`@`localhost`",
    "GRANT SELECT ON `atlastech_db`.* TO `backup_user`@`localhost`",
  ]);
  const cnf = `${box.paths.secrets}/mariadb-backup.cnf`;
  const key = `${box.paths.secrets}/mariadb-backup.key`;
  for (const f of [cnf, key]) expect((fs.statSync(f).mode & 0o777).toString(8)).toBe("600");
  expect(fs.readFileSync(cnf, "utf8")).toContain(
    "user=backup_user\npassword=mock-password-mdb-password\n",
  );
  expect(fs.readFileSync(key, "utf8")).toBe("mock-password-mdb-key\n");
  expect(
    fs.readFileSync(box.at("etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf"), "utf8"),
  ).toContain("binlog_format = ROW");
  expect(restarts()).toBe(1);
  // The user, the drop-in and every removable file name this component as their owner; the key
  // file (never deleted) has no stamp.
  const stamps = ownerStamps(owners());
  expect(stamps).toContain(`mdb-user mariadb-user:backup_user@${server.socket}`);
  expect(stamps).toContain(
    `mdb-binlog-conf ${box.at("etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf")}`,
  );
  expect(stamps).toContain(`mdb-client-cnf-file ${cnf}`);
  expect(stamps.filter((s) => s.endsWith(` ${key}`))).toEqual([]);
  expect(stamps).toHaveLength(steps.filter((s) => s.delete).length);
  for (const job of ["mariadb-full", "mariadb-binlogs", "mariadb-restore-test"]) {
    expect(fs.existsSync(`${box.paths.cron}/backup321-${job}`)).toBe(true);
    expect(fs.existsSync(`${box.paths.sbin}/b321-${job}`)).toBe(true);
  }
  expect(fs.existsSync(`${box.paths.sbin}/b321-mariadb-pitr`)).toBe(true);
  expect(fs.existsSync(`${box.paths.cron}/backup321-mariadb-pitr`)).toBe(false);
});

test("second apply changes nothing and does not restart MariaDB", () => {
  const before = files();
  expect(before).toContain(`${owners()}/`);
  applyCreates(sshd, steps);
  expect(files()).toBe(before);
  expect(restarts()).toBe(1);
});

test("the installed jobs run: full, binlog shipping, restore test", () => {
  for (const job of ["mariadb-full", "mariadb-binlogs", "mariadb-restore-test"]) {
    const r = run(`${box.paths.sbin}/b321-${job}`, []);
    expect({ job, code: r.code, tail: r.stderr.split("\n").slice(-3).join("\n") }).toMatchObject({
      job,
      code: 0,
    });
  }
  const status = JSON.parse(
    fs.readFileSync(`${box.paths.status}/mariadb-restore-test.json`, "utf8"),
  );
  expect(status).toMatchObject({ result: "success", tables: 8 });
  expect(status.rows).toBe(Object.values(tableCounts(server.sql, DB)).reduce((a, b) => a + b, 0));
});

test("a restart that does not bring the server back fails loudly", () => {
  const conf = steps.find((s) => s.name === "mdb-binlog-conf")!;
  const broken = conf.create!.replace(`echo restart >> ${box.at("restarts.log")}`, "false");
  const r = sshd.exec(broken, `${conf.stdin}# changed\n`);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("restart failed");
  const down = conf
    .create!.replace(server.socket, box.at("no-such.sock"))
    .replace("seq 1 120", "seq 1 2");
  const r2 = sshd.exec(down, conf.stdin);
  expect(r2.code).not.toBe(0);
  expect(r2.stderr).toContain("does not answer");
  sshd.exec(conf.create!, conf.stdin); // back to the managed content
});

test("rotating the password (an update) alters the user and rewrites the option file together", () => {
  const rotated = steps.map((s) => ({
    ...s,
    stdin: s.stdin?.replace(/mock-password-mdb-password/g, "Rotated9Password"),
  }));
  applyUpdates(
    sshd,
    rotated.filter((s) => s.name === "mdb-user" || s.name === "mdb-client-cnf-file"),
  );
  const cnf = `${box.paths.secrets}/mariadb-backup.cnf`;
  expect(fs.readFileSync(cnf, "utf8")).toContain("password=Rotated9Password");
  const r = run("mariadb", [
    `--defaults-extra-file=${cnf}`,
    `--socket=${server.socket}`,
    "-e",
    "SELECT 1",
  ]);
  expect(r.code).toBe(0);
  const old = run("mariadb", [
    "--no-defaults",
    `--socket=${server.socket}`,
    "-ubackup_user",
    "-pmock-password-mdb-password",
    "-e",
    "SELECT 1",
  ]);
  expect(old.code).not.toBe(0);
  // The user keeps exactly its grants.
  expect(grants()).toEqual([
    "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO `backup_user`@`localhost`",
    "GRANT SELECT ON `atlastech_db`.* TO `backup_user`@`localhost`",
  ]);
});

test("delete drops the user and removes the installed files; a second delete succeeds", () => {
  applyDeletes(sshd, steps);
  applyDeletes(sshd, steps);
  expect(server.sql("SELECT COUNT(*) FROM mysql.user WHERE user = 'backup_user'").trim()).toBe("0");
  expect(fs.existsSync(`${box.paths.cron}/backup321-mariadb-full`)).toBe(false);
  expect(fs.existsSync(box.at("etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf"))).toBe(false);
  // Each delete forgot its owner stamp; the key (never deleted) stays.
  expect(ownerStamps(owners())).toEqual([]);
  expect(fs.existsSync(`${box.paths.secrets}/mariadb-backup.key`)).toBe(true);
  // backups are never deleted
  expect(fs.readdirSync(box.at("backups/database")).some((f) => f.endsWith(".manifest.json"))).toBe(
    true,
  );
});
