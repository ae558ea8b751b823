// The commands RemoteFile, CronJob and ScheduledJob register, taken from a mock run and executed
// over real SSH against a sandbox root: twice (the second run changes nothing), then deleted. Every
// install records its resource as the owner of its path, and a delete leaves alone a path that a
// newer resource (the same file renamed in the model) wrote since.
import { spawn } from "node:child_process";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { jobScript, ownerStamps } from "../harness/program";
import { findStep, useRig } from "../harness/rig";
import { run, runAsync, waitFor, type RunResult } from "../harness/proc";

const SECRET = "s3cr3t-value-that-must-not-leak";

const owners = () => `${rig.box.paths.owners}`;

/**
 * Syslog as the scripts reach it: `logger` on PATH is the real logger sending to a UDP receiver
 * here instead of /dev/log (there is no syslog daemon in the test machine).
 */
interface SyslogMessage {
  readonly priority: number;
  readonly tag: string;
  readonly pid: string;
  readonly text: string;
}
let syslog: dgram.Socket;
const logged: SyslogMessage[] = [];
let loggerShim: string;
const withSyslog = (env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  ...env,
  PATH: `${loggerShim}:${env.PATH ?? process.env.PATH}`,
});
const USER_INFO = 14;
const USER_WARNING = 12;

function statOf(p: string): string {
  const s = fs.statSync(p);
  return `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`;
}

const rig = useRig({
  prepare: async ({ box }) => {
    syslog = dgram.createSocket("udp4");
    syslog.on("message", (b) => {
      // RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG
      const m = /^<(\d+)>1 \S+ \S+ (\S+) (\S+) \S+ (?:-|\[[^\]]*\]) ?([\s\S]*)$/.exec(b.toString());
      if (m) logged.push({ priority: Number(m[1]), tag: m[2], pid: m[3], text: m[4] });
    });
    await new Promise<void>((r) => syslog.bind(0, "127.0.0.1", r));
    loggerShim = box.at("logger-shim");
    fs.mkdirSync(loggerShim);
    fs.writeFileSync(
      path.join(loggerShim, "logger"),
      `#!/bin/sh\nexec /usr/bin/logger --server 127.0.0.1 --port ${syslog.address().port} --udp "$@"\n`,
      { mode: 0o755 },
    );
  },
  program: async ({ box }, host) => {
    const { RemoteFile, ScheduledJob } = await import("../../components/host");
    new RemoteFile("plain", { host, path: `${box.root}/opt/app/config.txt`, content: "hello\n" });
    new RemoteFile("key", {
      host,
      path: `${box.paths.secrets}/key`,
      content: pulumi.secret(SECRET),
      secret: true,
    });
    new RemoteFile("script", {
      host,
      path: `${box.paths.lib}/demo.sh`,
      mode: "0755",
      content: jobScript(
        'args="demo args:"; for a in "${@:2}"; do args+=" [$a]"; done; echo "$args"',
        // Holds the run (and the job's lock) while the file DEMO_HOLD exists.
        'while [ -n "${DEMO_HOLD:-}" ] && [ -e "$DEMO_HOLD" ]; do sleep 0.1; done',
        'b321_set bytes "$(wc -c < "$DEMO_FILE")"',
        '[ "${DEMO_FAIL:-0}" = 0 ] || b321_fail "asked to fail"',
      ),
    });
    new ScheduledJob("demo", {
      host,
      job: "demo",
      schedule: "15 2 * * 0",
      script: `${box.paths.lib}/demo.sh`,
      env: { DEMO_FILE: `${box.root}/opt/app/config.txt` },
    });
  },
  cleanup: () => new Promise<void>((r) => (syslog ? syslog.close(() => r()) : r())),
});

test("no secret reaches a command line", () => {
  for (const s of rig.steps) {
    expect(s.create ?? "").not.toContain(SECRET);
    expect(s.update ?? "").not.toContain(SECRET);
    expect(s.delete ?? "").not.toContain(SECRET);
  }
  expect(rig.steps.filter((s) => s.stdin === SECRET)).toHaveLength(1);
});

test("creates install every file with its mode, and a second run changes nothing", () => {
  rig.applyCreates();
  const files = {
    plain: `${rig.box.root}/opt/app/config.txt`,
    key: `${rig.box.paths.secrets}/key`,
    env: `${rig.box.paths.etc}/demo.env`,
    bin: `${rig.box.paths.sbin}/b321-demo`,
    cron: `${rig.box.paths.cron}/backup321-demo`,
    common: `${rig.box.paths.lib}/common.sh`,
  };
  expect(fs.readFileSync(files.plain, "utf8")).toBe("hello\n");
  expect(fs.readFileSync(files.key, "utf8")).toBe(SECRET);
  expect(statOf(files.key)).toBe("600 0:0");
  // The host's layout, made by its readiness command before any file.
  expect(statOf(`${rig.box.paths.secrets}`)).toBe("700 0:0");
  const { etc, lib, sbin, state, cron } = rig.box.paths;
  for (const d of [etc, lib, sbin, state, cron])
    expect({ d, stat: statOf(d) }).toEqual({ d, stat: "755 0:0" });
  // Every file that a delete removes names its resource as the owner of its path.
  const stamps = ownerStamps(owners());
  expect(stamps).toContain(`plain-file ${files.plain}`);
  expect(stamps).toContain(`key-file ${files.key}`);
  expect(stamps).toContain(`demo-cron-crontab-file ${files.cron}`);
  expect(stamps).toHaveLength(rig.steps.filter((s) => s.delete).length);
  expect(statOf(files.env)).toBe("600 0:0");
  expect(statOf(files.bin)).toBe("755 0:0");
  expect(statOf(files.cron)).toBe("644 0:0");
  expect(fs.readFileSync(files.cron, "utf8")).toContain(
    `15 2 * * 0 root '${rig.box.paths.lib}/b321-cron.sh' 'demo' '${rig.box.paths.lib}/demo.sh' '${rig.box.paths.etc}/demo.env'`,
  );
  const before = Object.values(files).map((f) => [
    fs.readFileSync(f, "utf8"),
    statOf(f),
    fs.statSync(f).mtimeMs,
  ]);
  rig.applyCreates();
  const after = Object.values(files).map((f) => [
    fs.readFileSync(f, "utf8"),
    statOf(f),
    fs.statSync(f).mtimeMs,
  ]);
  expect(after).toEqual(before);
  expect(ownerStamps(owners())).toEqual(stamps);
  // no temp file left beside any target
  const leftovers = run("find", [rig.box.root, "-name", "*.b321.*"]).stdout.trim();
  expect(leftovers).toBe("");
});

test("the entry point runs the job and writes its status and metrics; a failure alerts", () => {
  const ok = run(`${rig.box.paths.sbin}/b321-demo`, []);
  expect(ok.code).toBe(0);
  const status = JSON.parse(fs.readFileSync(`${rig.box.paths.status}/demo.json`, "utf8"));
  expect(status).toMatchObject({
    job: "demo",
    result: "success",
    exit_code: 0,
    bytes: 6,
    error: "",
  });
  expect(status.last_success).toBe(status.ended);
  expect(fs.readFileSync(`${rig.box.paths.metrics}/demo.prom`, "utf8")).toContain(
    'backup321_job_success{job="demo"} 1',
  );

  const bad = run(`${rig.box.paths.sbin}/b321-demo`, [], {
    env: { ...process.env, DEMO_FAIL: "1" },
  });
  expect(bad.code).toBe(1);
  const failed = JSON.parse(fs.readFileSync(`${rig.box.paths.status}/demo.json`, "utf8"));
  expect(failed).toMatchObject({ result: "failed", exit_code: 1, error: "asked to fail" });
  expect(failed.last_success).toBe(status.last_success);
  expect(bad.stderr).toContain("FAILED: asked to fail");
  expect(fs.readFileSync(`${rig.box.paths.metrics}/demo.prom`, "utf8")).toContain(
    'backup321_job_success{job="demo"} 0',
  );
});

test("node_exporter, running as its own user, reads the metrics the job wrote", () => {
  const metrics = `${rig.box.paths.metrics}`;
  expect(statOf(metrics)).toBe("755 0:0");
  expect(statOf(`${metrics}/demo.prom`)).toBe("644 0:0");
  const r = run("runuser", ["-u", "nobody", "--", "cat", `${metrics}/demo.prom`]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain('backup321_job_success{job="demo"}');
});

test("the cron wrapper never lets two runs of a job overlap", () => {
  const cronLine = fs.readFileSync(`${rig.box.paths.cron}/backup321-demo`, "utf8");
  expect(cronLine).toContain(`B321_LOCK_DIR=${rig.box.paths.locks}`);
  const env = { ...process.env, B321_LOCK_DIR: rig.box.paths.locks };
  fs.mkdirSync(`${rig.box.paths.locks}`, { recursive: true });
  // hold the job's lock, then ask the wrapper to run the job: it must refuse with 75
  const r = run(
    "flock",
    [
      `${rig.box.paths.locks}/cron-demo.lock`,
      `${rig.box.paths.lib}/b321-cron.sh`,
      "demo",
      "/bin/true",
    ],
    { env },
  );
  expect(r.code).toBe(75);
  const free = run(`${rig.box.paths.lib}/b321-cron.sh`, ["demo", "/bin/sh", "-c", "exit 4"], {
    env,
  });
  expect(free.code).toBe(4);
});

const statusOf = () =>
  JSON.parse(fs.readFileSync(`${rig.box.paths.status}/demo.json`, "utf8")) as Record<
    string,
    unknown
  >;
const lockFile = () => `${rig.box.paths.locks}/cron-demo.lock`;
/** Whether a run holds the job's lock (the probe takes it for a moment when it is free). */
const lockHeld = () => run("flock", ["-n", lockFile(), "true"]).code !== 0;
const running = () =>
  fs.existsSync(`${rig.box.paths.runs}`) &&
  fs.readdirSync(`${rig.box.paths.runs}`).some((f) => /^demo\.\d+\.json$/.test(f));

/** The job's cron line and environment, read from the installed cron file, to run as cron does. */
function cronRun(extra: NodeJS.ProcessEnv = {}): { command: string; env: NodeJS.ProcessEnv } {
  const lines = fs.readFileSync(`${rig.box.paths.cron}/backup321-demo`, "utf8").split("\n");
  const vars = Object.fromEntries(
    lines
      .filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  // minute hour day month weekday user command
  const line = lines.find((l) => /^[0-9*]/.test(l)) as string;
  const command = (/^(?:\S+\s+){6}(.*)$/.exec(line) as RegExpExecArray)[1];
  return { command, env: withSyslog({ ...vars, ...extra }) };
}

/** The lines of syslog from `since` on, once `done` is among them. */
async function loggedUntil(since: number, done: (m: SyslogMessage) => boolean) {
  await waitFor("the line in syslog", () => logged.slice(since).some(done), 20_000);
  return logged.slice(since);
}

test("a by-hand run goes to syslog as cron's does, and to the terminal; extra arguments reach the script", async () => {
  const since = logged.length;
  const r = run(`${rig.box.paths.sbin}/b321-demo`, ["--until", "2026-12-04 02:00:00"], {
    env: withSyslog(),
  });
  expect(r.code).toBe(0);
  expect(statusOf()).toMatchObject({ result: "success" });
  // on the terminal as before: stdout on stdout, stderr on stderr
  expect(r.stdout).toBe("demo args: [--until] [2026-12-04 02:00:00]\n");
  expect(r.stderr).toMatch(/ backup321\[demo\]: started\n/);
  expect(r.stderr).toMatch(/ backup321\[demo\]: finished: success\n$/);
  // and every one of those lines in syslog, tag backup321, one run (one pid), nothing else
  const shown = `${r.stdout}${r.stderr}`.trimEnd().split("\n");
  await waitFor("every line in syslog", () => logged.length - since >= shown.length, 20_000);
  const mine = logged.slice(since);
  expect(mine.map((m) => m.text).sort()).toEqual([...shown].sort());
  expect(new Set(mine.map((m) => `${m.tag} ${m.priority} ${m.pid}`))).toEqual(
    new Set([`backup321 ${USER_INFO} ${mine[0].pid}`]),
  );
  expect(mine[0].pid).toMatch(/^\d+$/);
});

test("by hand and by cron, a job runs once at a time: the second run is refused with 75 and says why", async () => {
  const hold = rig.box.at("hold");
  // cron's run holds the job: a run by hand is refused, and leaves no trace in the status
  fs.writeFileSync(hold, "");
  let since = logged.length;
  const cron = cronRun({ DEMO_HOLD: hold });
  const byCron = runAsync("bash", ["-c", cron.command], { env: cron.env });
  try {
    await waitFor("cron's run of the job", running);
    expect(lockHeld()).toBe(true);
    const statusBefore = fs.readFileSync(`${rig.box.paths.status}/demo.json`, "utf8");
    const refused = run(`${rig.box.paths.sbin}/b321-demo`, [], { env: withSyslog() });
    expect(refused.code).toBe(75);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toBe(
      `b321-demo: not started: demo is already running (by cron or by hand; it holds ${lockFile()}). Try again once it has finished.\n`,
    );
    expect(fs.readFileSync(`${rig.box.paths.status}/demo.json`, "utf8")).toBe(statusBefore);
    expect(await loggedUntil(since, (m) => m.text.includes("not started by hand"))).toContainEqual(
      expect.objectContaining({
        tag: "backup321",
        priority: USER_WARNING,
        text: "[demo] not started by hand: another run of it is still going",
      }),
    );
  } finally {
    fs.rmSync(hold, { force: true });
  }
  const cronDone: RunResult = await byCron.done;
  expect(cronDone).toEqual({ code: 0, stdout: "", stderr: "" }); // cron's output: syslog only
  expect(statusOf()).toMatchObject({ result: "success" });
  expect(
    (await loggedUntil(since, (m) => m.text.endsWith("finished: success"))).map((m) => m.text),
  ).toContain("demo args:");

  // a run by hand holds the job: cron's run is skipped
  fs.writeFileSync(hold, "");
  since = logged.length;
  const byHand = runAsync(`${rig.box.paths.sbin}/b321-demo`, [], {
    env: withSyslog({ DEMO_HOLD: hold }),
  });
  try {
    await waitFor("the run by hand", running);
    expect(lockHeld()).toBe(true);
    const skipped = run("bash", ["-c", cronRun().command], { env: cronRun().env });
    expect(skipped).toEqual({ code: 75, stdout: "", stderr: "" });
    expect(await loggedUntil(since, (m) => m.text.includes("skipped"))).toContainEqual(
      expect.objectContaining({
        priority: USER_WARNING,
        text: "[demo] skipped: another run of it (by cron or by hand) is still going",
      }),
    );
  } finally {
    fs.rmSync(hold, { force: true });
  }
  expect((await byHand.done).code).toBe(0);
  expect(lockHeld()).toBe(false);
});

test("Ctrl-C on a run by hand stops the job, whose last lines still reach the terminal and syslog", async () => {
  const hold = rig.box.at("hold");
  fs.writeFileSync(hold, "");
  const since = logged.length;
  // its own process group, as a shell gives a command typed at a terminal: Ctrl-C signals the group
  const child = spawn(`${rig.box.paths.sbin}/b321-demo`, [], {
    env: withSyslog({ DEMO_HOLD: hold }),
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.resume();
  const closed = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  try {
    await waitFor("the run by hand", running);
    expect(lockHeld()).toBe(true);
    process.kill(-(child.pid as number), "SIGINT");
    expect(await closed).toBe(1);
  } finally {
    fs.rmSync(hold, { force: true });
  }
  expect(statusOf()).toMatchObject({ result: "failed", error: "interrupted by signal INT" });
  expect(stderr).toMatch(/ backup321\[demo\]: finished: failed\n$/);
  expect(
    (await loggedUntil(since, (m) => m.text.endsWith("finished: failed"))).map((m) => m.pid),
  ).toContain(String(child.pid));
  expect(lockHeld()).toBe(false);
});

test("deletes remove every file and can run twice", () => {
  rig.applyDeletes();
  rig.applyDeletes();
  for (const f of [
    `${rig.box.root}/opt/app/config.txt`,
    `${rig.box.paths.secrets}/key`,
    `${rig.box.paths.cron}/backup321-demo`,
    `${rig.box.paths.sbin}/b321-demo`,
  ]) {
    expect(fs.existsSync(f)).toBe(false);
  }
  // every delete forgot its owner stamp
  expect(ownerStamps(owners())).toEqual([]);
});

test("a delete leaves alone a path that a newer resource wrote (a renamed file: created first)", async () => {
  const file = `${rig.box.root}/opt/app/config.txt`;
  const renamed = findStep(
    await rig.mocked(async (_rig, host) => {
      const { RemoteFile } = await import("../../components/host");
      new RemoteFile("renamed", { host, path: file, content: "hello again\n" });
    }),
    "renamed-file",
  );
  const old = rig.step("plain-file");
  // The engine creates the new resource, then deletes the old one.
  rig.applyCreates([old]);
  rig.applyCreates([renamed]);
  expect(ownerStamps(owners())).toEqual([`renamed-file ${file}`]);
  const left = rig.sshd.exec(old.delete as string);
  expect(left.code).toBe(0);
  expect(left.stderr).toContain("backup321: left in place, now managed by renamed-file");
  expect(fs.readFileSync(file, "utf8")).toBe("hello again\n");
  expect(ownerStamps(owners())).toEqual([`renamed-file ${file}`]);
  // Its own delete removes it, and forgets the owner.
  rig.applyDeletes([renamed]);
  expect(fs.existsSync(file)).toBe(false);
  expect(ownerStamps(owners())).toEqual([]);
});
