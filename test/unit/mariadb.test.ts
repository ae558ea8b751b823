// MariaDbBackup under Pulumi mocks: the exact children (type, name, parent), secrets kept secret,
// commands near a secret silent, and BackupSite creating it for site.mariadb.
import * as pulumi from "@pulumi/pulumi";
import {
  containsSecret,
  runMocked,
  isSecretValue,
  reveal,
  type Registration,
  defaultPaths,
} from "../harness/program";
import { shq } from "../../components/host/render";
import { renderDropUserSql } from "../../components/mariadb/render";

let recorded: Registration[];

beforeAll(async () => {
  recorded = await runMocked(async () => {
    const { Host } = await import("../../components/host");
    const { MariaDbBackup } = await import("../../components/mariadb");
    const { mariadb } = await import("../../stacks/model/mariadb");
    const host = new Host("db", {
      hostName: "db-srv",
      address: "192.168.10.25",
      privateKey: pulumi.secret("key"),
      paths: defaultPaths,
    });
    new MariaDbBackup("mdb", {
      host,
      siteName: "atlastech",
      timezone: "Europe/Paris",
      config: mariadb.parse({ host: "db-srv", databases: ["atlastech_db"] }),
    });
  });
}, 60_000);

const byName = (n: string) => {
  const r = recorded.find((x) => x.name === n);
  if (!r) throw new Error(`no registration named ${n}`);
  return r;
};

test("the component's direct children, pinned (a rename would replace state)", () => {
  const parent = byName("mdb").urn;
  expect(
    recorded
      .filter((r) => r.parent === parent)
      .map((r) => `${r.type} ${r.name}`)
      .sort(),
  ).toEqual(
    [
      "backup321:host:RemoteFile mdb-client-cnf",
      "backup321:host:RemoteFile mdb-key-file",
      "backup321:host:RemoteFile mdb-pitr-bin",
      "backup321:host:RemoteFile mdb-pitr-env",
      "backup321:host:RemoteFile mdb-script-binlogs",
      "backup321:host:RemoteFile mdb-script-full",
      "backup321:host:RemoteFile mdb-script-lib",
      "backup321:host:RemoteFile mdb-script-pitr",
      "backup321:host:RemoteFile mdb-script-restore-test",
      "backup321:host:ScheduledJob mdb-binlogs",
      "backup321:host:ScheduledJob mdb-full",
      "backup321:host:ScheduledJob mdb-restore-test",
      "command:remote:Command mdb-binlog-conf",
      "command:remote:Command mdb-user",
      "random:index/randomPassword:RandomPassword mdb-key",
      "random:index/randomPassword:RandomPassword mdb-password",
    ].sort(),
  );
  expect(byName("mdb").type).toBe("backup321:mariadb:MariaDbBackup");
});

test("passwords: 32 and 48 characters, no special characters (they go in an option file)", () => {
  expect(byName("mdb-password").inputs).toMatchObject({ length: 32, special: false });
  expect(byName("mdb-key").inputs).toMatchObject({ length: 48, special: false });
});

test("the user command: SQL on stdin as a secret, never on the command line, nothing logged", () => {
  const u = byName("mdb-user").inputs;
  expect(isSecretValue(u.stdin)).toBe(true);
  expect(reveal(u.stdin)).toContain("IDENTIFIED BY 'mock-password-mdb-password'");
  expect(u.create).toBe(
    "set -eu\nmariadb --no-defaults --socket='/run/mysqld/mysqld.sock' -uroot --batch",
  );
  expect(String(u.create) + String(u.delete)).not.toContain("mock-password");
  expect(u.delete).toContain(shq(renderDropUserSql("backup_user")));
  expect(u.logging).toBe("none");
  expect(containsSecret(u.triggers)).toBe(true);
});

test("option file and key file are pushed as secrets, 0600, at the documented paths", () => {
  const files = recorded.filter(
    (r) => r.name === "mdb-client-cnf-file" || r.name === "mdb-key-file-file",
  );
  expect(files).toHaveLength(2);
  for (const f of files) {
    expect(isSecretValue(f.inputs.stdin)).toBe(true);
    expect(f.inputs.logging).toBe("none");
    expect(String(f.inputs.create)).toContain("chmod -- 0600");
  }
  expect(String(byName("mdb-client-cnf-file").inputs.create)).toContain(
    "/etc/backup321/secrets/mariadb-backup.cnf",
  );
  expect(reveal(byName("mdb-key-file-file").inputs.stdin)).toBe("mock-password-mdb-key\n");
});

test("the binlog drop-in command is triggered by its content and restarts the service", () => {
  const c = byName("mdb-binlog-conf").inputs;
  expect(c.stdin).toContain("binlog_expire_logs_seconds = 604800");
  expect(c.create).toContain("systemctl restart mariadb");
  expect(c.create).toContain("/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf");
  expect((c.triggers as string[]).every((t) => /^[0-9a-f]{64}$/.test(t))).toBe(true);
});

test("cron schedules and env of the jobs; PITR has an entry point but no cron", () => {
  const cron = (job: string) =>
    String(recorded.find((r) => r.name === `mdb-${job}-cron-crontab-file`)!.inputs.stdin);
  expect(cron("full")).toContain("0 2 * * 0 root");
  expect(cron("binlogs")).toContain("15 * * * * root");
  expect(cron("restore-test")).toContain("0 3 1 * * root");
  expect(recorded.some((r) => r.name.startsWith("mdb-pitr-cron"))).toBe(false);
  const env = String(byName("mdb-full-env-file").inputs.stdin);
  expect(env).toContain("MARIADB_METHOD='physical'");
  expect(env).toContain("MARIADB_TZ='Europe/Paris'");
  expect(env).not.toContain("mock-password");
  expect(String(byName("mdb-pitr-bin-file").inputs.stdin)).toContain(
    "exec '/usr/local/lib/backup321/mariadb-pitr.sh' '/etc/backup321/mariadb-pitr.env' \"$@\"",
  );
});
