// The commands RemoteFile, CronJob and ScheduledJob register, taken from a mock run and executed
// over real SSH against a sandbox root: twice (the second run changes nothing), then deleted. Every
// install records its resource as the owner of its path, and a delete leaves alone a path that a
// newer resource (the same file renamed in the model) wrote since.
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { startSshd, type Sshd } from "../harness/sshd";
import { makeSandbox, type Sandbox } from "../harness/sandbox";
import {
  applyCreates,
  applyDeletes,
  ownerStamps,
  remoteSteps,
  runMocked,
  type RemoteStep,
  sandboxHost,
} from "../harness/program";
import { run } from "../harness/proc";

const SECRET = "s3cr3t-value-that-must-not-leak";

let sshd: Sshd;
let box: Sandbox;
let steps: RemoteStep[];
const owners = () => `${box.paths.state}/owners`;

function statOf(p: string): string {
  const s = fs.statSync(p);
  return `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`;
}

beforeAll(async () => {
  sshd = await startSshd();
  box = makeSandbox();
  const recorded = await runMocked(async () => {
    const { RemoteFile, ScheduledJob } = await import("../../components/host");
    const host = await sandboxHost("h", "sandbox", sshd, box.paths);
    new RemoteFile("plain", { host, path: `${box.root}/opt/app/config.txt`, content: "hello\n" });
    new RemoteFile("key", {
      host,
      path: `${box.paths.etc}/secrets/key`,
      content: pulumi.secret(SECRET),
      secret: true,
    });
    new RemoteFile("script", {
      host,
      path: `${box.paths.lib}/demo.sh`,
      mode: "0755",
      content: [
        "#!/bin/bash",
        "set -Eeuo pipefail",
        'source "${BASH_SOURCE[0]%/*}/common.sh"',
        'b321_start "$@"',
        'b321_set bytes "$(wc -c < "$DEMO_FILE")"',
        '[ "${DEMO_FAIL:-0}" = 0 ] || b321_fail "asked to fail"',
        "",
      ].join("\n"),
    });
    new ScheduledJob("demo", {
      host,
      job: "demo",
      schedule: "15 2 * * 0",
      script: `${box.paths.lib}/demo.sh`,
      env: { DEMO_FILE: `${box.root}/opt/app/config.txt` },
    });
  });
  steps = remoteSteps(recorded);
}, 120_000);

afterAll(async () => {
  await sshd?.stop();
  box?.remove();
});

test("no secret reaches a command line", () => {
  for (const s of steps) {
    expect(s.create ?? "").not.toContain(SECRET);
    expect(s.update ?? "").not.toContain(SECRET);
    expect(s.delete ?? "").not.toContain(SECRET);
  }
  expect(steps.filter((s) => s.stdin === SECRET)).toHaveLength(1);
});

test("creates install every file with its mode, and a second run changes nothing", () => {
  applyCreates(sshd, steps);
  const files = {
    plain: `${box.root}/opt/app/config.txt`,
    key: `${box.paths.etc}/secrets/key`,
    env: `${box.paths.etc}/demo.env`,
    bin: `${box.paths.sbin}/b321-demo`,
    cron: `${box.paths.cron}/backup321-demo`,
    common: `${box.paths.lib}/common.sh`,
  };
  expect(fs.readFileSync(files.plain, "utf8")).toBe("hello\n");
  expect(fs.readFileSync(files.key, "utf8")).toBe(SECRET);
  expect(statOf(files.key)).toBe("600 0:0");
  // The host's layout, made by its readiness command before any file.
  expect(statOf(`${box.paths.etc}/secrets`)).toBe("700 0:0");
  for (const d of [box.paths.etc, box.paths.lib, box.paths.sbin, box.paths.state, box.paths.cron])
    expect({ d, stat: statOf(d) }).toEqual({ d, stat: "755 0:0" });
  // Every file that a delete removes names its resource as the owner of its path.
  const stamps = ownerStamps(owners());
  expect(stamps).toContain(`plain-file ${files.plain}`);
  expect(stamps).toContain(`key-file ${files.key}`);
  expect(stamps).toContain(`demo-cron-crontab-file ${files.cron}`);
  expect(stamps).toHaveLength(steps.filter((s) => s.delete).length);
  expect(statOf(files.env)).toBe("600 0:0");
  expect(statOf(files.bin)).toBe("755 0:0");
  expect(statOf(files.cron)).toBe("644 0:0");
  expect(fs.readFileSync(files.cron, "utf8")).toContain(
    `15 2 * * 0 root '${box.paths.lib}/b321-cron.sh' 'demo' '${box.paths.lib}/demo.sh' '${box.paths.etc}/demo.env'`,
  );
  const before = Object.values(files).map((f) => [
    fs.readFileSync(f, "utf8"),
    statOf(f),
    fs.statSync(f).mtimeMs,
  ]);
  applyCreates(sshd, steps);
  const after = Object.values(files).map((f) => [
    fs.readFileSync(f, "utf8"),
    statOf(f),
    fs.statSync(f).mtimeMs,
  ]);
  expect(after).toEqual(before);
  expect(ownerStamps(owners())).toEqual(stamps);
  // no temp file left beside any target
  const leftovers = run("find", [box.root, "-name", "*.b321.*"]).stdout.trim();
  expect(leftovers).toBe("");
});

test("the entry point runs the job and writes its status and metrics; a failure alerts", () => {
  const ok = run(`${box.paths.sbin}/b321-demo`, []);
  expect(ok.code).toBe(0);
  const status = JSON.parse(fs.readFileSync(`${box.paths.state}/status/demo.json`, "utf8"));
  expect(status).toMatchObject({
    job: "demo",
    result: "success",
    exit_code: 0,
    bytes: 6,
    error: "",
  });
  expect(status.last_success).toBe(status.ended);
  expect(fs.readFileSync(`${box.paths.state}/metrics/demo.prom`, "utf8")).toContain(
    'backup321_job_success{job="demo"} 1',
  );

  const bad = run(`${box.paths.sbin}/b321-demo`, [], { env: { ...process.env, DEMO_FAIL: "1" } });
  expect(bad.code).toBe(1);
  const failed = JSON.parse(fs.readFileSync(`${box.paths.state}/status/demo.json`, "utf8"));
  expect(failed).toMatchObject({ result: "failed", exit_code: 1, error: "asked to fail" });
  expect(failed.last_success).toBe(status.last_success);
  expect(bad.stderr).toContain("FAILED: asked to fail");
  expect(fs.readFileSync(`${box.paths.state}/metrics/demo.prom`, "utf8")).toContain(
    'backup321_job_success{job="demo"} 0',
  );
});

test("node_exporter, running as its own user, reads the metrics the job wrote", () => {
  const metrics = `${box.paths.state}/metrics`;
  expect(statOf(metrics)).toBe("755 0:0");
  expect(statOf(`${metrics}/demo.prom`)).toBe("644 0:0");
  const r = run("runuser", ["-u", "nobody", "--", "cat", `${metrics}/demo.prom`]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain('backup321_job_success{job="demo"}');
});

test("the cron wrapper never lets two runs of a job overlap", () => {
  const cronLine = fs.readFileSync(`${box.paths.cron}/backup321-demo`, "utf8");
  expect(cronLine).toContain(`B321_STATE_DIR=${box.paths.state}`);
  const env = { ...process.env, B321_STATE_DIR: box.paths.state };
  fs.mkdirSync(`${box.paths.state}/locks`, { recursive: true });
  // hold the job's lock, then ask the wrapper to run the job: it must refuse with 75
  const r = run(
    "flock",
    [
      `${box.paths.state}/locks/cron-demo.lock`,
      `${box.paths.lib}/b321-cron.sh`,
      "demo",
      "/bin/true",
    ],
    { env },
  );
  expect(r.code).toBe(75);
  const free = run(`${box.paths.lib}/b321-cron.sh`, ["demo", "/bin/sh", "-c", "exit 4"], { env });
  expect(free.code).toBe(4);
});

test("deletes remove every file and can run twice", () => {
  applyDeletes(sshd, steps);
  applyDeletes(sshd, steps);
  for (const f of [
    `${box.root}/opt/app/config.txt`,
    `${box.paths.etc}/secrets/key`,
    `${box.paths.cron}/backup321-demo`,
    `${box.paths.sbin}/b321-demo`,
  ]) {
    expect(fs.existsSync(f)).toBe(false);
  }
  // every delete forgot its owner stamp
  expect(ownerStamps(owners())).toEqual([]);
});

test("a delete leaves alone a path that a newer resource wrote (a renamed file: created first)", async () => {
  const file = `${box.root}/opt/app/config.txt`;
  const renamed = remoteSteps(
    await runMocked(async () => {
      const { RemoteFile } = await import("../../components/host");
      const host = await sandboxHost("h", "sandbox", sshd, box.paths);
      new RemoteFile("renamed", { host, path: file, content: "hello again\n" });
    }),
  ).find((s) => s.name === "renamed-file") as RemoteStep;
  const old = steps.find((s) => s.name === "plain-file") as RemoteStep;
  // The engine creates the new resource, then deletes the old one.
  applyCreates(sshd, [old]);
  applyCreates(sshd, [renamed]);
  expect(ownerStamps(owners())).toEqual([`renamed-file ${file}`]);
  const left = sshd.exec(old.delete as string);
  expect(left.code).toBe(0);
  expect(left.stderr).toContain("backup321: left in place, now managed by renamed-file");
  expect(fs.readFileSync(file, "utf8")).toBe("hello again\n");
  expect(ownerStamps(owners())).toEqual([`renamed-file ${file}`]);
  // Its own delete removes it, and forgets the owner.
  applyDeletes(sshd, [renamed]);
  expect(fs.existsSync(file)).toBe(false);
  expect(ownerStamps(owners())).toEqual([]);
});
