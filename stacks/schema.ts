// The site model under the config key backup321:site: one typed object, defaults filled here.
import { z } from "zod";
import { name, retentionPolicy, timezone } from "./primitives";
import { host } from "./model/hosts";
import { mariadb } from "./model/mariadb";
import { proxmox } from "./model/proxmox";
import { pbs } from "./model/pbs";
import { restic } from "./model/restic";
import { offsite } from "./model/offsite";
import { monitoring } from "./model/monitoring";
import { escrow, sizes, stateBackend } from "./model/recovery";
import { application, contact } from "./model/people";
import { rotation } from "./model/rotation";

export const siteSchema = z.strictObject({
  /** Short site name, used in tags, hostnames of snapshots and alert subjects. */
  name,
  /** IANA time zone of schedules and point-in-time recovery. Defaults to UTC. */
  timezone: timezone.default("UTC"),
  /** Promised recovery point and time objectives. */
  targets: z
    .strictObject({
      rpoHours: z.number().positive().default(24),
      rtoHours: z.number().positive().default(4),
      /**
       * none: the site promises nothing when a host is lost (one host, like the dev stack), and
       * rpoHours/rtoHours hold while the host remains. Defaults to promised: they hold when a host
       * is lost, counting only the copies off that host.
       */
      hostLoss: z.literal("none").optional(),
      /** The promise when the whole site is lost and only offsite copies remain. Defaults to rpoHours/rtoHours. */
      siteLoss: z
        .strictObject({ rpoHours: z.number().positive(), rtoHours: z.number().positive() })
        .optional(),
    })
    .prefault({}),
  hosts: z.array(host).min(1, "lists no host (add at least one under hosts:)"),
  /** Retention tiers by name, referenced by jobs. */
  retention: z.record(name, retentionPolicy).default({}),
  mariadb: mariadb.optional(),
  proxmox: proxmox.optional(),
  pbs: pbs.optional(),
  restic: restic.prefault({}),
  offsite: offsite.prefault({}),
  monitoring,
  /** Sizes and speeds for the restore-time estimate (stacks/targets.ts). Defaults to none: RTO not estimated. */
  sizes: sizes.optional(),
  /** Where the stack passphrase and state access are kept offline (RUNBOOK.md). Defaults to unstated. */
  escrow: escrow.optional(),
  /** Where the Pulumi state is (`pulumi login` URL), for RUNBOOK.md's recovery. Defaults to unstated. */
  stateBackend: stateBackend.optional(),
  /** Who to call, in order: RUNBOOK.md lists them first, and every alert names them. Defaults to none. */
  contacts: z.array(contact).default([]),
  /** The application that writes to the database: stopped before a restore, started and checked after. Defaults to none. */
  application: application.optional(),
  /**
   * Key rotation: every `months`, the first `pulumi up` brings a new encryption key for new
   * database fulls and binlogs, and a new password for the MariaDB backup user. Every key ever used
   * stays in the stack and on the hosts. Defaults to none: the first deploy's keys stay.
   */
  rotation: rotation.optional(),
});

/** The site as written in Pulumi.<stack>.yaml. */
export type SiteInput = z.input<typeof siteSchema>;
/** The site after validation, with every default filled in. */
export type Site = z.infer<typeof siteSchema>;
