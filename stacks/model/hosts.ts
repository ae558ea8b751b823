// Hosts and what runs on them.
import { z } from "zod";
import { absPath, address, name, timezone } from "../primitives";

export const roles = ["proxmox", "pbs", "restic", "mariadb", "nas", "monitor"] as const;
export type Role = (typeof roles)[number];

/**
 * Where backup321 puts things on a host (docs/architecture.md), every directory a script uses named
 * once: the job's env file carries them (host/render.ts jobEnv), so moving one is a change here.
 * Tests point the roots into a sandbox.
 */
export const hostPaths = z
  .strictObject({
    /** Per-job config. Defaults to /etc/backup321. */
    etc: absPath.default("/etc/backup321"),
    /** Scripts. Defaults to /usr/local/lib/backup321. */
    lib: absPath.default("/usr/local/lib/backup321"),
    /** Entry points b321-*. Defaults to /usr/local/sbin. */
    sbin: absPath.default("/usr/local/sbin"),
    /** What the jobs keep between runs (caches, counters). Defaults to /var/lib/backup321. */
    state: absPath.default("/var/lib/backup321"),
    /** Cron drop-ins. Defaults to /etc/cron.d. */
    cron: absPath.default("/etc/cron.d"),
    /** Each job's last result, <job>.json. Defaults to <state>/status. */
    status: absPath.optional(),
    /** Each job's metrics for node_exporter's textfile collector, <job>.prom. Defaults to <state>/metrics. */
    metrics: absPath.optional(),
    /** The jobs' locks. Defaults to <state>/locks. */
    locks: absPath.optional(),
    /** Records of the runs going on, <job>.<pid>.json. Defaults to <state>/runs. */
    runs: absPath.optional(),
    /** Which resource installed each file (owner stamps). Defaults to <state>/owners. */
    owners: absPath.optional(),
    /** Keys, passwords and credentials files (0700). Defaults to <etc>/secrets. */
    secrets: absPath.optional(),
    /** The registry of scheduled jobs the monitor watches, <job>.json. Defaults to <etc>/jobs.d. */
    jobs: absPath.optional(),
    /** Every run's result, one line each in <YYYY-MM>.tsv, kept 13 months: what b321-evidence reads. Defaults to <state>/history. */
    history: absPath.optional(),
  })
  .prefault({})
  .transform((p) => ({
    ...p,
    status: p.status ?? `${p.state}/status`,
    metrics: p.metrics ?? `${p.state}/metrics`,
    locks: p.locks ?? `${p.state}/locks`,
    runs: p.runs ?? `${p.state}/runs`,
    owners: p.owners ?? `${p.state}/owners`,
    secrets: p.secrets ?? `${p.etc}/secrets`,
    jobs: p.jobs ?? `${p.etc}/jobs.d`,
    history: p.history ?? `${p.state}/history`,
  }));
export type HostPaths = Readonly<z.output<typeof hostPaths>>;

export const host = z.strictObject({
  name,
  /** IP address or DNS name reachable from where `pulumi up` runs. */
  address,
  /** SSH user; must be root or have passwordless sudo. Defaults to root. */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]*$/, "must be a unix user name (e.g. root)")
    .default("root"),
  /** SSH port. Defaults to 22. */
  port: z.number().int().min(1).max(65535).default(22),
  /** What this host does in the site. */
  roles: z.array(z.enum(roles)).default([]),
  /** Stack config key (under backup321:) holding this host's SSH private key. Defaults to sshPrivateKey. */
  sshKeySecret: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]*$/, "must be a config key name (e.g. sshPrivateKey)")
    .default("sshPrivateKey"),
  /** The host's SSH public host key line, pinned when given. */
  hostKey: z.string().optional(),
  /** IANA time zone the host's cron runs in. Defaults to the site's. */
  timezone: timezone.optional(),
  paths: hostPaths,
  /**
   * Raise by one after the host was reinstalled or wiped: the next `pulumi up` installs everything on
   * it again (remote commands have no drift detection, so nothing else tells the engine). Defaults to 1.
   */
  generation: z.number().int().positive("must be a positive whole number (e.g. 2)").default(1),
  /**
   * Rebuild mode: every job of the host is installed but none is scheduled (its cron lines are
   * commented out), so nothing writes over the backups while they are being restored. The entry
   * points still run by hand. Set it back to false (or remove it) once the restore is done; RUNBOOK.md
   * says when. Defaults to false.
   */
  disarmed: z.boolean().default(false),
});
export type Host = z.infer<typeof host>;
