// Cross-checks of the Proxmox VE and PBS sections: schedules PVE can run, retention that the
// datastore's own prune does not undercut, datastores that vanish with their disk.
import type { Check, Problem } from "./problem";
import { keepOptions, type RetentionPolicy } from "./primitives";
import { calendarMaxIntervalHours, calendarProblem } from "./calendar";

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

/** vzdump schedules are PVE calendar events: a cron form without one is refused. (How often they
 * run against the RPO is checked with every other copy in checks-targets.ts.) */
const jobSchedules: Check = (site) =>
  (site.proxmox?.jobs ?? []).flatMap((j, i): Problem[] => {
    const problem = calendarProblem(j.schedule);
    return problem
      ? [
          {
            path: `proxmox.jobs[${i}].schedule`,
            message: `${problem} (a schedule like "0 1 * * *")`,
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

/** The monitor calls a verify stale after its schedule's interval: one it cannot tell must be given. */
const verifyMaxAge: Check = (site) =>
  (site.pbs?.datastores ?? []).flatMap((d, i): Problem[] =>
    d.verifyMaxAgeHours === undefined && calendarMaxIntervalHours(d.verifySchedule) === undefined
      ? [
          {
            path: `pbs.datastores[${i}].verifyMaxAgeHours`,
            message: `is needed: backup321 cannot tell how often verifySchedule "${d.verifySchedule}" runs (give the hours after which the last verify is stale, e.g. 192 for a weekly one)`,
          },
        ]
      : [],
  );

export const proxmoxChecks: Check[] = [
  verifyMaxAge,
  datastoreOnItsDisk,
  jobSchedules,
  retentionConsistent,
  snapshotGuests,
];
