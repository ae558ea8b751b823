// Pure rendering of the MariaDB backup: SQL and grants per method, option file, binlog drop-in and
// the command applying it, the jobs' env.
import {
  backupGrants,
  binlogConfigCommand,
  dropUserCommand,
  filePrefix,
  keyFingerprint,
  mariadbEnv,
  renderBinlogDropIn,
  renderOptionFile,
  renderGrantsSql,
  userCommand,
  sqlString,
} from "../../components/mariadb/render";

test("physical grants: reset to exactly the method's; the password is not in the command text", () => {
  const spec = { user: "backup_user", method: "physical", databases: ["atlastech_db"] } as const;
  expect(renderGrantsSql(spec)).toBe(
    [
      "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'backup_user'@'localhost';",
      "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'backup_user'@'localhost';",
      "GRANT SELECT ON `atlastech_db`.* TO 'backup_user'@'localhost';",
      "",
    ].join("\n"),
  );
  const c = userCommand("/run/mysqld/mysqld.sock", spec);
  // The grants as plain text (a preview shows a change of them); the password read from stdin.
  expect(c).toContain("GRANT SELECT ON `atlastech_db`.* TO 'backup_user'@'localhost';");
  expect(c.split("\n")[1]).toBe('IFS= read -r pw || [ -n "$pw" ]');
  expect(c.match(/IDENTIFIED BY '%s'.*"\$pw"$/gm)).toHaveLength(2);
});

test("logical grants: the seed's grants on each database, plus RELOAD, BINLOG MONITOR and mysql.proc", () => {
  expect(
    renderGrantsSql({ user: "backup_user", method: "logical", databases: ["a", "b"] }),
  ).toMatchSnapshot();
  expect(backupGrants("logical")).toEqual({
    global: ["RELOAD", "BINLOG MONITOR"],
    perDatabase: ["SELECT", "LOCK TABLES", "SHOW VIEW", "EVENT", "TRIGGER"],
    perTable: [["mysql.proc", ["SELECT"]]],
  });
});

test("no grant of either method can write", () => {
  for (const m of ["physical", "logical"] as const) {
    const g = backupGrants(m);
    const all = [...g.global, ...g.perDatabase, ...g.perTable.flatMap(([, p]) => p)];
    for (const w of ["INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "SUPER", "ALL"]) {
      expect(all).not.toContain(w);
    }
  }
});

test("names are checked and strings escaped", () => {
  expect(sqlString("it's \\ ok")).toBe("'it\\'s \\\\ ok'");
  expect(() => renderGrantsSql({ user: "x'; DROP", method: "logical", databases: ["a"] })).toThrow(
    '"x\'; DROP" is not a MariaDB user name',
  );
  expect(() => renderGrantsSql({ user: "u", method: "logical", databases: ["a`b"] })).toThrow(
    '"a`b" is not a database name',
  );
});

test("option file", () => {
  expect(renderOptionFile("backup_user", "Abc123")).toBe(
    "# backup321: the MariaDB backup user (managed by pulumi up)\n[client]\nuser=backup_user\npassword=Abc123\n",
  );
  expect(() => renderOptionFile("u", "a b")).toThrow("no quotes, spaces");
});

test("binlog drop-in: ROW, server_id, 100M, expiry in seconds", () => {
  expect(
    renderBinlogDropIn({ basename: "/var/log/mysql/mysql-bin", serverId: 1, expireDays: 7 }),
  ).toBe(
    [
      "# backup321: binary logs for point-in-time recovery (managed by pulumi up).",
      "# Changing this file restarts MariaDB once, from pulumi up.",
      "[mariadb]",
      "log_bin = /var/log/mysql/mysql-bin",
      "binlog_format = ROW",
      "server_id = 1",
      "max_binlog_size = 100M",
      "binlog_expire_logs_seconds = 604800",
      "",
    ].join("\n"),
  );
});

test("the drop-in command restarts only on change, puts the old file back when the restart fails, and checks the live settings", () => {
  const f = "'/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf'";
  const c = binlogConfigCommand({
    path: "/etc/mysql/mariadb.conf.d/99-backup321-binlog.cnf",
    basename: "/var/log/mysql/mysql-bin",
    serverId: 3,
    socket: "/run/mysqld/mysqld.sock",
    restartCommand: "systemctl restart mariadb",
  });
  // the restart is inside the "content differs" branch, after the new file is in place
  const changed = c.indexOf(`if ! cmp -s -- "$tmp" ${f}; then`);
  const moved = c.indexOf(`mv -f -- "$tmp" ${f}; changed=1`);
  const restart = c.indexOf("  if ! systemctl restart mariadb; then");
  expect(changed).toBeGreaterThan(-1);
  expect(moved).toBeGreaterThan(changed);
  expect(restart).toBeGreaterThan(moved);
  // a failed restart restores the previous file (or removes the new one), so a retry sees the change
  expect(c).toContain(`    if [ -e "$prev" ]; then mv -f -- "$prev" ${f}; else rm -f -- ${f}; fi`);
  expect(c).toContain("'ON ROW 3'");
  expect(c).toMatchSnapshot();
  expect(dropUserCommand("/run/mysqld/mysqld.sock", "backup_user")).toMatchSnapshot();
});

test("env of the jobs and the seed's file prefix", () => {
  const env = mariadbEnv({
    socket: "/s",
    clientCnf: "/e/secrets/c",
    keyFile: "/e/secrets/k",
    keyFingerprint: keyFingerprint("k3y"),
    databases: ["a", "b"],
    method: "physical",
    compression: "zstd",
    backupDir: "/b",
    binlogBackupDir: "/bl",
    binlogBasename: "/var/log/mysql/mysql-bin",
    prefix: "site",
    keepFulls: 4,
    binlogKeepDays: 7,
    timezone: "Europe/Paris",
    scratchDir: "/x",
    serverUser: "mysql",
    checkpointMaxTableMb: 512,
  });
  expect(env).toMatchSnapshot();
  expect(env.MARIADB_DATABASES).toBe("a b");
  expect(env.MARIADB_CHECKPOINT_MAX_TABLE_MB).toBe(512);
  // sha256 of the label, a newline and the key: what mariadb-lib.sh computes from the key file
  expect(env.MARIADB_KEY_FINGERPRINT).toBe(
    "6d5bb1486ab302e0c202786ed934c58f638d48aaadaf631f540c70431a37c263",
  );
  expect(filePrefix(["atlastech_db"], "atlastech")).toBe("atlastech_db");
  expect(filePrefix(["a", "b"], "atlastech")).toBe("atlastech");
});
