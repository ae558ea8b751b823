// Cross-checks of restic repositories beyond references (checks.ts): where the data goes, what a
// copy chain looks like, and what a backup must never contain.
import type { Check, Problem } from "./problem";
import { resticS3Prefix, type ResticRepository } from "./model/restic";

const under = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

/** Fields that belong to the other kind. */
const kindFields: Check = (site) =>
  site.restic.repositories.flatMap((r, i): Problem[] => {
    const p = `restic.repositories[${i}]`;
    const wrong =
      r.kind === "local"
        ? (["prefix", "endpoint"] as const).filter((k) => r[k] !== undefined)
        : (["path", "disk"] as const).filter((k) => r[k] !== undefined);
    return wrong.map((k) => ({
      path: `${p}.${k}`,
      message: `not used by ${r.kind === "s3" ? "an" : "a"} ${r.kind} repository (remove it, or use kind: ${r.kind === "local" ? "s3" : "local"})`,
    }));
  });

/** A repository on a disk lives on that disk, and no backup contains a repository. */
const localPlacement: Check = (site) => {
  const repos = site.restic.repositories;
  const out: Problem[] = [];
  repos.forEach((r, i) => {
    const p = `restic.repositories[${i}]`;
    if (r.kind === "local" && r.path && r.disk && !under(r.path, r.disk.mountpoint)) {
      out.push({
        path: `${p}.path`,
        message: `"${r.path}" is not on its disk mounted at ${r.disk.mountpoint} (a path under it, e.g. ${r.disk.mountpoint}/restic)`,
      });
    }
    if (r.kind === "local" && r.path && r.path === r.disk?.mountpoint) {
      out.push({
        path: `${p}.path`,
        message: `"${r.path}" is the mount point itself (a directory under it, e.g. ${r.path}/restic)`,
      });
    }
    repos.forEach((other, j) => {
      if (j <= i || r.kind !== "local" || other.kind !== "local" || !r.path || !other.path) return;
      if (r.host === other.host && (under(r.path, other.path) || under(other.path, r.path)))
        out.push({
          path: `restic.repositories[${j}].path`,
          message: `"${other.path}" overlaps repository ${r.name} at ${r.path} (one directory per repository)`,
        });
    });
    r.paths.forEach((src, k) => {
      for (const repo of repos) {
        if (
          repo.kind === "local" &&
          repo.path &&
          repo.host === r.host &&
          under(repo.path, src) &&
          !r.excludes.includes(repo.path)
        )
          out.push({
            path: `${p}.paths[${k}]`,
            message: `"${src}" contains the repository ${repo.name} at ${repo.path} (back up a narrower path, or add ${repo.path} to excludes)`,
          });
      }
    });
  });
  return out;
};

/**
 * s3 repositories stay under the bucket's restic prefix: the one never moved to Glacier, and the
 * only one the restic writer's key may reach.
 */
const s3Placement: Check = (site) => {
  const b = site.offsite.bucket;
  if (!b) return [];
  return site.restic.repositories.flatMap((r, i): Problem[] => {
    if (r.kind !== "s3") return [];
    const prefix = resticS3Prefix(r, b.resticPrefix);
    return prefix.startsWith(b.resticPrefix)
      ? []
      : [
          {
            path: `restic.repositories[${i}].prefix`,
            message: `"${prefix}" is outside the bucket's restic prefix "${b.resticPrefix}": its key could not reach it, and the lifecycle could archive it (a prefix under ${b.resticPrefix}, e.g. ${b.resticPrefix}${r.name})`,
          },
        ];
  });
};

/** copyFrom: no loops, and a copy backs up nothing itself. */
const copyChains: Check = (site) => {
  const repos = site.restic.repositories;
  const byName = new Map(repos.map((r) => [r.name, r]));
  return repos.flatMap((r, i): Problem[] => {
    const p = `restic.repositories[${i}]`;
    const out: Problem[] = [];
    if (
      r.copyFrom !== undefined &&
      (r.paths.length > 0 || r.excludes.length > 0 || r.tags.length > 0)
    )
      out.push({
        path: `${p}.paths`,
        message: `a copy of "${r.copyFrom}" backs up nothing itself (remove paths, excludes and tags)`,
      });
    const seen: string[] = [r.name];
    let cur: ResticRepository | undefined = r;
    while (cur?.copyFrom !== undefined) {
      if (seen.includes(cur.copyFrom)) {
        out.push({
          path: `${p}.copyFrom`,
          message: `copies form a loop (${[...seen, cur.copyFrom].join(" <- ")}) (a chain must start at a repository that backs up paths)`,
        });
        break;
      }
      seen.push(cur.copyFrom);
      cur = byName.get(cur.copyFrom);
    }
    return out;
  });
};

export const resticChecks: Check[] = [kindFields, localPlacement, s3Placement, copyChains];
