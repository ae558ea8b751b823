// The commands MariaDbBackup registers, taken from a mock run and executed over real SSH against a
// sandbox and a real MariaDB: twice (the second run changes nothing and does not restart the
// server), the installed jobs run, a password rotation (an update) moves user and file together,
// delete drops the user. Every install records its resource as the owner (<state>/owners) and every
// delete forgets it.
import * as fs from "node:fs";
import { ownerStamps } from "../harness/program";
import { useRig } from "../harness/rig";
import { run } from "../harness/proc";
import { sandboxMariaDbModel, seedSchema, tableCounts } from "./mariadb-fixture";

const DB = "atlastech_db";

const restarts = () =>
  fs.existsSync(rig.box.at("restarts.log"))
    ? fs.readFileSync(rig.box.at("restarts.log"), "utf8").trim().split("\n").length
    : 0;

const owners = () => `${rig.box.paths.owners}`;

/**
 * What a second apply must leave as it is: every file under the sandbox with its mtime and mode,
 * except the owner stamps, which each install writes again: those by name, mode and content.
 */
const files = () =>
  run("find", [
    rig.box.root,
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
  rig.mariadb
    .sql("SHOW GRANTS FOR 'backup_user'@'localhost'")
    .trim()
    .split("\n")
    .map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']*'/, ""))
    .sort();

const rig = useRig({
  prefix: "b321-mdb-comp-",
  mariadb: true,
  host: { name: "db", hostName: "db-srv" },
  prepare: ({ mariadb }) => {
    mariadb.sql(seedSchema(DB));
  },
  program: async ({ box, mariadb: server }, host) => {
    const { MariaDbBackup } = await import("../../components/mariadb");
    const { mariadb } = await import("../../stacks/model/mariadb");
    new MariaDbBackup("mdb", {
      host,
      siteName: "atlastech",
      timezone: "Europe/Paris",
      socket: server.socket,
      restartCommand: `echo restart >> ${box.at("restarts.log")}`,
      config: mariadb.parse(sandboxMariaDbModel(box.at, server, DB)),
    });
  },
});

test("first apply: user with exactly the physical grants, 0600 option and key files, drop-in, one restart", () => {
  rig.applyCreates();
  expect(grants()).toEqual([
    "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO `backup_user`@`localhost`",
    "GRANT SELECT ON `atlastech_db`.* TO `backup_user`@`localhost`",
  ]);
  const cnf = `${rig.box.paths.secrets}/mariadb-backup.cnf`;
  const key = `${rig.box.paths.secrets}/mariadb-backup.key`;
  for (const f of [cnf, key]) expect((fs.statSync(f).mode & 0o777).toString(8)).toBe("600");
  expect(fs.readFileSync(cnf, "utf8")).toContain(
    "user=backup_user\npassword=mock-password-mdb-password\n",
  );
  expect(fs.readFileSync(key, "utf8")).toBe("mock-password-mdb-key\n");
  expect(
    fs.readFileSync(rig.box.at("etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf"), "utf8"),
  ).toContain("binlog_format = ROW");
  expect(restarts()).toBe(1);
  expect(
    fs.readFileSync(rig.box.at("etc/mysql/mariadb.conf.d/99-backup321-flushing.cnf"), "utf8"),
  ).toContain("innodb_max_dirty_pages_pct_lwm = 10\n");
  expect(rig.mariadb.sql("SELECT @@innodb_max_dirty_pages_pct_lwm").trim()).toBe("10.000000");
  // The user, the drop-in and every removable file name this component as their owner; the key
  // file (never deleted) has no stamp.
  const stamps = ownerStamps(owners());
  expect(stamps).toContain(`mdb-user mariadb-user:backup_user@${rig.mariadb.socket}`);
  expect(stamps).toContain(
    `mdb-binlog-conf ${rig.box.at("etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf")}`,
  );
  expect(stamps).toContain(
    `mdb-flushing-conf ${rig.box.at("etc/mysql/mariadb.conf.d/99-backup321-flushing.cnf")}`,
  );
  expect(stamps).toContain(`mdb-client-cnf-file ${cnf}`);
  expect(stamps.filter((s) => s.endsWith(` ${key}`))).toEqual([]);
  expect(stamps).toHaveLength(rig.steps.filter((s) => s.delete).length);
  for (const job of ["mariadb-full", "mariadb-binlogs", "mariadb-restore-test"]) {
    expect(fs.existsSync(`${rig.box.paths.cron}/backup321-${job}`)).toBe(true);
    expect(fs.existsSync(`${rig.box.paths.sbin}/b321-${job}`)).toBe(true);
  }
  expect(fs.existsSync(`${rig.box.paths.sbin}/b321-mariadb-pitr`)).toBe(true);
  expect(fs.existsSync(`${rig.box.paths.cron}/backup321-mariadb-pitr`)).toBe(false);
});

test("second apply changes nothing and does not restart MariaDB", () => {
  const before = files();
  expect(before).toContain(`${owners()}/`);
  rig.applyCreates();
  expect(files()).toBe(before);
  expect(restarts()).toBe(1);
});

test("the installed jobs run: full, binlog shipping, restore test", () => {
  for (const job of ["mariadb-full", "mariadb-binlogs", "mariadb-restore-test"]) {
    const r = run(`${rig.box.paths.sbin}/b321-${job}`, []);
    expect({ job, code: r.code, tail: r.stderr.split("\n").slice(-3).join("\n") }).toMatchObject({
      job,
      code: 0,
    });
  }
  const status = JSON.parse(
    fs.readFileSync(`${rig.box.paths.status}/mariadb-restore-test.json`, "utf8"),
  );
  expect(status).toMatchObject({ result: "success", tables: 8 });
  expect(status.rows).toBe(
    Object.values(tableCounts(rig.mariadb.sql, DB)).reduce((a, b) => a + b, 0),
  );
});

test("a restart that does not bring the server back fails loudly", () => {
  const conf = rig.step("mdb-binlog-conf");
  const broken = conf.create!.replace(`echo restart >> ${rig.box.at("restarts.log")}`, "false");
  const r = rig.sshd.exec(broken, `${conf.stdin}# changed\n`);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("restart failed");
  const down = conf
    .create!.replace(rig.mariadb.socket, rig.box.at("no-such.sock"))
    .replace("seq 1 120", "seq 1 2");
  const r2 = rig.sshd.exec(down, conf.stdin);
  expect(r2.code).not.toBe(0);
  expect(r2.stderr).toContain("does not answer");
  rig.sshd.exec(conf.create!, conf.stdin); // back to the managed content
});

test("under the low water mark it sets, an idle server flushes its dirty pages; under MariaDB's 0 it never does", () => {
  const dirty = () =>
    Number(
      rig.mariadb.sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").split("\t")[1],
    );
  const idle = (ms: number) => {
    const deadline = Date.now() + ms;
    while (dirty() > 0 && Date.now() < deadline) run("sleep", ["0.5"]);
    return dirty();
  };
  // the day's writes, then the quiet hours: with the value the first apply set, they are flushed
  rig.mariadb.sql(
    "CREATE DATABASE flush_probe; CREATE TABLE flush_probe.t (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB SELECT seq AS id, REPEAT('x', 150) AS v FROM flush_probe.seq_1_to_20000",
  );
  expect(idle(60_000)).toBe(0);
  // MariaDB's default: the same writes stay dirty, and the checkpoint with them
  rig.mariadb.sql("SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0");
  rig.mariadb.sql("UPDATE flush_probe.t SET v = REPEAT('y', 150)");
  const before = dirty();
  expect(before).toBeGreaterThan(100);
  expect(idle(5_000)).toBeGreaterThanOrEqual(before);
  const conf = rig.step("mdb-flushing-conf");
  expect(rig.sshd.exec(conf.create!, conf.stdin).code).toBe(0);
  rig.mariadb.sql("DROP DATABASE flush_probe");
});

test("rotating the password (an update) alters the user and rewrites the option file together", () => {
  const rotated = rig.steps.map((s) => ({
    ...s,
    stdin: s.stdin?.replace(/mock-password-mdb-password/g, "Rotated9Password"),
  }));
  rig.applyUpdates(
    rotated.filter((s) => s.name === "mdb-user" || s.name === "mdb-client-cnf-file"),
  );
  const cnf = `${rig.box.paths.secrets}/mariadb-backup.cnf`;
  expect(fs.readFileSync(cnf, "utf8")).toContain("password=Rotated9Password");
  const r = run("mariadb", [
    `--defaults-extra-file=${cnf}`,
    `--socket=${rig.mariadb.socket}`,
    "-e",
    "SELECT 1",
  ]);
  expect(r.code).toBe(0);
  const old = run("mariadb", [
    "--no-defaults",
    `--socket=${rig.mariadb.socket}`,
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
  rig.applyDeletes();
  rig.applyDeletes();
  expect(rig.mariadb.sql("SELECT COUNT(*) FROM mysql.user WHERE user = 'backup_user'").trim()).toBe(
    "0",
  );
  expect(fs.existsSync(`${rig.box.paths.cron}/backup321-mariadb-full`)).toBe(false);
  expect(fs.existsSync(rig.box.at("etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf"))).toBe(false);
  expect(fs.existsSync(rig.box.at("etc/mysql/mariadb.conf.d/99-backup321-flushing.cnf"))).toBe(
    false,
  );
  // Each delete forgot its owner stamp; the key (never deleted) stays.
  expect(ownerStamps(owners())).toEqual([]);
  expect(fs.existsSync(`${rig.box.paths.secrets}/mariadb-backup.key`)).toBe(true);
  // backups are never deleted
  expect(
    fs.readdirSync(rig.box.at("backups/database")).some((f) => f.endsWith(".manifest.json")),
  ).toBe(true);
});
