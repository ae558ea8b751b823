// COMPLIANCE.md: both frameworks, each requirement with the model's own numbers, and a verdict
// that follows the model (a copy taken away is a gap said plainly, never a tick).
import { parseSite } from "../../stacks/load";
import type { SiteInput } from "../../stacks/schema";
import {
  complianceRequirements,
  renderCompliance,
  verdict,
  type Requirement,
} from "../../components/site/compliance";
import { recoveryReport } from "../../stacks/targets";
import { clone, stackSite } from "../harness/sites";

type Raw = SiteInput & Record<string, unknown>;
const prodRaw = () => clone(stackSite("prod")) as Raw;
const reqs = (raw: SiteInput) => {
  const r = complianceRequirements(parseSite(raw), "prod");
  return [...r.iso, ...r.gdpr];
};
const req = (raw: SiteInput, id: string): Requirement => {
  const r = reqs(raw).find((x) => x.id === id);
  if (!r) throw new Error(`no requirement ${id}`);
  return r;
};

test("the prod model against both frameworks, with the plan's numbers", () => {
  const site = parseSite(prodRaw());
  const md = renderCompliance(site, "prod");
  expect(md).toContain("## ISO/IEC 27001:2022, Annex A control 8.13, Information backup");
  expect(md).toContain("A.12.3.1 in the 2013 edition");
  expect(md).toContain("## GDPR, article 32(1)(b) to (d)");
  for (const id of ["32(1)(b)", "32(1)(c)", "32(1)(d)"]) expect(md).toContain(`### ${id}: `);
  const r = recoveryReport(site);
  expect(md).toContain(
    `on site (host lost): worst-case data loss ${r.onSite.worstRpoHours} h against a ${r.onSite.rpoTargetHours} h target`,
  );
  expect(md).toContain(`estimated restore ${r.siteLoss!.rtoHours} h against a`);
  // every requirement's verdict row matches its section
  for (const x of reqs(prodRaw())) {
    expect(md).toContain(`| ${x.id} | ${x.what} | ${verdict(x)} |`);
    expect(md).toContain(`### ${x.id}: ${x.what}\n\n**${verdict(x)}**`);
  }
  // the evidence is asked from every host that runs jobs, not from the NAS
  expect(md).toContain("- db-srv: `/usr/local/sbin/b321-evidence > evidence-db-srv.md`");
  expect(md).not.toContain("evidence-nas.md");
});

test("drills the model does not schedule are gaps, not ticks", () => {
  const f = req(prodRaw(), "8.13 (f)");
  expect(verdict(f)).toBe("partly met");
  // prod drills point-in-time recovery quarterly
  expect(f.gaps.some((g) => g.includes("point-in-time recovery"))).toBe(false);
  expect(f.how).toContain(
    "A point-in-time recovery drill (`0 4 15 1,4,7,10 *`) recovers a scratch instance from a full and the shipped binlogs to the newest checkpoint of the binlog shipping and compares every table's checksum with the one recorded there; the monitor alerts when it fails, is overdue or exceeds the 4 h RTO.",
  );
  // without the quarterly PITR drill, prod's yearly DR drill is the only one: said as the limit
  const noPitrDrill = prodRaw();
  delete (noPitrDrill.mariadb as { schedules: Record<string, unknown> }).schedules.pitrDrill;
  const g = req(noPitrDrill, "8.13 (f)");
  expect(g.gaps).toContain(
    "Point-in-time recovery is drilled once a year only (the disaster-recovery drill, to the end of the shipped binlogs: the result is opened, not compared row by row).",
  );
  expect(g.how.join("\n")).not.toContain("point-in-time recovery drill");
  // with neither, no PITR drill at all
  delete (noPitrDrill.mariadb as { drDrill?: unknown }).drDrill;
  expect(
    req(noPitrDrill, "8.13 (f)").gaps.some((x) =>
      x.startsWith("No scheduled point-in-time recovery drill"),
    ),
  ).toBe(true);
  // PBS verifies its datastore and the monitor watches the result; no guest is restored on schedule
  expect(f.how).toContain(
    "PBS datastore usb-ssd: verify job (`weekly`); the monitor alerts when its last run failed or is older than its schedule allows.",
  );
  expect(f.gaps).toContain(
    "PBS datastore usb-ssd: verified by PBS; no scheduled restore of a guest.",
  );
  // prod drills both restic repositories
  expect(f.gaps.join("\n")).not.toContain("restic");
  expect(f.how).toContain(
    "restic usb: restore drill (`0 7 2 * *`), 20 files of the newest snapshot restored and verified, each in turn; the monitor alerts when it fails or is overdue.",
  );
  const undrilled = prodRaw();
  for (const r of (undrilled.restic as { repositories: Record<string, unknown>[] }).repositories)
    delete r.drill;
  expect(req(undrilled, "8.13 (f)").gaps).toContain(
    "restic usb: no scheduled restore of its files (integrity check only).",
  );
  // GDPR's testing article carries the gaps too
  expect(req(undrilled, "32(1)(d)").gaps).toContain(
    "restic usb: no scheduled restore of its files (integrity check only). (8.13 (f))",
  );
});

test("the NAS and the offsite dumps count as tested when they have a drill, and are gaps without", () => {
  const f = req(prodRaw(), "8.13 (f)");
  expect(f.gaps.join("\n")).not.toMatch(/NAS|Offsite dumps/);
  expect(f.how).toContain(
    "NAS nas: read-back drill (`0 10 4 * *`), the newest snapshot read back and every full and shipped binlog in it compared with the checksums recorded when it was made; the monitor alerts when it fails, is overdue or takes longer than the 4 h RTO.",
  );
  expect(f.how).toContain(
    "Offsite dumps: restore drill (`0 11 5 * *`), the newest full downloaded, checked against its manifest and the upload's sha256, decrypted and prepared; the monitor alerts when it fails, is overdue or takes longer than the 24 h RTO of a lost site.",
  );
  const undrilled = prodRaw();
  const offsite = undrilled.offsite as Record<string, Record<string, unknown>>;
  delete offsite.nas.drill;
  delete offsite.upload.drill;
  const g = req(undrilled, "8.13 (f)");
  expect(g.gaps).toContain("NAS nas: no scheduled read-back of its snapshots.");
  expect(g.gaps).toContain(
    "Offsite dumps: read back and hashed when uploaded; no scheduled download-and-restore.",
  );
  expect(g.how.join("\n")).not.toMatch(/read-back drill|Offsite dumps: restore drill/);
  expect(req(undrilled, "32(1)(d)").gaps).toContain(
    "NAS nas: no scheduled read-back of its snapshots. (8.13 (f))",
  );
});

test("a verdict follows the model", () => {
  expect(verdict(req(prodRaw(), "8.13 (e)"))).toBe("met");
  const unlocked = prodRaw();
  (unlocked.offsite as { bucket: Record<string, unknown> }).bucket.objectLock = false;
  const e = req(unlocked, "8.13 (e)");
  expect(verdict(e)).toBe("partly met");
  expect(e.gaps[0]).toMatch(/^No copy is immutable/);

  const plainNas = prodRaw();
  const m = parseSite(prodRaw()).mariadb!;
  (plainNas.offsite as { nas: Record<string, unknown> }).nas.sources = [
    m.backupDir,
    m.binlogBackupDir,
    "/srv/www",
  ];
  const g = req(plainNas, "8.13 (g)");
  expect(g.gaps).toEqual([
    "/srv/www is copied to the NAS as it is: it is not one of backup321's encrypted outputs.",
  ]);
  expect(verdict(req(plainNas, "32(1)(b)"))).toBe("partly met");

  const noEscrow = prodRaw();
  delete noEscrow.escrow;
  expect(req(noEscrow, "32(1)(c)").gaps.join("\n")).toContain("(escrow:)");

  const noChannel = prodRaw();
  (noChannel.monitoring as Record<string, unknown>).email = [];
  delete (noChannel.monitoring as Record<string, unknown>).webhookSecret;
  expect(req(noChannel, "8.13 (i)").gaps).toContain(
    "No alert channel: failures go to syslog only.",
  );
});

test("a site with no copy off site fails the remote-location requirement", () => {
  const raw = prodRaw();
  raw.offsite = { nas: (raw.offsite as { nas: unknown }).nas } as SiteInput["offsite"];
  raw.restic = {
    ...(raw.restic as object),
    repositories: (raw.restic as { repositories: { kind: string }[] }).repositories.filter(
      (r) => r.kind !== "s3",
    ),
  } as SiteInput["restic"];
  const d = req(raw, "8.13 (d)");
  expect(verdict(d)).toBe("not met");
  expect(d.gaps).toEqual(["No copy leaves the site: a fire or theft loses everything."]);
});

test("the yearly DR drill: described with its standby and schedule when set, a gap without", () => {
  const f = req(prodRaw(), "8.13 (f)");
  expect(f.how).toContain(
    "Disaster recovery: yearly drill (`0 6 10 3 *`) on db-replica, which rebuilds the database host db-srv from the NAS's newest snapshot alone (read with its own read-only key): every full and shipped binlog checked against the checksums recorded when it was made, the newest full restored and its rows compared with its manifest, a point-in-time recovery to the end of the shipped binlogs opened; the whole rebuild is timed, and the monitor alerts when it fails, is overdue or takes longer than the 4 h RTO.",
  );
  expect(f.gaps).not.toContain(
    "No yearly disaster-recovery drill rebuilding a host from the backups alone.",
  );
  const without = prodRaw();
  delete (without.mariadb as Record<string, unknown>).drDrill;
  const g = req(without, "8.13 (f)");
  expect(g.gaps).toContain(
    "No yearly disaster-recovery drill rebuilding a host from the backups alone.",
  );
  // prod's quarterly PITR drill remains: no PITR gap either way
  expect(g.gaps.some((x) => x.includes("oint-in-time recovery"))).toBe(false);
  expect(g.how.join("\n")).not.toContain("Disaster recovery: yearly drill");
  expect(req(without, "32(1)(d)").gaps).toContain(
    "No yearly disaster-recovery drill rebuilding a host from the backups alone. (8.13 (f))",
  );
});

test("key rotation is evidence of its own: said when the model rotates, absent when it does not", () => {
  const rotating = renderCompliance(parseSite(prodRaw()), "prod");
  expect(rotating).toContain(
    "Keys rotated every month since 2026-12 (`rotation`, now generation 0): the database key, the backup user's password, each restic password and each S3 writer's access key.",
  );
  const raw = prodRaw();
  delete raw.rotation;
  expect(renderCompliance(parseSite(raw), "prod")).not.toContain("Keys rotated");
});
