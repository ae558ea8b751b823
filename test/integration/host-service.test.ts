// The Service primitive on a host without systemd (this machine has none): the command it registers,
// taken from a mock run and run over real SSH against a sandbox root, installs b321-supervise.sh and
// its cron file and starts the program; the supervisor restarts it when it dies, with backoff; a
// second create, and an update with new arguments, restart it in place (one supervisor, one
// program); the delete stops both and removes the service's files, never what the program wrote.
import * as fs from "node:fs";
import * as path from "node:path";
import { useRig } from "../harness/rig";
import { run, waitFor } from "../harness/proc";
import type { RemoteStep } from "../harness/program";

/** The program's output: "<pid> <arg>" lines, one per start. */
const log = () => rig.box.at("demo-service.log");
const starts = () =>
  fs.existsSync(log()) ? fs.readFileSync(log(), "utf8").trim().split("\n").filter(Boolean) : [];
const runDir = () => `${rig.box.paths.state}/services/demo`;
const cronFile = () => `${rig.box.paths.cron}/backup321-service-demo`;
const script = () => `${rig.box.paths.lib}/demo-service.sh`;

/** Processes whose command line matches the regular expression RE (pids). */
const procs = (re: string) =>
  run("pgrep", ["-f", "--", re]).stdout.trim().split("\n").filter(Boolean);
/** The pids of the demo program running now (bash running its script; not the supervisor). */
const programs = () => procs(`^/bin/bash ${script()} `);
const supervisors = () => procs(`supervise\\.sh run ${runDir()} `);

const program = (arg: string) => async (_: unknown, host: import("../../components/host").Host) => {
  const { RemoteFile, Service } = await import("../../components/host");
  const file = new RemoteFile("demo-script", {
    host,
    path: script(),
    mode: "0755",
    content: [
      "#!/bin/bash",
      `echo "$$ $1" >> ${log()}`,
      "trap 'exit 0' TERM",
      "while :; do sleep 0.2; done",
      "",
    ].join("\n"),
  });
  new Service("demo", {
    host,
    name: "demo",
    program: script(),
    args: [arg],
    restartOn: [file.contentHash],
    dependsOn: [file],
  });
};

const rig = useRig({ program: (r, host) => program("first")(r, host) });
let updated: RemoteStep[];

afterAll(() => {
  // whatever a failed test left running
  const dir = runDir();
  if (fs.existsSync(`${dir}/supervise.sh`)) run(`${dir}/supervise.sh`, ["stop", dir]);
});

test("the service registers one command, with the supervisor on stdin and no systemd needed", () => {
  const s = rig.step("demo-service");
  expect(s.stdin).toBe(
    fs.readFileSync(
      path.join(__dirname, "../../components/host/scripts/b321-supervise.sh"),
      "utf8",
    ),
  );
  expect(s.create).toContain("systemctl restart 'backup321-demo.service'");
  expect(s.delete).toContain("systemctl disable --now 'backup321-demo.service'");
});

test("create starts the program under the supervisor, from cron at boot and every minute", async () => {
  rig.applyCreates();
  await waitFor("the program to start", () => starts().length === 1);
  expect(programs()).toHaveLength(1);
  expect(supervisors().length).toBeGreaterThanOrEqual(1);
  const cron = fs.readFileSync(cronFile(), "utf8");
  const line = `root '${runDir()}/supervise.sh' 'start' '${runDir()}' '--' '${script()}' 'first'`;
  expect(cron).toContain(`@reboot ${line}\n`);
  expect(cron).toContain(`* * * * * ${line}\n`);
  expect((fs.statSync(runDir()).mode & 0o777).toString(8)).toBe("700");
  // What cron runs every minute starts nothing more while it runs.
  const again = run(`${runDir()}/supervise.sh`, ["start", runDir(), "--", script(), "first"]);
  expect(again.code).toBe(0);
  await new Promise((r) => setTimeout(r, 500));
  expect(programs()).toHaveLength(1);
  expect(starts()).toHaveLength(1);
});

test("a program that dies is started again, later each time it dies young", async () => {
  const t0 = Date.now();
  process.kill(Number(programs()[0]), "SIGKILL");
  await waitFor("a second start", () => starts().length === 2, 10_000);
  const first = Date.now() - t0;
  await waitFor("the program to run again", () => programs().length === 1);
  const t1 = Date.now();
  process.kill(Number(programs()[0]), "SIGKILL");
  await waitFor("a third start", () => starts().length === 3, 10_000);
  const second = Date.now() - t1;
  // backoff: 1 s, then 2 s
  expect(first).toBeGreaterThanOrEqual(900);
  expect(second).toBeGreaterThanOrEqual(1900);
  expect(programs()).toHaveLength(1);
});

test("a second create restarts it in place: still one supervisor, one program", async () => {
  const before = programs();
  rig.applyCreates();
  await waitFor(
    "the restarted program",
    () => programs().length === 1 && programs()[0] !== before[0],
  );
  expect(run(`${runDir()}/supervise.sh`, ["status", runDir()]).code).toBe(0);
  expect(starts()[starts().length - 1]).toMatch(/ first$/);
});

test("an update with new arguments runs the program with them", async () => {
  updated = await rig.mocked(program("second"));
  const step = updated.find((s) => s.name === "demo-service") as RemoteStep;
  expect(step.create).not.toBe(rig.step("demo-service").create);
  rig.applyUpdates(updated);
  await waitFor("the program with its new argument", () =>
    /second$/.test(starts()[starts().length - 1]),
  );
  expect(programs()).toHaveLength(1);
  expect(fs.readFileSync(cronFile(), "utf8")).toContain(`'${script()}' 'second'`);
});

test("delete stops the service and removes its files; what the program wrote stays; twice is fine", async () => {
  rig.applyDeletes(updated);
  expect(programs()).toEqual([]);
  expect(supervisors()).toEqual([]);
  expect(fs.existsSync(cronFile())).toBe(false);
  expect(fs.existsSync(runDir())).toBe(false);
  expect(starts().length).toBeGreaterThanOrEqual(5);
  rig.applyDeletes(updated);
  // nothing starts it again
  await new Promise((r) => setTimeout(r, 1500));
  expect(programs()).toEqual([]);
});
