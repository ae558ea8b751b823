// RUNBOOK.md from the site model: the copies (a mermaid diagram), the promised and estimated
// RPO/RTO, where the keys are escrowed, and the exact restore steps for each scenario of the seed.
// Written by the offline plan to out/<stack>/RUNBOOK.md and installed on every host that runs jobs.
// It says where secrets are, never what they are.
import type { Site } from "./schema";
import { resticS3Prefix } from "./model/restic";
import { RESTIC_S3_SECRETS, requiredSecrets } from "./secrets";
import {
  recoveryReport,
  threeTwoOne,
  immutableText,
  lockText,
  ASSUMED,
  HOST_LOSS_NOT_PROMISED,
  type ScenarioReport,
} from "./targets";

/** The PVE storage id of a PBS datastore (components/proxmox). */
export const pbsStorageId = (datastore: string): string => `pbs-${datastore}`;

/** The restic repository URL a restore uses (restic's s3: syntax for AWS or an endpoint). */
export function resticRepoUrl(site: Site, repoName: string): string {
  const r = site.restic.repositories.find((x) => x.name === repoName);
  if (!r) throw new Error(`unknown restic repository ${repoName}`);
  if (r.kind === "local") return r.path ?? "";
  const b = site.offsite.bucket;
  const prefix = resticS3Prefix(r, b?.resticPrefix ?? "restic/");
  const host = r.endpoint
    ? r.endpoint.replace(/^https?:\/\//, "").replace(/\/$/, "")
    : `s3.${b?.region ?? "eu-west-3"}.amazonaws.com`;
  return `s3:${r.endpoint?.startsWith("http://") ? "http://" : ""}${host}/${b?.name ?? "<bucket>"}/${prefix}`;
}

/** The name infra/program.ts gives the BackupSite: every resource name starts with it. */
const SITE_RESOURCE = "backup321";

/** jq's reveal: a secret output of `pulumi stack export --show-secrets` is {"plaintext": JSON}. */
const REVEAL =
  'def reveal: if type == "object" and has("plaintext") then .plaintext | fromjson else . end;';

/** The jq filter printing EXPR (`reveal` defined) of the resource named RESOURCE in an export. */
export function stateFilter(resource: string, expr: string): string {
  return `${REVEAL} .deployment.resources[] | select(.urn | endswith("::${resource}")) | ${expr}`;
}

/**
 * A command printing that value from the stack state; run it where the file it writes is created
 * 0600 (umask 077), never into a variable or argv.
 */
function stateQuery(resource: string, expr: string): string {
  return `pulumi stack export --show-secrets | jq -r '${stateFilter(resource, expr)}'`;
}

/** An AWS credentials file for restic: the bucket's restic writer key, or the stack's own pair. */
function s3KeysQuery(ownEndpoint: boolean): string {
  if (ownEndpoint)
    return `printf '[default]\\naws_access_key_id = %s\\naws_secret_access_key = %s\\n' "$(pulumi config get backup321:${RESTIC_S3_SECRETS.accessKeyId})" "$(pulumi config get backup321:${RESTIC_S3_SECRETS.secretAccessKey})"`;
  return stateQuery(
    `${SITE_RESOURCE}-offsite-restic-key`,
    '"[default]\\naws_access_key_id = \\(.id)\\naws_secret_access_key = \\(.outputs.secret | reveal)"',
  );
}

const id = (s: string): string => s.replace(/[^A-Za-z0-9]/g, "_");
const hostOf = (site: Site, name: string) => site.hosts.find((h) => h.name === name);
const sbinOf = (site: Site, name: string) => hostOf(site, name)?.paths.sbin ?? "/usr/local/sbin";

/** A mermaid flowchart of every copy and the schedule that makes it. */
export function renderCopiesDiagram(site: Site): string {
  const lines = ["```mermaid", "flowchart LR"];
  const node = (key: string, label: string, shape: "box" | "db" = "box") =>
    lines.push(shape === "db" ? `    ${key}[("${label}")]` : `    ${key}["${label}"]`);
  const edge = (from: string, label: string, to: string) =>
    lines.push(`    ${from} -- "${label}" --> ${to}`);
  for (const h of site.hosts) node(`H_${id(h.name)}`, `${h.name}<br/>${h.address}`);
  const px = site.proxmox;
  if (px?.snapshots) {
    node("SNAP", `Snapshots on ${px.host}<br/>local rollback, keep ${px.snapshots.keep}`, "db");
    edge(`H_${id(px.host)}`, `snapshot ${px.snapshots.schedule}`, "SNAP");
  }
  for (const d of site.pbs?.datastores ?? []) {
    const on = d.disk ? `USB SSD ${d.disk.mountpoint}` : d.path;
    node(`DS_${id(d.name)}`, `PBS datastore ${d.name}<br/>${site.pbs?.host}: ${on}`, "db");
  }
  for (const j of px?.jobs ?? []) {
    edge(`H_${id(px?.host ?? "")}`, `vzdump ${j.id} ${j.schedule}`, `DS_${id(j.datastore)}`);
  }
  const bucket = site.offsite.bucket;
  for (const r of site.restic.repositories) {
    const where =
      r.kind === "s3"
        ? `${bucket?.name ?? "bucket"}/${r.prefix ?? `restic/${r.name}`}`
        : `${r.host}: ${r.disk ? `USB SSD ${r.path}` : r.path}`;
    node(`R_${id(r.name)}`, `restic ${r.name}<br/>${where}`, "db");
  }
  for (const r of site.restic.repositories) {
    if (r.copyFrom) {
      edge(`R_${id(r.copyFrom)}`, `restic copy ${r.schedule}`, `R_${id(r.name)}`);
      continue;
    }
    edge(`H_${id(r.host)}`, `restic backup ${r.schedule}`, `R_${id(r.name)}`);
    for (const d of site.pbs?.datastores ?? []) {
      if (r.paths.some((p) => d.path === p || d.path.startsWith(`${p}/`)))
        edge(`DS_${id(d.name)}`, `in restic ${r.name}`, `R_${id(r.name)}`);
    }
  }
  const m = site.mariadb;
  if (m) {
    node("DBB", `${m.host}: fulls ${m.backupDir}<br/>binlogs ${m.binlogBackupDir}`, "db");
    edge(`H_${id(m.host)}`, `full ${m.schedules.full}, binlogs ${m.schedules.binlogs}`, "DBB");
    const { nas, upload } = site.offsite;
    if (nas) {
      node("NAS", `NAS ${nas.host}: ${nas.path}<br/>dated snapshots, keep ${nas.keep}`, "db");
      edge("DBB", `rsync ${nas.schedule}`, "NAS");
    }
    if (upload && bucket) {
      const glacier = (bucket.transitions ?? [])
        .filter((t) => t.prefix === bucket.dumpPrefix)
        .map((t) => `, ${t.storageClass} after ${t.days} d`)
        .join("");
      node("DUMPS", `${bucket.name}/${bucket.dumpPrefix}<br/>database dumps${glacier}`, "db");
      edge("DBB", `upload ${upload.schedule}`, "DUMPS");
    }
  }
  lines.push("```");
  return lines.join("\n");
}

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
    "  MariaDB backup credentials and encryption key): in the stack state, read with",
    "  `pulumi stack export --show-secrets` (see each scenario for the exact query).",
    "- **On the hosts**: 0600 files under `<etc>/secrets/` (lost with the host; `pulumi up` puts them back).",
    "",
    "Check once a quarter that the escrowed passphrase still opens the stack: `pulumi config --show-secrets` from a clean checkout.",
  ];
}

function rollbackSection(site: Site): string[] {
  const px = site.proxmox;
  if (!px?.snapshots) return [];
  const s = px.snapshots;
  return [
    "## Scenario 1: a configuration mistake — roll a guest back to a snapshot",
    "",
    `RPO: the snapshot interval (${s.schedule}, ${s.keep} kept per guest). RTO: about ${ASSUMED.rollbackHours * 60} minutes.`,
    `On ${px.host}, as root:`,
    "",
    "```sh",
    ...s.vms.flatMap((v) => [
      `qm listsnapshot ${v}`,
      `qm rollback ${v} <snapshot>   # then: qm start ${v}`,
    ]),
    ...s.containers.flatMap((c) => [
      `pct listsnapshot ${c}`,
      `pct rollback ${c} <snapshot>   # then: pct start ${c}`,
    ]),
    "```",
    "",
  ];
}

function pbsSection(site: Site): string[] {
  const px = site.proxmox;
  if (!px || px.jobs.length === 0 || !site.pbs) return [];
  const storage = pbsStorageId(px.jobs[0].datastore);
  const prefix = site.pbs.commandPrefix ? `${site.pbs.commandPrefix} ` : "";
  return [
    "## Scenario 2: a VM or container is lost — restore it from PBS",
    "",
    `Backups: ${px.jobs.map((j) => `vzdump job ${j.id} (${j.schedule}) to datastore ${j.datastore} (PVE storage ${pbsStorageId(j.datastore)})`).join("; ")}.`,
    `On ${px.host}, as root (replace <vmid>, <ctid> and the backup time):`,
    "",
    "```sh",
    `pvesm list ${storage} --vmid <vmid>          # the backups of a guest, newest last`,
    `qm stop <vmid>; qmrestore ${storage}:backup/vm/<vmid>/<YYYY-MM-DDTHH:MM:SSZ> <vmid> --force 1`,
    `pct stop <ctid>; pct restore <ctid> ${storage}:backup/ct/<ctid>/<YYYY-MM-DDTHH:MM:SSZ> --force 1`,
    "```",
    "",
    `If ${px.host} itself was reinstalled: \`${rebuildCommand(site, px.host)}\` first (it adds the PBS storage and its key back, its jobs disarmed), then \`${rearmCommand(site, px.host)}\` once the guests are back. Check the datastore on ${site.pbs.host}:`,
    "",
    "```sh",
    ...site.pbs.datastores.map(
      (d) => `${prefix}proxmox-backup-client snapshot list --repository localhost:${d.name}`,
    ),
    "```",
    "",
  ];
}

function databaseSection(site: Site): string[] {
  const m = site.mariadb;
  if (!m) return [];
  const nas = site.offsite.nas;
  return [
    "## Scenario 3: the database is lost or damaged — newest full plus binlogs (point in time)",
    "",
    `Fulls ${m.schedules.full} in ${m.backupDir}, binlogs shipped ${m.schedules.binlogs} to ${m.binlogBackupDir}, restore-tested ${m.schedules.restoreTest}.`,
    `On ${m.host}, as root; times are ${site.timezone}:`,
    "",
    "```sh",
    `ls -t ${m.backupDir}/*_full_*.manifest.json | head -n 1   # the newest verified full and its binlog position`,
    ...pitrSteps(site, m.host, m.service),
    "```",
    ...(nas
      ? [
          "",
          `If ${m.host} lost its disks, reinstall it at the same address, run \`${rebuildCommand(site, m.host)}\` (its jobs come back disarmed: nothing runs over the restore), copy the newest NAS snapshot back first, run the recovery above, and only then re-arm the jobs with \`${rearmCommand(site, m.host)}\`:`,
          "",
          "```sh",
          `rsync -a ${nas.host}:${nas.path}/<newest>/ /  # dated snapshots of ${(nas.sources ?? [m.backupDir, m.binlogBackupDir]).join(", ")}`,
          "```",
        ]
      : []),
    "",
  ];
}

/**
 * The one command that reinstalls everything on a rebuilt host with the same stack: remote commands
 * have no drift detection, so the host's generation is raised and every command on it runs again.
 * The host comes back disarmed: no job runs over what is being restored until rearmCommand.
 */
export function rebuildCommand(site: Site, host: string): string {
  const i = site.hosts.findIndex((h) => h.name === host);
  const next = site.hosts[i].generation + 1;
  const key = `backup321:site.hosts[${i}]`;
  return `pulumi config set --path '${key}.generation' ${next} && pulumi config set --path '${key}.disarmed' true && pulumi up --yes`;
}

/** Schedules a rebuilt host's jobs again, once its restore is done. */
export function rearmCommand(site: Site, host: string): string {
  const i = site.hosts.findIndex((h) => h.name === host);
  return `pulumi config set --path 'backup321:site.hosts[${i}].disarmed' false && pulumi up --yes`;
}

function totalLossSection(site: Site, stack: string): string[] {
  const cloud = site.restic.repositories.filter((r) => r.kind === "s3");
  const bucket = site.offsite.bucket;
  const m = site.mariadb;
  if (cloud.length === 0 && !(m && site.offsite.upload && bucket)) {
    return [
      "## Scenario 4: total loss",
      "",
      "This site has no offsite copy: a total loss cannot be recovered. Add an s3 restic repository or the dump upload.",
      "",
    ];
  }
  const out = [
    "## Scenario 4: total loss — restore from the cloud",
    "",
    "From a laptop with this repository, Pulumi, restic and the AWS CLI:",
    "",
    "```sh",
    "( umask 077; read -rs -p 'stack passphrase (from the escrow): ' p; printf '%s\\n' \"$p\" > /root/.b321-passphrase )",
    "export PULUMI_CONFIG_PASSPHRASE_FILE=/root/.b321-passphrase   # a path: the passphrase stays in the 0600 file",
    `pulumi login <state backend>; pulumi stack select ${stack}`,
    "```",
    "",
    "1. Reinstall the hosts with the addresses in the site model, then tell `pulumi up` they are new (scripts, keys, PBS storage); they come back disarmed, so no job writes over the restores below (step 5 re-arms them):",
    "",
    "```sh",
    ...site.hosts.map((h) => rebuildCommand(site, h.name)),
    "```",
    "",
  ];
  for (const r of cloud) {
    const src = r.copyFrom
      ? site.restic.repositories.find((x) => x.name === r.copyFrom)
      : undefined;
    const tags = (src ?? r).tags;
    out.push(
      `2. Restore restic repository ${r.name} on ${r.host} (password from the stack state, never typed on a command line):`,
      "",
      "```sh",
      `( umask 077; ${stateQuery(`${SITE_RESOURCE}-restic-${r.name}-password`, ".outputs.result | reveal")} > /root/restic-${r.name}.pass )`,
      `( umask 077; ${s3KeysQuery(r.endpoint !== undefined)} > /root/restic-${r.name}.aws )`,
      `export AWS_SHARED_CREDENTIALS_FILE=/root/restic-${r.name}.aws   # a path: the keys stay in the 0600 file`,
      `restic -r ${resticRepoUrl(site, r.name)} --password-file /root/restic-${r.name}.pass snapshots`,
      `restic -r ${resticRepoUrl(site, r.name)} --password-file /root/restic-${r.name}.pass restore latest${tags.length ? ` --tag ${tags.join(",")}` : ""} --target /restore`,
      "```",
      "",
    );
    const inRepo = (site.pbs?.datastores ?? []).filter((d) =>
      (src ?? r).paths.some((p) => d.path === p || d.path.startsWith(`${p}/`)),
    );
    if (inRepo.length > 0)
      out.push(
        "   Put back what you need from /restore; the PBS datastore first:",
        "",
        "```sh",
        ...inRepo.map(
          (d) => `rsync -a /restore${d.path}/ ${d.path}/   # the USB SSD mounted first`,
        ),
        "```",
        "",
      );
  }
  const ds = site.pbs?.datastores ?? [];
  if (ds.length > 0) {
    const prefix = site.pbs?.commandPrefix ? `${site.pbs.commandPrefix} ` : "";
    out.push(
      "3. Put the restored PBS datastore back and restore the guests as in scenario 2:",
      "",
      "```sh",
      ...ds.map(
        (d) =>
          `${prefix}proxmox-backup-manager datastore create ${d.name} ${d.path} --reuse-datastore true`,
      ),
      "```",
      "",
    );
  }
  if (m && site.offsite.upload && bucket) {
    const upload = site.offsite.upload;
    const glacier = (bucket.transitions ?? []).find((t) => t.prefix === bucket.dumpPrefix);
    // The upload sends the shipped binlogs only from the database host (where they are).
    const binlogs = (upload.host ?? m.host) === m.host;
    out.push(
      binlogs
        ? `4. The database: fetch the newest full from s3://${bucket.name}/${bucket.dumpPrefix} into ${m.backupDir} on ${m.host} and the binlogs uploaded since (${upload.schedule}) into ${m.binlogBackupDir} as they are (the shipper's copies, encrypted with the MariaDB backup key: the PITR decrypts them), then replay as in scenario 3:`
        : `4. The database: fetch the newest full from s3://${bucket.name}/${bucket.dumpPrefix} into ${m.backupDir} on ${m.host}, then replay as in scenario 3 (binlogs after that full were lost with the site):`,
      "",
      "```sh",
      `aws s3 ls s3://${bucket.name}/${bucket.dumpPrefix} --region ${bucket.region}`,
      ...(glacier
        ? [
            `# older than ${glacier.days} days, it is in ${glacier.storageClass}: ask for it first and wait (hours) before the copies below:`,
            `aws s3api restore-object --bucket ${bucket.name} --key ${bucket.dumpPrefix}<newest> --restore-request 'Days=7,GlacierJobParameters={Tier=Standard}' --region ${bucket.region}`,
          ]
        : []),
      `aws s3 cp s3://${bucket.name}/${bucket.dumpPrefix}<newest> ${m.backupDir}/ --region ${bucket.region}`,
      `aws s3 cp s3://${bucket.name}/${bucket.dumpPrefix}<newest>.manifest.json ${m.backupDir}/ --region ${bucket.region}`,
      ...(binlogs
        ? [
            `install -d -m 0700 ${m.binlogBackupDir}`,
            `aws s3 cp --recursive s3://${bucket.name}/${bucket.dumpPrefix}binlogs/ ${m.binlogBackupDir}/ --region ${bucket.region}`,
          ]
        : []),
      ...pitrSteps(site, m.host, m.service),
      "```",
      "",
    );
  }
  out.push(
    "5. Once every restore above is done and checked, schedule the jobs again:",
    "",
    "```sh",
    [
      ...site.hosts.map(
        (_, i) => `pulumi config set --path 'backup321:site.hosts[${i}].disarmed' false`,
      ),
      "pulumi up --yes",
    ].join(" && "),
    "```",
    "",
  );
  return out;
}

/**
 * Point-in-time recovery into a fresh datadir (never over the live one), then the swap. Debian's
 * datadir is assumed (/var/lib/mysql); the broken one is kept aside, not deleted. Pasted whole, the
 * block stops at its first failure: set -e in a subshell, so the shell it is pasted into stays open.
 * mv -T renames exactly, never into a directory an earlier attempt left.
 */
function pitrSteps(site: Site, host: string, service: string): string[] {
  return [
    "(",
    "  set -e   # stops at the first failure; the shell you paste this into stays open",
    `  ${sbinOf(site, host)}/b321-mariadb-pitr --until 'YYYY-MM-DD HH:MM:SS' --tz ${site.timezone} --target-datadir /var/lib/mysql.pitr   # newest full before that time + binlogs`,
    `  systemctl stop ${service}`,
    "  mv -T /var/lib/mysql /var/lib/mysql.broken",
    "  mv -T /var/lib/mysql.pitr /var/lib/mysql",
    "  chown -R mysql:mysql /var/lib/mysql",
    `  systemctl start ${service}`,
    ")",
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
    "",
    ...rollbackSection(site),
    ...pbsSection(site),
    ...databaseSection(site),
    ...totalLossSection(site, stack),
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
    "Each job's last run: `<state>/status/<job>.json`; metrics: `<state>/metrics/*.prom` (state is /var/lib/backup321 by default).",
    "",
  ];
  return lines.join("\n");
}
