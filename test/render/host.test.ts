// The host primitives' pure rendering: exact text, snapshots, and shell quoting that holds for
// any string (checked by bash itself).
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run } from "../harness/proc";
import {
  asRoot,
  claimCommand,
  cronFileName,
  installFileCommand,
  ownerStampFile,
  parseFileMarker,
  releaseCommand,
  removeFileCommand,
  renderCronFile,
  DISARMED,
  renderEntryPoint,
  renderEnvFile,
  shq,
  withFileMarker,
} from "../../components/host/render";

test("shq makes any string one bash word, unchanged", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.string({ unit: "binary" }).map((s) => s.replace(/\0/g, "")),
        { minLength: 1, maxLength: 4 },
      ),
      (words) => {
        const r = spawnSync("bash", ["-c", `printf '%s\\0' ${words.map(shq).join(" ")}`], {
          encoding: "utf8",
        });
        expect(r.stdout.split("\0").slice(0, -1)).toEqual(words);
      },
    ),
    { numRuns: 150 },
  );
});

test("install command: exact text, atomic, no-op when unchanged", () => {
  const cmd = installFileCommand({
    path: "/etc/backup321/secrets/k",
    mode: "0600",
    owner: "root",
    group: "root",
    dirMode: "0700",
  });
  expect(cmd).toMatchSnapshot();
  // only a missing directory is created with dirMode: an existing (shared) one keeps its mode
  expect(cmd).toContain(
    "[ -d '/etc/backup321/secrets' ] || install -d -m 0700 -- '/etc/backup321/secrets'",
  );
  expect(cmd).toContain(`= '600:root:root' ]; then exit 0; fi`);
  expect(cmd.indexOf("chmod")).toBeLessThan(cmd.indexOf("mv -f"));
});

test("install command refuses what it cannot do safely", () => {
  const base = { path: "/x", mode: "0644", owner: "root", group: "root", dirMode: "0755" };
  expect(() => installFileCommand({ ...base, path: "relative/x" })).toThrow(
    'path "relative/x" must be absolute',
  );
  expect(() => installFileCommand({ ...base, mode: "644" })).toThrow(
    'mode "644" must be octal like 0600',
  );
  expect(() => removeFileCommand("x")).toThrow("must be absolute");
});

test("the file marker is read back exactly", () => {
  const cmd = withFileMarker("db-srv", "/etc/backup321/a.env", "true");
  expect(cmd).toBe("# backup321: install /etc/backup321/a.env on db-srv\ntrue");
  expect(parseFileMarker(cmd)).toEqual({ host: "db-srv", path: "/etc/backup321/a.env" });
  expect(parseFileMarker("echo hi\n")).toBeUndefined();
});

test("asRoot leaves root alone and wraps anyone else in sudo -n", () => {
  expect(asRoot("root", "id -u")).toBe("id -u");
  expect(asRoot("ops", "echo 'a'")).toBe(`sudo -n -- bash -c 'echo '\\''a'\\'''`);
});

test("env files: sorted, quoted, keys checked", () => {
  expect(renderEnvFile("job x", { Z_LAST: "a b", A_FIRST: "it's", N: 3, FLAG: true })).toBe(
    [
      "# job x",
      "# Managed by backup321 (pulumi up): local edits are overwritten.",
      "A_FIRST='it'\\''s'",
      "FLAG='true'",
      "N='3'",
      "Z_LAST='a b'",
      "",
    ].join("\n"),
  );
  expect(() => renderEnvFile("x", { "bad-key": "v" })).toThrow(
    'env key "bad-key" must be UPPER_SNAKE_CASE',
  );
  // bash reads back exactly what was written
  const file = renderEnvFile("x", { V: "$(rm -rf /) `x` \"q\" 'sq' \\ ;" });
  const r = spawnSync("bash", ["-c", `${file}\nprintf '%s' "$V"`], { encoding: "utf8" });
  expect(r.stdout).toBe("$(rm -rf /) `x` \"q\" 'sq' \\ ;");
});

test("cron file and entry point", () => {
  const cron = renderCronFile({
    job: "restic-usb",
    schedule: " 0  3 * * *",
    command: "/usr/local/lib/backup321/restic-backup.sh",
    args: ["/etc/backup321/restic-usb.env"],
    wrapper: "/usr/local/lib/backup321/b321-cron.sh",
    lockDir: "/var/lib/backup321/locks",
    user: "root",
  });
  expect(cron).toMatchSnapshot();
  expect(cron.split("\n")[5]).toBe(
    "0 3 * * * root '/usr/local/lib/backup321/b321-cron.sh' 'restic-usb' '/usr/local/lib/backup321/restic-backup.sh' '/etc/backup321/restic-usb.env'",
  );
  expect(() =>
    renderCronFile({
      job: "j",
      schedule: "@daily",
      command: "/x",
      args: [],
      wrapper: "/w",
      lockDir: "/s",
      user: "root",
    }),
  ).toThrow("must have five fields");
  // Rebuild mode: the same file, its job line commented out (installed, never scheduled).
  const spec = {
    job: "restic-usb",
    schedule: "0 3 * * *",
    command: "/x",
    args: [],
    wrapper: "/w",
    lockDir: "/s",
    user: "root",
  };
  const disarmed = renderCronFile({ ...spec, disarmed: true }).split("\n");
  const armed = renderCronFile(spec).split("\n");
  expect(disarmed[5]).toBe(`# ${DISARMED} ${armed[5]}`);
  expect(disarmed.filter((l, i) => l !== armed[i])).toEqual([disarmed[5]]);
  expect(cronFileName("restic-usb")).toBe("backup321-restic-usb");
  expect(() => cronFileName("a.b")).toThrow('job name "a.b" must be letters, digits, - or _');
  // The entry point runs what the cron line runs, through the same wrapper (--tee: the terminal
  // gets the output too), and passes its own arguments on.
  const entry = renderEntryPoint({
    job: "restic-usb",
    script: "/usr/local/lib/backup321/restic-backup.sh",
    envFile: "/etc/backup321/restic-usb.env",
    wrapper: "/usr/local/lib/backup321/b321-cron.sh",
    lockDir: "/var/lib/backup321/locks",
  });
  expect(entry).toMatchSnapshot();
  expect(entry.split("\n").slice(-3)).toEqual([
    "export B321_LOCK_DIR='/var/lib/backup321/locks'",
    `exec '/usr/local/lib/backup321/b321-cron.sh' '--tee' 'restic-usb' '/usr/local/lib/backup321/restic-backup.sh' '/etc/backup321/restic-usb.env' "$@"`,
    "",
  ]);
  expect(cron).toContain("B321_LOCK_DIR=/var/lib/backup321/locks\n");
  expect(() =>
    renderEntryPoint({ job: "a b", script: "/x", envFile: "/e", wrapper: "/w", lockDir: "/s" }),
  ).toThrow('job name "a b" must be letters, digits, - or _');
});

test("install command: an existing directory keeps its mode, a missing one gets dirMode", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-dirmode-"));
  try {
    const me = os.userInfo().username;
    const spec = { mode: "0644", owner: me, group: me, dirMode: "0700" };
    fs.mkdirSync(path.join(dir, "shared"), { mode: 0o755 });
    fs.chmodSync(path.join(dir, "shared"), 0o755);
    const put = (p: string) =>
      run("bash", ["-c", installFileCommand({ ...spec, path: p })], { input: "x" }).code;
    expect(put(path.join(dir, "shared", "a"))).toBe(0);
    expect(put(path.join(dir, "new", "b"))).toBe(0);
    expect(fs.statSync(path.join(dir, "shared")).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(dir, "new")).mode & 0o777).toBe(0o700);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe("owner stamps: a delete leaves alone what a newer resource wrote", () => {
  let dir: string;
  let target: string;
  let stamp: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-owner-"));
    target = path.join(dir, "etc", "x.conf");
    stamp = ownerStampFile(path.join(dir, "owners"), target);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const install = () =>
    installFileCommand({
      path: target,
      mode: "0644",
      owner: String(os.userInfo().username),
      group: String(os.userInfo().username),
      dirMode: "0755",
    });
  const claim = (owner: string, content: string) =>
    run("bash", ["-c", claimCommand(install(), stamp, `${owner} ${target}`)], { input: content });
  const release = (owner: string) =>
    run("bash", ["-c", releaseCommand(removeFileCommand(target), stamp, `${owner} ${target}`)]);

  test("the stamp file is per key, under the owners directory", () => {
    expect(ownerStampFile("/o", "/etc/a")).toMatch(/^\/o\/[0-9a-f]{32}$/);
    expect(ownerStampFile("/o", "/etc/a")).toBe(ownerStampFile("/o", "/etc/a"));
    expect(ownerStampFile("/o", "/etc/a")).not.toBe(ownerStampFile("/o", "/etc/b"));
  });

  test("claim passes stdin to the command, then records the owner", () => {
    expect(claim("old-file", "one\n").code).toBe(0);
    expect(fs.readFileSync(target, "utf8")).toBe("one\n");
    expect(fs.readFileSync(stamp, "utf8")).toBe(`old-file ${target}\n`);
  });

  test("a failed command records no owner and fails the claim", () => {
    const r = run("bash", ["-c", claimCommand("echo no >&2; exit 3", stamp, "a b")]);
    expect(r.code).not.toBe(0);
    expect(fs.existsSync(stamp)).toBe(false);
  });

  test("the owner's delete runs and forgets the owner", () => {
    claim("old-file", "one\n");
    expect(release("old-file").code).toBe(0);
    expect(fs.existsSync(target)).toBe(false);
    expect(fs.existsSync(stamp)).toBe(false);
  });

  test("create-before-delete: the old resource's delete keeps the new resource's file", () => {
    claim("old-file", "one\n");
    claim("new-file", "two\n"); // the replacement, created first
    const r = release("old-file");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("left in place, now managed by new-file");
    expect(fs.readFileSync(target, "utf8")).toBe("two\n");
    expect(fs.readFileSync(stamp, "utf8")).toBe(`new-file ${target}\n`);
    expect(release("new-file").code).toBe(0);
    expect(fs.existsSync(target)).toBe(false);
  });

  test("a renamed resource writing the same content (the install exits early) still claims the file", () => {
    claim("old-file", "one\n");
    expect(claim("new-file", "one\n").code).toBe(0);
    expect(fs.readFileSync(stamp, "utf8")).toBe(`new-file ${target}\n`);
    expect(release("old-file").code).toBe(0);
    expect(fs.readFileSync(target, "utf8")).toBe("one\n");
  });

  test("without a stamp (installed by an older version) the delete runs", () => {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, "legacy\n");
    expect(release("any-file").code).toBe(0);
    expect(fs.existsSync(target)).toBe(false);
  });

  test("a failed delete keeps the stamp (the next destroy tries again)", () => {
    claim("old-file", "one\n");
    const r = run("bash", ["-c", releaseCommand("exit 4", stamp, `old-file ${target}`)]);
    expect(r.code).not.toBe(0);
    expect(fs.readFileSync(stamp, "utf8")).toBe(`old-file ${target}\n`);
  });
});
