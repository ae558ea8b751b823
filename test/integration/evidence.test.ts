// The evidence an auditor reads: every run of every job appends a line to the host's history
// (common.sh), and b321-evidence, installed on the host with the shared library, renders the last
// months from it. Jobs are deployed over SSH into a sandbox, run by their entry points, and the
// report is read from the installed command.
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "../harness/proc";
import { useRig } from "../harness/rig";
import { jobScript } from "../harness/program";
import { HISTORY_COLUMNS, parseHistoryLine } from "../../components/host/file-contracts";

const rig = useRig({
  prefix: "b321-evidence-",
  host: { timezone: "UTC" },
  async program({ box }, host) {
    const { RemoteFile, ScheduledJob } = await import("../../components/host");
    const job = (name: string, ...body: string[]) => {
      const script = new RemoteFile(`${name}-script`, {
        host,
        path: `${box.paths.lib}/${name}.sh`,
        mode: "0755",
        content: jobScript(...body),
      });
      new ScheduledJob(name, {
        host,
        job: name,
        schedule: "0 3 * * *",
        script: script.path,
        env: {},
        dependsOn: [script],
      });
    };
    job(
      "demo",
      "b321_set bytes 42",
      '[ -z "${DEMO_FAIL:-}" ] || b321_fail "$DEMO_FAIL"',
      '[ -z "${DEMO_WARN:-}" ] || b321_warn "$DEMO_WARN"',
    );
    job(
      "drill",
      "b321_kind drill",
      '[ -z "${DEMO_FAIL:-}" ] || b321_fail "$DEMO_FAIL"',
      "b321_set restore_seconds 7",
    );
  },
});

beforeAll(() => rig.applyCreates());

const entry = (job: string, env: NodeJS.ProcessEnv = {}) =>
  run(`${rig.box.paths.sbin}/b321-${job}`, [], {
    env: { ...process.env, B321_ALERT: "/bin/true", ...env },
  });
const evidence = (...args: string[]) => run(`${rig.box.paths.sbin}/b321-evidence`, args);
const month = () => new Date().toISOString().slice(0, 7);
const historyFile = () => path.join(rig.box.paths.history, `${month()}.tsv`);
const lines = () =>
  fs
    .readFileSync(historyFile(), "utf8")
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => parseHistoryLine(l) as Record<string, string>);
/** The cells of the report's table row that starts with `first`. */
const rows = (report: string, first: string) =>
  report
    .split("\n")
    .filter((l) => l.startsWith(`| ${first} |`))
    .map((l) => l.slice(2, -2).split(" | "));

test("every run is one history line, written after its alert", async () => {
  expect((await entry("demo")).code).toBe(0);
  expect((await entry("demo", { DEMO_WARN: "slow disk" })).code).toBe(0);
  expect((await entry("demo", { DEMO_FAIL: "first\nsecond\tpart | piped" })).code).toBe(1);
  expect((await entry("demo", { DEMO_FAIL: "no channel", B321_ALERT: "/bin/false" })).code).toBe(1);
  const h = lines();
  expect(h.map((l) => [l.job, l.kind, l.result, l.alert, l.bytes])).toEqual([
    ["demo", "backup", "success", "none", "42"],
    ["demo", "backup", "warning", "sent", "42"],
    ["demo", "backup", "failed", "sent", "42"],
    ["demo", "backup", "failed", "undelivered", "42"],
  ]);
  // the message stays on its line, with the status file's error in it
  expect(h[2].message).toBe("first \\n second part | piped");
  const status = JSON.parse(fs.readFileSync(`${rig.box.paths.status}/demo.json`, "utf8"));
  expect(h[3].message).toBe(status.error);
  expect((fs.statSync(historyFile()).mode & 0o777).toString(8)).toBe("644");
});

test("b321-evidence lists drills, success rates and alerts from the history", async () => {
  expect((await entry("drill")).code).toBe(0);
  expect((await entry("drill", { DEMO_FAIL: "rows differ" })).code).toBe(1);
  const r = await evidence();
  expect(r.code).toBe(0);
  const report = r.stdout;
  expect(report).toContain("# Backup evidence: ");
  const runs = lines().length;
  expect(report).toContain(`: ${runs} runs recorded in ${rig.box.paths.history}.`);
  // a history younger than the period says so: nothing before it is recorded
  expect(report).toContain(`The history starts at ${lines()[0].ended}: nothing earlier`);

  const drills = report.split("## Drills and restores")[1].split("##")[0];
  expect(rows(drills, lines()[4].ended)[0]).toEqual([
    lines()[4].ended,
    "drill",
    "drill",
    "success",
    "7 s",
    "",
  ]);
  expect(drills).toContain("| drill | failed | - | rows differ |");
  expect(drills).not.toContain("| demo |");

  const rates = report.split("## Success rate per job")[1].split("##")[0];
  // demo: 1 success + 1 warning of 4 runs did their job
  expect(rows(rates, "demo")[0].slice(0, 8)).toEqual([
    "demo",
    "backup",
    "4",
    "1",
    "1",
    "2",
    "50.0 %",
    lines()[3].ended,
  ]);
  expect(rows(rates, "drill")[0].slice(0, 7)).toEqual([
    "drill",
    "drill",
    "2",
    "1",
    "0",
    "1",
    "50.0 %",
  ]);

  const alerts = report.split("## Alerts")[1];
  expect(alerts.split("\n").filter((l) => /^\| \d{4}-/.test(l))).toEqual([
    `| ${lines()[1].ended} | demo | warning | sent | slow disk |`,
    `| ${lines()[2].ended} | demo | failed | sent | first; second part \\| piped |`,
    `| ${lines()[3].ended} | demo | failed | undelivered | no channel |`,
    `| ${lines()[5].ended} | drill | failed | sent | rows differ |`,
  ]);
});

test("b321-evidence refuses a period it does not keep", async () => {
  for (const bad of [["--months", "0"], ["--months", "13"], ["--months"], ["--since", "x"]]) {
    const r = await evidence(...bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("usage: evidence.sh [--months N]");
  }
});

test("runs ending together each keep their whole line", async () => {
  const before = lines().length;
  const env = `${rig.box.paths.etc}/drill.env`;
  const results = await Promise.all(
    Array.from({ length: 8 }, () =>
      run(`${rig.box.paths.lib}/drill.sh`, [env], {
        env: { ...process.env, B321_ALERT: "/bin/true" },
      }),
    ),
  );
  expect(results.map((r) => r.code)).toEqual(Array(8).fill(0));
  const after = lines();
  expect(after).toHaveLength(before + 8);
  for (const l of after.slice(before)) {
    expect(Object.keys(l)).toEqual(Object.keys(HISTORY_COLUMNS));
    expect([l.job, l.kind, l.result, l.restore_seconds]).toEqual([
      "drill",
      "drill",
      "success",
      "7",
    ]);
  }
});

test("the history keeps 13 months: an older month's file goes at the next run", async () => {
  const at = (monthsAgo: number) => {
    const d = new Date();
    d.setUTCDate(1);
    d.setUTCMonth(d.getUTCMonth() - monthsAgo);
    return path.join(rig.box.paths.history, `${d.toISOString().slice(0, 7)}.tsv`);
  };
  // a month written by the real jobs, as it would stand a year on
  fs.copyFileSync(historyFile(), at(12));
  fs.copyFileSync(historyFile(), at(13));
  expect((await entry("demo")).code).toBe(0);
  expect(fs.existsSync(at(12))).toBe(true);
  expect(fs.existsSync(at(13))).toBe(false);
  expect(fs.existsSync(historyFile())).toBe(true);
});
