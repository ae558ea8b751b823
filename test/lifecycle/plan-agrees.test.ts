// The offline plan (mock runtime) and the real engine agree: for the dev stack, the resources the
// plan lists are exactly those the engine's state holds after `pulumi up`.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { engineStack } from "../harness/engine";
import { sandboxHost } from "../harness/lifecycle";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { runMocked } from "../harness/program";
import { clone, stackSite } from "../harness/sites";
import { startSshd, type Sshd } from "../harness/sshd";
import { SITE_KEY } from "../../stacks/load";
import type { SiteInput } from "../../stacks/schema";

let sshd: Sshd;
let mariadb: MariaDbServer;
let base: string;

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), "b321-agree-"));
  fs.chmodSync(base, 0o755);
  sshd = await startSshd();
});

afterAll(async () => {
  await mariadb?.stop();
  await sshd?.stop();
  fs.rmSync(base, { recursive: true, force: true });
});

test("plan.json's (type, name) set equals the real stack's resources after pulumi up", async () => {
  const box = sandboxHost(base, "localhost");
  mariadb = await startMariaDb({ dir: path.join(box.root, "mysql") });
  // The dev stack as written, pointed at the sandbox: same resources, other paths.
  const site = clone(stackSite("dev")) as Record<string, unknown> & {
    hosts: Record<string, unknown>[];
    restic: { repositories: Record<string, unknown>[] };
    mariadb: Record<string, unknown>;
  };
  Object.assign(site.hosts[0], { port: sshd.port, paths: box.paths });
  for (const r of site.restic.repositories) {
    r.path = `${box.disk}/restic`;
    r.paths = [`${box.disk}/database`];
  }
  Object.assign(site.mariadb, {
    socket: mariadb.socket,
    binlogBasename: mariadb.binlogBasename,
    confDir: `${box.root}/etc/mysql/mariadb.conf.d`,
    restartCommand: "true",
    backupDir: `${box.disk}/database`,
    binlogBackupDir: `${box.disk}/binlogs`,
  });
  const secrets = { sshPrivateKey: sshd.privateKey };

  const stack = await engineStack("dev");
  try {
    await stack.configure(site as unknown as SiteInput, secrets);
    await stack.up();
    const real = (await stack.resources())
      .filter((r) => !r.type.startsWith("pulumi:"))
      .map((r) => `${r.type} ${r.urn.split("::").pop()}`)
      .sort();
    // The plan runs after the engine: the mock runtime replaces the process's Pulumi settings.
    const planned = await runMocked(
      async () => {
        const { backupProgram } = await import("../../infra/program");
        backupProgram();
      },
      { [SITE_KEY]: site, "backup321:sshPrivateKey": secrets.sshPrivateKey },
      ["backup321:sshPrivateKey"],
      "dev",
    );
    const mocked = planned.map((r) => `${r.type} ${r.name}`).sort();
    expect(real.length).toBeGreaterThan(50);
    expect(mocked).toEqual(real);
  } finally {
    stack.dispose();
  }
});
