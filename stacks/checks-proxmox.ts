// Cross-checks of the Proxmox VE and PBS sections: schedules PVE can run, retention that the
// datastore's own prune does not undercut, datastores that vanish with their disk.
import type { Check, Problem } from "./checks";
import type { RetentionPolicy } from "./primitives";
import { maxIntervalHours } from "./schedule";
import { calendarProblem, keepOptions } from "../components/proxmox/render";

/** A datastore on a disk lives strictly below its mount point: unplugged, the path is gone, never on /. */
const datastoreOnItsDisk: Check = (site) =>
  (site.pbs?.datastores ?? []).flatMap((d, i): Problem[] =>
    d.disk && !d.path.startsWith(`${d.disk.mountpoint.replace(/\/+$/, "")}/`)
      ? [
          {
            path: `pbs.datastores[${i}].path`,
            message: `"${d.path}" is not below the disk's mount point ${d.disk.mountpoint}, so an unplugged disk would let PBS write to the root file system (e.g. ${d.disk.mountpoint}/pbs)`,
          },
        ]
      : [],
  );

/** vzdump schedules are PVE calendar events, and must back up at least once per RPO. */
const jobSchedules: Check = (site) =>
  (site.proxmox?.jobs ?? []).flatMap((j, i): Problem[] => {
    const path = `proxmox.jobs[${i}].schedule`;
    const problem = calendarProblem(j.schedule);
    if (problem) return [{ path, message: `${problem} (a schedule like "0 1 * * *")` }];
    // Wall-clock gaps: a daily job has one 25 h gap a year at a DST change, which the RPO tolerates.
    const every = maxIntervalHours(j.schedule);
    return every > site.targets.rpoHours
      ? [
          {
            path,
            message: `runs only every ${every} h but the RPO is ${site.targets.rpoHours} h (at least every ${site.targets.rpoHours} h, e.g. "0 1 * * *")`,
          },
        ]
      : [];
  });

function shortfall(job: RetentionPolicy, store: RetentionPolicy): string[] {
  const kept = new Map(keepOptions(store));
  return keepOptions(job).flatMap(([k, n]) =>
    (kept.get(k) ?? 0) < n ? [`${k}=${n} (datastore: ${kept.get(k) ?? "none"})`] : [],
  );
}

/**
 * The datastore's prune job runs on every group: if it keeps fewer than a vzdump job promises,
 * the job's retention is a lie.
 */
const retentionConsistent: Check = (site) =>
  (site.proxmox?.jobs ?? []).flatMap((j, i): Problem[] => {
    const store = site.pbs?.datastores.find((d) => d.name === j.datastore);
    const jobTier = site.retention[j.retention];
    const storeTier = store && site.retention[store.retention];
    if (!jobTier || !storeTier) return [];
    const short = shortfall(jobTier, storeTier);
    return short.length === 0
      ? []
      : [
          {
            path: `proxmox.jobs[${i}].retention`,
            message: `promises ${short.join(", ")} but the datastore "${j.datastore}" prunes to tier "${store.retention}" (give the datastore a tier that keeps at least as much)`,
          },
        ];
  });

const snapshotGuests: Check = (site) => {
  const s = site.proxmox?.snapshots;
  if (!s) return [];
  const out: Problem[] = [];
  if (s.vms.length + s.containers.length === 0)
    out.push({
      path: "proxmox.snapshots",
      message: "lists no guest (add vms: [100] or containers: [200])",
    });
  const both = s.vms.filter((id) => s.containers.includes(id));
  if (both.length > 0)
    out.push({
      path: "proxmox.snapshots.containers",
      message: `${both.join(", ")} listed as both VM and container (a guest id is one or the other)`,
    });
  return out;
};

export const proxmoxChecks: Check[] = [
  datastoreOnItsDisk,
  jobSchedules,
  retentionConsistent,
  snapshotGuests,
];
