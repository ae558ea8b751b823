// A real OpenSSH server on 127.0.0.1 for integration tests: temp host key, temp client key, its
// own config; commands run through the ssh client exactly as @pulumi/command sends them (one
// command string, content on stdin).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { freePort, run, runOk, waitFor, type RunResult } from "./proc";

export interface Sshd {
  readonly port: number;
  /** The client's private key (what a stack secret would hold). */
  readonly privateKey: string;
  readonly privateKeyPath: string;
  readonly dir: string;
  /** Runs one command string on the server, with stdin. */
  exec(command: string, stdin?: string): RunResult;
  /** The ssh argv prefix (for rsync -e and the like). */
  sshArgs(): string[];
  stop(): Promise<void>;
}

export async function startSshd(
  opts: {
    /** Listen on this port (a host rebuilt at the same address). Defaults to a free one. */
    port?: number;
    /** Accept this client key (the stack's) instead of a new one. */
    clientPrivateKey?: string;
  } = {},
): Promise<Sshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-sshd-"));
  // sshd reads authorized_keys as the user logging in: non-root test users must reach it (the
  // private keys in here stay 0600).
  fs.chmodSync(dir, 0o711);
  const hostKey = path.join(dir, "host_ed25519");
  const clientKey = path.join(dir, "client_ed25519");
  runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  if (opts.clientPrivateKey) {
    fs.writeFileSync(clientKey, opts.clientPrivateKey, { mode: 0o600 });
    fs.writeFileSync(`${clientKey}.pub`, runOk("ssh-keygen", ["-y", "-f", clientKey]).stdout);
  } else {
    runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", clientKey, "-C", "backup321-test"]);
  }
  const authorized = path.join(dir, "authorized_keys");
  fs.copyFileSync(`${clientKey}.pub`, authorized);
  fs.chmodSync(authorized, 0o644);
  const port = opts.port ?? (await freePort());
  const config = path.join(dir, "sshd_config");
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "AcceptEnv none",
      "Subsystem sftp internal-sftp",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  fs.mkdirSync("/run/sshd", { recursive: true });
  const sshdBin = fs.existsSync("/usr/sbin/sshd") ? "/usr/sbin/sshd" : "sshd";
  const proc: ChildProcess = spawn(sshdBin, ["-D", "-e", "-f", config], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  proc.stderr?.on("data", (d) => (log += d));
  const sshArgs = () => [
    "-i",
    clientKey,
    "-p",
    String(port),
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    `UserKnownHostsFile=${path.join(dir, "known_hosts")}`,
    "-o",
    "LogLevel=ERROR",
  ];
  const exec = (command: string, stdin?: string): RunResult =>
    run("ssh", [...sshArgs(), "root@127.0.0.1", "--", command], { input: stdin ?? "" });
  await waitFor(
    `sshd on port ${port} (${log})`,
    () => proc.exitCode === null && exec("true").code === 0,
    20_000,
  );
  return {
    port,
    privateKey: fs.readFileSync(clientKey, "utf8"),
    privateKeyPath: clientKey,
    dir,
    exec,
    sshArgs,
    stop: async () => {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once("exit", r)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
