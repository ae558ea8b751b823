// The host primitives' contract under Pulumi mocks: exact children, inputs, parents and secrets.
import * as pulumi from "@pulumi/pulumi";
import {
  isSecretValue,
  mockHost,
  reveal,
  recordMocked,
  runMocked,
  type Registration,
} from "../harness/program";
import {
  claimCommand,
  fileMarker,
  installFileCommand,
  ownerStampFile,
  releaseCommand,
  removeFileCommand,
  sha256,
} from "../../components/host/render";

const byName = (name: string) => {
  const r = recorded.find((x) => x.name === name);
  if (!r) throw new Error(`no resource named ${name}: ${recorded.map((x) => x.name).join(", ")}`);
  return r;
};

const recorded = recordMocked(async () => {
  const { RemoteFile, ScheduledJob } = await import("../../components/host");
  const host = await mockHost("h", {
    hostName: "db-srv",
    address: "192.168.10.25",
    privateKey: pulumi.secret("PRIVATE-KEY"),
    requiredTools: ["mariadb-backup"],
  });
  new RemoteFile("pw", {
    host,
    path: "/etc/backup321/secrets/pw",
    content: pulumi.secret("hunter2"),
    secret: true,
  });
  new ScheduledJob("full", {
    host,
    job: "mariadb-full",
    schedule: "0 2 * * 0",
    script: "/usr/local/lib/backup321/mariadb-full.sh",
    env: { BACKUP_DIR: "/backups/database" },
  });
});

/** A RemoteFile's rows in a (type, name, parent) tree: the component and its one command. */
const remoteFile = (name: string, parent: string | null) => [
  ["backup321:host:RemoteFile", name, parent],
  ["command:remote:Command", `${name}-file`, name],
];

test("registers exactly these resources, each under its parent", () => {
  const tree = recorded.map((r) => [
    r.type,
    r.name,
    recorded.find((p) => p.urn === r.parent)?.name ?? null,
  ]);
  expect(tree.sort()).toEqual(
    [
      ["backup321:host:Host", "h", null],
      ["command:remote:Command", "h-ready", "h"],
      ...remoteFile("h-common", "h"),
      ...remoteFile("h-cron-wrapper", "h"),
      ...remoteFile("h-alert", "h"),
      ...remoteFile("h-evidence", "h"),
      ...remoteFile("h-evidence-bin", "h"),
      ...remoteFile("pw", null),
      ["backup321:host:ScheduledJob", "full", null],
      ...remoteFile("full-env", "full"),
      ...remoteFile("full-registry", "full"),
      ...remoteFile("full-bin", "full"),
      ["backup321:host:CronJob", "full-cron", "full"],
      ...remoteFile("full-cron-crontab", "full-cron"),
    ].sort(),
  );
});

test("the connection is secret, bounded and carries the key", () => {
  const ready = byName("h-ready");
  expect(isSecretValue(ready.inputs.connection)).toBe(true);
  expect(reveal(ready.inputs.connection)).toEqual({
    host: "192.168.10.25",
    port: 22,
    user: "root",
    privateKey: "PRIVATE-KEY",
    dialErrorLimit: 10,
    perDialTimeout: 15,
  });
  expect(ready.inputs.create).toContain("'mariadb-backup'");
  expect(ready.inputs.create).toContain("'flock'");
});

test("a secret file's content is secret on stdin only (its trigger is its path), and never logged", () => {
  const file = byName("pw-file");
  expect(isSecretValue(file.inputs.stdin)).toBe(true);
  expect(reveal(file.inputs.stdin)).toBe("hunter2");
  // Nothing derived from the content is an input besides stdin: no hash to rotate or to leak.
  expect(file.inputs.triggers).toEqual(["/etc/backup321/secrets/pw"]);
  expect(file.inputs.logging).toBe("none");
  expect(file.options.additionalSecretOutputs).toEqual(
    expect.arrayContaining(["stdin", "stdout", "stderr"]),
  );
  expect(
    JSON.stringify([file.inputs.create, file.inputs.update, file.inputs.delete]),
  ).not.toContain("hunter2");
  expect(JSON.stringify(file.inputs)).not.toContain(sha256("hunter2"));
  expect(file.inputs.create).toContain("chmod -- 0600");
  expect(file.inputs.create).toContain("install -d -m 0700 -- '/etc/backup321/secrets'");
  expect(file.inputs.update).toBe(file.inputs.create);
});

test("a file's delete removes it only while this resource is still the path's recorded owner", () => {
  const file = byName("pw-file");
  const stampFile = ownerStampFile("/var/lib/backup321/owners", "/etc/backup321/secrets/pw");
  expect(file.inputs.delete).toBe(
    releaseCommand(
      removeFileCommand("/etc/backup321/secrets/pw"),
      stampFile,
      "pw-file /etc/backup321/secrets/pw",
    ),
  );
  // the create (marker, generation, then the install) records the owner after writing the file
  expect(file.inputs.create).toBe(
    [
      fileMarker("db-srv", "/etc/backup321/secrets/pw"),
      "# backup321 host generation 1",
      claimCommand(
        installFileCommand({
          path: "/etc/backup321/secrets/pw",
          mode: "0600",
          owner: "root",
          group: "root",
          dirMode: "0700",
        }),
        stampFile,
        "pw-file /etc/backup321/secrets/pw",
      ),
    ].join("\n"),
  );
});

test("a new path replaces the file, the old one deleted first; the SDK's triggers[*] is the only replace rule", () => {
  for (const r of recorded.filter((x) => x.type === "command:remote:Command")) {
    expect([r.name, r.options.replaceOnChanges]).toEqual([r.name, ["triggers[*]"]]);
    expect([r.name, r.options.deleteBeforeReplace]).toEqual([r.name, r.name !== "h-ready"]);
  }
  expect(byName("full-env-file").inputs.triggers).toEqual(["/etc/backup321/mariadb-full.env"]);
});

test("a plain file's content is its stdin, in the clear", () => {
  const env = byName("full-env-file");
  expect(isSecretValue(env.inputs.stdin)).toBe(false);
  expect(env.inputs.logging).toBe("stderr");
  expect(env.inputs.stdin).toBe(
    [
      "# backup321 job mariadb-full",
      "# Managed by backup321 (pulumi up): local edits are overwritten.",
      "B321_ETC='/etc/backup321'",
      "B321_HISTORY_DIR='/var/lib/backup321/history'",
      "B321_JOB='mariadb-full'",
      "B321_JOBS_DIR='/etc/backup321/jobs.d'",
      "B321_LIB='/usr/local/lib/backup321'",
      "B321_LOCK_DIR='/var/lib/backup321/locks'",
      "B321_METRICS_DIR='/var/lib/backup321/metrics'",
      "B321_RUN_DIR='/var/lib/backup321/runs'",
      "B321_STATE='/var/lib/backup321'",
      "B321_STATUS_DIR='/var/lib/backup321/status'",
      "BACKUP_DIR='/backups/database'",
      "",
    ].join("\n"),
  );
  expect(env.inputs.create).toMatch(
    /^# backup321: install \/etc\/backup321\/mariadb-full.env on db-srv\n# backup321 host generation 1\n/,
  );
  expect(env.inputs.create).toContain("chmod -- 0600");
});

test("a content change is an update: only stdin changes, the triggers stay [path]", async () => {
  const push = (content: string, path = "/etc/x") =>
    runMocked(async () => {
      const { RemoteFile } = await import("../../components/host");
      const host = await mockHost("c", { hostName: "x", address: "10.0.0.9" });
      new RemoteFile("f", { host, path, content });
    }).then((rec) => rec.find((r) => r.name === "f-file")!);
  const [a, b, moved] = [await push("one"), await push("two"), await push("one", "/etc/y")];
  // The engine diffs inputs: only stdin differs, and a stdin change is not a replacement.
  const { stdin: stdinA, ...restA } = a.inputs;
  const { stdin: stdinB, ...restB } = b.inputs;
  expect([stdinA, stdinB]).toEqual(["one", "two"]);
  expect(restB).toEqual(restA);
  expect(a.inputs.triggers).toEqual(["/etc/x"]);
  expect(b.options).toEqual(a.options);
  expect(b.options.replaceOnChanges).toEqual(["triggers[*]"]);
  // A new path changes the triggers: a replacement, the old file removed before the new is written.
  expect(moved.inputs.triggers).toEqual(["/etc/y"]);
  expect(moved.options.deleteBeforeReplace).toBe(true);
});

/** One Host.command on a fresh host under mocks: its registration. */
const hostCommand = async (
  args: Omit<import("../../components/host").HostCommandArgs, "create"> & { create?: string },
): Promise<Registration> => {
  const rec = await runMocked(async () => {
    const host = await mockHost("c", { hostName: "x", address: "10.0.0.9" });
    host.command("cmd", { create: "echo run", ...args }, { parent: host });
  });
  return rec.find((r) => r.name === "cmd")!;
};

test("runAgainOn values reach the command only as hashes, one per value (undefined hashes as empty)", async () => {
  // A multi-line value (another command's create text) must not become command lines.
  const other = "# backup321 host generation 1\nrm -rf -- /srv/data\necho done";
  const c = await hostCommand({ runAgainOn: [other, "v2", undefined as unknown as string] });
  const expected = [
    "# backup321 host generation 1",
    `# backup321 inputs ${[other, "v2", ""].map(sha256).join(" ")}`,
    "echo run",
  ].join("\n");
  expect(c.inputs.create).toBe(expected);
  expect(c.inputs.update).toBe(expected);
  expect(String(c.inputs.create)).not.toContain("rm -rf");
  // Another value changes only the hash: the same command again, as an update.
  const d = await hostCommand({ runAgainOn: [other, "v3", undefined as unknown as string] });
  expect(String(d.inputs.create).split("\n")[1]).toBe(
    `# backup321 inputs ${[other, "v3", ""].map(sha256).join(" ")}`,
  );
  expect([c.inputs.triggers, d.inputs.triggers]).toEqual([undefined, undefined]);
  expect(d.options).toEqual(c.options);
});

test("a command that owns what it deletes is replaced only for another owned identity, the old deleted first", async () => {
  const run = (owns: string, stdin: string) => hostCommand({ owns, delete: "echo gone", stdin });
  const [a, rotated, moved] = [
    await run("thing:a", "one"),
    await run("thing:a", "two"),
    await run("thing:b", "one"),
  ];
  expect(a.inputs.triggers).toEqual(["thing:a"]);
  expect(a.options.deleteBeforeReplace).toBe(true);
  expect(a.options.replaceOnChanges).toEqual(["triggers[*]"]);
  // New stdin (a rotated password, a new key line): only stdin differs, an update.
  const { stdin: stdinA, ...restA } = a.inputs;
  const { stdin: stdinR, ...restR } = rotated.inputs;
  expect([stdinA, stdinR]).toEqual(["one", "two"]);
  expect(restR).toEqual(restA);
  expect(rotated.options).toEqual(a.options);
  // Another identity changes the triggers: a replacement, the old one deleted before the new.
  expect(moved.inputs.triggers).toEqual(["thing:b"]);
  expect(moved.options.deleteBeforeReplace).toBe(true);
});

test("without a delete, or with replaceOn given, owns does not choose the triggers", async () => {
  const noDelete = await hostCommand({ owns: "thing:a" });
  expect(noDelete.inputs.triggers).toBeUndefined();
  expect(noDelete.options.deleteBeforeReplace).toBe(false);
  const given = await hostCommand({ owns: "thing:a", delete: "echo gone", replaceOn: ["/etc/p"] });
  expect(given.inputs.triggers).toEqual(["/etc/p"]);
  expect(given.options.deleteBeforeReplace).toBe(true);
  const neither = await hostCommand({});
  expect(neither.inputs.triggers).toBeUndefined();
  expect(neither.options.deleteBeforeReplace).toBe(false);
});

test("the cron file runs the job through the wrapper, and the entry point runs it by hand", () => {
  expect(byName("full-cron-crontab-file").inputs.stdin).toBe(
    [
      "# backup321 job mariadb-full",
      "# Managed by backup321 (pulumi up): local edits are overwritten.",
      "SHELL=/bin/bash",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "B321_LOCK_DIR=/var/lib/backup321/locks",
      "0 2 * * 0 root '/usr/local/lib/backup321/b321-cron.sh' 'mariadb-full' '/usr/local/lib/backup321/mariadb-full.sh' '/etc/backup321/mariadb-full.env'",
      "",
    ].join("\n"),
  );
  expect(byName("full-bin-file").inputs.stdin).toContain(
    "exec '/usr/local/lib/backup321/b321-cron.sh' '--tee' 'mariadb-full' '/usr/local/lib/backup321/mariadb-full.sh' '/etc/backup321/mariadb-full.env' \"$@\"",
  );
});

test("a non-root user runs everything through sudo -n, after the marker and generation lines", async () => {
  const rec = await runMocked(async () => {
    const { RemoteFile } = await import("../../components/host");
    const host = await mockHost("u", {
      hostName: "x",
      address: "10.0.0.9",
      user: "ops",
      generation: 2,
    });
    new RemoteFile("f", { host, path: "/etc/x", content: "y" });
  });
  const f = rec.find((r) => r.name === "f-file");
  expect(String(f?.inputs.create)).toMatch(
    /^# backup321: install \/etc\/x on x\n# backup321 host generation 2\nsudo -n -- bash -c '/,
  );
  expect(f?.inputs.update).toBe(f?.inputs.create);
  expect(String(f?.inputs.delete)).toMatch(/^sudo -n -- bash -c '/);
  expect(String(rec.find((r) => r.name === "u-ready")?.inputs.create)).toMatch(
    /^# backup321 host generation 2\nsudo -n -- bash -c /,
  );
});
