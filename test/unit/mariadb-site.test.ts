// The prod stack (the seed's site) under mocks: BackupSite builds MariaDbBackup for site.mariadb on
// db-srv, and the plan pushes its scripts, env files, cron files and the binlog drop-in there.
import { runStack, type Registration } from "../harness/program";
import { pushedFiles } from "../../infra/plan";

let recorded: Registration[];

beforeAll(async () => {
  recorded = await runStack("prod");
}, 60_000);

test("MariaDbBackup is a child of BackupSite, once", () => {
  const site = recorded.find((r) => r.type === "backup321:site:BackupSite")!;
  const mdb = recorded.filter((r) => r.type === "backup321:mariadb:MariaDbBackup");
  expect(mdb.map((r) => [r.name, r.parent])).toEqual([["backup321-mariadb", site.urn]]);
});

test("db-srv, the primary, receives binlog shipping, PITR, secrets and the drop-in, not the fulls (the whole prod plan of db-srv, pinned)", () => {
  const files = pushedFiles(recorded)
    .filter((f) => f.host === "db-srv")
    .map((f) => `${f.path}${f.content === undefined ? " (secret)" : ""}`)
    .sort();
  expect(files).toEqual(
    [
      "/etc/backup321/RUNBOOK.md",
      "/etc/backup321/alert.env",
      "/etc/backup321/jobs.d/mariadb-binlogs.json",
      "/etc/backup321/jobs.d/monitor.json",
      "/etc/backup321/jobs.d/nas-sync.json",
      "/etc/backup321/monitor.env",
      "/etc/backup321/nas-sync.env",
      "/etc/backup321/secrets/alert-webhook-url (secret)",
      "/etc/cron.d/backup321-monitor",
      "/etc/cron.d/backup321-nas-sync",
      "/usr/local/lib/backup321/monitor.sh",
      "/usr/local/lib/backup321/nas-sync.sh",
      "/usr/local/sbin/b321-monitor",
      "/usr/local/sbin/b321-nas-sync",
      "/etc/backup321/mariadb-binlogs.env",
      "/etc/backup321/mariadb-pitr.env",
      "/etc/backup321/secrets/mariadb-backup.cnf (secret)",
      "/etc/backup321/secrets/mariadb-backup.key (secret)",
      "/etc/cron.d/backup321-mariadb-binlogs",
      "/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf",
      "/usr/local/lib/backup321/alert.sh",
      "/usr/local/lib/backup321/b321-cron.sh",
      "/usr/local/lib/backup321/common.sh",
      "/usr/local/lib/backup321/evidence.sh",
      "/usr/local/lib/backup321/mariadb-binlogs.sh",
      "/usr/local/lib/backup321/mariadb-full.sh",
      "/usr/local/lib/backup321/mariadb-lib.sh",
      "/usr/local/lib/backup321/mariadb-pitr.sh",
      "/usr/local/lib/backup321/mariadb-restore-test.sh",
      "/usr/local/sbin/b321-evidence",
      "/usr/local/sbin/b321-mariadb-binlogs",
      "/usr/local/sbin/b321-mariadb-pitr",
    ].sort(),
  );
});

test("db-replica takes and tests the fulls: their jobs, the key and the option file, no binlog job, no drop-in", () => {
  const files = pushedFiles(recorded)
    .filter((f) => f.host === "db-replica")
    .map((f) => `${f.path}${f.content === undefined ? " (secret)" : ""}`);
  for (const f of [
    "/etc/backup321/mariadb-full.env",
    "/etc/backup321/mariadb-restore-test.env",
    "/etc/cron.d/backup321-mariadb-full",
    "/etc/cron.d/backup321-mariadb-restore-test",
    "/etc/backup321/secrets/mariadb-backup.cnf (secret)",
    "/etc/backup321/secrets/mariadb-backup.key (secret)",
    "/usr/local/lib/backup321/mariadb-full.sh",
    "/usr/local/lib/backup321/mariadb-lib.sh",
    // the fulls go to the bucket from where they are
    "/etc/backup321/offsite-upload.env",
    "/etc/cron.d/backup321-offsite-upload",
  ])
    expect(files).toContain(f);
  for (const f of [
    "/etc/backup321/mariadb-binlogs.env",
    "/etc/backup321/mariadb-pitr.env",
    "/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf",
  ])
    expect(files).not.toContain(f);
  const env = pushedFiles(recorded).find(
    (f) => f.host === "db-replica" && f.path === "/etc/backup321/mariadb-full.env",
  )!;
  expect(env.content).toMatch(/^MARIADB_REPLICA_MAX_LAG='300'$/m);
  const primaryEnv = pushedFiles(recorded).find(
    (f) => f.host === "db-srv" && f.path === "/etc/backup321/mariadb-binlogs.env",
  )!;
  expect(primaryEnv.content).not.toMatch(/MARIADB_REPLICA_MAX_LAG/);
});

test("the backup user is created on the primary only, with the replica's grants", () => {
  const users = recorded.filter((r) => r.name.endsWith("-user") && r.name.includes("mariadb"));
  expect(users.map((u) => u.name)).toEqual(["backup321-mariadb-user"]);
  expect(String(users[0].inputs.create)).toContain(
    "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR, REPLICATION SLAVE ADMIN ON *.* TO 'backup_user'@'localhost';",
  );
});

test("db-srv's readiness check requires the MariaDB tools", () => {
  const ready = recorded.find((r) => r.name === "backup321-db-srv-ready")!;
  for (const t of ["mariadb-backup", "mbstream", "mariadb-binlog", "zstd", "openssl"]) {
    expect(String(ready.inputs.create)).toContain(`'${t}'`);
  }
});
