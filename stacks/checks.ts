// Cross-checks the schema cannot express: references between sections, duplicates, roles,
// and the rules that keep backups restorable (docs/pitfalls.md).
import { hostTimezone } from "./defaults";
import type { Site } from "./schema";
import type { Role } from "./model/hosts";
import { maxIntervalHours } from "./schedule";
import { resticChecks } from "./checks-restic";
import { proxmoxChecks } from "./checks-proxmox";
import { targetsChecks } from "./checks-targets";
import { offsiteChecks } from "./checks-offsite";
import type { Check, Problem } from "./problem";

function duplicates(path: string, names: string[]): Problem[] {
  const seen = new Set<string>();
  return names.flatMap((n, i) => {
    if (!seen.has(n)) {
      seen.add(n);
      return [];
    }
    return [
      { path: `${path}[${i}].name`, message: `duplicate name "${n}" (names must be unique)` },
    ];
  });
}

function hostWithRole(
  site: Site,
  path: string,
  hostName: string | undefined,
  role: Role,
): Problem[] {
  if (hostName === undefined) return [];
  const h = site.hosts.find((x) => x.name === hostName);
  const known = site.hosts.map((x) => x.name).join(", ");
  if (!h) return [{ path, message: `unknown host "${hostName}" (one of: ${known})` }];
  if (!h.roles.includes(role)) {
    return [
      {
        path,
        message: `host "${hostName}" does not have the role ${role} (add ${role} to its roles)`,
      },
    ];
  }
  return [];
}

function tier(site: Site, path: string, tierName: string): Problem[] {
  if (tierName in site.retention) return [];
  const known = Object.keys(site.retention).join(", ") || "none defined";
  return [{ path, message: `unknown retention tier "${tierName}" (one of: ${known})` }];
}

const uniqueNames: Check = (site) => [
  ...duplicates(
    "hosts",
    site.hosts.map((h) => h.name),
  ),
  ...duplicates(
    "restic.repositories",
    site.restic.repositories.map((r) => r.name),
  ),
  ...duplicates("pbs.datastores", site.pbs?.datastores.map((d) => d.name) ?? []),
  ...duplicates("proxmox.jobs", site.proxmox?.jobs.map((j) => j.id) ?? []).map((p) => ({
    ...p,
    path: p.path.replace(/\.name$/, ".id"),
  })),
];

const references: Check = (site) => {
  const out: Problem[] = [];
  out.push(...hostWithRole(site, "mariadb.host", site.mariadb?.host, "mariadb"));
  out.push(...hostWithRole(site, "mariadb.replica.host", site.mariadb?.replica?.host, "mariadb"));
  out.push(...hostWithRole(site, "mariadb.drDrill.host", site.mariadb?.drDrill?.host, "mariadb"));
  out.push(...hostWithRole(site, "proxmox.host", site.proxmox?.host, "proxmox"));
  out.push(...hostWithRole(site, "pbs.host", site.pbs?.host, "pbs"));
  site.pbs?.datastores.forEach((d, i) =>
    out.push(...tier(site, `pbs.datastores[${i}].retention`, d.retention)),
  );
  site.proxmox?.jobs.forEach((j, i) => {
    out.push(...tier(site, `proxmox.jobs[${i}].retention`, j.retention));
    if (!site.pbs) {
      out.push({
        path: `proxmox.jobs[${i}].datastore`,
        message: "no pbs section (add pbs: with its datastores)",
      });
    } else if (!site.pbs.datastores.some((d) => d.name === j.datastore)) {
      const known = site.pbs.datastores.map((d) => d.name).join(", ");
      out.push({
        path: `proxmox.jobs[${i}].datastore`,
        message: `unknown datastore "${j.datastore}" (one of: ${known})`,
      });
    }
  });
  const repos = site.restic.repositories;
  repos.forEach((r, i) => {
    const p = `restic.repositories[${i}]`;
    out.push(...hostWithRole(site, `${p}.host`, r.host, "restic"));
    out.push(...tier(site, `${p}.retention`, r.retention));
    if (r.kind === "local" && !r.path)
      out.push({
        path: `${p}.path`,
        message: "missing (a local repository needs a directory, e.g. /mnt/usb/restic)",
      });
    if (r.kind === "s3" && !site.offsite.bucket)
      out.push({
        path: `${p}.kind`,
        message: "s3 needs offsite.bucket (add the bucket, or use kind: local)",
      });
    if (r.copyFrom !== undefined) {
      const src = repos.find((x) => x.name === r.copyFrom);
      if (!src || src === r) {
        out.push({
          path: `${p}.copyFrom`,
          message: `unknown repository "${r.copyFrom}" (another repository's name: ${repos
            .filter((x) => x !== r)
            .map((x) => x.name)
            .join(", ")})`,
        });
      } else if (src.host !== r.host) {
        out.push({
          path: `${p}.copyFrom`,
          message: `"${r.copyFrom}" is on ${src.host}, not ${r.host} (restic copy runs on one host: put both on the same host)`,
        });
      }
    } else if (r.paths.length === 0) {
      out.push({
        path: `${p}.paths`,
        message: "empty (list what to back up, or set copyFrom to fill it from another repository)",
      });
    }
  });
  const { upload, nas } = site.offsite;
  if (upload) {
    if (!site.offsite.bucket)
      out.push({ path: "offsite.upload", message: "needs offsite.bucket (add the bucket)" });
    if (!site.mariadb)
      out.push({
        path: "offsite.upload",
        message: "needs a mariadb section (it uploads the newest full)",
      });
    out.push(...hostWithRole(site, "offsite.upload.host", upload.host, "mariadb"));
  }
  if (nas) {
    out.push(...hostWithRole(site, "offsite.nas.host", nas.host, "nas"));
    if (!nas.from && !site.mariadb)
      out.push({
        path: "offsite.nas.from",
        message: "missing (name the host whose backups are synced)",
      });
    if (nas.from && !site.hosts.some((h) => h.name === nas.from)) {
      out.push({
        path: "offsite.nas.from",
        message: `unknown host "${nas.from}" (one of: ${site.hosts.map((h) => h.name).join(", ")})`,
      });
    }
  }
  return out;
};

/** Glacier objects cannot be read without a restore request: restic data must stay hot (restic #4583). */
const resticNeverArchived: Check = (site) => {
  const b = site.offsite.bucket;
  if (!b) return [];
  return (b.transitions ?? []).flatMap((t, i) => {
    const overlaps =
      t.prefix === "" || t.prefix.startsWith(b.resticPrefix) || b.resticPrefix.startsWith(t.prefix);
    return overlaps
      ? [
          {
            path: `offsite.bucket.transitions[${i}].prefix`,
            message: `"${t.prefix}" would move restic data under "${b.resticPrefix}" to ${t.storageClass}, and restic cannot read archived objects (restic issue 4583) (use a prefix outside ${b.resticPrefix}, e.g. ${b.dumpPrefix})`,
          },
        ]
      : [];
  });
};

/**
 * The server must keep each binlog until the shipper has copied it, with a day to spare for a
 * missed run; otherwise point-in-time recovery has a gap. (Shipped copies are kept back to the
 * oldest kept full by the shipper itself.)
 */
const binlogsOutliveShipping: Check = (site) => {
  const m = site.mariadb;
  if (!m) return [];
  const shipEvery = maxIntervalHours(m.schedules.binlogs, hostTimezone(site, m.host));
  const needDays = Math.ceil((2 * shipEvery + 24) / 24);
  if (m.retention.binlogExpireDays >= needDays) return [];
  return [
    {
      path: "mariadb.retention.binlogExpireDays",
      message: `the server would drop binlogs after ${m.retention.binlogExpireDays} day(s) but they are shipped only every ${shipEvery} h, so point-in-time recovery could have a gap (at least ${needDays})`,
    },
  ];
};

/** The replica takes the load off the primary: it cannot be the primary itself. */
const replicaIsAnotherHost: Check = (site) => {
  const m = site.mariadb;
  if (!m?.replica || m.replica.host !== m.host) return [];
  return [
    {
      path: "mariadb.replica.host",
      message: `"${m.host}" is the primary (mariadb.host): name the replica's host, or remove mariadb.replica to back up the primary`,
    },
  ];
};

/**
 * The drill rebuilds the database host elsewhere, from the NAS copy: the standby is another host,
 * and there must be a NAS copy to rebuild from.
 */
const drDrillOnAStandby: Check = (site) => {
  const m = site.mariadb;
  if (!m?.drDrill) return [];
  const out: Problem[] = [];
  if (m.drDrill.host === m.host)
    out.push({
      path: "mariadb.drDrill.host",
      message: `"${m.host}" is the database host itself (mariadb.host): name a standby host with the role mariadb, the one that would replace it`,
    });
  if (!site.offsite?.nas)
    out.push({
      path: "mariadb.drDrill",
      message:
        "the drill rebuilds the database host from the NAS copy, and there is none: configure offsite.nas, or remove mariadb.drDrill",
    });
  return out;
};

/** The stream is a copy elsewhere: on the database host it would be lost with it. */
const streamToAnotherHost: Check = (site) => {
  const m = site.mariadb;
  if (!m?.stream) return [];
  if (!site.hosts.some((h) => h.name === m.stream?.host))
    return [
      {
        path: "mariadb.stream.host",
        message: `unknown host "${m.stream.host}" (one of: ${site.hosts.map((h) => h.name).join(", ")})`,
      },
    ];
  if (m.stream.host !== m.host) return [];
  return [
    {
      path: "mariadb.stream.host",
      message: `"${m.host}" is the database host itself (mariadb.host): name another host (e.g. the backup host), which keeps the binlogs when the database host is lost`,
    },
  ];
};

/** mariadb-backup copies changed pages; a dump has no pages to compare. */
const incrementsArePhysical: Check = (site) => {
  const m = site.mariadb;
  if (!m?.schedules.incremental || m.method === "physical") return [];
  return [
    {
      path: "mariadb.schedules.incremental",
      message:
        "increments need the physical method (mariadb-backup), and mariadb.method is logical: set mariadb.method to physical, or remove mariadb.schedules.incremental",
    },
  ];
};

/** Every cross-check; each reads the site on its own, so any of them can run without the others. */
export const crossChecks: readonly Check[] = [
  uniqueNames,
  references,
  resticNeverArchived,
  binlogsOutliveShipping,
  replicaIsAnotherHost,
  drDrillOnAStandby,
  streamToAnotherHost,
  incrementsArePhysical,
  ...resticChecks,
  ...proxmoxChecks,
  ...targetsChecks,
  ...offsiteChecks,
];

export function crossCheck(site: Site): Problem[] {
  return crossChecks.flatMap((c) => c(site));
}
