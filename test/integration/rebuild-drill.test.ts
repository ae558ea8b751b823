// The site-loss drill: host A runs the MariaDB component and the dump upload (their commands from a
// mock run, executed over SSH), takes a full, ships binlogs after more writes and uploads both to
// the bucket (s3rver); then the site is lost (server, datadir, backups gone). A brand-new host B gets
// the same components from a new mock run of the same stack, and RUNBOOK.md's total-loss blocks are
// pasted on it as printed: the download from the bucket, then the point-in-time recovery swapped
// into B's server. Every table's row count and CHECKSUM TABLE equal A's last shipped state.
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { makeSandbox, type Sandbox } from "../harness/sandbox";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { useRig } from "../harness/rig";
import { remoteSteps, runMocked, type Registration, sandboxHost } from "../harness/program";
import { run } from "../harness/proc";
import { jobFiles } from "../../components/host/render";
import { sandboxMariaDbModel, seedSchema, tableCounts } from "./mariadb-fixture";
import { scenarios } from "../../components/site/runbook/scenarios";
import { pasteOk } from "../harness/runbook";
import { parseSite } from "../../stacks/load";
import type { Site } from "../../stacks/schema";

const DB = "atlastech_db";
const BUCKET = "atlastech-backups";
// s3rver checks signatures against its fixed key pair.
const S3RVER_KEY = "S3RVER";
const boxes: Sandbox[] = [];
const servers: MariaDbServer[] = [];

/** The site model of the drill: one database host whose dumps go to the bucket. */
function drillSite(box: Sandbox, server: MariaDbServer): Site {
  return parseSite({
    name: "atlastech",
    targets: { hostLoss: "none", siteLoss: { rpoHours: 48, rtoHours: 24 } },
    hosts: [{ name: "db-srv", address: "127.0.0.1", roles: ["mariadb"], paths: box.paths }],
    mariadb: {
      ...sandboxMariaDbModel(box.at, server, DB),
      schedules: { incremental: "0 2 * * 1-6" },
      socket: server.socket,
      datadir: server.datadir,
      stopCommand: `${server.ctl} stop`,
      startCommand: `${server.ctl} start`,
    },
    offsite: {
      bucket: { name: BUCKET, region: "us-east-1", objectLock: false },
      upload: { schedule: "30 5 * * *" },
    },
    monitoring: {},
  });
}

/** The components of the database host, as a mock run of `pulumi up` registers them. */
async function componentFor(box: Sandbox, server: MariaDbServer): Promise<Registration[]> {
  const site = drillSite(box, server);
  return runMocked(async () => {
    const { MariaDbBackup } = await import("../../components/mariadb");
    const { DumpUpload } = await import("../../components/offsite");
    const host = await sandboxHost("db", "db-srv", rig.sshd, box.paths);
    const m = site.mariadb!;
    new MariaDbBackup("mdb", {
      host,
      siteName: "atlastech",
      timezone: "UTC",
      socket: server.socket,
      restartCommand: "true",
      config: m,
    });
    new DumpUpload("upload", {
      host,
      bucket: BUCKET,
      region: "us-east-1",
      prefix: site.offsite.bucket!.dumpPrefix,
      backupDir: m.backupDir,
      schedule: site.offsite.upload!.schedule,
      accessKeyId: S3RVER_KEY,
      secretAccessKey: pulumi.secret(S3RVER_KEY),
      endpoint: rig.s3.endpoint,
      caBundle: rig.s3.caFile,
      checksumCalculation: "when_required",
      binlogs: { dir: m.binlogBackupDir, basename: server.binlogBasename },
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

// The sshd and the bucket outlive the hosts: hosts A and B get their own sandbox and MariaDB below.
const rig = useRig({
  prefix: "b321-drill-",
  s3Bucket: BUCKET,
  timeoutMs: 60_000,
  cleanup: async () => {
    for (const s of servers) await s.stop();
    for (const b of boxes) b.remove();
  },
});

test("the site is lost: RUNBOOK.md's total-loss blocks, pasted on a brand-new host, restore the database exactly", async () => {
  // Host A, as it ran until the disaster.
  const boxA = makeSandbox("b321-drill-a-");
  boxes.push(boxA);
  const a = await startMariaDb();
  servers.push(a);
  a.sql(seedSchema(DB));
  const recordedA = await componentFor(boxA, a);
  rig.applyCreates(remoteSteps(recordedA));
  entry(boxA, "mariadb-full");
  // Work after the full, covered by the next day's increment.
  a.sql(
    `INSERT INTO ${DB}.commandes (client_id, total, cree_le) SELECT seq, seq * 2, NOW() FROM seq_1_to_300;` +
      `UPDATE ${DB}.salaires SET montant = montant * 1.02 WHERE employe_id <= 50;`,
    DB,
  );
  entry(boxA, "mariadb-incremental");
  // Work after the increment, covered only by the shipped binlogs.
  a.sql(
    `DELETE FROM ${DB}.conges WHERE id <= 10;` +
      `CREATE TABLE ${DB}.factures (id INT PRIMARY KEY, montant DECIMAL(10,2));` +
      `INSERT INTO ${DB}.factures SELECT seq, seq * 9.5 FROM seq_1_to_120;`,
    DB,
  );
  entry(boxA, "mariadb-binlogs");
  entry(boxA, "offsite-upload");
  const before = state(a.sql);
  expect(Object.keys(before)).toContain("factures");
  const keyA = fs.readFileSync(`${boxA.paths.secrets}/mariadb-backup.key`, "utf8");

  // The disaster: the whole site is gone; only the bucket (and the stack) remain.
  await a.stop();
  expect(fs.existsSync(a.datadir)).toBe(false);
  boxA.remove();

  // Host B: an empty machine with a fresh MariaDB, the components applied from a new mock run.
  const boxB = makeSandbox("b321-drill-b-");
  boxes.push(boxB);
  const b = await startMariaDb();
  servers.push(b);
  const recordedB = await componentFor(boxB, b);
  rig.applyCreates(remoteSteps(recordedB));
  // The key is a stack resource, the same one (same URN, so the same state) whatever host it
  // lands on: that is what lets B read A's backups.
  const keyUrn = (rs: Registration[]) =>
    rs.find((r) => r.type === "random:index/randomPassword:RandomPassword" && r.name === "mdb-key")
      ?.urn;
  expect(keyUrn(recordedB)).toBeDefined();
  expect(keyUrn(recordedB)).toBe(keyUrn(recordedA));
  expect(fs.readFileSync(`${boxB.paths.secrets}/mariadb-backup.key`, "utf8")).toBe(keyA);
  expect(b.sql(`SHOW DATABASES LIKE '${DB}'`).trim()).toBe("");
  // B ran a while before the restore: its own binlogs carry the same names as A's and go past
  // them. They belong to another history and must not be replayed after A's.
  b.sql(
    "CREATE DATABASE only_on_b; CREATE TABLE only_on_b.t (id INT); INSERT INTO only_on_b.t VALUES (1)",
  );
  for (let i = 0; i < 8; i++) b.sql("FLUSH BINARY LOGS");
  b.sql("INSERT INTO only_on_b.t VALUES (2)");

  // RUNBOOK.md's total loss, the database's blocks, pasted on B as printed (inputs as printed too).
  const steps = scenarios(drillSite(boxB, b), "prod").find((x) =>
    x.title.startsWith("total loss"),
  )!.steps;
  const fetch = steps.findIndex((x) => x.say.startsWith("fetch the newest full"));
  expect(steps[fetch + 1].inputs?.map((i) => i.name)).toEqual(["UNTIL"]);
  await new Promise((r) => setTimeout(r, 1100)); // "now" after the last shipped change
  for (const step of steps.slice(fetch, fetch + 2)) {
    expect(step.on).toBe("db-srv");
    pasteOk(step);
  }
  // The full and its increment came back; neither holds the later work: only the binlogs from the
  // bucket do, replayed from the increment's position.
  const manifests = fs
    .readdirSync(boxB.at("backups/database"))
    .filter((f) => f.endsWith(".manifest.json"))
    .sort();
  expect(manifests).toEqual([
    expect.stringMatching(/_full_\d{8}_\d{6}\.xb\.zst\.enc\.manifest\.json$/),
    expect.stringMatching(/_incr_\d{8}_\d{6}\.xb\.zst\.enc\.manifest\.json$/),
  ]);
  const manifest = JSON.parse(
    fs.readFileSync(boxB.at(`backups/database/${manifests[1]}`), "utf8"),
  ) as { tables: Record<string, number>; base_full: string };
  expect(`${manifest.base_full}.manifest.json`).toBe(manifests[0]);
  expect(Object.keys(manifest.tables)).not.toContain(`${DB}.factures`);
  const pitr = JSON.parse(
    fs.readFileSync(jobFiles(boxB.paths, "mariadb-pitr").statusFile, "utf8"),
  ) as Record<string, unknown>;
  expect(String(pitr.increment)).toMatch(
    new RegExp(`/${manifests[1].replace(".manifest.json", "")}$`),
  );
  // B's server now runs on the recovered datadir; its empty one is kept aside.
  expect(state(b.sql)).toEqual(before);
  expect(b.sql("SHOW DATABASES LIKE 'only_on_b'").trim()).toBe("");
  expect(b.sql(`SHOW TRIGGERS FROM ${DB}`)).toContain("commandes_total");
  expect(b.sql(`SHOW CREATE VIEW ${DB}.v_employes`)).toContain("v_employes");
  expect(
    fs.readdirSync(path.dirname(b.datadir)).filter((d) => d.startsWith("data.before-pitr-")),
  ).toHaveLength(1);
}, 600_000);
