// The offsite model checks (exact messages) and the pure renderers behind the bucket and NAS sync.
import * as path from "node:path";
import { readStackFile } from "../../infra/stackFile";
import { parseSite, SiteError, SITE_KEY } from "../../stacks/load";
import {
  authorizedKeyLine,
  readOnlyKeyLine,
  nasMinIntervalMinutes,
  lifecycleRules,
  renderCredentialsFile,
  writerUserName,
} from "../../components/offsite/render";
import { knownHostsLine } from "../../components/host/ssh-trust";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function prod(): Raw {
  const stack = readStackFile("prod", path.join(__dirname, "..", ".."));
  return structuredClone(stack.config[SITE_KEY]) as Raw;
}

function problems(raw: Raw): string[] {
  try {
    parseSite(raw);
    return [];
  } catch (e) {
    if (!(e instanceof SiteError)) throw e;
    return e.problems
      .filter((p) => !p.path.startsWith("targets.")) // tested in targets.test.ts
      .map((p) => `${p.path}: ${p.message}`);
  }
}

test("the prod site passes", () => {
  expect(problems(prod())).toEqual([]);
});

test("a transition touching the restic prefix is refused, and the message says why", () => {
  const raw = prod();
  raw.offsite.bucket.transitions.push({ prefix: "restic/", days: 30, storageClass: "GLACIER" });
  expect(problems(raw)).toEqual([
    'offsite.bucket.transitions[1].prefix: "restic/" would move restic data under "restic/" to GLACIER, and restic cannot read archived objects (restic issue 4583) (use a prefix outside restic/, e.g. database/)',
  ]);
  const all = prod();
  all.offsite.bucket.transitions = [{ prefix: "", days: 90, storageClass: "DEEP_ARCHIVE" }];
  expect(problems(all)[0]).toContain('"" would move restic data under "restic/" to DEEP_ARCHIVE');
});

test("dump and restic prefixes must not overlap", () => {
  const raw = prod();
  raw.offsite.bucket.dumpPrefix = "restic/dumps/";
  raw.offsite.bucket.transitions = [{ prefix: "restic/dumps/", days: 30, storageClass: "GLACIER" }];
  expect(problems(raw)).toContain(
    'offsite.bucket.dumpPrefix: "restic/dumps/" overlaps the restic prefix "restic/", so dumps\' Glacier rule would archive restic data (restic issue 4583) (separate prefixes, e.g. database/ and restic/)',
  );
});

test("dumps must not expire before they are archived", () => {
  const raw = prod();
  raw.offsite.bucket.expireDumpsAfterDays = 20;
  expect(problems(raw)).toEqual([
    "offsite.bucket.transitions[0].days: dumps would move to GLACIER after 30 days but expire after 20 (fewer days than expireDumpsAfterDays, or raise it)",
  ]);
});

test("the newest weekly full must stay hot until the next one", () => {
  const raw = prod();
  raw.offsite.bucket.transitions[0].days = 3;
  expect(problems(raw)).toEqual([
    "offsite.bucket.transitions[0].days: dumps would move to GLACIER after 3 day(s), before the next full replaces them, so no offsite dump would be readable without a restore request of hours (at least 9)",
  ]);
  raw.offsite.bucket.transitions[0].storageClass = "GLACIER_IR";
  expect(problems(raw)).toEqual([]);
});

test("the binlogs the newest full needs stay hot too: a rule of their own is held to the same bound", () => {
  const raw = prod();
  raw.offsite.bucket.transitions.push({
    prefix: "database/binlogs/",
    days: 2,
    storageClass: "DEEP_ARCHIVE",
  });
  expect(problems(raw)).toEqual([
    "offsite.bucket.transitions[1].days: objects under database/binlogs/ would move to DEEP_ARCHIVE after 2 day(s), before the next full replaces them, so no offsite dump would be readable without a restore request of hours (at least 9)",
  ]);
  raw.offsite.bucket.transitions[1].days = 9;
  expect(problems(raw)).toEqual([]);
});

test("uploaded binlogs move and expire by the dumps' rule, so never before the full they extend", () => {
  const b = parseSite(prod()).offsite.bucket!;
  const rulesFor = (key: string) =>
    lifecycleRules(b).filter(
      (r) =>
        r.filter.prefix !== undefined && r.filter.prefix !== "" && key.startsWith(r.filter.prefix),
    );
  const forBinlog = rulesFor("database/binlogs/mysql-bin.000042.zst.enc");
  expect(forBinlog).toEqual(rulesFor("database/atlastech_db_full_20260208.xb.zst.enc"));
  expect(forBinlog).toEqual([
    {
      id: "dumps",
      status: "Enabled",
      filter: { prefix: "database/" },
      transitions: [{ days: 30, storageClass: "GLACIER" }],
      expiration: { days: 365 },
    },
  ]);
});

test("an s3 restic repository outside the restic prefix is refused", () => {
  const raw = prod();
  raw.restic.repositories[1].prefix = "cloud/restic";
  expect(problems(raw)).toEqual([
    'restic.repositories[1].prefix: "cloud/restic" is outside the bucket\'s restic prefix "restic/": its key could not reach it, and the lifecycle could archive it (a prefix under restic/, e.g. restic/cloud)',
  ]);
});

test("NAS snapshots must reach back at least two days", () => {
  const raw = prod();
  raw.offsite.nas.keep = 30;
  expect(problems(raw)).toEqual([
    "offsite.nas.keep: 30 snapshot(s) taken as often as every 1 h reach back less than 48 h, so a file deleted or encrypted at the source would be gone from the NAS before anyone notices (at least 49)",
  ]);
  raw.offsite.nas.schedule = "30 2 * * *";
  raw.offsite.nas.keep = 1;
  expect(problems(raw)[0]).toContain("(at least 3)");
});

test("lifecycleRules refuses to render an archive rule over restic data", () => {
  expect(() =>
    lifecycleRules({
      dumpPrefix: "database/",
      resticPrefix: "restic/",
      transitions: [{ prefix: "restic/cloud/", days: 30, storageClass: "GLACIER" }],
      expireDumpsAfterDays: 365,
      noncurrentDays: 30,
    }),
  ).toThrow(
    'a transition on "restic/cloud/" would move restic data under "restic/" to GLACIER (restic issue 4583)',
  );
});

test("other archived prefixes get their own transition-only rule", () => {
  const rules = lifecycleRules({
    dumpPrefix: "database/",
    resticPrefix: "restic/",
    transitions: [
      { prefix: "database/", days: 90, storageClass: "DEEP_ARCHIVE" },
      { prefix: "database/", days: 30, storageClass: "GLACIER" },
      { prefix: "pve/dumps/", days: 10, storageClass: "STANDARD_IA" },
    ],
    expireDumpsAfterDays: 400,
    noncurrentDays: 14,
  });
  expect(rules.slice(0, 2)).toEqual([
    {
      id: "dumps",
      status: "Enabled",
      filter: { prefix: "database/" },
      transitions: [
        { days: 30, storageClass: "GLACIER" },
        { days: 90, storageClass: "DEEP_ARCHIVE" },
      ],
      expiration: { days: 400 },
    },
    {
      id: "archive-pve-dumps",
      status: "Enabled",
      filter: { prefix: "pve/dumps/" },
      transitions: [{ days: 10, storageClass: "STANDARD_IA" }],
    },
  ]);
  expect(rules[2].noncurrentVersionExpiration).toEqual({ noncurrentDays: 14 });
});

test("host-side renderers", () => {
  expect(renderCredentialsFile("AKIA1", "s/ec+ret=")).toBe(
    "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s/ec+ret=\n",
  );
  expect(() => renderCredentialsFile("AKIA1", "a\n[evil]")).toThrow("white space");
  expect(knownHostsLine("192.168.10.30", 22, "ssh-ed25519 AAAAB3x= root@nas\n")).toBe(
    "192.168.10.30 ssh-ed25519 AAAAB3x=\n",
  );
  expect(knownHostsLine("127.0.0.1", 2222, "ssh-ed25519 AAAAB3x=")).toBe(
    "[127.0.0.1]:2222 ssh-ed25519 AAAAB3x=\n",
  );
  expect(() => knownHostsLine("nas", 22, "not a key")).toThrow("is not a public key line");
  expect(
    authorizedKeyLine({
      receiver: "/home/backup/.backup321/nas-receive.sh",
      path: "/backups/atlastech",
      keep: 168,
      minAgeMinutes: 2880,
      minIntervalMinutes: 30,
      publicKey: "ssh-ed25519 AAAAC3Nz backup321-nas-sync@db-srv\n",
      sourceHost: "db-srv",
    }),
  ).toBe(
    'restrict,command="/home/backup/.backup321/nas-receive.sh /backups/atlastech 168 2880 30" ssh-ed25519 AAAAC3Nz backup321-nas-sync@db-srv',
  );
  expect(() =>
    authorizedKeyLine({
      receiver: "/r",
      path: '/x" evil',
      keep: 1,
      minAgeMinutes: 0,
      minIntervalMinutes: 0,
      publicKey: "ssh-ed25519 AAAA",
      sourceHost: "h",
    }),
  ).toThrow("must be a plain absolute path");
  expect(() =>
    authorizedKeyLine({
      receiver: "/r",
      path: "/x",
      keep: 1,
      minAgeMinutes: 0,
      minIntervalMinutes: 0.5,
      publicKey: "ssh-ed25519 AAAA",
      sourceHost: "h",
    }),
  ).toThrow("minIntervalMinutes 0.5 must be a whole number");
  // a reader's key (the standby's DR drill): the receiver in read-only mode, its own comment
  expect(
    readOnlyKeyLine({
      receiver: "/home/backup/.backup321/nas-receive.sh",
      path: "/backups/atlastech",
      publicKey: "ssh-ed25519 AAAAC3Nz backup321-nas-read@db-replica\n",
      readerHost: "db-replica",
    }),
  ).toBe(
    'restrict,command="/home/backup/.backup321/nas-receive.sh --read-only /backups/atlastech" ssh-ed25519 AAAAC3Nz backup321-nas-read@db-replica',
  );
  expect(() =>
    readOnlyKeyLine({
      receiver: "/r",
      path: "/x y",
      publicKey: "ssh-ed25519 AAAA",
      readerHost: "h",
    }),
  ).toThrow("must be a plain absolute path");
  expect(() =>
    readOnlyKeyLine({ receiver: "/r", path: "/x", publicKey: "ssh-rsa AAAA", readerHost: "h" }),
  ).toThrow("is not an ed25519 public key");
  // the NAS accepts a snapshot at most every half of the schedule's shortest gap
  expect(nasMinIntervalMinutes("45 * * * *")).toBe(30);
  expect(nasMinIntervalMinutes("15 */6 * * *")).toBe(180);
  expect(nasMinIntervalMinutes("30 2 * * *")).toBe(720);
  expect(nasMinIntervalMinutes("0 1,2 * * *")).toBe(30);
  expect(writerUserName("a".repeat(63), "restic")).toHaveLength(64);
  expect(writerUserName("atlastech-backups", "dumps")).toBe("atlastech-backups-dumps");
});
