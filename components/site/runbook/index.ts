// RUNBOOK.md from the site model: the copies (a mermaid diagram), the promised and estimated
// RPO/RTO, where the keys are escrowed, and the exact restore steps for each scenario of the seed.
// Written by the offline plan to out/<stack>/RUNBOOK.md and installed on every host that runs jobs.
// It says where secrets are, never what they are.
import type { Site } from "../../../stacks/schema";
import type { HostPaths } from "../../../stacks/model/hosts";
import { contactLine } from "../../../stacks/model/people";
import { requiredSecrets } from "../../../stacks/secrets";
import {
  recoveryReport,
  threeTwoOne,
  immutableText,
  lockText,
  ASSUMED,
  HOST_LOSS_NOT_PROMISED,
  type ScenarioReport,
} from "../../../stacks/targets";
import { evidenceCommand } from "../../host/render";
import { renderCopiesDiagram } from "./diagram";
import { keySteps } from "./keys";
import { generationStart, keyGeneration } from "../../../stacks/model/rotation";
import { now } from "../../../stacks/clock";
import { bucketWriters } from "../../../stacks/defaults";
import { scenarios } from "./scenarios";
import { renderScenario, renderStep } from "./steps";

export { renderCopiesDiagram } from "./diagram";
export { stateFilter } from "./keys";

function targetsTable(r: ReturnType<typeof recoveryReport>): string[] {
  const rto = (s: ScenarioReport) =>
    s.rtoHours === undefined ? "not estimated" : `${s.rtoHours} h`;
  const row = (what: string, s: ScenarioReport) =>
    `| ${what} | ${s.worstRpoHours} h | ${s.rpoTargetHours} h | ${rto(s)} | ${s.rtoTargetHours} h |`;
  const out = [
    "| Scenario | RPO, worst case | RPO target | RTO, estimate | RTO target |",
    "|---|---|---|---|---|",
    row(
      r.onSite.scenario === "host lost"
        ? "Data lost on site: a guest, files, the database, a host (the copies off that host remain)"
        : "Data lost on site: a guest, files, the database (their host and the copies on it remain)",
      r.onSite,
    ),
  ];
  if (r.onSite.scenario === "data lost")
    out.push(`| A host lost | ${HOST_LOSS_NOT_PROMISED} | | | |`);
  if (r.siteLoss) out.push(row("The whole site lost (offsite copies only)", r.siteLoss));
  else out.push("| The whole site lost | no offsite copy: everything is lost | | | |");
  out.push("", "Worst-case data loss per data class:", "");
  const classes = (name: string, s: ScenarioReport) =>
    s.rpo.map((i) => `- ${name}, ${i.what}: ${i.hours} h (${i.via})`);
  out.push(
    ...classes(r.onSite.scenario, r.onSite),
    ...(r.siteLoss ? classes("site lost", r.siteLoss) : []),
  );
  return out;
}

/** A file in a directory of every host: said once when the hosts agree, else per host. */
function onHosts(site: Site, dir: (p: HostPaths) => string, file: string): string {
  const hostsOf = new Map<string, string[]>();
  for (const h of site.hosts) {
    const at = `${dir(h.paths)}/${file}`;
    hostsOf.set(at, [...(hostsOf.get(at) ?? []), h.name]);
  }
  const all = [...hostsOf];
  return all.length === 1
    ? `\`${all[0][0]}\``
    : all.map(([at, hosts]) => `\`${at}\` (${hosts.join(", ")})`).join(", ");
}

/** The people to call, first: before anything is touched, someone decides. */
function whoToCall(site: Site): string[] {
  const app = site.application;
  return [
    "## Who to call",
    "",
    ...(site.contacts.length > 0
      ? site.contacts.map((c, i) => `${i + 1}. ${contactLine(c)}`)
      : [
          "Nobody is named (contacts: in the site model): decide now who decides and who restores.",
        ]),
    "",
    ...(app
      ? [
          `The application (${app.healthUrl}, on ${app.host}) writes to the database: every database restore below stops it first (\`${app.stop}\`) and starts it after (\`${app.start}\`)${app.check ? `; then check by hand: ${app.check}` : ""}.`,
          "",
        ]
      : []),
  ];
}

/** Rotated secrets (site.rotation): the generations, and what each kind of secret does at a rotation. */
function rotationLines(site: Site): string[] {
  const r = site.rotation;
  if (!r) return [];
  const generation = keyGeneration(r, now());
  const every = r.months === 1 ? "every month" : `every ${r.months} months`;
  const writers = bucketWriters(site);
  return [
    `- **Rotated secrets**: rotated ${every} (\`rotation\`), at the first \`pulumi up\` of the period:`,
    ...Array.from({ length: generation + 1 }, (_, i) => {
      const until = i < generation ? ` until ${generationStart(r, i + 1)}` : " (current)";
      return `  - generation ${i}: from ${generationStart(r, i)}${until}`;
    }),
    ...(site.mariadb
      ? [
          "  - the **encryption key** of the database fulls and binlogs: every generation stays in the",
          "    stack and in `mariadb-backup.keyring` beside the key file: a full opens with the key its",
          "    manifest's `key_fingerprint` names, a binlog with the generation it was shipped under;",
          `    and the backup user's password${site.mariadb.stream ? " and the binlog stream user's" : ""} (altered in place);`,
        ]
      : []),
    ...(site.restic.repositories.length > 0
      ? [
          "  - each **restic repository's password**: the new one gets its own key in the repository, and the",
          "    old key is removed by the first backup (or copy) with the new password that passes",
          "    `restic check`. The data is not re-encrypted. Every generation stays in the stack: an older",
          "    one opens a copy of the repository made before its rotation (a disk kept away);",
        ]
      : []),
    ...(writers.dumps || writers.restic
      ? [
          "  - the **S3 writers' access keys**: the new key is made, the hosts' credential files rewritten,",
          "    and the old key deleted by the same `pulumi up` (nothing is encrypted with it).",
        ]
      : []),
  ];
}

function keysSection(site: Site, stack: string): string[] {
  const secrets = requiredSecrets(site);
  return [
    "## Where the keys are",
    "",
    "Every encrypted copy is useless without its key, and every key is a secret of the Pulumi stack",
    `\`${stack}\`. The stack's secrets are encrypted with the stack passphrase (PULUMI_CONFIG_PASSPHRASE).`,
    "",
    `- **Stack passphrase and Pulumi state login**: ${site.escrow ?? "NOT STATED: set escrow: in the site model, and keep them offline, apart from the backups"}.`,
    "- **Secrets you set** (read one with `pulumi config get backup321:<key>`):",
    ...secrets.map((s) => `  - \`backup321:${s.key}\`: ${s.why}`),
    "- **Secrets backup321 generated** (restic repository passwords, the PBS encryption key, the",
    "  MariaDB backup credentials and encryption key): in the stack state. The scenarios never need",
    "  them typed: `pulumi up` puts them back on the rebuilt hosts. To read one without the hosts,",
    "  see the queries below.",
    `- **On the hosts**: 0600 files in ${onHosts(site, (p) => p.secrets, "")} (lost with the host; \`pulumi up\` puts them back).`,
    ...rotationLines(site),
    "",
    "Check once a quarter that the escrowed passphrase still opens the stack: `pulumi config --show-secrets` from a clean checkout.",
    "",
    "Reading a key without the hosts (each into a 0600 file, never into a variable or argv):",
    "",
    ...keySteps(site, stack).flatMap((step, i) => renderStep(step, i + 1)),
  ];
}

export function renderRunbook(site: Site, stack: string): string {
  const r = recoveryReport(site);
  const t = threeTwoOne(site);
  const monitorHosts = site.hosts.filter(
    (h) => !(h.roles.length > 0 && h.roles.every((x) => x === "nas")),
  );
  const lines = [
    `# ${site.name}: disaster recovery runbook (stack ${stack})`,
    "",
    `Generated by backup321 from Pulumi.${stack}.yaml: do not edit, change the site model and run \`npm run plan -- --stack ${stack}\` or \`pulumi up\`.`,
    `A copy is installed on ${monitorHosts.map((h) => `${h.name} (${h.paths.etc}/RUNBOOK.md)`).join(", ")}. Print it: when you need it, the hosts may be gone.`,
    "",
    ...whoToCall(site),
    "## Targets",
    "",
    ...targetsTable(r),
    "",
    `Estimates assume reading ${site.sizes ? `${site.sizes.localMBps} MB/s from the backup disk and ${site.sizes.cloudMBps} MB/s from the cloud` : "the sizes declared under sizes: (none declared)"}, ${ASSUMED.physicalDbMBps} MB/s for a physical and ${ASSUMED.logicalDbMBps} MB/s for a logical database restore, ${ASSUMED.restoreOverheadHours} h per restore and ${ASSUMED.rebuildHours} h to rebuild the hosts. The monthly restore test measures the database restore; the monitor alerts when it exceeds the RTO.`,
    "",
    "## Copies",
    "",
    renderCopiesDiagram(site),
    "",
    "| Copy | Medium | Offsite | Immutable | Holds |",
    "|---|---|---|---|---|",
    "| production | host disk | no | no | the live data |",
    ...t.locations.map(
      (l) =>
        `| ${l.id} | ${l.medium} | ${l.offsite ? "yes" : "no"} | ${lockText(l)} | ${l.holds.join(", ")} |`,
    ),
    "",
    `3-2-1: ${t.copies} copies on ${t.media} media, ${t.offsite} offsite, ${t.immutable} immutable${immutableText(t)}: ${t.satisfied ? "satisfied" : "NOT satisfied"}.`,
    ...(site.offsite.bucket && site.restic.repositories.some((x) => x.kind === "s3")
      ? [
          "",
          `restic data under ${site.offsite.bucket.resticPrefix} is never locked (restic deletes what it prunes): an object there that is overwritten or deleted comes back only from its noncurrent version, kept ${site.offsite.bucket.noncurrentDays} days (offsite.bucket.noncurrentDays; \`aws s3api list-object-versions --prefix ${site.offsite.bucket.resticPrefix}\`). Notice within that window or it is gone.`,
        ]
      : []),
    "",
    ...keysSection(site, stack),
    ...scenarios(site, stack).flatMap((sc, i) => renderScenario(i + 1, sc)),
    "## Is everything still being backed up?",
    "",
    `Every host that runs jobs checks them ${site.monitoring.schedule} (\`b321-monitor\` runs it by hand) and alerts ${
      [
        ...site.monitoring.email.map((e) => `${e} (mail)`),
        ...(site.monitoring.webhookSecret
          ? [`the webhook in backup321:${site.monitoring.webhookSecret}`]
          : []),
      ].join(" and ") || "syslog only (no channel configured)"
    }.`,
    `Each job's last run: ${onHosts(site, (p) => p.status, "<job>.json")}; metrics: ${onHosts(site, (p) => p.metrics, "*.prom")}.`,
    "",
    "## Evidence for an auditor",
    "",
    `COMPLIANCE.md, generated with this runbook (\`npm run plan -- --stack ${stack}\`), says how the model meets ISO/IEC 27001:2022 control 8.13 and GDPR article 32(1)(b)-(d), and what it does not meet. What the hosts did is in each host's history, ${onHosts(site, (p) => p.history, "<YYYY-MM>.tsv")} (13 months): print it on each host for the auditor.`,
    "",
    ...monitorHosts.map(
      (h) => `- ${h.name}: \`${evidenceCommand(h.paths)} > evidence-${h.name}.md\``,
    ),
    "",
    "It lists each drill and restore with its date, result and measured restore time, each job's success rate, and each alert with whether it was delivered.",
    "",
  ];
  return lines.join("\n");
}
