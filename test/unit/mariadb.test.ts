// MariaDbBackup under Pulumi mocks: the exact children (type, name, parent), secrets kept secret,
// commands near a secret silent, and BackupSite creating it for site.mariadb.
import { recordMocked, isSecretValue, mockHost, reveal } from "../harness/program";
import {
  claimCommand,
  fileMarker,
  ownerStampFile,
  releaseCommand,
  removeFileCommand,
  shq,
} from "../../components/host/render";
import {
  dropUserCommand,
  keyFingerprint,
  renderDropUserSql,
  userCommand,
} from "../../components/mariadb/render";

const recorded = recordMocked(async () => {
  const { MariaDbBackup } = await import("../../components/mariadb");
  const { mariadb } = await import("../../stacks/model/mariadb");
  const host = await mockHost("db", { hostName: "db-srv", address: "192.168.10.25" });
  new MariaDbBackup("mdb", {
    host,
    siteName: "atlastech",
    timezone: "Europe/Paris",
    config: mariadb.parse({ host: "db-srv", databases: ["atlastech_db"] }),
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
      "backup321:host:RemoteFile mdb-keyring",
      "backup321:host:RemoteFile mdb-pitr-bin",
      "backup321:host:RemoteFile mdb-pitr-env",
      "backup321:host:RemoteFile mdb-script-binlogs",
      "backup321:host:RemoteFile mdb-script-full",
      "backup321:host:RemoteFile mdb-script-incremental",
      "backup321:host:RemoteFile mdb-script-lib",
      "backup321:host:RemoteFile mdb-script-pitr",
      "backup321:host:RemoteFile mdb-script-pitr-drill",
      "backup321:host:RemoteFile mdb-script-restore-test",
      "backup321:host:ScheduledJob mdb-binlogs",
      "backup321:host:ScheduledJob mdb-full",
      "backup321:host:ScheduledJob mdb-restore-test",
      "command:remote:Command mdb-binlog-conf",
      "command:remote:Command mdb-flushing-conf",
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

test("the user command: the password alone on stdin as a secret, the grants in plain sight, nothing logged", () => {
  const user = byName("mdb-user");
  const u = user.inputs;
  expect(isSecretValue(u.stdin)).toBe(true);
  expect(reveal(u.stdin)).toBe("mock-password-mdb-password\n");
  expect(isSecretValue(u.create)).toBe(false);
  expect(u.create).toContain("GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.*");
  expect(String(u.create) + String(u.update) + String(u.delete)).not.toContain("mock-password");
  expect(u.delete).toContain(shq(renderDropUserSql("backup_user")));
  expect(u.logging).toBe("none");
  expect(user.options.additionalSecretOutputs).toEqual(
    expect.arrayContaining(["stdin", "stdout", "stderr"]),
  );
});

test("the user command: a new password is an update (the same SQL again), DROP USER only while still the owner", () => {
  const user = byName("mdb-user");
  const owns = "mariadb-user:backup_user@/run/mysqld/mysqld.sock";
  const stampFile = ownerStampFile("/var/lib/backup321/owners", owns);
  // Its only trigger is the user it owns: another user (name or socket) replaces it, the old one
  // dropped first; a new password is stdin only, so a rotation is an update.
  expect(user.inputs.triggers).toEqual([owns]);
  expect(user.options.deleteBeforeReplace).toBe(true);
  expect(user.options.replaceOnChanges).toEqual(["triggers[*]"]);
  expect(reveal(user.inputs.stdin)).toBe("mock-password-mdb-password\n");
  expect(JSON.stringify(reveal(user.inputs.triggers))).not.toContain("mock-password");
  expect(user.inputs.create).toBe(
    [
      "# backup321 host generation 1",
      claimCommand(
        userCommand("/run/mysqld/mysqld.sock", {
          user: "backup_user",
          method: "physical",
          databases: ["atlastech_db"],
        }),
        stampFile,
        `mdb-user ${owns}`,
      ),
    ].join("\n"),
  );
  expect(user.inputs.update).toBe(user.inputs.create);
  expect(user.inputs.delete).toBe(
    releaseCommand(
      dropUserCommand("/run/mysqld/mysqld.sock", "backup_user"),
      stampFile,
      `mdb-user ${owns}`,
    ),
  );
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

test("the binlog drop-in: its content on stdin (a change is an update), restarting the quoted service", () => {
  const path = "/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf";
  const conf = byName("mdb-binlog-conf");
  const c = conf.inputs;
  expect(c.stdin).toContain("binlog_expire_logs_seconds = 604800");
  expect(c.create).toContain("systemctl restart 'mariadb'");
  expect(String(c.create).split("\n").slice(0, 2)).toEqual([
    fileMarker("db-srv", path),
    "# backup321 host generation 1",
  ]);
  expect(c.create).toContain(`cat > "$tmp"`);
  // A content change changes stdin only: the same command runs again as an update. Its only
  // trigger is the path it owns: a new path removes the old drop-in first.
  expect(c.triggers).toEqual([path]);
  expect(c.update).toBe(c.create);
  expect(conf.options.replaceOnChanges).toEqual(["triggers[*]"]);
  expect(conf.options.deleteBeforeReplace).toBe(true);
  // Removing it leaves alone a drop-in that a newer resource wrote.
  expect(c.delete).toBe(
    releaseCommand(
      removeFileCommand(path),
      ownerStampFile("/var/lib/backup321/owners", path),
      `mdb-binlog-conf ${path}`,
    ),
  );
});

test("the flushing drop-in: the model's low water mark, set live on the socket, never a restart", () => {
  const path = "/etc/mysql/mariadb.conf.d/99-backup321-flushing.cnf";
  const c = byName("mdb-flushing-conf").inputs;
  expect(c.stdin).toContain("innodb_max_dirty_pages_pct_lwm = 10\n");
  expect(c.create).toContain("SET GLOBAL innodb_max_dirty_pages_pct_lwm = 10");
  expect(c.create).not.toContain("restart");
  expect(c.triggers).toEqual([path]);
  expect(c.update).toBe(c.create);
  expect(c.delete).toBe(
    releaseCommand(
      removeFileCommand(path),
      ownerStampFile("/var/lib/backup321/owners", path),
      `mdb-flushing-conf ${path}`,
    ),
  );
});

test("the key: generated once and protected; its file protected, kept on delete, replaced only for a new path", () => {
  expect(byName("mdb-key").options.protect).toBe(true);
  expect(byName("mdb-password").options.protect).toBe(false);
  const file = byName("mdb-key-file-file");
  expect(byName("mdb-key-file").options.protect).toBe(true);
  expect(file.options.protect).toBe(true);
  expect(file.inputs.delete).toBeUndefined();
  expect(file.inputs.triggers).toEqual(["/etc/backup321/secrets/mariadb-backup.key"]);
  expect(file.options.deleteBeforeReplace).toBe(true);
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
    "exec '/usr/local/lib/backup321/b321-cron.sh' '--tee' 'mariadb-pitr' '/usr/local/lib/backup321/mariadb-pitr.sh' '/etc/backup321/mariadb-pitr.env' \"$@\"",
  );
});

test("every job's env file carries the stack key's fingerprint, in plain text, never the key", () => {
  const want = `MARIADB_KEY_FINGERPRINT='${keyFingerprint("mock-password-mdb-key")}'`;
  for (const n of ["mdb-full-env-file", "mdb-restore-test-env-file", "mdb-pitr-env-file"]) {
    const stdin = byName(n).inputs.stdin;
    expect({ n, secret: isSecretValue(stdin) }).toEqual({ n, secret: false });
    expect(String(reveal(stdin))).toContain(want);
    expect(String(reveal(stdin))).not.toContain("mock-password");
  }
});
