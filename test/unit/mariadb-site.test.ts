// The prod stack (the seed's site) under mocks: BackupSite builds MariaDbBackup for site.mariadb on
// db-srv, and the plan pushes its scripts, env files, cron files and the binlog drop-in there.
import { runMocked, runStack, type Registration } from "../harness/program";
import { readStackFile } from "../../infra/stackFile";
import { pushedFiles } from "../../infra/plan";
import { MOCK_PUBLIC_KEY, reveal } from "../../infra/mockRuntime";

let recorded: Registration[];

beforeAll(async () => {
  recorded = await runStack("prod");
}, 60_000);

test("MariaDbBackup is a child of BackupSite, once", () => {
  const site = recorded.find((r) => r.type === "backup321:site:BackupSite")!;
  const mdb = recorded.filter((r) => r.type === "backup321:mariadb:MariaDbBackup");
  expect(mdb.map((r) => [r.name, r.parent])).toEqual([["backup321-mariadb", site.urn]]);
});

test("db-srv, the primary, receives binlog shipping, PITR, the fulls' receiver, the upload, secrets and the drop-in, no full job (the whole prod plan of db-srv, pinned)", () => {
  const files = pushedFiles(recorded)
    .filter((f) => f.host === "db-srv")
    .map((f) => `${f.path}${f.content === undefined ? " (secret)" : ""}`)
    .sort();
  expect(files).toEqual(
    [
      "/etc/backup321/RUNBOOK.md",
      "/etc/backup321/alert.env",
      "/etc/backup321/jobs.d/mariadb-binlogs.json",
      "/etc/backup321/jobs.d/mariadb-pitr-drill.json",
      "/etc/backup321/mariadb-pitr-drill.env",
      "/etc/cron.d/backup321-mariadb-pitr-drill",
      "/usr/local/sbin/b321-mariadb-pitr-drill",
      "/etc/backup321/jobs.d/monitor.json",
      "/etc/backup321/jobs.d/nas-sync-drill.json",
      "/etc/backup321/jobs.d/nas-sync.json",
      "/etc/backup321/jobs.d/offsite-upload-drill.json",
      "/etc/backup321/jobs.d/offsite-upload.json",
      "/etc/backup321/monitor.env",
      "/etc/backup321/nas-sync-drill.env",
      "/etc/backup321/nas-sync.env",
      "/etc/backup321/offsite-upload-drill.env",
      "/etc/backup321/offsite-upload.env",
      "/etc/backup321/secrets/offsite-upload-aws (secret)",
      "/etc/cron.d/backup321-offsite-upload",
      "/usr/local/lib/backup321/mariadb-receive.sh",
      "/usr/local/lib/backup321/offsite-upload.sh",
      "/usr/local/sbin/b321-offsite-upload",
      "/etc/backup321/secrets/alert-webhook-url (secret)",
      "/etc/cron.d/backup321-monitor",
      "/etc/cron.d/backup321-nas-sync",
      "/etc/cron.d/backup321-nas-sync-drill",
      "/etc/cron.d/backup321-offsite-upload-drill",
      "/usr/local/lib/backup321/monitor.sh",
      "/usr/local/lib/backup321/nas-drill.sh",
      "/usr/local/lib/backup321/nas-pull.sh",
      "/usr/local/lib/backup321/nas-sync.sh",
      "/usr/local/lib/backup321/offsite-drill.sh",
      "/usr/local/sbin/b321-monitor",
      "/usr/local/sbin/b321-nas-sync",
      "/usr/local/sbin/b321-nas-sync-drill",
      "/usr/local/sbin/b321-offsite-upload-drill",
      "/etc/backup321/mariadb-binlogs.env",
      "/etc/backup321/mariadb-pitr.env",
      "/etc/backup321/secrets/mariadb-backup.cnf (secret)",
      "/etc/backup321/secrets/mariadb-backup.key (secret)",
      "/etc/backup321/secrets/mariadb-backup.keyring (secret)",
      "/etc/cron.d/backup321-mariadb-binlogs",
      "/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf",
      "/etc/mysql/mariadb.conf.d/99-backup321-flushing.cnf",
      "/usr/local/lib/backup321/alert.sh",
      "/usr/local/lib/backup321/b321-cron.sh",
      "/usr/local/lib/backup321/common.sh",
      "/usr/local/lib/backup321/evidence.sh",
      "/usr/local/lib/backup321/mariadb-binlogs.sh",
      "/usr/local/lib/backup321/mariadb-full.sh",
      "/usr/local/lib/backup321/mariadb-incremental.sh",
      "/usr/local/lib/backup321/mariadb-lib.sh",
      "/usr/local/lib/backup321/mariadb-pitr.sh",
      "/usr/local/lib/backup321/mariadb-pitr-drill.sh",
      "/usr/local/lib/backup321/mariadb-restore-test.sh",
      "/usr/local/sbin/b321-evidence",
      "/usr/local/sbin/b321-mariadb-binlogs",
      "/usr/local/sbin/b321-mariadb-pitr",
    ].sort(),
  );
});

test("db-replica takes, tests and hands over the fulls: their jobs, the key and the option file, no binlog job, no upload, no drop-in", () => {
  const files = pushedFiles(recorded)
    .filter((f) => f.host === "db-replica")
    .map((f) => `${f.path}${f.content === undefined ? " (secret)" : ""}`);
  for (const f of [
    "/etc/backup321/mariadb-full.env",
    "/etc/backup321/mariadb-incremental.env",
    "/etc/backup321/mariadb-restore-test.env",
    "/etc/cron.d/backup321-mariadb-full",
    "/etc/cron.d/backup321-mariadb-incremental",
    "/etc/cron.d/backup321-mariadb-restore-test",
    "/etc/backup321/secrets/mariadb-backup.cnf (secret)",
    "/etc/backup321/secrets/mariadb-backup.key (secret)",
    "/usr/local/lib/backup321/mariadb-full.sh",
    "/usr/local/lib/backup321/mariadb-lib.sh",
  ])
    expect(files).toContain(f);
  for (const f of [
    // the upload and the NAS sync run on db-srv, which keeps the handed fulls
    "/etc/backup321/offsite-upload.env",
    "/etc/backup321/nas-sync.env",
    "/etc/backup321/mariadb-binlogs.env",
    "/etc/backup321/mariadb-pitr.env",
    "/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf",
  ])
    expect(files).not.toContain(f);
  const env = pushedFiles(recorded).find(
    (f) => f.host === "db-replica" && f.path === "/etc/backup321/mariadb-full.env",
  )!;
  expect(env.content).toMatch(/^MARIADB_REPLICA_MAX_LAG='300'$/m);
  for (const line of [
    "MARIADB_HANDOFF_USER='root'",
    "MARIADB_HANDOFF_ADDRESS='192.168.10.25'",
    "MARIADB_HANDOFF_PORT='22'",
    "MARIADB_HANDOFF_DIR='/backups/database'",
    "MARIADB_HANDOFF_KEY='/etc/backup321/secrets/mariadb-handoff_ed25519'",
    "MARIADB_HANDOFF_KNOWN_HOSTS='/etc/backup321/mariadb-handoff.known_hosts'",
  ])
    expect(env.content?.split("\n")).toContain(line);
  const primaryEnv = pushedFiles(recorded).find(
    (f) => f.host === "db-srv" && f.path === "/etc/backup321/mariadb-binlogs.env",
  )!;
  expect(primaryEnv.content).not.toMatch(/MARIADB_REPLICA_MAX_LAG/);
});

test("the backup user is created on the primary only, with the replica's grants", () => {
  const users = recorded.filter(
    (r) => r.name.endsWith("-user") && r.name.includes("mariadb") && !r.name.includes("-stream-"),
  );
  expect(users.map((u) => u.name)).toEqual(["backup321-mariadb-user"]);
  expect(String(users[0].inputs.create)).toContain(
    "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR, REPLICATION SLAVE ADMIN ON *.* TO 'backup_user'@'localhost';",
  );
});

test("db-srv's and db-replica's readiness checks require the MariaDB tools and the handoff's", () => {
  for (const host of ["db-srv", "db-replica"]) {
    const ready = recorded.find((r) => r.name === `backup321-${host}-ready`)!;
    for (const t of [
      "mariadb-backup",
      "mbstream",
      "mariadb-binlog",
      "zstd",
      "openssl",
      "rsync",
      "ssh",
      "ssh-keygen",
    ]) {
      expect(String(ready.inputs.create)).toContain(`'${t}'`);
    }
  }
  const files = recorded.find((r) => r.name === "backup321-docker-srv-ready")!;
  expect(String(files.inputs.create)).not.toContain("'ssh-keygen'");
});

test("the handoff: the replica's key made on db-replica, a restricted forced-command line in root's authorized_keys on db-srv", () => {
  const one = (name: string) => recorded.find((r) => r.name === name)!;
  const host = (r: Registration) => (reveal(r.inputs.connection) as { host: string }).host;
  const key = one("backup321-mariadb-replica-handoff-key");
  expect(host(key)).toBe("192.168.10.21");
  expect(String(key.inputs.create)).toContain("ssh-keygen -q -t ed25519 -N ''");
  // never deleted: like every key, it may still be needed
  expect(key.inputs.delete).toBeUndefined();
  const auth = one("backup321-mariadb-replica-handoff-authorized-key");
  expect(host(auth)).toBe("192.168.10.25");
  expect(auth.inputs.stdin).toBe(
    `restrict,command="/usr/local/lib/backup321/mariadb-receive.sh /backups/database 4 60 7" ${MOCK_PUBLIC_KEY.split(" ").slice(0, 2).join(" ")} backup321-mariadb-handoff@db-replica\n`,
  );
  expect(String(auth.inputs.create)).toContain("/root/.ssh/authorized_keys");
  // removing the replica removes its line, and only its line
  expect(String(auth.inputs.delete)).toContain("backup321-mariadb-handoff@db-replica");
  const pinned = one("backup321-mariadb-replica-handoff-known-hosts");
  expect(host(pinned)).toBe("192.168.10.21");
  expect(String(pinned.inputs.create)).toContain(
    "ssh-keyscan -T 15 -t ed25519 -p 22 -- '192.168.10.25'",
  );
});

test("prod's DR drill on db-replica: its own key, read-only on the NAS, the NAS host key pinned, a yearly job", () => {
  const one = (name: string) => {
    const r = recorded.filter((x) => x.name === name);
    expect(r).toHaveLength(1);
    return r[0];
  };
  const host = (r: Registration) => (reveal(r.inputs.connection) as { host: string }).host;
  const mdb = one("backup321-mariadb");
  const drill = recorded.find(
    (r) => r.type === "backup321:mariadb:DrDrill" && r.name === "backup321-mariadb-dr-drill",
  )!;
  expect(drill.parent).toBe(mdb.urn);
  const key = one("backup321-mariadb-dr-drill-key");
  expect(key.parent).toBe(drill.urn);
  expect(host(key)).toBe("192.168.10.21");
  expect(String(key.inputs.create)).toContain(
    "ssh-keygen -q -t ed25519 -N '' -C 'backup321-nas-read@db-replica' -f '/etc/backup321/secrets/nas-read_ed25519'",
  );
  expect(key.inputs.delete).toBeUndefined();
  // on the NAS, as its own user (no sudo there), read-only, beside the sync key's line
  const auth = one("backup321-mariadb-dr-drill-authorized-key");
  expect(host(auth)).toBe("192.168.10.30");
  expect(auth.inputs.stdin).toBe(
    `restrict,command="/home/backup/.backup321/nas-receive.sh --read-only /backups/atlastech" ${MOCK_PUBLIC_KEY.split(" ").slice(0, 2).join(" ")} backup321-nas-read@db-replica\n`,
  );
  expect(String(auth.inputs.create)).toContain("/home/backup/.ssh/authorized_keys");
  expect(String(auth.inputs.create)).not.toContain("sudo");
  expect(String(auth.inputs.delete)).toContain("backup321-nas-read@db-replica");
  expect(String(auth.inputs.delete)).not.toContain("backup321-nas-sync@");
  const pinned = one("backup321-mariadb-dr-drill-known-hosts");
  expect(host(pinned)).toBe("192.168.10.21");
  expect(String(pinned.inputs.create)).toContain(
    "ssh-keyscan -T 15 -t ed25519 -p 22 -- '192.168.10.30'",
  );
  const files = pushedFiles(recorded).filter((f) => f.host === "db-replica");
  const paths = files.map((f) => f.path);
  for (const f of [
    "/usr/local/lib/backup321/mariadb-dr-drill.sh",
    "/usr/local/lib/backup321/nas-pull.sh",
    "/etc/backup321/jobs.d/mariadb-dr-drill.json",
    "/usr/local/sbin/b321-mariadb-dr-drill",
  ])
    expect(paths).toContain(f);
  // the replica's key file and scripts serve the drill too: one file, one resource
  expect(paths.filter((p) => p === "/etc/backup321/secrets/mariadb-backup.key")).toHaveLength(1);
  const cron = files.find((f) => f.path === "/etc/cron.d/backup321-mariadb-dr-drill")!;
  expect(cron.content).toContain("0 6 10 3 * root ");
  const env = files.find((f) => f.path === "/etc/backup321/mariadb-dr-drill.env")!;
  for (const line of [
    "B321_JOB='mariadb-dr-drill'",
    "NAS_USER='backup'",
    "NAS_ADDRESS='192.168.10.30'",
    "NAS_PORT='22'",
    "NAS_PATH='/backups/atlastech'",
    "NAS_KEY='/etc/backup321/secrets/nas-read_ed25519'",
    "NAS_KNOWN_HOSTS='/etc/backup321/mariadb-dr-drill.known_hosts'",
    "NAS_SOURCES='/backups/database /backups/binlogs'",
    "DRILL_SCRATCH='/var/lib/backup321/dr-scratch'",
    "MARIADB_BACKUP_DIR='/backups/database'",
    "MARIADB_BINLOG_BACKUP_DIR='/backups/binlogs'",
    "MARIADB_KEY_FILE='/etc/backup321/secrets/mariadb-backup.key'",
  ])
    expect(env.content?.split("\n")).toContain(line);
  expect(env.content).toMatch(/^MARIADB_KEY_FINGERPRINT='[0-9a-f]{64}'$/m);
  // the job is the component's; its cron line waits for the key line on the NAS, the key file
  // and the scripts on the standby
  expect(one("backup321-mariadb-dr-drill-job").parent).toBe(drill.urn);
  expect(one("backup321-mariadb-dr-drill-job-cron-crontab-file").options.dependsOn).toEqual(
    expect.arrayContaining(
      [
        auth,
        key,
        pinned,
        one("backup321-mariadb-replica-key-file-file"),
        one("backup321-mariadb-dr-drill-script-file"),
        one("backup321-mariadb-dr-drill-lib-file"),
        one("backup321-mariadb-replica-script-restore-test-file"),
        one("backup321-mariadb-replica-script-pitr-file"),
      ].map((r) => r.urn),
    ),
  );
});

test("without mariadb.drDrill, nothing of the drill is registered", async () => {
  const file = readStackFile("prod");
  const site = file.config["backup321:site"] as { mariadb: { drDrill?: unknown } };
  const withoutDrill = structuredClone(site);
  delete withoutDrill.mariadb.drDrill;
  const rec = await runMocked(
    () =>
      jest.isolateModulesAsync(async () => {
        await import("../../infra/index");
      }),
    { ...file.config, "backup321:site": withoutDrill },
    file.secretKeys,
    "prod",
  );
  expect(rec.filter((r) => r.name.includes("dr-drill"))).toEqual([]);
  expect(rec.length).toBeGreaterThan(100);
}, 60_000);

test("a standby that is not the replica gets the MariaDB key (protected, kept) and scripts of its own", async () => {
  const file = readStackFile("prod");
  type RawSite = {
    hosts: { name: string; address: string; roles: string[] }[];
    mariadb: { drDrill?: { host: string; schedule: string } };
  };
  const site = structuredClone(file.config["backup321:site"]) as RawSite;
  site.hosts.push({ name: "db-standby", address: "192.168.10.22", roles: ["mariadb"] });
  site.mariadb.drDrill = { host: "db-standby", schedule: "0 6 10 3 *" };
  const rec = await runMocked(
    () =>
      jest.isolateModulesAsync(async () => {
        await import("../../infra/index");
      }),
    { ...file.config, "backup321:site": site },
    file.secretKeys,
    "prod",
  );
  const keyFile = rec.find((r) => r.name === "backup321-mariadb-dr-key-file")!;
  expect(keyFile.options.protect).toBe(true);
  // kept: the command that writes it has no delete, and is protected too
  const write = rec.find((r) => r.name === "backup321-mariadb-dr-key-file-file")!;
  expect(write.parent).toBe(keyFile.urn);
  expect(write.options.protect).toBe(true);
  expect(write.inputs.delete).toBeUndefined();
  const files = pushedFiles(rec)
    .filter((f) => f.host === "db-standby")
    .map((f) => `${f.path}${f.content === undefined ? " (secret)" : ""}`);
  for (const f of [
    "/etc/backup321/secrets/mariadb-backup.key (secret)",
    "/usr/local/lib/backup321/mariadb-lib.sh",
    "/usr/local/lib/backup321/mariadb-restore-test.sh",
    "/usr/local/lib/backup321/mariadb-pitr.sh",
    "/usr/local/lib/backup321/mariadb-dr-drill.sh",
    "/usr/local/lib/backup321/nas-pull.sh",
    "/etc/backup321/mariadb-dr-drill.env",
    "/etc/cron.d/backup321-mariadb-dr-drill",
  ])
    expect(files).toContain(f);
  // no job of the database's own runs there, and no option file: the drill logs into no server
  for (const f of [
    "/etc/backup321/mariadb-full.env",
    "/etc/backup321/mariadb-restore-test.env",
    "/etc/backup321/secrets/mariadb-backup.cnf (secret)",
  ])
    expect(files).not.toContain(f);
  const ready = rec.find((r) => r.name === "backup321-db-standby-ready")!;
  for (const t of ["mariadb-backup", "mariadb-binlog", "rsync", "ssh", "ssh-keygen"])
    expect(String(ready.inputs.create)).toContain(`'${t}'`);
  // its monitor watches the drill
  const monitorEnv = pushedFiles(rec).find(
    (f) => f.host === "db-standby" && f.path === "/etc/backup321/monitor.env",
  )!;
  expect(monitorEnv.content).toMatch(/^MONITOR_RESTORE_JOBS='mariadb-dr-drill'$/m);
}, 60_000);
