// The file contracts against the scripts that write and read the files: every field a script sets
// is in its contract, and every field a reader reads is in the contract of the file it reads. The
// integration tests check the files themselves (test/harness/contracts.ts).
import * as fs from "node:fs";
import * as path from "node:path";
import {
  contractProblems,
  JOB_ENTRY_FIELDS,
  MANIFEST_FIELDS,
  CHECKPOINT_FIELDS,
  STATUS_EXTRAS,
  STATUS_FIELDS,
  statusSchema,
} from "../../components/host/file-contracts";

const ROOT = path.join(__dirname, "..", "..", "components");
const scripts = fs
  .readdirSync(ROOT)
  .flatMap((c) => {
    const dir = path.join(ROOT, c, "scripts");
    return fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : [];
  })
  .filter((f) => f.endsWith(".sh"));
const text = (name: string) =>
  fs.readFileSync(
    scripts.find((f) => path.basename(f) === name)!,
    "utf8",
  );
const matches = (s: string, re: RegExp) => [...s.matchAll(re)].map((m) => m[1]);

const setIn = (s: string) => matches(s, /b321_set ([a-z0-9_]+) /g);
const libsOf = (name: string) =>
  matches(text(name), /^source "\$\{BASH_SOURCE\[0\]%\/\*\}\/([a-z]+-lib\.sh)"/gm);

const jobScripts = scripts
  .map((f) => path.basename(f))
  .filter((n) => n !== "common.sh" && /^\s*b321_start "\$/m.test(text(n)));

test("every job script has a status contract, and only the job scripts", () => {
  expect(jobScripts.length).toBeGreaterThan(10);
  expect(Object.keys(STATUS_EXTRAS).sort()).toEqual([...jobScripts].sort());
});

test.each(jobScripts)("%s sets only fields of its contract", (name) => {
  const fields = Object.keys(STATUS_EXTRAS[name].fields);
  expect(setIn(text(name)).filter((k) => !fields.includes(k))).toEqual([]);
});

test("a field a shared library sets is in the contract of a script that sources it", () => {
  const libs = [...new Set(jobScripts.flatMap(libsOf))];
  expect(libs.length).toBeGreaterThan(1);
  for (const lib of libs) {
    const users = jobScripts.filter((n) => libsOf(n).includes(lib));
    const fields = new Set(users.flatMap((n) => Object.keys(STATUS_EXTRAS[n].fields)));
    expect({ lib, unknown: setIn(text(lib)).filter((k) => !fields.has(k)) }).toEqual({
      lib,
      unknown: [],
    });
  }
});

test("every field the monitor reads is in a contract of the file it reads", () => {
  const monitor = text("monitor.sh");
  const statusOrEntry = new Set([...Object.keys(STATUS_FIELDS), ...Object.keys(JOB_ENTRY_FIELDS)]);
  const anyStatus = new Set([
    ...Object.keys(STATUS_FIELDS),
    ...Object.values(STATUS_EXTRAS).flatMap((e) => Object.keys(e.fields)),
  ]);
  expect(
    matches(monitor, /\$\{J\[([A-Za-z0-9_]+)\]/g).filter((k) => !statusOrEntry.has(k)),
  ).toEqual([]);
  expect(
    matches(monitor, /json_(?:str|num) "\$status" ([a-z0-9_]+)/g).filter((k) => !anyStatus.has(k)),
  ).toEqual([]);
  expect(
    matches(monitor, /json_(?:str|num) "\$manifest" ([a-z0-9_]+)/g).filter(
      (k) => !(k in MANIFEST_FIELDS),
    ),
  ).toEqual([]);
  // what the restore check reads, the restore test writes
  expect(matches(monitor, /json_num "\$status" ([a-z0-9_]+)/g)).toContain("restore_seconds");
  expect(STATUS_EXTRAS["mariadb-restore-test.sh"].onSuccess).toContain("restore_seconds");
});

test("every manifest field the database scripts read is in the manifest contract", () => {
  const readers = scripts.filter((f) => /mdb_manifest_get /.test(fs.readFileSync(f, "utf8")));
  expect(readers.length).toBeGreaterThanOrEqual(3);
  const read = readers.flatMap((f) =>
    matches(fs.readFileSync(f, "utf8"), /mdb_manifest_get "[^"]+" ([a-z0-9_]+)/g),
  );
  expect(read.length).toBeGreaterThan(5);
  expect(read.filter((k) => !(k in MANIFEST_FIELDS))).toEqual([]);
});

test("every checkpoint field the database scripts read is in the checkpoint contract", () => {
  const read = scripts.flatMap((f) =>
    matches(fs.readFileSync(f, "utf8"), /mdb_checkpoint_get "[^"]+" ([a-z0-9_]+)/g),
  );
  expect(new Set(read)).toEqual(
    new Set(["not_before_epoch", "binlog_file", "binlog_position", "binlog_identity", "time"]),
  );
  expect(read.filter((k) => !(k in CHECKPOINT_FIELDS))).toEqual([]);
});

test("a status that names its time field differently, or lacks a required one, is refused by name", () => {
  const status = {
    job: "mariadb-restore-test",
    script: "mariadb-restore-test.sh",
    host: "db",
    result: "success",
    exit_code: 0,
    started: "2026-12-04T02:00:00Z",
    ended: "2026-12-04T02:20:00Z",
    duration_seconds: 1200,
    last_success: "2026-12-04T02:20:00Z",
    error: "",
    file: "/backups/database/full.enc",
    tables: 8,
    rows: 225000,
  };
  const schema = statusSchema("mariadb-restore-test.sh");
  expect(contractProblems(schema, { ...status, restore_seconds: 1100 })).toEqual([]);
  const problems = contractProblems(schema, { ...status, rto_seconds: 1100 });
  expect(problems).toContain(
    "rto_seconds: mariadb-restore-test.sh has no status field rto_seconds",
  );
  expect(problems).toContain(
    "restore_seconds: a success run of mariadb-restore-test.sh must record restore_seconds",
  );
  // a failed run records what it got to
  expect(contractProblems(schema, { ...status, result: "failed", exit_code: 1 })).toEqual([]);
  expect(contractProblems(schema, { ...status, restore_seconds: "fast" })[0]).toMatch(
    /^restore_seconds: /,
  );
});
