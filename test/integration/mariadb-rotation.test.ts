// Key rotation on the host, with the real scripts and a real MariaDB 10.11: fulls and shipped
// binlogs made before a rotation stay readable through the key ring, PITR from a full of the old key
// replays binlogs of both keys and equals the source at the target, and a ring that lost the old
// key fails with a message naming the fingerprint instead of a garbled restore.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run } from "../harness/proc";
import {
  fulls,
  keyFileFingerprint,
  physicalInstall,
  seedSchema,
  startOn,
  type Install,
} from "./mariadb-fixture";

const DB = "atlastech_db";
let server: MariaDbServer;
let root: string;
let box: Install;
let keyring: string;
let oldKey: string;
let newKey: string;
const targets: string[] = [];

/** Per-table CHECKSUM TABLE of DB. */
function checksums(sql: (q: string) => string): string {
  const tables = sql(
    `SELECT table_name FROM information_schema.tables WHERE table_schema='${DB}' AND table_type='BASE TABLE' ORDER BY 1`,
  )
    .trim()
    .split("\n");
  return sql(`CHECKSUM TABLE ${tables.map((t) => `\`${DB}\`.\`${t}\``).join(", ")}`);
}

async function nextSecond(): Promise<string> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));
  return new Date().toISOString().slice(0, 19).replace("T", " ");
}

/** The env of a job after the rotation: the new key's fingerprint, the ring. */
const rotated = (job: string, ring = keyring) =>
  box.env(job, { keyFingerprint: keyFileFingerprint(box.keyFile), keyring: ring }, "rotated");

function ok(r: { code: number; stderr: string }): void {
  if (r.code !== 0) throw new Error(r.stderr.slice(-2000));
}

beforeAll(async () => {
  server = await startMariaDb();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-rotation-"));
  fs.chmodSync(root, 0o755);
  server.sql(seedSchema(DB, 0.2));
  ({ box } = physicalInstall(root, server, DB, {
    backupDir: path.join(root, "backups"),
    binlogBackupDir: path.join(root, "binlogs"),
    keepFulls: 4,
    timezone: "UTC",
  }));
  oldKey = fs.readFileSync(box.keyFile, "utf8").split("\n")[0];
  newKey = run("openssl", ["rand", "-base64", "32"]).stdout.trim();
  keyring = path.join(root, "etc", "secrets", "mariadb-backup.keyring");
  fs.writeFileSync(keyring, `${oldKey}\n`, { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("a rotation between two fulls", () => {
  let until: string;
  let atTarget: string;

  beforeAll(async () => {
    // generation 0: a full and binlogs shipped with the old key
    ok(box.runScript("mariadb-full.sh", box.env("mariadb-full", { keyring })));
    server.sql(
      `INSERT INTO ${DB}.clients (nom, email) SELECT CONCAT('avant-', seq), 'a@b' FROM seq_1_to_40`,
      DB,
    );
    ok(box.runScript("mariadb-binlogs.sh", box.env("mariadb-binlogs", { keyring })));
    // the rotation, as pulumi up writes it: the ring first, then the key file
    fs.writeFileSync(keyring, `${oldKey}\n${newKey}\n`, { mode: 0o600 });
    fs.writeFileSync(box.keyFile, `${newKey}\n`, { mode: 0o600 });
    // generation 1: binlogs with the new key, the target in them, then a full with the new key
    server.sql(`UPDATE ${DB}.produits SET prix = prix + 1 WHERE id % 2 = 0`);
    until = await nextSecond();
    atTarget = checksums((q) => server.sql(q));
    await new Promise((r) => setTimeout(r, 1100));
    server.sql(`DELETE FROM ${DB}.clients WHERE nom LIKE 'avant-%'`);
    ok(box.runScript("mariadb-binlogs.sh", rotated("mariadb-binlogs")));
    await new Promise((r) => setTimeout(r, 1100));
    ok(box.runScript("mariadb-full.sh", rotated("mariadb-full")));
  }, 600_000);

  afterAll(() => {
    for (const t of targets) fs.rmSync(t, { recursive: true, force: true });
  });

  test("each full records the key it was made with", () => {
    const fps = fulls(path.join(root, "backups")).map(
      (f) => JSON.parse(fs.readFileSync(`${f}.manifest.json`, "utf8")).key_fingerprint,
    );
    expect(fps).toHaveLength(2);
    expect(fps[1]).toBe(keyFileFingerprint(box.keyFile));
    expect(fps[0]).not.toBe(fps[1]);
  });

  test("the restore test of the new full passes; the old full is not called foreign", () => {
    const r = box.runScript("mariadb-restore-test.sh", rotated("mariadb-restore-test"));
    ok(r);
    expect(r.stderr).not.toContain("does not hold");
    expect(box.status("mariadb-restore-test").result).toBe("success");
  }, 300_000);

  test("PITR from the old key's full, through binlogs of both keys, equals the source at the target", async () => {
    const target = path.join(root, "pitr-old");
    targets.push(target);
    const r = box.pitr(rotated("mariadb-pitr"), until, target);
    ok(r);
    const [first] = fulls(path.join(root, "backups"));
    expect(r.stderr).toContain(path.basename(first));
    const restored = await startOn(target);
    try {
      expect(checksums(restored.sql)).toBe(atTarget);
    } finally {
      await restored.stop();
    }
  }, 300_000);

  test("a ring without the old key: PITR fails naming the fingerprint, and leaves no datadir", () => {
    const partial = path.join(root, "etc", "secrets", "partial.keyring");
    fs.writeFileSync(partial, `${newKey}\n`, { mode: 0o600 });
    const target = path.join(root, "pitr-missing");
    targets.push(target);
    const r = box.pitr(rotated("mariadb-pitr", partial), until, target);
    expect(r.code).not.toBe(0);
    const [first] = fulls(path.join(root, "backups"));
    const fp = JSON.parse(fs.readFileSync(`${first}.manifest.json`, "utf8")).key_fingerprint;
    expect(String(box.status("mariadb-pitr").error)).toContain(
      `${path.basename(first)}: encrypted with a key this host does not hold (fingerprint ${fp})`,
    );
    expect(fs.existsSync(path.join(target, "ibdata1"))).toBe(false);
  }, 300_000);

  test("a key file not in the ring stops every job before it writes anything", () => {
    const stale = path.join(root, "etc", "secrets", "stale.keyring");
    fs.writeFileSync(stale, `${oldKey}\n`, { mode: 0o600 });
    const before = fulls(path.join(root, "backups")).length;
    const r = box.runScript("mariadb-full.sh", rotated("mariadb-full", stale));
    expect(r.code).not.toBe(0);
    expect(String(box.status("mariadb-full").error)).toMatch(
      /the key ring .*stale\.keyring does not hold the current key/,
    );
    expect(fulls(path.join(root, "backups"))).toHaveLength(before);
  });
});
