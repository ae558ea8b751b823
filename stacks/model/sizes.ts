// What a restore has to move, and how fast: the inputs of the restore-time (RTO) estimate.
import { z } from "zod";

const gb = z.number().positive("must be a positive number of GB (e.g. 120)").optional();
const mbps = z.number().positive("must be a positive speed in MB/s (e.g. 20)");

export const sizes = z.strictObject({
  /** Data of the backed-up databases, GB (SELECT SUM(data_length+index_length)). */
  databaseGb: gb,
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
