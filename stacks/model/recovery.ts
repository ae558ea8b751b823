// What a restore has to move and how fast (the inputs of the RTO estimate), and where the keys to
// the backups are kept when every host is gone (RUNBOOK.md).
import { z } from "zod";

const gb = z.number().positive("must be a positive number of GB (e.g. 120)").optional();
const mbps = z.number().positive("must be a positive speed in MB/s (e.g. 20)");

export const sizes = z.strictObject({
  /** Data of the backed-up databases, GB (SELECT SUM(data_length+index_length)). */
  databaseGb: gb,
  /**
   * Binlogs the database writes per day, GB (the shipped copies' daily growth, uncompressed). The
   * RTO then counts the replay after the last restore point (a full or an increment).
   */
  binlogGbPerDay: gb,
  /** Disks of the guests backed up by vzdump, GB (used space). */
  guestsGb: gb,
  /** Files backed up by restic besides the PBS datastore, GB (restic stats --mode raw-data). */
  filesGb: gb,
  /** Read speed from the local backup disk during a restore, MB/s. Defaults to 100 (a USB 3 SSD, conservative). */
  localMBps: mbps.default(100),
  /** Download speed from the cloud, MB/s. Defaults to 20 (160 Mbit/s). */
  cloudMBps: mbps.default(20),
});
export type Sizes = z.infer<typeof sizes>;

/**
 * Where the stack passphrase (PULUMI_CONFIG_PASSPHRASE) and the access to the Pulumi state are kept
 * offline, apart from the backups: without them no secret of the stack, and so no encrypted backup,
 * can be read. Printed in RUNBOOK.md; never the secret itself.
 */
export const escrow = z
  .string()
  .min(10, "say where, e.g. 'sealed envelope in the office safe, and the CTO's password manager'");

/**
 * The Pulumi state backend (`pulumi login <url>`): without it the stack and its secrets cannot be
 * read when the ops laptop is gone. RUNBOOK.md's recovery starts with it.
 */
export const stateBackend = z
  .string()
  .regex(
    /^(file|s3|azblob|gs|https):\/\/\S+$/,
    "must be the URL `pulumi login` takes (e.g. s3://ops-pulumi-state, file:///srv/pulumi-state, https://api.pulumi.com)",
  );
