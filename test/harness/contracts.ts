// Every status file, registry entry and manifest under a test's root, checked against the file
// contracts (components/host/file-contracts.ts): the files the real scripts wrote are what the monitor,
// retention and PITR read, so a field that drifts on one side fails here.
import * as fs from "node:fs";
import * as path from "node:path";
import {
  commonStatusSchema,
  contractProblems,
  historyLineSchema,
  jobEntrySchema,
  manifestSchema,
  parseHistoryLine,
  runRecordSchema,
  STATUS_EXTRAS,
  statusSchema,
} from "../../components/host/file-contracts";

function contractOf(file: string, body: Record<string, unknown>) {
  if (file.endsWith(".manifest.json")) return manifestSchema;
  const dir = path.basename(path.dirname(file));
  if (dir === "jobs.d") return jobEntrySchema;
  if (dir === "runs") return runRecordSchema;
  if (dir === "status") {
    const script = typeof body.script === "string" ? body.script : "";
    // a job script a test wrote itself (not shipped, so without a contract of its own)
    return script in STATUS_EXTRAS ? statusSchema(script) : commonStatusSchema;
  }
  return undefined;
}

/** The files under dir (recursively) that `keep` takes, by their directory and name. */
function* filesUnder(dir: string, keep: (dir: string, name: string) => boolean): Generator<string> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* filesUnder(p, keep);
    else if (e.isFile() && keep(dir, e.name)) yield p;
  }
}

/** <history>/<YYYY-MM>.tsv files (a history directory is named history in the tests). */
const historyFiles = (root: string) =>
  filesUnder(
    root,
    (dir, name) => path.basename(dir) === "history" && /^\d{4}-\d{2}\.tsv$/.test(name),
  );
const jsonFiles = (root: string) => filesUnder(root, (_, name) => name.endsWith(".json"));

/** Problems of a history file: every line must parse into HISTORY_COLUMNS. */
function historyProblems(file: string): string[] {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  if (lines.pop() !== "") return [`${file}: does not end with a line break`];
  return lines.flatMap((line, i) => {
    const row = parseHistoryLine(line);
    if (typeof row === "string") return [`${file}:${i + 1}: ${row}`];
    return contractProblems(historyLineSchema, row).map((p) => `${file}:${i + 1}: ${p}`);
  });
}

/** "file: field: problem" for every contract file under root that does not conform. */
export function fileContractProblems(root: string): string[] {
  const problems: string[] = [];
  for (const file of historyFiles(root)) problems.push(...historyProblems(file));
  for (const file of jsonFiles(root)) {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    } catch (e) {
      if (contractOf(file, {}) !== undefined || path.basename(path.dirname(file)) === "status") {
        problems.push(`${file}: not JSON (${e instanceof Error ? e.message : String(e)})`);
      }
      continue;
    }
    let schema;
    try {
      schema = contractOf(file, body);
    } catch (e) {
      problems.push(`${file}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    if (schema) problems.push(...contractProblems(schema, body).map((p) => `${file}: ${p}`));
  }
  return problems;
}

/** Throws, listing them, when a contract file under root does not conform. */
export function expectFileContracts(root: string): void {
  const problems = fileContractProblems(root);
  if (problems.length > 0) {
    throw new Error(
      `files that break their contract (components/host/file-contracts.ts):\n${problems.join("\n")}`,
    );
  }
}
