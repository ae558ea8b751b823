// A binlog stream host for the tests and benches that need the stream's real files: the stream
// user created on a real MariaDB exactly as the component creates it (streamUserCommand), its 0600
// option file and env file as the component writes them (streamEnv), and the real mariadb-stream.sh
// run against the server. One place, so the PITR bench and the offsite suites stream the same way.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { jobEnv, renderEnvFile } from "../../components/host/render";
import {
  STREAM_JOB,
  renderStreamOptionFile,
  streamEnv,
  streamLiveDir,
  streamUserCommand,
} from "../../components/mariadb/render";
import { hostPaths, type HostPaths } from "../../stacks/model/hosts";
import { keyFileFingerprint } from "../integration/mariadb-fixture";
import type { MariaDbServer } from "./mariadb";
import { run, runAsync, waitFor, type RunResult } from "./proc";

const ROOT = path.resolve(__dirname, "../..");

export interface StreamHost {
  /** The stream's env file (mariadb-stream.sh's one argument). */
  readonly env: string;
  /** MARIADB_STREAM_DIR: the sealed binlogs, and live/. */
  readonly dir: string;
  /** The stream host's directories. */
  readonly paths: HostPaths;
  /** The stream's sealed binlogs (file names, oldest first), each with its .sha256 beside it. */
  sealed(): string[];
  /** The binlogs in live/ (file names). */
  live(): string[];
}

/**
 * The stream host under ROOT: the stream user on the server (from 127.0.0.1), its option file, the
 * env file. LIB holds the scripts (copied there when missing: common.sh and the MariaDB scripts);
 * KEYFILE is the stack's MariaDB key the stream seals with.
 */
export function streamHost(
  server: MariaDbServer,
  opts: {
    lib: string;
    keyFile: string;
    root: string;
    alert?: string;
    keepDays?: number;
    /** mariadb.stream.sslCa: TLS required, the server's certificate verified against this CA. */
    sslCa?: string;
  },
): StreamHost {
  const { lib, root } = opts;
  if (!fs.existsSync(path.join(lib, "mariadb-stream.sh"))) {
    fs.mkdirSync(lib, { recursive: true });
    fs.copyFileSync(
      path.join(ROOT, "components/host/scripts/common.sh"),
      path.join(lib, "common.sh"),
    );
    for (const f of ["mariadb-lib.sh", "mariadb-stream.sh"]) {
      fs.copyFileSync(path.join(ROOT, "components/mariadb/scripts", f), path.join(lib, f));
      fs.chmodSync(path.join(lib, f), 0o755);
    }
  }
  const on = hostPaths.parse({
    lib,
    etc: path.join(root, "streamhost/etc"),
    state: path.join(root, "streamhost/state"),
  });
  fs.mkdirSync(on.secrets, { recursive: true, mode: 0o700 });
  const password = randomBytes(12).toString("hex");
  const cnf = path.join(on.secrets, "mariadb-stream.cnf");
  fs.writeFileSync(cnf, renderStreamOptionFile("b321_stream", password), { mode: 0o600 });
  const user = run(
    "bash",
    ["-c", streamUserCommand(server.socket, { user: "b321_stream", from: "127.0.0.1" })],
    { input: `${password}\n` },
  );
  if (user.code !== 0) throw new Error(user.stderr);
  const dir = path.join(root, "streamhost/stream");
  const env = path.join(on.etc, `${STREAM_JOB}.env`);
  fs.writeFileSync(
    env,
    renderEnvFile("test stream", {
      ...streamEnv({
        address: "127.0.0.1",
        port: server.port,
        clientCnf: cnf,
        dir,
        basename: path.basename(server.binlogBasename),
        serverId: 4242,
        keyFile: opts.keyFile,
        keyFingerprint: keyFileFingerprint(opts.keyFile),
        maxLagSeconds: 60,
        keepDays: opts.keepDays ?? 35,
        sslCa: opts.sslCa,
      }),
      ...jobEnv(on, STREAM_JOB),
      B321_ALERT: opts.alert ?? "/bin/true",
    }),
    { mode: 0o600 },
  );
  const list = (d: string, re: RegExp) =>
    fs.existsSync(d)
      ? fs
          .readdirSync(d)
          .filter((f) => re.test(f))
          .sort()
      : [];
  return {
    env,
    dir,
    paths: on,
    sealed: () =>
      list(dir, /\.\d{8}T\d{6}Z\.s\d+\.zst\.enc$/).filter((f) =>
        fs.existsSync(path.join(dir, `${f}.sha256`)),
      ),
    live: () => list(streamLiveDir(dir), /\.\d+$/),
  };
}

/**
 * Runs the real stream while `write` makes the server's binlogs (each FLUSH BINARY LOGS closes one),
 * until every binlog the server closed is sealed and its open one is in live/ as long as the
 * server's; then stops it as its service would (SIGTERM). Returns the stream's output.
 */
export async function streamWhile(
  server: MariaDbServer,
  host: StreamHost,
  write: () => void,
): Promise<RunResult> {
  const stream = runAsync(path.join(host.paths.lib, "mariadb-stream.sh"), [host.env]);
  let stopped = false;
  void stream.done.then(() => (stopped = true));
  try {
    write();
    await waitFor(
      "the stream to seal every closed binlog and hold the open one",
      () => {
        if (stopped) throw new Error("the stream stopped");
        const logs = server
          .sql("SHOW BINARY LOGS")
          .trim()
          .split("\n")
          .map((l) => l.split("\t"));
        const [active, size] = logs[logs.length - 1];
        const open = path.join(streamLiveDir(host.dir), active);
        const sealed = host.sealed().map((f) => f.split(".").slice(0, 2).join("."));
        return (
          fs.existsSync(open) &&
          fs.statSync(open).size === Number(size) &&
          logs.slice(0, -1).every(([name]) => sealed.includes(name))
        );
      },
      60_000,
    );
  } catch (e) {
    stream.kill("SIGTERM");
    const r = await stream.done;
    throw new Error(`${(e as Error).message}; the stream said:\n${r.stderr.slice(-3000)}`);
  }
  stream.kill("SIGTERM");
  const r = await stream.done;
  if (r.code !== 0) throw new Error(`the stream ended with ${r.code}:\n${r.stderr.slice(-3000)}`);
  return r;
}
