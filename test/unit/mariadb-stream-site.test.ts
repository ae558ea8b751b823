// The prod stack under mocks: mariadb.stream on docker-srv deploys the stream user on db-srv (grants
// plain, password on stdin only), and on docker-srv the stream's option file (secret), the key, the
// scripts, the env file pointing at db-srv, the supervised service and its every-minute watchdog.
import { runStack, type Registration } from "../harness/program";
import { pushedFiles } from "../../infra/plan";
import { isSecretValue, reveal } from "../../infra/mockRuntime";

let recorded: Registration[];

beforeAll(async () => {
  recorded = await runStack("prod");
}, 60_000);

const command = (name: string) => {
  const c = recorded.find((r) => r.type === "command:remote:Command" && r.name === name);
  if (!c) throw new Error(`no command ${name}`);
  return c;
};
const host = (r: Registration) => String((reveal(r.inputs.connection) as { host: string }).host);

test("the stream user is made on db-srv, from docker-srv's address, with the replication grants only", () => {
  const user = command("backup321-mariadb-stream-user");
  expect(host(user)).toBe("192.168.10.25");
  const create = String(reveal(user.inputs.create));
  expect(create).toContain(
    "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'b321_stream'@'192.168.10.20';",
  );
  expect(create).toContain(
    "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'b321_stream'@'192.168.10.20';",
  );
  expect(isSecretValue(user.inputs.stdin)).toBe(true);
  const password = String(reveal(user.inputs.stdin)).trim();
  expect(password.length).toBeGreaterThanOrEqual(16);
  for (const r of recorded.filter((x) => x.type === "command:remote:Command"))
    for (const k of ["create", "update", "delete"])
      expect([r.name, k, String(reveal(r.inputs[k]) ?? "").includes(password)]).toEqual([
        r.name,
        k,
        false,
      ]);
  // the SQL is quoted for printf: the same statement, its quotes escaped
  expect(String(reveal(user.inputs.delete))).toContain(
    "DROP USER IF EXISTS '\\''b321_stream'\\''@'\\''192.168.10.20'\\'';",
  );
});

test("docker-srv gets the stream's files: a secret option file, the key, the scripts, the env, the watchdog", () => {
  const files = pushedFiles(recorded).filter((f) => f.host === "docker-srv");
  const byPath = new Map(files.map((f) => [f.path, f]));
  for (const p of [
    "/etc/backup321/secrets/mariadb-stream.cnf",
    "/etc/backup321/secrets/mariadb-backup.key",
    "/etc/backup321/secrets/mariadb-backup.keyring",
  ])
    expect([p, byPath.has(p), byPath.get(p)?.content]).toEqual([p, true, undefined]);
  for (const p of [
    "/usr/local/lib/backup321/mariadb-lib.sh",
    "/usr/local/lib/backup321/mariadb-stream.sh",
    "/usr/local/lib/backup321/mariadb-stream-watch.sh",
    "/etc/backup321/jobs.d/mariadb-stream-watch.json",
    "/etc/cron.d/backup321-mariadb-stream-watch",
  ])
    expect([p, byPath.has(p)]).toEqual([p, true]);
  const env = byPath.get("/etc/backup321/mariadb-stream.env")?.content ?? "";
  for (const line of [
    "B321_JOB='mariadb-stream'",
    "MARIADB_STREAM_ADDRESS='192.168.10.25'",
    "MARIADB_STREAM_PORT='3306'",
    "MARIADB_STREAM_BASENAME='mysql-bin'",
    "MARIADB_STREAM_DIR='/backups/binlog-stream'",
    "MARIADB_STREAM_CNF='/etc/backup321/secrets/mariadb-stream.cnf'",
    "MARIADB_STREAM_MAX_LAG='60'",
    "MARIADB_STREAM_STATUS_SECONDS='10'",
    "MARIADB_STREAM_KEEP_DAYS='35'",
  ])
    expect(env.split("\n")).toContain(line);
  expect(byPath.get("/etc/cron.d/backup321-mariadb-stream-watch")?.content).toContain(
    "* * * * * root '/usr/local/lib/backup321/b321-cron.sh' 'mariadb-stream-watch' '/usr/local/lib/backup321/mariadb-stream-watch.sh' '/etc/backup321/mariadb-stream-watch.env'",
  );
});

test("the service runs mariadb-stream.sh on docker-srv, restarted when what it runs changes, stopped by its delete", () => {
  const svc = command("backup321-mariadb-stream-service-service");
  expect(host(svc)).toBe("192.168.10.20");
  const create = String(reveal(svc.inputs.create));
  expect(create).toContain(
    "'/var/lib/backup321/services/mariadb-stream/supervise.sh' 'start' '/var/lib/backup321/services/mariadb-stream' '--' '/usr/local/lib/backup321/mariadb-stream.sh' '/etc/backup321/mariadb-stream.env'",
  );
  expect(create).toContain(
    "ExecStart=/usr/local/lib/backup321/mariadb-stream.sh /etc/backup321/mariadb-stream.env",
  );
  // its inputs line carries the hashes of the env, the option file and both scripts
  expect(create).toMatch(/^# backup321 inputs( [0-9a-f]{64}){4}$/m);
  expect(String(reveal(svc.inputs.delete))).toContain(
    "'/var/lib/backup321/services/mariadb-stream/supervise.sh' stop",
  );
  // a renamed service is replaced, the old one deleted (stopped) first
  expect(svc.options.deleteBeforeReplace).toBe(true);
  const parent = recorded.find((r) => r.urn === svc.parent)!;
  expect(parent.type).toBe("backup321:host:Service");
  // deleted before the watchdog's entry, which removes the status the stream writes as it stops
  const entry = command("backup321-mariadb-stream-watch-registry-file");
  expect(svc.options.dependsOn).toContain(entry.urn);
});

test("the stream host checks for its tools before anything is pushed", () => {
  const ready = recorded.find(
    (r) =>
      r.type === "command:remote:Command" &&
      r.name.endsWith("-ready") &&
      host(r) === "192.168.10.20",
  )!;
  const create = String(reveal(ready.inputs.create));
  for (const t of ["mariadb-binlog", "zstd", "openssl", "setsid"])
    expect(create).toContain(`'${t}'`);
});
