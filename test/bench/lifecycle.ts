// How long the real engine takes on a site: the first `pulumi up`, a `pulumi up` with no change, and
// one with a one-line change (one job's schedule), on 1 host (the dev stack's shape: MariaDB,
// restic and the monitor) and on 10 hosts (the same plus nine restic hosts). Ratios against the
// first up of the same run.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { engineStack } from "../harness/engine";
import { sandboxHost } from "../harness/lifecycle";
import { startMariaDb } from "../harness/mariadb";
import { runOk } from "../harness/proc";
import { startSshd, type Sshd } from "../harness/sshd";
import type { SiteInput } from "../../stacks/schema";

async function seconds(f: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function measure(hosts: number): Promise<string> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "b321-bench-lc-"));
  fs.chmodSync(base, 0o755);
  const servers: Sshd[] = [];
  const db = sandboxHost(base, "h1");
  const mariadb = await startMariaDb({ dir: path.join(db.root, "mysql") });
  const stack = await engineStack("bench");
  try {
    for (let i = 0; i < hosts; i++) servers.push(await startSshd());
    const boxes = servers.map((_, i) => (i === 0 ? db : sandboxHost(base, `h${i + 1}`)));
    const site = (fullSchedule: string): SiteInput => ({
      name: "bench",
      // Each sandbox host's "disk" is a directory of that host: nothing survives its loss.
      targets: { hostLoss: "none" },
      hosts: boxes.map((b, i) => ({
        name: b.name,
        address: "127.0.0.1",
        port: servers[i].port,
        sshKeySecret: `key${i}`,
        roles: i === 0 ? ["mariadb", "restic", "monitor"] : ["restic", "monitor"],
        paths: b.paths,
      })),
      retention: { daily5: { keepDaily: 5 } },
      restic: {
        repositories: boxes.map((b) => ({
          name: `r${b.name}`,
          host: b.name,
          kind: "local",
          path: `${b.disk}/restic`,
          schedule: "0 3 * * *",
          paths: [b.paths.etc],
          retention: "daily5",
        })),
      },
      mariadb: {
        host: "h1",
        databases: ["benchdb"],
        socket: mariadb.socket,
        binlogBasename: mariadb.binlogBasename,
        confDir: `${db.root}/etc/mysql/mariadb.conf.d`,
        restartCommand: "true",
        backupDir: `${db.disk}/database`,
        binlogBackupDir: `${db.disk}/binlogs`,
        schedules: { full: fullSchedule },
      },
    });
    const secrets = Object.fromEntries(servers.map((s, i) => [`key${i}`, s.privateKey]));
    await stack.configure(site("0 2 * * *"), secrets);
    const first = await seconds(() => stack.up());
    const nochange = await seconds(() => stack.up());
    await stack.configure(site("30 1 * * *"), secrets);
    const change = await seconds(() => stack.up());
    return (
      `lifecycle-bench hosts=${hosts} first_s=${first.toFixed(1)} ` +
      `nochange_vs_first=${(nochange / first).toFixed(2)} change_vs_first=${(change / first).toFixed(2)}`
    );
  } finally {
    stack.dispose();
    await mariadb.stop();
    for (const s of servers) await s.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  runOk("bash", [path.resolve(__dirname, "../../engine/build.sh")]);
  // One at a time: the engine and the SSH sessions share the machine's two cores.
  console.log(await measure(1));
  console.log(await measure(10));
}
