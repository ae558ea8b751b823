// The recovery scenarios of a site, as steps (steps.ts). Each fact comes from the component that
// owns it: the PBS storage id (proxmox), a job's env file (host), a repository's job (restic), the
// upload's job (offsite). The steps read paths and URLs from the env files `pulumi up` installs, so
// what they touch is what the jobs touched.
import { nasFrom, nasSources, uploadHost } from "../../../stacks/defaults";
import type { Site } from "../../../stacks/schema";
import { serviceCommand } from "../../../stacks/model/mariadb";
import type { Application } from "../../../stacks/model/people";
import { ASSUMED } from "../../../stacks/targets";
import { jobFiles, serviceFiles, shq } from "../../host/render";
import {
  DR_DRILL_JOB,
  PITR_JOB,
  PITR_SCRIPT,
  STREAM_JOB,
  STREAM_SCRATCH,
  streamLiveDir,
} from "../../mariadb/render";
import { pbsStorageId } from "../../proxmox/render";
import { repositoryUrl, resticJob, resticLocation } from "../../restic/render";
import { NAS_JOB, UPLOAD_JOB } from "../../offsite/render";
import { LAPTOP, PASSPHRASE, USE_PASSPHRASE, type Scenario, type Step } from "./steps";

const hostOf = (site: Site, name: string) => {
  const h = site.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`unknown host ${name}`);
  return h;
};
const hostKey = (site: Site, name: string) =>
  `backup321:site.hosts[${site.hosts.findIndex((h) => h.name === name)}]`;

/** Opens the stack from a laptop that has only this repository and the escrow. */
export function loginStep(site: Site, stack: string): Step {
  return {
    on: LAPTOP,
    say: "open the stack with the escrowed passphrase (asked once, kept in a 0600 file).",
    sh: [
      `if [ ! -s "${PASSPHRASE}" ]; then`,
      `  ( umask 077; read -rs -p 'stack passphrase (from the escrow): ' p; echo >&2; printf '%s\\n' "$p" > "${PASSPHRASE}" )`,
      "fi",
      USE_PASSPHRASE,
      `pulumi login '${site.stateBackend ?? "<state backend: set stateBackend in the site model>"}'`,
      `pulumi stack select ${stack}`,
      "pulumi config --show-secrets > /dev/null   # the passphrase opens the stack",
    ],
  };
}

/**
 * Reinstalls everything on rebuilt hosts with the same stack: remote commands have no drift
 * detection, so each host's generation is raised and every command on it runs again. The hosts
 * come back disarmed: no job runs over what is being restored until rearmStep.
 */
export function rebuildStep(site: Site, hosts: readonly string[]): Step {
  return {
    on: LAPTOP,
    say: `tell \`pulumi up\` that ${hosts.join(", ")} ${hosts.length > 1 ? "are" : "is"} new: scripts, keys and settings go back, every job disarmed.`,
    sh: [
      USE_PASSPHRASE,
      ...hosts.flatMap((h) => [
        `pulumi config set --path '${hostKey(site, h)}.generation' ${hostOf(site, h).generation + 1} --type int`,
        `pulumi config set --path '${hostKey(site, h)}.disarmed' true --type bool`,
      ]),
      "pulumi up --yes",
    ],
  };
}

/** Schedules rebuilt hosts' jobs again, once their restores are done and checked. */
export function rearmStep(site: Site, hosts: readonly string[]): Step {
  return {
    on: LAPTOP,
    say: "once every restore above is done and checked, schedule the jobs again.",
    sh: [
      USE_PASSPHRASE,
      ...hosts.map(
        (h) => `pulumi config set --path '${hostKey(site, h)}.disarmed' false --type bool`,
      ),
      "pulumi up --yes",
    ],
  };
}

function rollbackScenario(site: Site): Scenario | undefined {
  const px = site.proxmox;
  if (!px?.snapshots) return undefined;
  const s = px.snapshots;
  const guests = [
    ...s.vms.map((v) => ["qm", v] as const),
    ...s.containers.map((c) => ["pct", c] as const),
  ];
  return {
    title: "a configuration mistake — roll a guest back to a snapshot",
    intro: [
      `RPO: the snapshot interval (${s.schedule}, ${s.keep} kept per guest). RTO: about ${ASSUMED.rollbackHours * 60} minutes.`,
    ],
    needs: [],
    steps: [
      {
        on: px.host,
        say: "the snapshots of every guest, newest last.",
        sh: guests.map(([tool, id]) => `${tool} listsnapshot ${id}`),
      },
      {
        on: px.host,
        say: "roll the guest back and start it.",
        inputs: [
          {
            name: "GUEST",
            value: String(guests[0]?.[1] ?? "<vmid>"),
            say: "the VM or container id",
          },
          { name: "SNAPSHOT", value: "'<snapshot>'", say: "its snapshot's name, from the list" },
        ],
        sh: [
          'if qm status "$GUEST" > /dev/null 2>&1; then tool=qm; else tool=pct; fi',
          '"$tool" rollback "$GUEST" "$SNAPSHOT"',
          '"$tool" status "$GUEST" | grep -q running || "$tool" start "$GUEST"',
        ],
      },
    ],
  };
}

function pbsScenario(site: Site, stack: string): Scenario | undefined {
  const px = site.proxmox;
  if (!px || px.jobs.length === 0 || !site.pbs) return undefined;
  const storage = pbsStorageId(px.jobs[0].datastore);
  const prefix = site.pbs.commandPrefix ? `${site.pbs.commandPrefix} ` : "";
  return {
    title: "a VM or container is lost — restore it from PBS",
    intro: [
      `Backups: ${px.jobs.map((j) => `vzdump job ${j.id} (${j.schedule}) to datastore ${j.datastore} (PVE storage ${pbsStorageId(j.datastore)})`).join("; ")}.`,
      `Steps 1, 2 and 5 only if ${px.host} itself was reinstalled: they add the PBS storage and its key back with its jobs disarmed, then re-arm them once the guests are back.`,
    ],
    needs: [`the PBS datastore on ${site.pbs.host} ("total loss" brings it back from the cloud)`],
    steps: [
      loginStep(site, stack),
      rebuildStep(site, [px.host]),
      {
        on: site.pbs.host,
        say: "the datastore's snapshots are there.",
        sh: site.pbs.datastores.map(
          (d) => `${prefix}proxmox-backup-client snapshot list --repository localhost:${d.name}`,
        ),
      },
      {
        on: px.host,
        say: "restore the guest from its newest backup (or the one you name).",
        inputs: [
          { name: "GUEST", value: "'<vmid>'", say: "the VM or container id" },
          {
            name: "BACKUP",
            value: `"$(pvesm list ${storage} --vmid "$GUEST" | awk 'NR > 1 { v = $1 } END { print v }')"`,
            say: "its newest backup; or one of `pvesm list` by volume id",
          },
        ],
        sh: [
          '[ -n "$BACKUP" ] || { echo "no backup of $GUEST in the storage" >&2; exit 1; }',
          "case $BACKUP in",
          '  */ct/*) pct stop "$GUEST" 2> /dev/null || true; pct restore "$GUEST" "$BACKUP" --force 1; pct start "$GUEST" ;;',
          '  *) qm stop "$GUEST" 2> /dev/null || true; qmrestore "$BACKUP" "$GUEST" --force 1; qm start "$GUEST" ;;',
          "esac",
        ],
      },
      rearmStep(site, [px.host]),
    ],
  };
}

/** The newest verified full and the binlog position its replay starts from. */
function newestFullStep(site: Site): Step {
  const m = site.mariadb!;
  return {
    on: m.host,
    say: "the newest verified full, and where its binlog replay starts.",
    sh: [
      `manifest=$(ls -t ${m.backupDir}/*_full_*.manifest.json | head -n 1)`,
      `jq -r '"\\(.file): taken \\(.started), replay from \\(.binlog_file):\\(.binlog_position) (\\(.binlog_identity))"' "$manifest"`,
    ],
  };
}

/** Whether the application answers at its health URL (curl: 2xx or 3xx within 5 s). */
const answers = (app: Application) => `curl -fs -o /dev/null --max-time 5 ${shq(app.healthUrl)}`;
const NEED_CURL = `command -v curl >/dev/null || { echo "curl is missing on $(hostname): apt-get install curl (the application's health check uses it)" >&2; exit 1; }`;

/** Stops the application; what decides is that its health URL no longer answers. */
function appStopStep(app: Application): Step {
  return {
    on: app.host,
    say: `stop the application: nothing may write to the database while it is replaced (${app.healthUrl} must stop answering).`,
    sh: [
      NEED_CURL,
      `${app.stop} || echo "the stop command failed: checking whether the application still answers" >&2`,
      `if ${answers(app)}; then echo "the application still answers at ${app.healthUrl}: stop it, then paste this again" >&2; exit 1; fi`,
      'echo "the application is stopped"',
    ],
  };
}

/** Starts the application and waits until its health URL answers (up to a minute). */
function appStartStep(app: Application): Step {
  return {
    on: app.host,
    say: `start the application and wait for ${app.healthUrl} to answer${app.check ? `; then, by hand: ${app.check}` : ""}.`,
    sh: [
      NEED_CURL,
      app.start,
      `for _ in $(seq 30); do ${answers(app)} && break; sleep 2; done`,
      `${answers(app)} || { echo "the application does not answer at ${app.healthUrl}: see its logs" >&2; exit 1; }`,
      'echo "the application answers"',
    ],
  };
}

/**
 * Binlogs PITR reads instead of the shipped ones: a directory of sealed binlogs and the basename
 * of the plain ones (the binlog stream's files: sealed, and the open one in live/).
 */
export interface PitrBinlogs {
  readonly dir: string;
  readonly basename: string;
}

/** The database brought back to a moment, with the application stopped around it (when the model names it). */
export function databaseSteps(
  site: Site,
  until: { value: string; say: string },
  binlogs?: PitrBinlogs,
): Step[] {
  const app = site.application;
  return app
    ? [appStopStep(app), pitrStep(site, until, binlogs), appStartStep(app)]
    : [pitrStep(site, until, binlogs)];
}

/**
 * Point-in-time recovery into a fresh datadir beside the live one, then the swap. The datadir it
 * replaces is kept aside, never deleted; a recovery already built for the same moment is reused, so
 * pasting the block again after a failure goes on where it stopped.
 */
export function pitrStep(
  site: Site,
  until: { value: string; say: string },
  binlogs?: PitrBinlogs,
): Step {
  const m = site.mariadb!;
  const paths = hostOf(site, m.host).paths;
  const job = jobFiles(paths, PITR_JOB);
  const args = `--until "$UNTIL" --tz ${site.timezone} --target-datadir "$pitr"`;
  // with other binlogs: the PITR job's own env file, but for where it reads its binlogs
  const run = binlogs
    ? [
        `env=${binlogs.dir}.pitr.env   # ${job.envFile}, reading the binlogs in ${binlogs.dir}`,
        `( umask 077; grep -v -e '^MARIADB_BINLOG_BACKUP_DIR=' -e '^MARIADB_BINLOG_BASENAME=' ${job.envFile} > "$env" )`,
        `printf '%s=%s\\n' MARIADB_BINLOG_BACKUP_DIR ${shq(binlogs.dir)} MARIADB_BINLOG_BASENAME ${shq(binlogs.basename)} >> "$env"`,
        `[ -d "$pitr" ] || ${paths.lib}/${PITR_SCRIPT} "$env" ${args}`,
      ]
    : [`[ -d "$pitr" ] || ${job.entryPoint} ${args}`];
  const app = site.application;
  return {
    on: m.host,
    say: "recover into a fresh datadir (the newest full before that moment, then the binlogs), then swap it in; the old datadir is kept aside. While it runs, its `restore:` and `replay:` lines say how much of the full has been read and of the binlogs' SQL replayed, of what total, at what rate and with how long left.",
    inputs: [
      { name: "UNTIL", ...until },
      ...(app
        ? [{ name: "FORCE", value: "0", say: "1 swaps even while the application answers" }]
        : []),
    ],
    sh: [
      `pitr=${m.datadir}.pitr-$(printf %s "$UNTIL" | tr -dc 0-9)   # one per moment: a second paste reuses a finished one`,
      ...run,
      ...(app
        ? [
            'if [ "$FORCE" != 1 ]; then   # the application must be down: nothing writes during the swap',
            `  ${NEED_CURL}`,
            `  if ${answers(app)}; then echo "the application still answers at ${app.healthUrl}: stop it first (or FORCE=1)" >&2; exit 1; fi`,
            "fi",
          ]
        : []),
      serviceCommand(m, "stop"),
      `if [ -e ${m.datadir} ]; then mv -T ${m.datadir} "${m.datadir}.before-pitr-$(date +%Y%m%dT%H%M%S)"; fi`,
      `mv -T "$pitr" ${m.datadir}`,
      `chown -R mysql:mysql ${m.datadir}`,
      serviceCommand(m, "start"),
    ],
  };
}

const UNTIL_PAST = {
  value: "'YYYY-MM-DD HH:MM:SS'",
  say: "the moment to recover to (every change before it comes back)",
};

function databaseScenario(site: Site): Scenario | undefined {
  const m = site.mariadb;
  if (!m) return undefined;
  return {
    title: "the database is lost or damaged — newest full plus binlogs (point in time)",
    intro: [
      `Fulls ${m.schedules.full} in ${m.backupDir}, binlogs shipped ${m.schedules.binlogs} to ${m.binlogBackupDir}, restore-tested ${m.schedules.restoreTest}. Times are ${site.timezone}.`,
      ...(m.replica
        ? [
            `The fulls are taken on the replica ${m.replica.host} (refused when it lags more than ${m.replica.maxLagSeconds} s), so ${m.host} carries no backup load; each verified full is handed to ${m.host}, which keeps it beside the binlogs it ships. ${m.replica.host} keeps its own copies too.`,
          ]
        : []),
      `If ${m.host} lost its disks: reinstall it at the same address and follow "${m.host} is lost" instead.`,
    ],
    needs: [`the backup disk of ${m.host} (${m.backupDir}, ${m.binlogBackupDir})`],
    steps: [
      newestFullStep(site),
      ...databaseSteps(site, { ...UNTIL_PAST, say: `${UNTIL_PAST.say}, ${site.timezone}` }),
    ],
  };
}

/**
 * Restores a restic repository's newest snapshot under TARGET (the files keep their full paths),
 * with the repository, password file, S3 key file and CA bundle of the job's own env file. A failed
 * restore leaves only TARGET.partial.
 */
export function resticRestoreStep(
  site: Site,
  repoName: string,
  target = `/restore/${repoName}`,
): Step {
  const r = site.restic.repositories.find((x) => x.name === repoName);
  if (!r) throw new Error(`unknown restic repository ${repoName}`);
  const src = r.copyFrom ? site.restic.repositories.find((x) => x.name === r.copyFrom) : undefined;
  const tags = (src ?? r).tags;
  // the snapshots of the host that made them (a copy keeps its source's host)
  const tag = ` --host ${(src ?? r).host}${tags.length > 0 ? ` --tag ${tags.join(",")}` : ""}`;
  const env = jobFiles(hostOf(site, r.host).paths, resticJob(r.name)).envFile;
  return {
    on: r.host,
    say: `restore the newest snapshot of restic repository ${r.name}, \`${repositoryUrl(resticLocation(r, site.offsite.bucket))}\` (${(src ?? r).paths.join(", ")}).`,
    inputs: [
      {
        name: "TARGET",
        value: target,
        say: "a new directory: the files come back under it with their full paths",
      },
    ],
    sh: [
      `. ${env}   # the repository and the paths of its 0600 key files, no secret`,
      '[ -z "$REPO_MOUNT" ] || mountpoint -q "$REPO_MOUNT" || { echo "mount the backup disk at $REPO_MOUNT first" >&2; exit 1; }',
      '[ ! -e "$TARGET" ] || { echo "$TARGET exists: restored already (move it away to restore again)" >&2; exit 1; }',
      'export RESTIC_REPOSITORY="$REPO_URL" RESTIC_PASSWORD_FILE="$REPO_PASSWORD_FILE" RESTIC_CACHE_DIR="$RESTIC_CACHE"',
      'if [ -n "$REPO_S3_CREDENTIALS" ]; then export AWS_SHARED_CREDENTIALS_FILE="$REPO_S3_CREDENTIALS"; fi',
      'ca=(); if [ -n "$REPO_CACERT" ]; then ca=(--cacert "$REPO_CACERT"); fi   # a self-signed endpoint',
      `"$RESTIC_BIN" "\${ca[@]}" snapshots${tag}`,
      'rm -rf -- "$TARGET.partial"',
      `"$RESTIC_BIN" "\${ca[@]}" restore latest${tag} --target "$TARGET.partial" --verify`,
      'mv -T -- "$TARGET.partial" "$TARGET"',
    ],
  };
}

function filesScenario(site: Site): Scenario | undefined {
  const repos = site.restic.repositories;
  if (repos.length === 0) return undefined;
  return {
    title: "files are lost — restore them from restic",
    intro: [
      "Each block restores one repository's newest snapshot into a new directory; copy back what you need from there (`rsync -a /restore/<repository>/<path>/ /<path>/`).",
    ],
    needs: repos.map(
      (r) =>
        `${r.name}: ${r.kind === "s3" ? "the bucket" : `the backup disk of ${r.host} (${r.path})`}`,
    ),
    steps: repos.map((r) => resticRestoreStep(site, r.name)),
  };
}

function hostLossScenario(site: Site, stack: string): Scenario | undefined {
  const m = site.mariadb;
  if (!m) return undefined;
  const nas = site.offsite.nas;
  return {
    title: `${m.host} is lost — rebuild it, then its database`,
    intro: [
      `Reinstall ${m.host} at ${hostOf(site, m.host).address} first. Its jobs come back disarmed: nothing runs over the restore, and the server's new binlogs never overwrite the shipped history.`,
      ...(streamElsewhere(site)
        ? [
            `This recovers up to the newest shipped binlog (${m.schedules.binlogs}). While ${m.stream!.host} and its binlog stream survive, follow "${streamLossTitle(site)}" instead: it recovers up to the last streamed write.`,
          ]
        : []),
      ...(m.drDrill && nas
        ? [
            `Rehearsed every year: ${m.drDrill.host} rebuilds ${m.host}'s database from the NAS's newest snapshot alone (\`${m.drDrill.schedule}\`, job ${DR_DRILL_JOB}). Its last measured time, restore_seconds in ${jobFiles(hostOf(site, m.drDrill.host).paths, DR_DRILL_JOB).statusFile} on ${m.drDrill.host}, is how long the database's part of this rebuild took then (the fetch from the NAS, the restore and the recovery); \`b321-evidence\` there lists every drill.`,
          ]
        : []),
    ],
    needs: [
      `the Pulumi state (${site.stateBackend ?? "stateBackend: not stated"}) and the escrowed passphrase (${site.escrow ?? "escrow: not stated"})`,
      nas && nasFrom(site) === m.host
        ? `${m.backupDir} and ${m.binlogBackupDir}: the backup disk of ${m.host}, or the NAS (${nas.host}:${nas.path}), whose newest snapshot step 3 brings back with the host's own sync key`
        : `${m.backupDir} and ${m.binlogBackupDir}: the backup disk of ${m.host}`,
    ],
    steps: [
      loginStep(site, stack),
      rebuildStep(site, [m.host]),
      ...(nas && nasFrom(site) === m.host ? [nasFetchStep(site)] : []),
      newestFullStep(site),
      ...databaseSteps(site, {
        ...UNTIL_PAST,
        say: `${UNTIL_PAST.say}, ${site.timezone}; the newest shipped binlog's end is the latest possible`,
      }),
      rearmStep(site, [m.host]),
    ],
  };
}

/** mariadb.stream on a host other than the database host (stacks/ refuses it on the same host). */
const streamElsewhere = (site: Site): boolean =>
  site.mariadb?.stream !== undefined && site.mariadb.stream.host !== site.mariadb.host;

const streamLossTitle = (site: Site): string =>
  `${site.mariadb!.host} is lost — rebuild it, then its database up to the last streamed write`;

/** Where the stream host keeps the copy of the stream's files that PITR reads. */
const STREAM_COPY = "/restore/binlog-stream";

/**
 * The binlog stream's files as they were when the database host was lost, copied aside on the
 * stream host before anything else: once the rebuilt host runs a server the stream may reach, it
 * resumes there, and its open file is fetched again from the new server.
 */
function streamSaveStep(site: Site): Step {
  const st = site.mariadb!.stream!;
  return {
    on: st.host,
    say: `before ${site.mariadb!.host} is rebuilt: copy the binlog stream's files aside as they are (the sealed binlogs and the open one in live/, up to its last streamed write).`,
    inputs: [
      { name: "COPY", value: STREAM_COPY, say: "a new directory for the copy, on this host" },
    ],
    sh: [
      `if [ ! -e "$COPY" ]; then`,
      '  rm -rf -- "$COPY.partial"',
      '  install -d -m 0700 -- "$COPY.partial"',
      `  rsync -a ${STREAM_SCRATCH.map((x) => `--exclude=${shq(x)}`).join(" ")} -- ${st.dir}/ "$COPY.partial/"`,
      '  mv -T -- "$COPY.partial" "$COPY"',
      "fi",
      'ls -l -- "$COPY" "$COPY/live"   # the sealed binlogs (.zst.enc), then the open one',
    ],
  };
}

/** The saved copy onto the rebuilt database host, where PITR runs (it has mariadbd and the fulls). */
function streamSendStep(site: Site): Step {
  const m = site.mariadb!;
  return {
    on: m.stream!.host,
    say: `copy the saved stream files to ${m.host}, into the same directory there (as root over ssh, or any way you can).`,
    inputs: [{ name: "COPY", value: STREAM_COPY, say: "the copy made before the rebuild" }],
    sh: [
      '[ -d "$COPY/live" ] || { echo "no saved stream files in $COPY: the first step of this scenario saves them" >&2; exit 1; }',
      `rsync -a -- "$COPY/" "root@${hostOf(site, m.host).address}:$COPY/"`,
    ],
  };
}

/**
 * A new stream from the rebuilt server: its binlogs start again, so the old stream's files go
 * aside (kept) and the service starts from the new server's first binlog.
 */
function streamRestartStep(site: Site): Step {
  const st = site.mariadb!.stream!;
  const h = hostOf(site, st.host);
  const svc = serviceFiles({ name: STREAM_JOB, program: "", args: [], paths: h.paths });
  const unit = shq(svc.unitName);
  return {
    on: st.host,
    say: `once, after the recovery: a new stream from the rebuilt ${site.mariadb!.host} (whose binlogs start again); the old stream's files are moved aside, never deleted.`,
    sh: [
      `if [ -d /run/systemd/system ]; then systemctl stop ${unit}; else ${shq(svc.supervisor)} stop ${shq(svc.runDir)}; fi`,
      `if [ -d ${st.dir} ]; then mv -T ${st.dir} "${st.dir}.before-$(date +%Y%m%dT%H%M%S)"; fi`,
      `if [ -d /run/systemd/system ]; then systemctl start ${unit}; fi   # without systemd, cron starts it within a minute`,
    ],
  };
}

/**
 * The database host lost while the binlog stream's host survives: PITR on the rebuilt host from the
 * newest full and the stream's files, so at most the stream's lag of writes is lost.
 */
function streamLossScenario(site: Site, stack: string): Scenario | undefined {
  const m = site.mariadb;
  if (!m?.stream || !streamElsewhere(site)) return undefined;
  const st = m.stream;
  const nas = site.offsite.nas;
  const fromNas = nas !== undefined && nasFrom(site) === m.host;
  const basename = m.binlogBasename.slice(m.binlogBasename.lastIndexOf("/") + 1);
  return {
    title: streamLossTitle(site),
    intro: [
      `The binlog stream copies every write of ${m.host} to ${st.host} (${st.dir}) as it happens, at most ${st.maxLagSeconds} s behind (mariadb.stream.maxLagSeconds): each closed binlog sealed with the fulls' key, the open one plain in ${streamLiveDir(st.dir)}/. ${st.host} has no MariaDB server, so the recovery runs on the rebuilt ${m.host}, from its newest full and the stream's files instead of the shipped binlogs.`,
      `Reinstall ${m.host} at ${hostOf(site, m.host).address}, but save the stream's files first (step 1): once the rebuilt ${m.host} runs a server, the stream resumes against it.`,
    ],
    needs: [
      `the Pulumi state (${site.stateBackend ?? "stateBackend: not stated"}) and the escrowed passphrase (${site.escrow ?? "escrow: not stated"})`,
      `${st.host} and the stream's files in ${st.dir}`,
      fromNas
        ? `the fulls (${m.backupDir}): the backup disk of ${m.host}, or the NAS (${nas.host}:${nas.path})`
        : `the fulls (${m.backupDir}): the backup disk of ${m.host}`,
    ],
    steps: [
      streamSaveStep(site),
      loginStep(site, stack),
      rebuildStep(site, [m.host]),
      ...(fromNas ? [nasFetchStep(site)] : []),
      newestFullStep(site),
      streamSendStep(site),
      ...databaseSteps(
        site,
        {
          value: `"$(TZ=${site.timezone} date '+%Y-%m-%d %H:%M:%S')"`,
          say: `now: every write the stream received (or an earlier moment, ${site.timezone})`,
        },
        { dir: STREAM_COPY, basename: `${streamLiveDir(STREAM_COPY)}/${basename}` },
      ),
      streamRestartStep(site),
      rearmStep(site, [m.host]),
    ],
  };
}

/**
 * The NAS's newest snapshot back onto its rebuilt source host, read through the NAS's forced
 * command with the host's own sync key (`pulumi up` put it back). Only what the disk lacks is
 * added: a surviving backup disk is never overwritten with older copies.
 */
export function nasFetchStep(site: Site): Step {
  const from = nasFrom(site)!;
  const env = jobFiles(hostOf(site, from).paths, NAS_JOB).envFile;
  return {
    on: from,
    say: `bring back the newest NAS snapshot (${nasSources(site).join(", ")}); what the backup disk still holds stays as it is.`,
    inputs: [
      {
        name: "TARGET",
        value: "/restore/nas",
        say: "a new directory for the snapshot, then merged into /",
      },
    ],
    sh: [
      `. ${env}   # the NAS, its pinned host key, this host's sync key: no secret`,
      '[ ! -e "$TARGET" ] || { echo "$TARGET exists: fetched already (move it away to fetch again)" >&2; exit 1; }',
      'rm -rf -- "$TARGET.partial"',
      'install -d -m 0700 -- "$TARGET.partial"',
      'rsync -a --timeout=600 -e "ssh -i $NAS_KEY -p $NAS_PORT -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$NAS_KNOWN_HOSTS" "$NAS_USER@$NAS_ADDRESS:$NAS_PATH/latest/" "$TARGET.partial/"',
      'mv -T -- "$TARGET.partial" "$TARGET"',
      'rsync -a --ignore-existing "$TARGET/" /',
    ],
  };
}

/**
 * The newest full, its newest increment (the upload sends one), their manifests, and the shipped
 * and streamed binlogs from the bucket, with the upload's key.
 */
function downloadDumpsStep(site: Site): Step | undefined {
  const m = site.mariadb;
  const { upload, bucket } = site.offsite;
  if (!m || !upload || !bucket) return undefined;
  const from = uploadHost(site)!;
  // The upload sends the shipped binlogs only from the database host (where they are).
  const here = from === m.host;
  const into = here ? m.backupDir : "/restore/database";
  const env = jobFiles(hostOf(site, from).paths, UPLOAD_JOB).envFile;
  const increments = m.schedules.incremental !== undefined;
  const what = `the newest full${increments ? ", its newest increment" : ""}`;
  return {
    on: from,
    say: here
      ? `fetch ${what}, the manifests and every shipped${m.stream ? " and streamed" : ""} binlog from the bucket (Glacier: the first paste asks for the backups, paste again once they are back).`
      : `fetch ${what} and the manifests from the bucket, then copy them into ${m.backupDir} on ${m.host} (the binlogs after them were lost with the site).`,
    sh: [
      `. ${env}   # the bucket, its region or endpoint, the path of the 0600 key file`,
      'export AWS_SHARED_CREDENTIALS_FILE="$OFFSITE_CREDENTIALS"',
      's3() { aws --region "$OFFSITE_REGION" ${OFFSITE_ENDPOINT:+--endpoint-url "$OFFSITE_ENDPOINT"} ${OFFSITE_CA_BUNDLE:+--ca-bundle "$OFFSITE_CA_BUNDLE"} "$@"; }',
      `install -d -m 0700 ${into}`,
      "fetch() {   # NAME: the backup and its manifest; one in Glacier is asked back first",
      "  key=$OFFSITE_PREFIX$1",
      '  class=$(s3 s3api head-object --bucket "$OFFSITE_BUCKET" --key "$key" --query StorageClass --output text)',
      "  case $class in",
      "    GLACIER | DEEP_ARCHIVE)",
      '      state=$(s3 s3api head-object --bucket "$OFFSITE_BUCKET" --key "$key" --query Restore --output text)',
      `      [ "$state" != None ] || s3 s3api restore-object --bucket "$OFFSITE_BUCKET" --key "$key" --restore-request 'Days=7,GlacierJobParameters={Tier=Standard}'`,
      `      case $state in *'ongoing-request="false"'*) ;; *) echo "$1 is in $class: asked for it back (hours); paste this block again later" >&2; exit 1 ;; esac ;;`,
      "  esac",
      `  s3 s3 cp "s3://$OFFSITE_BUCKET/$key" ${into}/`,
      `  s3 s3 cp "s3://$OFFSITE_BUCKET/$key.manifest.json" ${into}/`,
      "}",
      `names=$(s3 s3 ls "s3://$OFFSITE_BUCKET/$OFFSITE_PREFIX" | awk '{ print $4 }')`,
      `newest=$(printf '%s\n' "$names" | grep '_full_.*\\.enc$' | sort | tail -n 1) || true`,
      '[ -n "$newest" ] || { echo "no full in s3://$OFFSITE_BUCKET/$OFFSITE_PREFIX" >&2; exit 1; }',
      'fetch "$newest"',
      ...(increments
        ? [
            "# taken after that full, or in the same second: the recovery checks it builds on it",
            `incr=$(printf '%s\n' "$names" | grep '_incr_.*\\.enc$' | sort | tail -n 1) || true`,
            'if [ -n "$incr" ] && ! [[ ${incr##*_incr_} < ${newest##*_full_} ]]; then fetch "$incr"; fi',
          ]
        : []),
      ...(here
        ? [
            `install -d -m 0700 ${m.binlogBackupDir}`,
            `s3 s3 cp --recursive --ignore-glacier-warnings "s3://$OFFSITE_BUCKET/\${OFFSITE_PREFIX}binlogs/" ${m.binlogBackupDir}/   # the shipper's encrypted copies, as they are`,
            ...(m.stream
              ? [
                  `s3 s3 cp --recursive --ignore-glacier-warnings "s3://$OFFSITE_BUCKET/\${OFFSITE_PREFIX}binlog-stream/" ${m.binlogBackupDir}/   # the stream's, sealed alike under the same names: later ones too`,
                ]
              : []),
          ]
        : [`rsync -a ${into}/ root@${hostOf(site, m.host).address}:${m.backupDir}/`]),
    ],
  };
}

function totalLossScenario(site: Site, stack: string): Scenario {
  const cloud = site.restic.repositories.filter((r) => r.kind === "s3");
  const dumps = downloadDumpsStep(site);
  const title = "total loss — restore from the cloud";
  if (cloud.length === 0 && !dumps)
    return {
      title,
      intro: [
        "This site has no offsite copy: a total loss cannot be recovered. Add an s3 restic repository or the dump upload.",
      ],
      needs: [],
      steps: [],
    };
  // every host, the NAS too: the sync's authorized key goes back with its generation
  const hosts = site.hosts;
  const disks = [
    ...(site.pbs?.datastores ?? []).flatMap((d, i) =>
      d.disk ? [`backup321:site.pbs.datastores[${i}].disk.uuid`] : [],
    ),
    ...site.restic.repositories.flatMap((r, i) =>
      r.disk ? [`backup321:site.restic.repositories[${i}].disk.uuid`] : [],
    ),
  ];
  const steps: Step[] = [loginStep(site, stack)];
  if (disks.length > 0)
    steps.push({
      on: LAPTOP,
      say: `a replaced USB disk has a new file system UUID: set it (\`blkid\` on its host) before the rebuild, for each disk that is new (${disks.join(", ")}).`,
      inputs: [
        { name: "KEY", value: `'${disks[0]}'`, say: "the disk's config key" },
        { name: "UUID", value: "'<uuid from blkid>'", say: "the new disk's UUID" },
      ],
      sh: [
        `case $UUID in "<"*) echo "no new disk: nothing to set"; exit 0 ;; esac`,
        USE_PASSPHRASE,
        'pulumi config set --path "$KEY" "$UUID"',
      ],
    });
  steps.push(
    rebuildStep(
      site,
      hosts.map((h) => h.name),
    ),
  );
  for (const r of cloud) steps.push(resticRestoreStep(site, r.name));
  const pbs = site.pbs;
  for (const r of cloud) {
    const src = r.copyFrom
      ? site.restic.repositories.find((x) => x.name === r.copyFrom)
      : undefined;
    const inRepo = (pbs?.datastores ?? []).filter((d) =>
      (src ?? r).paths.some((p) => d.path === p || d.path.startsWith(`${p}/`)),
    );
    if (!pbs || inRepo.length === 0) continue;
    const dest = (p: string) =>
      r.host === pbs.host ? p : `root@${hostOf(site, pbs.host).address}:${p}`;
    steps.push({
      on: r.host,
      say: `put the PBS datastore${inRepo.length > 1 ? "s" : ""} back on ${pbs.host} (\`pulumi up\` created ${inRepo.length > 1 ? "them" : "it"} empty on the mounted disk), then restore the guests as in "a VM or container is lost".`,
      sh: inRepo.map((d) => `rsync -a /restore/${r.name}${d.path}/ ${dest(d.path)}/`),
    });
  }
  if (dumps) {
    steps.push(dumps);
    steps.push(
      ...databaseSteps(site, {
        value: `"$(TZ=${site.timezone} date '+%Y-%m-%d %H:%M:%S')"`,
        say: `now: everything the copies hold (or an earlier moment, ${site.timezone})`,
      }),
    );
  }
  steps.push(
    rearmStep(
      site,
      hosts.map((h) => h.name),
    ),
  );
  return {
    title,
    intro: [
      "Every host is reinstalled with the address in the site model; the laptop has this repository, Pulumi and jq; the hosts have restic and the AWS CLI.",
    ],
    needs: [
      `the Pulumi state (${site.stateBackend ?? "stateBackend: not stated in the site model"}) and the escrowed passphrase (${site.escrow ?? "escrow: not stated"})`,
      `the bucket ${site.offsite.bucket?.name ?? ""}`.trim(),
    ],
    steps,
  };
}

/** Every scenario of the site, in RUNBOOK.md's order. */
export function scenarios(site: Site, stack: string): Scenario[] {
  return [
    rollbackScenario(site),
    pbsScenario(site, stack),
    databaseScenario(site),
    hostLossScenario(site, stack),
    streamLossScenario(site, stack),
    filesScenario(site),
    totalLossScenario(site, stack),
  ].filter((s): s is Scenario => s !== undefined);
}
