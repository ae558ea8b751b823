// Pure functions that turn typed args into the shell commands and files the host primitives push.
import { createHash } from "node:crypto";
import type { z } from "zod";
import type { jobEntrySchema } from "./file-contracts";
import type { HostPaths } from "../../stacks/model/hosts";

/** Quotes a string for bash: the result is one word whatever it contains. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function sha256(content: string): string {
  return createHash("sha256").update(content).digest("hex");
}

export function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

export interface InstallFileSpec {
  readonly path: string;
  /** Octal mode, e.g. "0600". */
  readonly mode: string;
  readonly owner: string;
  readonly group: string;
  /** Mode of parent directories created on the way. */
  readonly dirMode: string;
}

const MODE = /^0[0-7]{3}$/;

function checkSpec(spec: InstallFileSpec): void {
  if (!spec.path.startsWith("/")) throw new Error(`path "${spec.path}" must be absolute`);
  if (!MODE.test(spec.mode)) throw new Error(`mode "${spec.mode}" must be octal like 0600`);
  if (!MODE.test(spec.dirMode))
    throw new Error(`dirMode "${spec.dirMode}" must be octal like 0755`);
}

/** Prefixes a file's install command with a comment line saying which file goes where: read by the offline plan, and shown in state. */
export function withFileMarker(host: string, path: string, command: string): string {
  return `${fileMarker(host, path)}\n${command}`;
}

/** The marker line alone (parseFileMarker reads it from the first line of a command). */
export function fileMarker(host: string, path: string): string {
  return `# backup321: install ${path} on ${host}`;
}

/** Reads fileMarker back: [host, path], or undefined for any other command. */
export function parseFileMarker(command: string): { host: string; path: string } | undefined {
  const m = /^# backup321: install (\S+) on (\S+)\n/.exec(command);
  return m ? { host: m[2], path: m[1] } : undefined;
}

/**
 * Writes stdin to the file atomically: a private temp file beside it (mktemp is 0600, so a secret is
 * never readable by others, even for a moment), owner and mode set, then renamed over the target.
 * Running it twice with the same stdin leaves the same file.
 */
export function installFileCommand(spec: InstallFileSpec): string {
  checkSpec(spec);
  const f = shq(spec.path);
  const d = shq(dirname(spec.path));
  return [
    "set -eu",
    // Only a missing directory gets this mode: a shared one keeps the mode the host layout gave it,
    // whichever file of a parallel deploy comes first.
    `[ -d ${d} ] || install -d -m ${spec.dirMode} -- ${d}`,
    `tmp=$(mktemp -- ${f}.b321.XXXXXX)`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `cat > "$tmp"`,
    // Same bytes, mode and owner already there: leave the file (and its mtime) alone.
    `if cmp -s -- "$tmp" ${f} && [ "$(stat -c %a:%U:%G -- ${f})" = ${shq(`${Number.parseInt(spec.mode, 8).toString(8)}:${spec.owner}:${spec.group}`)} ]; then exit 0; fi`,
    `chown -- ${shq(`${spec.owner}:${spec.group}`)} "$tmp"`,
    `chmod -- ${spec.mode} "$tmp"`,
    `mv -f -- "$tmp" ${f}`,
    `trap - EXIT`,
  ].join("\n");
}

/** Removes the file; succeeds when it is already gone. */
export function removeFileCommand(path: string): string {
  if (!path.startsWith("/")) throw new Error(`path "${path}" must be absolute`);
  return `rm -f -- ${shq(path)}`;
}

/**
 * Where a resource records that it was the last to write what it manages (a path, a database user):
 * <owners dir>/<hash of the key>, holding "<resource name> <key>". Pulumi runs the create of a new
 * resource before the delete of the one it supersedes (a host renamed in the model, a job moved to
 * another resource): the old delete must then leave alone what the new resource wrote.
 */
export function ownerStampFile(ownersDir: string, key: string): string {
  return `${ownersDir}/${sha256(key).slice(0, 32)}`;
}

/** Runs the command (stdin flows through), then records this resource as the owner of the key. */
export function claimCommand(command: string, stampFile: string, stamp: string): string {
  const f = shq(stampFile);
  return [
    "set -eu",
    `(
${command}
)`,
    `install -d -m 0700 -- ${shq(dirname(stampFile))}`,
    `printf '%s\n' ${shq(stamp)} > ${f}.tmp`,
    `mv -f -- ${f}.tmp ${f}`,
  ].join("\n");
}

/**
 * Runs the delete only while this resource is still the recorded owner (or none is recorded: what
 * older versions installed), then forgets the owner.
 */
export function releaseCommand(command: string, stampFile: string, stamp: string): string {
  const f = shq(stampFile);
  return [
    "set -eu",
    `if [ -e ${f} ] && [ "$(cat -- ${f})" != ${shq(stamp)} ]; then`,
    `  echo "backup321: left in place, now managed by $(cut -d' ' -f1 < ${f})" >&2`,
    "  exit 0",
    "fi",
    `(
${command}
)`,
    `rm -f -- ${f}`,
  ].join("\n");
}

/** Runs a command as root: as is for root, through non-interactive sudo for anyone else. */
export function asRoot(user: string, command: string): string {
  return user === "root" ? command : `sudo -n -- bash -c ${shq(command)}`;
}

/** Where a job's files are on its host (RUNBOOK.md's steps source its env file too). */
export function jobFiles(p: HostPaths, job: string) {
  return {
    envFile: `${p.etc}/${job}.env`,
    entryPoint: `${p.sbin}/b321-${job}`,
    statusFile: `${p.status}/${job}.json`,
    metricsFile: `${p.metrics}/${job}.prom`,
    registryFile: `${p.jobs}/${job}.json`,
  };
}

/**
 * What every job's env file carries besides its own variables: its name and the host's
 * directories, so that no script spells a path of its own (common.sh refuses to run without them).
 */
export function jobEnv(p: HostPaths, job: string) {
  return {
    B321_JOB: job,
    B321_ETC: p.etc,
    B321_LIB: p.lib,
    B321_STATE: p.state,
    B321_STATUS_DIR: p.status,
    B321_METRICS_DIR: p.metrics,
    B321_LOCK_DIR: p.locks,
    B321_RUN_DIR: p.runs,
    B321_JOBS_DIR: p.jobs,
    B321_HISTORY_DIR: p.history,
  };
}

/** An env file sourced by bash: sorted keys, every value single-quoted. No secret goes here. */
export function renderEnvFile(
  header: string,
  vars: Readonly<Record<string, string | number | boolean>>,
): string {
  const keys = Object.keys(vars).sort();
  for (const k of keys) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`env key "${k}" must be UPPER_SNAKE_CASE`);
  }
  const lines = keys.map((k) => `${k}=${shq(String(vars[k]))}`);
  return `# ${header}\n# Managed by backup321 (pulumi up): local edits are overwritten.\n${lines.join("\n")}\n`;
}

export interface CronSpec {
  readonly job: string;
  /** Five-field cron expression (validated by stacks/). */
  readonly schedule: string;
  /** Absolute path of the program run; it receives args. */
  readonly command: string;
  readonly args: readonly string[];
  /** Where b321-cron is installed. */
  readonly wrapper: string;
  /** The host's lock dir: the wrapper keeps its per-job lock there. */
  readonly lockDir: string;
  readonly user: string;
  /** Rebuild mode: the job line is written commented out (installed, never scheduled). */
  readonly disarmed?: boolean;
}

/** What a disarmed host's cron lines start with (after "# "). */
export const DISARMED = "disarmed for a rebuild (site.hosts[].disarmed), not scheduled:";

/**
 * /etc/cron.d/backup321-<job>. The wrapper holds a per-job flock (runs never overlap) and sends
 * output to syslog with the tag backup321.
 */
export function renderCronFile(spec: CronSpec): string {
  if (spec.schedule.trim().split(/\s+/).length !== 5) {
    throw new Error(`schedule "${spec.schedule}" of job ${spec.job} must have five fields`);
  }
  const argv = [spec.wrapper, spec.job, spec.command, ...spec.args].map(shq).join(" ");
  return [
    `# backup321 job ${spec.job}`,
    "# Managed by backup321 (pulumi up): local edits are overwritten.",
    "SHELL=/bin/bash",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `B321_LOCK_DIR=${spec.lockDir}`,
    `${spec.disarmed ? `# ${DISARMED} ` : ""}${spec.schedule.trim().split(/\s+/).join(" ")} ${spec.user} ${argv}`,
    "",
  ].join("\n");
}

/** The b321-evidence entry point: prints the host's backup evidence from its history. */
export function evidenceCommand(p: HostPaths): string {
  return `${p.sbin}/b321-evidence`;
}

/** b321-evidence: runs evidence.sh on the host's history; its options go through (--months N). */
export function renderEvidenceEntryPoint(p: HostPaths): string {
  return [
    "#!/bin/bash",
    "# Managed by backup321. Prints this host's backup evidence for an auditor (Markdown): drills and",
    "# restores, each job's success rate, alerts; the last 12 months, or --months N.",
    `export B321_HISTORY_DIR=${shq(p.history)}`,
    `exec ${shq(`${p.lib}/evidence.sh`)} "$@"`,
    "",
  ].join("\n");
}

/** cron.d ignores files whose names contain dots; job names are checked against that. */
export function cronFileName(job: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(job))
    throw new Error(`job name "${job}" must be letters, digits, - or _`);
  return `backup321-${job}`;
}

export interface EntryPointSpec {
  readonly job: string;
  /** The job's script and its env file, as cron runs them. */
  readonly script: string;
  readonly envFile: string;
  /** Where b321-cron is installed, and the host's lock dir (the job's lock is kept there). */
  readonly wrapper: string;
  readonly lockDir: string;
}

/**
 * The b321-<job> entry point: runs the job by hand exactly as cron does, through the cron wrapper
 * (the job's lock, output to syslog) with its script and env file, and shows the output on the
 * terminal too (--tee). A run of the job already going, by cron or by hand, makes it exit 75.
 * Extra arguments go to the script (b321-mariadb-pitr --until ...).
 */
export function renderEntryPoint(spec: EntryPointSpec): string {
  cronFileName(spec.job);
  const argv = [spec.wrapper, "--tee", spec.job, spec.script, spec.envFile].map(shq).join(" ");
  return [
    "#!/bin/bash",
    `# Managed by backup321. Runs the job ${spec.job} by hand, as cron runs it: one run of the job at a time`,
    "# (exit 75 while another one is going), output to syslog (tag backup321) and to this terminal.",
    `export B321_LOCK_DIR=${shq(spec.lockDir)}`,
    `exec ${argv} "$@"`,
    "",
  ].join("\n");
}

/**
 * The host's directories with fixed modes, made before any file (so modes never depend on which
 * file of a parallel deploy creates a directory first): all 0755 but the secrets, 0700.
 */
export function layoutCommand(p: HostPaths): string {
  const open = [
    p.etc,
    p.lib,
    p.sbin,
    p.state,
    p.cron,
    p.status,
    p.metrics,
    p.locks,
    p.runs,
    p.jobs,
    p.history,
  ]
    .map(shq)
    .join(" ");
  return [`install -d -m 0755 -- ${open}`, `install -d -m 0700 -- ${shq(p.secrets)}`].join("\n");
}

/** The first command on a host: proves it answers and has what the scripts need. */
export function readinessCommand(tools: readonly string[]): string {
  const list = tools.map(shq).join(" ");
  return [
    "set -eu",
    "missing=''",
    `for t in ${list}; do command -v "$t" >/dev/null 2>&1 || missing="$missing $t"; done`,
    `if [ -n "$missing" ]; then echo "backup321: missing on $(hostname):$missing (install them, e.g. apt-get install util-linux coreutils)" >&2; exit 1; fi`,
    "echo ready",
  ].join("\n");
}

/**
 * Names of what backup321's jobs are still writing: a full's `.partial` and its manifest, its work
 * directory, a binlog being shipped, a PITR datadir being built, binlogs decrypted for a replay. A copy taken meanwhile (restic, the
 * NAS) must leave them out: they are incomplete, and the finished files follow on the next run.
 */
export const IN_PROGRESS_PATTERNS: readonly string[] = [
  "*.partial",
  "*.partial.manifest.json",
  ".b321-full.*",
  "*.b321-partial",
  ".b321-replay.*",
];

/** An AWS shared credentials file (what AWS_SHARED_CREDENTIALS_FILE points to, for the aws CLI and restic alike): a 0600 secret. */
export function renderCredentialsFile(accessKeyId: string, secretAccessKey: string): string {
  for (const [what, v] of [
    ["access key id", accessKeyId],
    ["secret access key", secretAccessKey],
  ]) {
    if (!/^\S+$/.test(v)) throw new Error(`the ${what} is empty or has white space`);
  }
  return `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n`;
}

/** What the monitor needs to know about a job: <etc>/jobs.d/<job>.json (fields: file-contracts.ts). */
export type JobEntry = Readonly<z.infer<typeof jobEntrySchema>>;

/** Default lateness allowed: a quarter of the interval, at least 1 h and at most 12 h. */
export function defaultGraceHours(maxIntervalHours: number): number {
  return Math.min(12, Math.max(1, maxIntervalHours / 4));
}

export function jobEntry(
  job: string,
  schedule: string,
  timezone: string,
  maxIntervalHours: number,
  graceHours = defaultGraceHours(maxIntervalHours),
): JobEntry {
  cronFileName(job);
  if (!(graceHours >= 0)) throw new Error(`graceHours of job ${job} must be 0 or more`);
  return {
    job,
    schedule: schedule.trim().split(/\s+/).join(" "),
    timezone,
    maxIntervalHours,
    graceHours,
    maxAgeSeconds: Math.round((maxIntervalHours + graceHours) * 3600),
  };
}

/** The registry entry as a file: one key per line, sorted, so the monitor reads it with sed. */
export function renderJobEntry(e: JobEntry): string {
  const sorted = Object.fromEntries(Object.entries(e).sort(([a], [b]) => a.localeCompare(b)));
  return JSON.stringify(sorted, null, 2) + "\n";
}

/** A supervised service on a host (components/host Service). */
export interface ServiceSpec {
  /** The service's name: unit backup321-<name>.service, cron file backup321-service-<name>. */
  readonly name: string;
  /** The program kept running (absolute path) and its arguments. */
  readonly program: string;
  readonly args: readonly string[];
  /** The host's directories: the cron file goes to cron, the plain supervisor's files to state. */
  readonly paths: Pick<HostPaths, "cron" | "state">;
  /** Where units go. Defaults to /etc/systemd/system. */
  readonly unitDir?: string;
  /** The directory whose presence says systemd runs the host (sd_booted). Defaults to /run/systemd/system. */
  readonly systemdProbe?: string;
  /** Rebuild mode: installed, but stopped and never started. */
  readonly disarmed?: boolean;
}

/** Where a service's files are on its host. */
export function serviceFiles(spec: ServiceSpec) {
  cronFileName(spec.name);
  const unitName = `backup321-${spec.name}.service`;
  const runDir = `${spec.paths.state}/services/${spec.name}`;
  return {
    unitName,
    unit: `${spec.unitDir ?? "/etc/systemd/system"}/${unitName}`,
    cronFile: `${spec.paths.cron}/${cronFileName(`service-${spec.name}`)}`,
    runDir,
    supervisor: `${runDir}/supervise.sh`,
  };
}

/** The systemd unit: restarted 5 s after any end, never rate-limited out of restarting. */
export function renderServiceUnit(spec: ServiceSpec): string {
  const argv = [spec.program, ...spec.args].map((a) => {
    if (/[\s"'\\%$;]/.test(a)) throw new Error(`service argument "${a}" needs quoting in a unit`);
    return a;
  });
  return [
    "# Managed by backup321 (pulumi up): local edits are overwritten.",
    "[Unit]",
    `Description=backup321 ${spec.name}`,
    "After=network-online.target",
    "Wants=network-online.target",
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${argv.join(" ")}`,
    "Restart=always",
    "RestartSec=5",
    "KillMode=control-group",
    "TimeoutStopSec=30",
    "SyslogIdentifier=backup321",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** The plain supervisor's cron file: started at boot, and every minute unless it runs. */
export function renderServiceCron(spec: ServiceSpec): string {
  const f = serviceFiles(spec);
  const argv = [f.supervisor, "start", f.runDir, "--", spec.program, ...spec.args]
    .map(shq)
    .join(" ");
  const off = spec.disarmed ? `# ${DISARMED} ` : "";
  return [
    `# backup321 service ${spec.name} (no systemd here: b321-supervise.sh keeps it running)`,
    "# Managed by backup321 (pulumi up): local edits are overwritten.",
    "SHELL=/bin/bash",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `${off}@reboot root ${argv}`,
    `${off}* * * * * root ${argv}`,
    "",
  ].join("\n");
}

/** Writes a file from a here-document, atomically, with a mode (none of it is secret). */
function hereFile(path: string, mode: string, content: string, tag: string): string {
  if (content.includes(`\n${tag}\n`)) throw new Error(`content holds its here-document tag ${tag}`);
  return [
    `tmp=$(mktemp -- ${shq(path)}.b321.XXXXXX)`,
    `cat > "$tmp" <<'${tag}'`,
    content.endsWith("\n") ? content.slice(0, -1) : content,
    tag,
    `chmod ${mode} "$tmp"`,
    `mv -f -- "$tmp" ${shq(path)}`,
  ].join("\n");
}

/**
 * The service's create (and update) command: with systemd, its unit written, enabled and restarted;
 * without, the supervisor (b321-supervise.sh, on stdin) in its run directory, the cron file that
 * starts it at boot and every minute, and the service restarted (a new program version or argument
 * takes effect now). A disarmed host gets it all stopped. Idempotent.
 */
export function serviceCreateCommand(spec: ServiceSpec): string {
  const f = serviceFiles(spec);
  const probe = shq(spec.systemdProbe ?? "/run/systemd/system");
  const unit = shq(f.unitName);
  return [
    "set -eu",
    `supervisor=$(mktemp -- ${shq(`${spec.paths.state}/.supervise`)}.XXXXXX)`,
    `trap 'rm -f -- "$supervisor"' EXIT`,
    `cat > "$supervisor"`,
    `if [ -d ${probe} ] && command -v systemctl >/dev/null 2>&1; then`,
    // a host that had no systemd before: its plain supervisor goes first
    `  rm -f -- ${shq(f.cronFile)}`,
    `  if [ -x ${shq(f.supervisor)} ]; then ${shq(f.supervisor)} stop ${shq(f.runDir)}; fi`,
    `  install -d -m 0755 -- ${shq(spec.unitDir ?? "/etc/systemd/system")}`,
    hereFile(f.unit, "0644", renderServiceUnit(spec), "B321_UNIT"),
    "  systemctl daemon-reload",
    spec.disarmed
      ? `  systemctl disable --now ${unit}`
      : `  systemctl enable ${unit}\n  systemctl restart ${unit}`,
    "else",
    `  install -d -m 0700 -- ${shq(f.runDir)}`,
    `  install -m 0755 -- "$supervisor" ${shq(f.supervisor)}`,
    hereFile(f.cronFile, "0644", renderServiceCron(spec), "B321_CRON"),
    `  ${shq(f.supervisor)} stop ${shq(f.runDir)}`,
    spec.disarmed
      ? "  :"
      : `  ${[f.supervisor, "start", f.runDir, "--", spec.program, ...spec.args].map(shq).join(" ")}`,
    "fi",
  ].join("\n");
}

/**
 * The service's delete: stopped (nothing starts it again first: the unit disabled, the cron file
 * removed), then its unit or supervisor and run directory removed. What the program wrote is not
 * touched. Succeeds when it is already gone.
 */
export function serviceDeleteCommand(spec: ServiceSpec): string {
  const f = serviceFiles(spec);
  const unit = shq(f.unitName);
  return [
    "set -eu",
    `if [ -e ${shq(f.unit)} ] && command -v systemctl >/dev/null 2>&1; then`,
    `  systemctl disable --now ${unit} || true`,
    `  rm -f -- ${shq(f.unit)}`,
    "  systemctl daemon-reload || true",
    "fi",
    `rm -f -- ${shq(f.cronFile)}`,
    `if [ -x ${shq(f.supervisor)} ]; then ${shq(f.supervisor)} stop ${shq(f.runDir)}; fi`,
    `rm -rf -- ${shq(f.runDir)}`,
  ].join("\n");
}
