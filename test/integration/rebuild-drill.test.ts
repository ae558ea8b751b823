// The rebuild drill: host A runs the MariaDB component (its commands from a mock run, executed over
// SSH), takes a full and ships binlogs after more writes; then A is lost (server stopped, datadir
// and binlogs gone). A brand-new host B gets the component from a new mock run of the same stack,
// the backups that survived on the NAS/USB are copied onto it, and the PITR entry point rebuilds
// the database: every table's row count and CHECKSUM TABLE equal A's last shipped state.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startSshd, type Sshd } from "../harness/sshd";
import { makeSandbox, type Sandbox } from "../harness/sandbox";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import {
  applyCreates,
  remoteSteps,
  runMocked,
  type Registration,
  sandboxHost,
} from "../harness/program";
import { run, runOk } from "../harness/proc";
import { seedSchema, startOn, tableCounts } from "./mariadb-fixture";

const DB = "atlastech_db";
let sshd: Sshd;
const boxes: Sandbox[] = [];
const servers: MariaDbServer[] = [];

/** The MariaDB component for one host of the stack, as a mock run of `pulumi up` registers it. */
async function componentFor(box: Sandbox, server: MariaDbServer): Promise<Registration[]> {
  return runMocked(async () => {
    const { MariaDbBackup } = await import("../../components/mariadb");
    const { mariadb } = await import("../../stacks/model/mariadb");
    const host = await sandboxHost("db", "db-srv", sshd, box.paths);
    new MariaDbBackup("mdb", {
      host,
      siteName: "atlastech",
      timezone: "UTC",
      socket: server.socket,
      restartCommand: "true",
      config: mariadb.parse({
        host: "db-srv",
        databases: [DB],
        backupDir: box.at("backups/database"),
        binlogBackupDir: box.at("backups/binlogs"),
        binlogBasename: server.binlogBasename,
        confDir: box.at("etc/mysql/mariadb.conf.d"),
      }),
    });
  });
}

/** Row count and CHECKSUM TABLE of every base table. */
function state(sql: (q: string, db?: string) => string): Record<string, string> {
  const counts = tableCounts(sql, DB);
  return Object.fromEntries(
    Object.entries(counts).map(([t, n]) => {
      const sum = sql(`CHECKSUM TABLE \`${DB}\`.\`${t}\``).trim().split("\t")[1];
      return [t, `${n} rows, checksum ${sum}`];
    }),
  );
}

function entry(box: Sandbox, job: string, args: string[] = []): void {
  const r = run(`${box.paths.sbin}/b321-${job}`, args);
  if (r.code !== 0) throw new Error(`b321-${job} failed (${r.code}):\n${r.stderr}`);
}

beforeAll(async () => {
  sshd = await startSshd();
}, 60_000);

afterAll(async () => {
  await sshd?.stop();
  for (const s of servers) await s.stop();
  for (const b of boxes) b.remove();
});

test("a brand-new host rebuilt from the stack restores the lost host's database exactly", async () => {
  // Host A, as it ran until the disaster.
  const boxA = makeSandbox("b321-drill-a-");
  boxes.push(boxA);
  const a = await startMariaDb();
  servers.push(a);
  a.sql(seedSchema(DB));
  const recordedA = await componentFor(boxA, a);
  const stepsA = remoteSteps(recordedA);
  applyCreates(sshd, stepsA);
  entry(boxA, "mariadb-full");
  // Work after the full, covered only by the shipped binlogs.
  a.sql(
    `INSERT INTO ${DB}.commandes (client_id, total, cree_le) SELECT seq, seq * 2, NOW() FROM seq_1_to_300;` +
      `UPDATE ${DB}.salaires SET montant = montant * 1.02 WHERE employe_id <= 50;` +
      `DELETE FROM ${DB}.conges WHERE id <= 10;` +
      `CREATE TABLE ${DB}.factures (id INT PRIMARY KEY, montant DECIMAL(10,2));` +
      `INSERT INTO ${DB}.factures SELECT seq, seq * 9.5 FROM seq_1_to_120;`,
    DB,
  );
  entry(boxA, "mariadb-binlogs");
  const before = state(a.sql);
  expect(Object.keys(before)).toContain("factures");
  const keyA = fs.readFileSync(`${boxA.paths.etc}/secrets/mariadb-backup.key`, "utf8");

  // The disaster: host A is gone (server, datadir, binlogs); its backups survived on the NAS/USB.
  const nas = fs.mkdtempSync(path.join(os.tmpdir(), "b321-drill-nas-"));
  const survived = path.join(nas, "backups");
  runOk("cp", ["-a", boxA.at("backups"), survived]);
  await a.stop();
  expect(fs.existsSync(a.datadir)).toBe(false);
  boxA.remove();

  // Host B: an empty machine with a fresh MariaDB, the component applied from a new mock run.
  const boxB = makeSandbox("b321-drill-b-");
  boxes.push(boxB);
  const b = await startMariaDb();
  servers.push(b);
  const recordedB = await componentFor(boxB, b);
  applyCreates(sshd, remoteSteps(recordedB));
  // The key is a stack resource, the same one (same URN, so the same state) whatever host it
  // lands on: that is what lets B read A's backups.
  const keyUrn = (rs: Registration[]) =>
    rs.find((r) => r.type === "random:index/randomPassword:RandomPassword" && r.name === "mdb-key")
      ?.urn;
  expect(keyUrn(recordedB)).toBeDefined();
  expect(keyUrn(recordedB)).toBe(keyUrn(recordedA));
  const keyB = fs.readFileSync(`${boxB.paths.etc}/secrets/mariadb-backup.key`, "utf8");
  expect(keyB).toBe(keyA);
  expect(b.sql(`SHOW DATABASES LIKE '${DB}'`).trim()).toBe("");

  // The restore from the NAS: the surviving backup and binlog dirs onto B.
  runOk("cp", ["-a", `${survived}/.`, boxB.at("backups")]);
  fs.rmSync(nas, { recursive: true, force: true });
  // The full alone does not hold the later work: only the shipped binlogs do.
  const manifests = fs
    .readdirSync(boxB.at("backups/database"))
    .filter((f) => f.endsWith(".manifest.json"));
  expect(manifests).toHaveLength(1);
  const manifest = JSON.parse(
    fs.readFileSync(boxB.at(`backups/database/${manifests[0]}`), "utf8"),
  ) as { tables: Record<string, number> };
  expect(Object.keys(manifest.tables)).not.toContain(`${DB}.factures`);
  expect(fs.readdirSync(boxB.at("backups/binlogs")).length).toBeGreaterThan(0);
  // B ran a while before the restore: its own binlogs carry the same names as A's and go past
  // them. They belong to another history and must not be replayed after A's.
  b.sql(
    "CREATE DATABASE only_on_b; CREATE TABLE only_on_b.t (id INT); INSERT INTO only_on_b.t VALUES (1)",
  );
  for (let i = 0; i < 8; i++) b.sql("FLUSH BINARY LOGS");
  b.sql("INSERT INTO only_on_b.t VALUES (2)");
  const target = boxB.at("restored");
  const until = new Date(Date.now() + 60_000).toISOString().slice(0, 19).replace("T", " ");
  entry(boxB, "mariadb-pitr", ["--until", until, "--tz", "UTC", "--target-datadir", target]);
  const restored = await startOn(target);
  try {
    expect(state(restored.sql)).toEqual(before);
    expect(restored.sql("SHOW DATABASES LIKE 'only_on_b'").trim()).toBe("");
    expect(restored.sql(`SHOW TRIGGERS FROM ${DB}`)).toContain("commandes_total");
    expect(restored.sql(`SHOW CREATE VIEW ${DB}.v_employes`)).toContain("v_employes");
  } finally {
    await restored.stop();
  }
}, 600_000);
