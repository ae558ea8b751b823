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

test("db-srv receives the scripts, env files, cron files, secrets and the drop-in (the whole prod plan of db-srv, pinned)", () => {
  const files = pushedFiles(recorded)
    .filter((f) => f.host === "db-srv")
    .map((f) => `${f.path}${f.content === undefined ? " (secret)" : ""}`)
    .sort();
  expect(files).toEqual(
    [
      "/etc/backup321/RUNBOOK.md",
      "/etc/backup321/alert.env",
      "/etc/backup321/jobs.d/mariadb-binlogs.json",
      "/etc/backup321/jobs.d/mariadb-full.json",
      "/etc/backup321/jobs.d/mariadb-restore-test.json",
      "/etc/backup321/jobs.d/monitor.json",
      "/etc/backup321/jobs.d/nas-sync.json",
      "/etc/backup321/jobs.d/offsite-upload.json",
      "/etc/backup321/monitor.env",
      "/etc/backup321/nas-sync.env",
      "/etc/backup321/offsite-upload.env",
      "/etc/backup321/secrets/alert-webhook-url (secret)",
      "/etc/backup321/secrets/offsite-upload-aws (secret)",
      "/etc/cron.d/backup321-monitor",
      "/etc/cron.d/backup321-nas-sync",
      "/etc/cron.d/backup321-offsite-upload",
      "/usr/local/lib/backup321/monitor.sh",
      "/usr/local/lib/backup321/nas-sync.sh",
      "/usr/local/lib/backup321/offsite-upload.sh",
      "/usr/local/sbin/b321-monitor",
      "/usr/local/sbin/b321-nas-sync",
      "/usr/local/sbin/b321-offsite-upload",
      "/etc/backup321/mariadb-binlogs.env",
      "/etc/backup321/mariadb-full.env",
      "/etc/backup321/mariadb-pitr.env",
      "/etc/backup321/mariadb-restore-test.env",
      "/etc/backup321/secrets/mariadb-backup.cnf (secret)",
      "/etc/backup321/secrets/mariadb-backup.key (secret)",
      "/etc/cron.d/backup321-mariadb-binlogs",
      "/etc/cron.d/backup321-mariadb-full",
      "/etc/cron.d/backup321-mariadb-restore-test",
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
      "/usr/local/sbin/b321-mariadb-full",
      "/usr/local/sbin/b321-mariadb-pitr",
      "/usr/local/sbin/b321-mariadb-restore-test",
    ].sort(),
  );
});

test("db-srv's readiness check requires the MariaDB tools", () => {
  const ready = recorded.find((r) => r.name === "backup321-db-srv-ready")!;
  for (const t of ["mariadb-backup", "mbstream", "mariadb-binlog", "zstd", "openssl"]) {
    expect(String(ready.inputs.create)).toContain(`'${t}'`);
  }
});
