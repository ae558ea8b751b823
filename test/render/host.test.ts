// The host primitives' pure rendering: exact text, snapshots, and shell quoting that holds for
// any string (checked by bash itself).
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import {
  asRoot,
  cronFileName,
  installFileCommand,
  parseFileMarker,
  removeFileCommand,
  renderCronFile,
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
  expect(cmd).toContain("install -d -m 0700 -- '/etc/backup321/secrets'");
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
    stateDir: "/var/lib/backup321",
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
      stateDir: "/s",
      user: "root",
    }),
  ).toThrow("must have five fields");
  expect(cronFileName("restic-usb")).toBe("backup321-restic-usb");
  expect(() => cronFileName("a.b")).toThrow('job name "a.b" must be letters, digits, - or _');
  expect(renderEntryPoint("/lib/x.sh", "/etc/x.env")).toMatchSnapshot();
});
