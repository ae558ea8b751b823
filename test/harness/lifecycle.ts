// A site of two sandboxed hosts for the real engine: "db" (MariaDB, restic, monitor; reached as
// root) and "files" (restic, monitor; reached as a sudo user), each an sshd on 127.0.0.1 with its
// own sandbox root, and a "disk" beside each root standing in for its USB SSD (backups survive a
// wiped root). Deploying one model to two such sets of roots gives trees that compare equal.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run, runOk } from "./proc";
import { rootedPaths } from "./sandbox";
import { startSshd, type Sshd } from "./sshd";
import { startMariaDb, type MariaDbServer } from "./mariadb";
import { managedTree, type TreeEntry } from "./tree";
import type { SiteInput } from "../../stacks/schema";
import type { HostPaths } from "../../stacks/model/hosts";

/** The unix user the "files" host is reached as: passwordless sudo, like a real ops account. */
export const SUDO_USER = "b321ops";

/** Creates the sudo user once per machine (idempotent); tests run as root. */
export function ensureSudoUser(): void {
  if (run("id", ["-u", SUDO_USER]).code !== 0) {
    runOk("useradd", ["--create-home", "--shell", "/bin/bash", SUDO_USER]);
  }
  // No password, but not locked: sshd without PAM refuses key logins to a locked ("!") account.
  runOk("usermod", ["-p", "*", SUDO_USER]);
  const sudoers = `/etc/sudoers.d/${SUDO_USER}`;
  fs.writeFileSync(sudoers, `${SUDO_USER} ALL=(ALL) NOPASSWD:ALL\n`, { mode: 0o440 });
}

/** One sandboxed host: its root (what a reinstall wipes) and its disk (what survives). */
export interface SandboxHost {
  readonly name: string;
  readonly root: string;
  readonly disk: string;
  readonly paths: HostPaths;
}

export function sandboxHost(base: string, name: string): SandboxHost {
  const root = path.join(base, name, "root");
  const disk = path.join(base, name, "disk");
  fs.mkdirSync(root, { recursive: true, mode: 0o755 });
  fs.mkdirSync(disk, { recursive: true, mode: 0o755 });
  return {
    name,
    root,
    disk,
    paths: rootedPaths(root),
  };
}

/** A deployment target: the two hosts' roots and the MariaDB server of the db host. */
export interface Target {
  readonly base: string;
  readonly db: SandboxHost;
  readonly files: SandboxHost;
  readonly mariadb: MariaDbServer;
  /** The managed tree of each host (backup data and run state left out). */
  trees(): Record<string, Record<string, TreeEntry>>;
  /** Runs every installed job of a host by hand (its b321-* entry points); returns failures. */
  runJobs(host: SandboxHost, skip?: readonly string[]): string[];
  /** Stops every supervised service of both hosts (their supervisors and programs). */
  stopServices(): void;
  /** Stops the services, then the server, and removes the target's directories. */
  stop(): Promise<void>;
}

/** The run directories of a host's supervised services (components/host Service, no systemd). */
export function serviceDirs(h: SandboxHost): string[] {
  const d = path.join(h.paths.state, "services");
  return fs.existsSync(d) ? fs.readdirSync(d).map((n) => path.join(d, n)) : [];
}

/**
 * Stops each service's supervisor with its own stop (TERM, then KILL after 30 s): a program started
 * there would outlive the removed directories. Every one is tried; a failure is thrown after.
 */
function stopSupervisors(hosts: readonly SandboxHost[]): void {
  const failed = hosts.flatMap(serviceDirs).flatMap((dir) => {
    const supervisor = path.join(dir, "supervise.sh");
    if (!fs.existsSync(supervisor)) return [];
    const r = run(supervisor, ["stop", dir], { timeoutMs: 60_000 });
    return r.code === 0 ? [] : [`${dir}: ${r.code} ${r.stderr.slice(-300)}`];
  });
  if (failed.length) throw new Error(`supervisors not stopped:\n${failed.join("\n")}`);
}

export const DATABASE = "lcdb";

/** Retries a first statement on a server that has only just started (its client may see EPIPE). */
async function untilOk(f: () => unknown): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      f();
      return;
    } catch (e) {
      if (i >= 4) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export async function startTarget(label: string): Promise<Target> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `b321-${label}-`));
  fs.chmodSync(base, 0o755);
  const db = sandboxHost(base, "db");
  const files = sandboxHost(base, "files");
  const mariadb = await startMariaDb({ dir: path.join(db.root, "mysql") });
  await untilOk(() =>
    mariadb.sql(
      `CREATE DATABASE IF NOT EXISTS ${DATABASE}; CREATE TABLE IF NOT EXISTS ${DATABASE}.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;` +
        `INSERT IGNORE INTO ${DATABASE}.t VALUES (1,'one'),(2,'two'),(3,'three');`,
    ),
  );
  fs.mkdirSync(path.join(files.root, "data"), { recursive: true });
  fs.writeFileSync(path.join(files.root, "data", "report.txt"), "quarterly report\n");
  const tree = (h: SandboxHost) => {
    const state = h.paths.state.slice(h.root.length + 1);
    const stateDir = path.join(h.root, state);
    const runState = fs.existsSync(stateDir)
      ? fs
          .readdirSync(stateDir)
          .filter((e) => e !== "owners")
          .map((e) => `${state}/${e}`)
      : [];
    return managedTree(
      h.root,
      base,
      ["mysql", "data", ...runState],
      fs.existsSync(h.paths.secrets)
        ? fs
            .readdirSync(h.paths.secrets)
            .map((f) => path.relative(h.root, `${h.paths.secrets}/${f}`))
        : [],
      [path.relative(h.root, h.paths.owners)],
      // the fingerprint of a key that differs between two deployments; the jobs, run after every
      // comparison, fail when it does not match the key file beside it
      [[/^MARIADB_KEY_FINGERPRINT=.*$/gm, "MARIADB_KEY_FINGERPRINT=(of the key file)"]],
    );
  };
  return {
    base,
    db,
    files,
    mariadb,
    trees: () => ({ db: tree(db), files: tree(files) }),
    runJobs(h, skip = []) {
      const sbin = h.paths.sbin;
      if (!fs.existsSync(sbin)) return ["no entry points installed"];
      return fs
        .readdirSync(sbin)
        .filter((f) => f.startsWith("b321-") && !skip.includes(f))
        .sort(jobOrder)
        .flatMap((f) => {
          const r = run(path.join(sbin, f), [], { timeoutMs: 300_000 });
          return r.code === 0 ? [] : [`${f} exited ${r.code}: ${r.stderr.slice(-600)}`];
        });
    },
    stopServices: () => stopSupervisors([db, files]),
    async stop() {
      try {
        stopSupervisors([db, files]);
      } finally {
        await mariadb.stop();
        fs.rmSync(base, { recursive: true, force: true });
      }
    },
  };
}

/** Jobs in the order a day runs them: fulls before what ships or tests them, the monitor last. */
function jobOrder(a: string, b: string): number {
  const rank = (f: string) => {
    const i = ["full", "binlogs", "restore-test", "check", "monitor"].findIndex((k) =>
      f.endsWith(k),
    );
    return i < 0 ? 2 : i; // backups and copies (b321-restic-<repo>) after what they back up
  };
  return rank(a) - rank(b) || a.localeCompare(b);
}

export interface Servers {
  readonly db: Sshd;
  readonly files: Sshd;
}

export async function startServers(): Promise<Servers> {
  return { db: await startSshd(), files: await startSshd() };
}

/** The stack secrets the base model names: each host's SSH key. */
export function lifecycleSecrets(s: Servers): Record<string, string> {
  return { sshPrivateKey: s.db.privateKey, filesSshKey: s.files.privateKey };
}

/** The base model: the dev stack's shape on the two sandboxed hosts. */
export function lifecycleSite(t: Target, s: Servers): SiteInput {
  return {
    name: "lifecycle",
    // Each sandbox host's "disk" is a directory of that host: nothing survives its loss.
    targets: { hostLoss: "none" },
    hosts: [
      {
        name: "db",
        address: "127.0.0.1",
        port: s.db.port,
        roles: ["mariadb", "restic", "monitor"],
        paths: t.db.paths,
      },
      {
        name: "files",
        address: "127.0.0.1",
        port: s.files.port,
        user: SUDO_USER,
        sshKeySecret: "filesSshKey",
        roles: ["restic", "monitor"],
        paths: t.files.paths,
      },
    ],
    retention: { daily5: { keepDaily: 5 } },
    restic: {
      repositories: [
        {
          name: "local",
          host: "db",
          kind: "local",
          path: `${t.db.disk}/restic`,
          schedule: "0 3 * * *",
          paths: [`${t.db.disk}/database`],
          tags: ["database"],
          retention: "daily5",
          check: { schedule: "0 6 * * *", subsets: 7 },
        },
        {
          name: "docs",
          host: "files",
          kind: "local",
          path: `${t.files.disk}/restic`,
          schedule: "30 3 * * *",
          paths: [`${t.files.root}/data`],
          tags: ["documents"],
          retention: "daily5",
          check: { schedule: "0 7 * * *", subsets: 7 },
        },
      ],
    },
    mariadb: {
      host: "db",
      databases: [DATABASE],
      socket: t.mariadb.socket,
      binlogBasename: t.mariadb.binlogBasename,
      confDir: `${t.db.root}/etc/mysql/mariadb.conf.d`,
      restartCommand: `echo restart >> ${t.mariadb.dir}/restarts.log`,
      stopCommand: `${t.mariadb.ctl} stop`,
      startCommand: `${t.mariadb.ctl} start`,
      datadir: t.mariadb.datadir,
      backupDir: `${t.db.disk}/database`,
      binlogBackupDir: `${t.db.disk}/binlogs`,
      schedules: { full: "0 2 * * *", binlogs: "*/15 * * * *", restoreTest: "0 4 * * 0" },
    },
  };
}
