// A real MariaDB server for integration tests and benchmarks: its own datadir, socket and port on
// 127.0.0.1, root through unix_socket (as on a Debian host), binlogs on; stopped by the test.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { freePort, run, runOk, waitFor, type RunResult } from "./proc";

export interface MariaDbServer {
  readonly dir: string;
  /** `<ctl> stop` and `<ctl> start`: the server's service commands for a host's model. */
  readonly ctl: string;
  readonly datadir: string;
  readonly socket: string;
  readonly port: number;
  /** Binlog basename (log_bin). */
  readonly binlogBasename: string;
  /** Runs SQL as root over the socket; throws on error. Returns tab-separated rows. */
  sql(query: string, database?: string): string;
  /** Same, without throwing. */
  trySql(query: string, database?: string): RunResult;
  /** Client argv for this server (mariadb, mariadb-dump ...). */
  clientArgs(): string[];
  isUp(): boolean;
  stop(): Promise<void>;
  /** Stops the server but keeps its files (for "server down" faults). */
  kill(): Promise<void>;
  start(): Promise<void>;
}

export interface MariaDbOptions {
  /** Extra mariadbd options, e.g. ["--innodb-buffer-pool-size=1G"]. */
  readonly extraArgs?: readonly string[];
  /** Parent directory for the server's files. Defaults to the OS temp dir. */
  readonly parent?: string;
  /** Exact directory for the server's files (created), instead of a temp one under parent. */
  readonly dir?: string;
}

export async function startMariaDb(opts: MariaDbOptions = {}): Promise<MariaDbServer> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(opts.parent ?? os.tmpdir(), "b321-mariadb-"));
  fs.mkdirSync(dir, { recursive: true });
  const datadir = path.join(dir, "data");
  const binlogDir = path.join(dir, "binlog");
  fs.mkdirSync(datadir);
  fs.mkdirSync(binlogDir);
  const socket = path.join(dir, "mysqld.sock");
  const port = await freePort();
  const binlogBasename = path.join(binlogDir, "mysql-bin");
  runOk("chown", ["-R", "mysql:mysql", dir]);
  fs.chmodSync(dir, 0o755);
  runOk("mariadb-install-db", [
    "--no-defaults",
    "--user=mysql",
    `--datadir=${datadir}`,
    "--auth-root-authentication-method=socket",
    "--skip-test-db",
  ]);
  const args = [
    "--no-defaults",
    "--user=mysql",
    `--datadir=${datadir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    "--bind-address=127.0.0.1",
    `--pid-file=${path.join(dir, "mysqld.pid")}`,
    `--log-error=${path.join(dir, "error.log")}`,
    `--log-bin=${binlogBasename}`,
    "--binlog-format=ROW",
    "--server-id=1",
    "--innodb-buffer-pool-size=256M",
    "--innodb-log-file-size=256M",
    ...(opts.extraArgs ?? []),
  ];
  // The server's own stop and start commands, as a host's service manager would run them (RUNBOOK.md's
  // recovery swaps the datadir between them): a server they start is found again by its pid file.
  const ctl = path.join(dir, "ctl");
  const pidFile = path.join(dir, "mysqld.pid");
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  fs.writeFileSync(
    ctl,
    [
      "#!/bin/bash",
      "set -eu",
      "case ${1:-} in",
      "  stop)",
      `    pid=$(cat ${q(pidFile)} 2> /dev/null) || exit 0`,
      '    kill "$pid" 2> /dev/null || exit 0',
      // a zombie is gone too: the test process reaps its own child only once this returns
      '    while kill -0 "$pid" 2> /dev/null && ! grep -q "^State:.*zombie" "/proc/$pid/status" 2> /dev/null; do sleep 0.2; done ;;',
      "  start)",
      `    setsid mariadbd ${args.map(q).join(" ")} < /dev/null > /dev/null 2>&1 &`,
      "    for _ in $(seq 300); do",
      `      mariadb --no-defaults --socket=${q(socket)} -uroot -e 'SELECT 1' > /dev/null 2>&1 && exit 0`,
      "      sleep 0.2",
      "    done",
      '    echo "mariadbd did not start (see error.log)" >&2; exit 1 ;;',
      '  *) echo "usage: ctl stop|start" >&2; exit 2 ;;',
      "esac",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  let proc: ChildProcess | undefined;
  const clientArgs = () => ["--no-defaults", `--socket=${socket}`, "-uroot"];
  const trySql = (query: string, database?: string) =>
    run("mariadb", [...clientArgs(), "-N", "-B", ...(database ? [database] : [])], {
      input: query,
    });
  const sql = (query: string, database?: string) => {
    const r = trySql(query, database);
    if (r.code !== 0)
      throw new Error(`SQL failed (${r.code}): ${r.stderr}\n${query.slice(0, 500)}`);
    return r.stdout;
  };
  const isUp = () => trySql("SELECT 1").code === 0;
  const start = async () => {
    proc = spawn("mariadbd", args, { stdio: "ignore" });
    await waitFor(`mariadbd on ${socket}`, isUp, 60_000);
  };
  const kill = async () => {
    const p = proc;
    if (p && p.exitCode === null) {
      p.kill("SIGTERM");
      // A server that has not shut down after a minute is killed: a test must never hang here.
      const hard = setTimeout(() => p.kill("SIGKILL"), 60_000);
      await new Promise((r) => (p.exitCode !== null ? r(null) : p.once("exit", r)));
      clearTimeout(hard);
    }
    // one that `ctl start` started
    if (fs.existsSync(ctl)) run(ctl, ["stop"], { timeoutMs: 60_000 });
  };
  await start();
  return {
    dir,
    ctl,
    datadir,
    socket,
    port,
    binlogBasename,
    sql,
    trySql,
    clientArgs,
    isUp,
    kill,
    start,
    stop: async () => {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const status = (server: MariaDbServer, v: string) =>
  Number(server.sql(`SHOW GLOBAL STATUS LIKE '${v}'`).split("\t")[1]);

/** No dirty page, and the checkpoint caught up: a physical copy then carries no backlog of redo. */
const settled = (server: MariaDbServer) =>
  status(server, "Innodb_buffer_pool_pages_dirty") === 0 &&
  status(server, "Innodb_checkpoint_age") <= 1048576;

/**
 * Flushes every dirty page now (as fast as the server can), then puts the flushing settings back:
 * the quiet hours before 02:00 after a bulk load.
 */
export function flushDirtyPages(server: MariaDbServer): void {
  const before = server
    .sql("SELECT @@innodb_max_dirty_pages_pct, @@innodb_max_dirty_pages_pct_lwm")
    .trim()
    .split("\t");
  server.sql(
    "SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0.001; SET GLOBAL innodb_max_dirty_pages_pct = 0.001;",
  );
  const deadline = Date.now() + 300_000;
  while (!settled(server) && Date.now() < deadline) run("sleep", ["0.5"]);
  server.sql(
    `SET GLOBAL innodb_max_dirty_pages_pct = ${before[0]}; SET GLOBAL innodb_max_dirty_pages_pct_lwm = ${before[1]};`,
  );
}

/**
 * Waits, changing nothing, until the idle server has flushed on its own (or timeoutMs passed), and
 * returns whether it did: what the hours before a night's backup do with the server's own settings.
 */
export function awaitIdleFlush(server: MariaDbServer, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  while (!settled(server)) {
    if (Date.now() >= deadline) return false;
    run("sleep", ["0.5"]);
  }
  return true;
}
