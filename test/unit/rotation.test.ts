// Key rotation under mocks: prod (rotation every month since 2026-12) planned two months on brings
// key generations 1 and 2, the current one in the key file, every one in the ring, a new backup
// user password, and the runbook lists each generation with its months.
import { runStack, type Registration } from "../harness/program";
import { pushedFiles } from "../../infra/plan";
import { isSecretValue, reveal } from "../../infra/mockRuntime";
import { keyGeneration, generationStart } from "../../stacks/model/rotation";
import { parseSite, SiteError } from "../../stacks/load";
import { readStackFile } from "../../infra/stackFile";

const at = async (when: string): Promise<Registration[]> => {
  const saved = process.env.BACKUP321_NOW;
  process.env.BACKUP321_NOW = when;
  try {
    return await runStack("prod");
  } finally {
    process.env.BACKUP321_NOW = saved;
  }
};

let now: Registration[];
let later: Registration[];

beforeAll(async () => {
  now = await at("2026-12-15T12:00:00Z");
  later = await at("2027-02-03T08:00:00Z");
}, 120_000);

const keys = (rs: Registration[]) =>
  rs
    .filter((r) => r.type === "random:index/randomPassword:RandomPassword")
    .map((r) => r.name)
    .filter((n) => /^backup321-mariadb-key(-\d+)?$/.test(n));

test("the generation counts whole periods from `since`, never below 0", () => {
  const r = { months: 1, since: "2026-12" };
  expect(keyGeneration(r, new Date("2026-11-30T00:00:00Z"))).toBe(0);
  expect(keyGeneration(r, new Date("2026-12-31T23:59:59Z"))).toBe(0);
  expect(keyGeneration(r, new Date("2027-01-01T00:00:00Z"))).toBe(1);
  expect(keyGeneration({ months: 3, since: "2026-12" }, new Date("2027-05-20T00:00:00Z"))).toBe(1);
  expect(keyGeneration(undefined, new Date("2030-01-01T00:00:00Z"))).toBe(0);
  expect(generationStart({ months: 3, since: "2026-11" }, 2)).toBe("2027-05");
});

test("a bad rotation names its key and the fix", () => {
  const raw = structuredClone(readStackFile("prod").config["backup321:site"]) as Record<
    string,
    unknown
  >;
  raw.rotation = { months: 0, since: "2026-13" };
  expect(() => parseSite(raw)).toThrow(SiteError);
  try {
    parseSite(raw);
  } catch (e) {
    const msg = String((e as Error).message);
    expect(msg).toContain("rotation.months: must be at least 1 (months between two rotations)");
    expect(msg).toContain("rotation.since: must be a month, YYYY-MM (e.g. 2026-12)");
  }
});

test("two periods on: generations 1 and 2 are new protected keys, generation 0 keeps its name", () => {
  expect(keys(now)).toEqual(["backup321-mariadb-key"]);
  expect(keys(later).sort()).toEqual([
    "backup321-mariadb-key",
    "backup321-mariadb-key-1",
    "backup321-mariadb-key-2",
  ]);
  for (const r of later.filter((x) => keys([x]).length > 0)) expect(r.options.protect).toBe(true);
});

test("the key file holds the current generation, the ring every one, both secret files", () => {
  const file = (rs: Registration[], p: string) =>
    pushedFiles(rs).find((f) => f.host === "db-srv" && f.path === p)!;
  // the mocks give each RandomPassword the result mock-password-<name>
  const result = (name: string) => `mock-password-${name}`;
  const keyFile = file(later, "/etc/backup321/secrets/mariadb-backup.key");
  const ring = file(later, "/etc/backup321/secrets/mariadb-backup.keyring");
  expect(keyFile.content).toBeUndefined(); // secret: not in the plan
  const stdin = (rs: Registration[], name: string) =>
    rs.find((r) => r.name === name)!.inputs.stdin as unknown;
  const keyStdin = stdin(later, "backup321-mariadb-key-file-file");
  const ringStdin = stdin(later, "backup321-mariadb-keyring-file");
  expect(isSecretValue(keyStdin)).toBe(true);
  expect(isSecretValue(ringStdin)).toBe(true);
  expect(reveal(keyStdin)).toBe(`${result("backup321-mariadb-key-2")}\n`);
  expect(reveal(ringStdin)).toBe(
    ["backup321-mariadb-key", "backup321-mariadb-key-1", "backup321-mariadb-key-2"]
      .map((n) => `${result(n)}\n`)
      .join(""),
  );
  expect(ring.path).toBe("/etc/backup321/secrets/mariadb-backup.keyring");
  // the replica gets the same ring
  expect(
    pushedFiles(later).some(
      (f) => f.host === "db-replica" && f.path === "/etc/backup321/secrets/mariadb-backup.keyring",
    ),
  ).toBe(true);
});

test("the backup user's password is replaced by the rotation, not before", () => {
  const password = (rs: Registration[]) =>
    rs.find((r) => r.name === "backup321-mariadb-password")!.inputs;
  expect(password(now).keepers).toBeUndefined();
  expect(password(later).keepers).toEqual({ generation: "2" });
});

test("the binlog stream user's password is replaced by the rotation too: an update of the user", () => {
  const named = (rs: Registration[], n: string) => rs.find((r) => r.name === n)!;
  expect(named(now, "backup321-mariadb-stream-password").inputs.keepers).toBeUndefined();
  expect(named(later, "backup321-mariadb-stream-password").inputs.keepers).toEqual({
    generation: "2",
  });
  // the user's command takes the password on stdin only: a new one is an update (ALTER USER)
  const user = named(later, "backup321-mariadb-stream-user");
  expect(isSecretValue(user.inputs.stdin)).toBe(true);
  expect(user.inputs.create).toEqual(named(now, "backup321-mariadb-stream-user").inputs.create);
});

test("the runbook lists each generation with its months, and how to read every key", () => {
  const runbook = String(
    pushedFiles(later).find((f) => f.host === "db-srv" && f.path === "/etc/backup321/RUNBOOK.md")!
      .content,
  );
  expect(runbook).toContain("rotated every month (`rotation`)");
  expect(runbook).toContain("  - generation 0: from 2026-12 until 2027-01");
  expect(runbook).toContain("  - generation 1: from 2027-01 until 2027-02");
  expect(runbook).toContain("  - generation 2: from 2027-02 (current)");
  expect(runbook).toContain('endswith("::backup321-mariadb-key-2")');
  expect(runbook).toContain('$HOME/b321-keys/mariadb-generation-1.key"');
});

const named = (rs: Registration[], type: string) =>
  rs.filter((r) => r.type === type).map((r) => r.name);
const PASSWORD = "random:index/randomPassword:RandomPassword";

test("each restic repository gets a protected password per generation, the newest in its file", () => {
  const passwords = (rs: Registration[]) =>
    named(rs, PASSWORD).filter((n) => /^backup321-restic-.*-password(-\d+)?$/.test(n));
  const repos = passwords(now);
  expect(repos.length).toBeGreaterThan(0);
  expect(repos.every((n) => n.endsWith("-password"))).toBe(true);
  expect(passwords(later).sort()).toEqual(repos.flatMap((n) => [n, `${n}-1`, `${n}-2`]).sort());
  for (const r of later.filter((x) => passwords([x]).length > 0))
    expect([r.name, r.options.protect, r.options.retainOnDelete]).toEqual([r.name, true, true]);
  for (const base of repos) {
    const file = later.find((r) => r.name === `${base}-file`)!;
    expect(isSecretValue(file.inputs.stdin)).toBe(true);
    expect(reveal(file.inputs.stdin)).toBe(`mock-password-${base}-2`);
  }
});

test("each S3 writer has the key of the current generation only: the old key goes with the rotation", () => {
  const keys = (rs: Registration[]) => named(rs, "aws:iam/accessKey:AccessKey").sort();
  const first = keys(now);
  expect(first.length).toBeGreaterThan(0);
  expect(keys(later)).toEqual(first.map((n) => `${n}-2`));
});

test("the runbook reads every restic password generation and the current S3 key", () => {
  const runbook = String(
    pushedFiles(later).find((f) => f.host === "db-srv" && f.path === "/etc/backup321/RUNBOOK.md")!
      .content,
  );
  const repos = named(later, PASSWORD)
    .map((n) => /^backup321-restic-(.*)-password$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined);
  for (const repo of repos) {
    expect(runbook).toContain(`endswith("::backup321-restic-${repo}-password-2")`);
    expect(runbook).toContain(`$HOME/b321-keys/restic-${repo}.password"`);
    expect(runbook).toContain(`$HOME/b321-keys/restic-${repo}-generation-0.password"`);
  }
  expect(runbook).toMatch(/endswith\("::backup321-offsite-restic-key-2"\)/);
});
