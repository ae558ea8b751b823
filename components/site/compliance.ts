// COMPLIANCE.md from the site model: ISO/IEC 27001:2022 control 8.13 (information backup) and
// GDPR article 32(1)(b)-(d), each requirement with how the model meets it and what it does not
// meet, from the same numbers as the plan and the runbook. It states the design; what the hosts
// did (each run, drill and alert) is the evidence b321-evidence prints on each host.
import type { Site } from "../../stacks/schema";
import { nasSources } from "../../stacks/defaults";
import { dumpLock } from "../../stacks/model/offsite";
import { keyGeneration } from "../../stacks/model/rotation";
import { now } from "../../stacks/clock";
import {
  recoveryReport,
  threeTwoOne,
  immutableText,
  type ScenarioReport,
} from "../../stacks/targets";
import { evidenceCommand } from "../host/render";

/** One requirement and the model's answer to it. */
export interface Requirement {
  /** e.g. "8.13 (c)", "32(1)(b)". */
  readonly id: string;
  /** The requirement, in our words. */
  readonly what: string;
  /** How the model meets it: facts computed from the model. */
  readonly how: readonly string[];
  /** What it does not meet, said plainly. */
  readonly gaps: readonly string[];
}

export type Verdict = "met" | "partly met" | "not met";

export function verdict(r: Requirement): Verdict {
  if (r.gaps.length === 0) return "met";
  return r.how.length > 0 ? "partly met" : "not met";
}

const within = (inner: string, outer: string) =>
  inner === outer || inner.startsWith(outer.endsWith("/") ? outer : `${outer}/`);

/** The facts several requirements share, computed once. */
function facts(site: Site) {
  const m = site.mariadb;
  const bucket = site.offsite.bucket;
  const lock = bucket && site.offsite.upload ? dumpLock(bucket) : undefined;
  const report = recoveryReport(site);
  const t = threeTwoOne(site);
  const scenarios = [report.onSite, ...(report.siteLoss ? [report.siteLoss] : [])];
  const channels = [
    ...site.monitoring.email.map((e) => `mail to ${e}`),
    ...(site.monitoring.webhookSecret ? ["the webhook"] : []),
  ];
  // What backup321 writes encrypted: a NAS source outside these is copied as it is.
  const encryptedDirs = [
    ...(m ? [m.backupDir, m.binlogBackupDir] : []),
    ...site.restic.repositories.flatMap((r) => (r.kind === "local" && r.path ? [r.path] : [])),
  ];
  const plainNas = site.offsite.nas
    ? nasSources(site).filter((s) => !encryptedDirs.some((d) => within(s, d)))
    : [];
  const jobHosts = site.hosts.filter(
    (h) => !(h.roles.length > 0 && h.roles.every((x) => x === "nas")),
  );
  return { m, bucket, lock, report, t, scenarios, channels, plainNas, jobHosts };
}
type Facts = ReturnType<typeof facts>;

const scenarioName = (s: ScenarioReport) =>
  s.scenario === "site lost" ? "the whole site lost" : `on site (${s.scenario})`;

function schedules(site: Site): string[] {
  const m = site.mariadb;
  return [
    ...(site.proxmox?.jobs ?? []).map(
      (j) =>
        `vzdump of ${j.guests === "all" ? "all guests" : `guests ${j.guests.join(", ")}`} to PBS datastore ${j.datastore} (\`${j.schedule}\`)`,
    ),
    ...(site.proxmox?.snapshots
      ? [`Proxmox rollback snapshots (\`${site.proxmox.snapshots.schedule}\`)`]
      : []),
    ...site.restic.repositories.map(
      (r) =>
        `restic ${r.name}: ${r.copyFrom ? `copy of ${r.copyFrom}` : r.paths.join(", ")} (\`${r.schedule}\`)`,
    ),
    ...(m
      ? [
          `database fulls (${m.method}, \`${m.schedules.full}\`) and binlog shipping (\`${m.schedules.binlogs}\`)`,
        ]
      : []),
    ...(site.offsite.upload
      ? [`upload of the newest full offsite (\`${site.offsite.upload.schedule}\`)`]
      : []),
    ...(site.offsite.nas
      ? [`sync to the NAS ${site.offsite.nas.host} (\`${site.offsite.nas.schedule}\`)`]
      : []),
  ];
}

function iso(site: Site, stack: string, f: Facts): Requirement[] {
  const { m, t, report, scenarios } = f;
  const rpoGaps = scenarios.flatMap((s) =>
    s.worstRpoHours > s.rpoTargetHours + s.rpoAllowanceHours
      ? [
          `${scenarioName(s)}: worst-case data loss ${s.worstRpoHours} h, over the ${s.rpoTargetHours} h target.`,
        ]
      : [],
  );
  const unprotected = scenarios.flatMap((s) =>
    s.unprotected.map(
      (u) => `${scenarioName(s)}: no copy of ${u.data} survives (${u.copies.join(", ")}).`,
    ),
  );
  const rtoGaps = scenarios.flatMap((s) =>
    s.rtoHours === undefined
      ? [
          `${scenarioName(s)}: the restore time is not estimated (declare sizes: in the site model).`,
        ]
      : s.rtoHours > s.rtoTargetHours
        ? [
            `${scenarioName(s)}: estimated restore ${s.rtoHours} h, over the ${s.rtoTargetHours} h target.`,
          ]
        : [],
  );
  const retention = [
    ...Object.entries(site.retention).map(
      ([name, p]) =>
        `retention tier ${name}: ${Object.entries(p)
          .map(([k, v]) => `${k} ${String(v)}`)
          .join(", ")}`,
    ),
    ...(m
      ? [`${m.retention.fulls} verified database fulls, their binlogs back to the oldest`]
      : []),
    ...(site.offsite.nas ? [`${site.offsite.nas.keep} dated NAS snapshots`] : []),
    ...(f.bucket && site.offsite.upload
      ? [`offsite dumps expire after ${f.bucket.expireDumpsAfterDays} days`]
      : []),
  ];
  return [
    {
      id: "8.13 (a)",
      what: "Backups follow an agreed, written backup policy.",
      how: [
        `The policy is the site model, Pulumi.${stack}.yaml, reviewed in pull requests and applied by \`pulumi up\`: what is backed up, when, where and for how long.`,
        ...schedules(site),
      ],
      gaps: [],
    },
    {
      id: "8.13 (b)",
      what: "Accurate, complete records of the backup copies, and documented restore procedures.",
      how: [
        "Every run writes a status file and appends a line to its host's history (13 months); every database full has a manifest (sha256, binlog position, row counts per table).",
        "RUNBOOK.md, generated from the same model, gives the exact restore steps of each scenario.",
      ],
      gaps: [],
    },
    {
      id: "8.13 (c)",
      what: "The extent and frequency of backups meet the recovery point the business needs.",
      how: scenarios.map(
        (s) =>
          `${scenarioName(s)}: worst-case data loss ${s.worstRpoHours} h against a ${s.rpoTargetHours} h target${s.rpoAllowanceHours > 0 ? ` (${s.rpoAllowanceHours} h more allowed across the clock change of ${site.timezone})` : ""}.`,
      ),
      gaps: [...rpoGaps, ...unprotected],
    },
    {
      id: "8.13 (d)",
      what: "Copies are kept in a remote location, far enough to escape a disaster at the main site.",
      how: t.locations
        .filter((l) => l.offsite)
        .map((l) => `${l.id} (${l.medium}) holds ${l.holds.join(", ")}.`),
      gaps: report.siteLoss ? [] : ["No copy leaves the site: a fire or theft loses everything."],
    },
    {
      id: "8.13 (e)",
      what: "Copies are on separate media and protected against loss, tampering and deletion.",
      how: [
        `${t.copies} copies on ${t.media} media, ${t.offsite} offsite, ${t.immutable} immutable${immutableText(t)}.`,
      ],
      gaps: [
        ...(t.satisfied ? [] : ["The 3-2-1 rule is not satisfied (3 copies, 2 media, 1 offsite)."]),
        ...(t.immutable > 0
          ? []
          : [
              "No copy is immutable: whoever holds a writer's key can delete every copy it reaches.",
            ]),
      ],
    },
    {
      id: "8.13 (f)",
      what: "Backups are tested regularly, and restores complete within the required time.",
      how: [
        ...(m
          ? [
              `A scratch restore of the newest database full (\`${m.schedules.restoreTest}\`) compares every table's rows with its manifest and records the restore time; the monitor alerts when it exceeds the ${site.targets.rtoHours} h RTO.`,
            ]
          : []),
        ...(m?.schedules.pitrDrill
          ? [
              `A point-in-time recovery drill (\`${m.schedules.pitrDrill}\`) recovers a scratch instance from a full and the shipped binlogs to the newest checkpoint of the binlog shipping and compares every table's checksum with the one recorded there; the monitor alerts when it fails, is overdue or exceeds the ${site.targets.rtoHours} h RTO.`,
            ]
          : []),
        ...site.restic.repositories
          .filter((r) => r.check)
          .map(
            (r) =>
              `restic ${r.name}: integrity check (\`${r.check!.schedule}\`), every pack read once per ${r.check!.subsets} runs.`,
          ),
        ...site.restic.repositories
          .filter((r) => r.drill)
          .map(
            (r) =>
              `restic ${r.name}: restore drill (\`${r.drill!.schedule}\`), ${r.drill!.files} files of the newest snapshot restored and verified, each in turn; the monitor alerts when it fails or is overdue.`,
          ),
        ...(site.offsite.nas?.drill
          ? [
              `NAS ${site.offsite.nas.host}: read-back drill (\`${site.offsite.nas.drill.schedule}\`), the newest snapshot read back and every full and shipped binlog in it compared with the checksums recorded when it was made; the monitor alerts when it fails, is overdue or takes longer than the ${site.targets.rtoHours} h RTO.`,
            ]
          : []),
        ...(m?.drDrill && site.offsite.nas
          ? [
              `Disaster recovery: yearly drill (\`${m.drDrill.schedule}\`) on ${m.drDrill.host}, which rebuilds the database host ${m.host} from the NAS's newest snapshot alone (read with its own read-only key): every full and shipped binlog checked against the checksums recorded when it was made, the newest full restored and its rows compared with its manifest, a point-in-time recovery to the end of the shipped binlogs opened; the whole rebuild is timed, and the monitor alerts when it fails, is overdue or takes longer than the ${site.targets.rtoHours} h RTO.`,
            ]
          : []),
        ...(f.bucket && site.offsite.upload?.drill
          ? [
              `Offsite dumps: restore drill (\`${site.offsite.upload.drill.schedule}\`), the newest full downloaded, checked against its manifest and the upload's sha256, decrypted and prepared; the monitor alerts when it fails, is overdue or takes longer than the ${(site.targets.siteLoss ?? site.targets).rtoHours} h RTO of a lost site.`,
            ]
          : []),
        ...(site.pbs?.datastores ?? []).map(
          (d) =>
            `PBS datastore ${d.name}: verify job (\`${d.verifySchedule}\`); the monitor alerts when its last run failed or is older than its schedule allows.`,
        ),
        ...scenarios.flatMap((s) =>
          s.rtoHours === undefined
            ? []
            : [
                `${scenarioName(s)}: estimated restore ${s.rtoHours} h against a ${s.rtoTargetHours} h target.`,
              ],
        ),
      ],
      gaps: [...untestedCopies(site, f), ...rtoGaps],
    },
    {
      id: "8.13 (g)",
      what: "Backups are encrypted where the data is confidential.",
      how: encryption(site, f),
      gaps: f.plainNas.map(
        (s) =>
          `${s} is copied to the NAS as it is: it is not one of backup321's encrypted outputs.`,
      ),
    },
    {
      id: "8.13 (h)",
      what: "How long copies are kept is defined, and old copies are removed only by that rule.",
      how: retention,
      gaps: retention.length > 0 ? [] : ["No retention is defined."],
    },
    {
      id: "8.13 (i)",
      what: "Backup operations are monitored, and failures reach someone who acts.",
      how: [
        `Every host that runs jobs checks every job's last success, the restore tests and the alert channels (\`${site.monitoring.schedule}\`); every failed or warning run alerts at once.`,
        ...(f.channels.length > 0 ? [`Alerts go to ${f.channels.join(" and ")}.`] : []),
        ...(site.contacts.length > 0
          ? [`Alerts name who to call: ${site.contacts.map((c) => c.name).join(", ")}.`]
          : []),
      ],
      gaps: [
        ...(f.channels.length > 0 ? [] : ["No alert channel: failures go to syslog only."]),
        ...(site.contacts.length > 0 ? [] : ["No contact is named (contacts:)."]),
      ],
    },
  ];
}

/** Each copy with no scheduled restore of its own (an integrity check alone is not a restore). */
function untestedCopies(site: Site, f: Facts): string[] {
  const gaps: string[] = [];
  const drDrill = site.mariadb?.drDrill && site.offsite.nas;
  if (site.mariadb && !site.mariadb.schedules.pitrDrill && drDrill)
    gaps.push(
      "Point-in-time recovery is drilled once a year only (the disaster-recovery drill, to the end of the shipped binlogs: the result is opened, not compared row by row).",
    );
  else if (site.mariadb && !site.mariadb.schedules.pitrDrill)
    gaps.push(
      "No scheduled point-in-time recovery drill (binlogs are replayed only by the monthly restore test, up to its full's counts).",
    );
  for (const r of site.restic.repositories.filter((x) => !x.drill))
    gaps.push(
      `restic ${r.name}: no scheduled restore of its files${r.check ? " (integrity check only)" : ""}.`,
    );
  if (site.offsite.nas && !site.offsite.nas.drill)
    gaps.push(`NAS ${site.offsite.nas.host}: no scheduled read-back of its snapshots.`);
  if (f.bucket && site.offsite.upload && !site.offsite.upload.drill)
    gaps.push(
      "Offsite dumps: read back and hashed when uploaded; no scheduled download-and-restore.",
    );
  for (const d of site.pbs?.datastores ?? [])
    gaps.push(`PBS datastore ${d.name}: verified by PBS; no scheduled restore of a guest.`);
  if (!drDrill)
    gaps.push("No yearly disaster-recovery drill rebuilding a host from the backups alone.");
  return gaps;
}

function encryption(site: Site, f: Facts): string[] {
  const m = site.mariadb;
  return [
    ...(site.pbs
      ? ["PBS backups: client-side encryption, one key per datastore, escrowed in the stack."]
      : []),
    ...(site.restic.repositories.length > 0
      ? ["restic repositories: AES-256 (restic's own), a generated password per repository."]
      : []),
    ...(m
      ? [
          "Database fulls and shipped binlogs: encrypted with the stack's key before they are written; the manifest records the key's fingerprint.",
        ]
      : []),
    ...(f.bucket
      ? [
          `The bucket: TLS in transit and ${f.bucket.kmsKeyArn ? "SSE-KMS" : "SSE-S3"} at rest, on top of the above.`,
        ]
      : []),
    ...(site.offsite.nas && f.plainNas.length === 0
      ? ["The NAS receives only the encrypted outputs above."]
      : []),
    ...(site.rotation
      ? [
          `Keys rotated every ${site.rotation.months === 1 ? "month" : `${site.rotation.months} months`} since ${site.rotation.since} (\`rotation\`, now generation ${keyGeneration(site.rotation, now())}): the database key, the backup user's password, each restic password and each S3 writer's access key. Every encryption key and password generation stays escrowed in the stack, so nothing made before a rotation becomes unreadable.`,
        ]
      : []),
  ];
}

function gdpr(site: Site, f: Facts, isoReqs: readonly Requirement[]): Requirement[] {
  const by = (id: string) => isoReqs.find((r) => r.id === id)!;
  // An article met through ISO requirements: each named with its verdict, its gaps repeated.
  const from = (...ids: string[]) => ({
    how: ids.map(
      (id) => `${id}, ${by(id).what.replace(/\.$/, "").toLowerCase()}: ${verdict(by(id))}.`,
    ),
    gaps: ids.flatMap((id) => by(id).gaps.map((g) => `${g} (${id})`)),
  });
  const b = from("8.13 (g)", "8.13 (e)", "8.13 (d)");
  const c = from("8.13 (c)", "8.13 (f)");
  const d = from("8.13 (f)", "8.13 (i)");
  return [
    {
      id: "32(1)(b)",
      what: "The ongoing confidentiality, integrity, availability and resilience of processing systems and services.",
      how: [
        ...b.how,
        "Integrity: every full is decrypted, unpacked and checked before it is named; every upload is read back and hashed.",
      ],
      gaps: b.gaps,
    },
    {
      id: "32(1)(c)",
      what: "The ability to restore the availability of and access to personal data in a timely manner after an incident.",
      how: [
        ...c.how,
        "RUNBOOK.md gives every restore step; the keys are escrowed in the stack.",
        ...(site.escrow ? [`The stack passphrase is kept: ${site.escrow}.`] : []),
      ],
      gaps: [
        ...c.gaps,
        ...(site.escrow
          ? []
          : [
              "Where the stack passphrase is kept offline is not stated (escrow:): without it no encrypted copy opens.",
            ]),
        ...(site.stateBackend ? [] : ["The Pulumi state backend is not stated (stateBackend:)."]),
      ],
    },
    {
      id: "32(1)(d)",
      what: "A process for regularly testing, assessing and evaluating the effectiveness of the measures.",
      how: [
        ...d.how,
        `Each host keeps 13 months of runs, drills and alerts: \`b321-evidence\` prints them (see below).`,
      ],
      gaps: d.gaps,
    },
  ];
}

function section(r: Requirement): string[] {
  const list = (items: readonly string[]) => items.map((i) => `- ${i}`);
  return [
    `### ${r.id}: ${r.what}`,
    "",
    `**${verdict(r)}**`,
    "",
    ...(r.how.length > 0 ? ["How:", "", ...list(r.how), ""] : []),
    ...(r.gaps.length > 0 ? ["Not met:", "", ...list(r.gaps), ""] : []),
  ];
}

/** The requirements of both frameworks, as COMPLIANCE.md states them. */
export function complianceRequirements(site: Site, stack: string) {
  const f = facts(site);
  const isoReqs = iso(site, stack, f);
  return { iso: isoReqs, gdpr: gdpr(site, f, isoReqs), facts: f };
}

export function renderCompliance(site: Site, stack: string): string {
  const { iso: isoReqs, gdpr: gdprReqs, facts: f } = complianceRequirements(site, stack);
  const row = (r: Requirement) => `| ${r.id} | ${r.what} | ${verdict(r)} |`;
  return [
    `# ${site.name}: backup compliance (stack ${stack})`,
    "",
    `Generated by backup321 from Pulumi.${stack}.yaml, with the numbers of the plan and RUNBOOK.md: do not edit, change the site model. It says what the model does and, plainly, what it does not; what the hosts actually did is the evidence below.`,
    "",
    "| Requirement | | Verdict |",
    "|---|---|---|",
    ...isoReqs.map(row),
    ...gdprReqs.map(row),
    "",
    "## ISO/IEC 27001:2022, Annex A control 8.13, Information backup",
    "",
    "A.12.3.1 in the 2013 edition. The requirements below follow the guidance of ISO/IEC 27002:2022, 8.13.",
    "",
    ...isoReqs.flatMap(section),
    "## GDPR, article 32(1)(b) to (d): security of processing",
    "",
    ...gdprReqs.flatMap(section),
    "## Evidence",
    "",
    "Each host that runs jobs appends every run (backups, checks, drills, restores) and whether its alert went out to a history it keeps 13 months. For an auditor, run on each host:",
    "",
    ...f.jobHosts.map(
      (h) => `- ${h.name}: \`${evidenceCommand(h.paths)} > evidence-${h.name}.md\``,
    ),
    "",
    "It prints each drill and restore with its date, result and measured restore time, each job's success rate, and each alert (`--months N` for fewer months).",
    "",
  ].join("\n");
}
