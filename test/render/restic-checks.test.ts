// The restic cross-checks: exact problems for models that would put data in the wrong place.
import { siteSchema, type SiteInput } from "../../stacks/schema";
import { crossCheck } from "../../stacks/checks";

type RepoInput = NonNullable<NonNullable<SiteInput["restic"]>["repositories"]>[number];

const disk = { uuid: "5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b", mountpoint: "/mnt/usb-ssd" };
const usb: RepoInput = {
  name: "usb",
  host: "docker-srv",
  kind: "local",
  path: "/mnt/usb-ssd/restic",
  disk,
  schedule: "0 3 * * *",
  paths: ["/etc", "/mnt/usb-ssd/pbs"],
  tags: ["system"],
  retention: "daily5",
};
const cloud: RepoInput = {
  name: "cloud",
  host: "docker-srv",
  kind: "s3",
  copyFrom: "usb",
  schedule: "0 4 * * 0",
  retention: "weekly4",
};

function site(repos: RepoInput[]): SiteInput {
  return {
    name: "t",
    hosts: [{ name: "docker-srv", address: "192.168.10.20", roles: ["restic"] }],
    retention: { daily5: { keepDaily: 5 }, weekly4: { keepWeekly: 4 } },
    restic: { repositories: repos },
    offsite: { bucket: { name: "atlastech-backups" } },
    monitoring: { schedule: "0 * * * *" },
  };
}

// The recovery targets (checks-targets.ts) are tested on their own: here, restic's checks only.
const problems = (repos: RepoInput[]) =>
  crossCheck(siteSchema.parse(site(repos))).filter((p) => !p.path.startsWith("targets."));

test("the seed's usb + cloud pair passes", () => {
  expect(problems([usb, cloud])).toEqual([]);
  expect(siteSchema.parse(site([usb, cloud])).restic.repositories).toHaveLength(2);
});

test("a repository on a disk must be on that disk, not its mount point", () => {
  expect(problems([{ ...usb, path: "/srv/restic" }])).toEqual([
    {
      path: "restic.repositories[0].path",
      message:
        '"/srv/restic" is not on its disk mounted at /mnt/usb-ssd (a path under it, e.g. /mnt/usb-ssd/restic)',
    },
  ]);
  expect(problems([{ ...usb, path: "/mnt/usb-ssd", paths: ["/etc"] }])).toEqual([
    {
      path: "restic.repositories[0].path",
      message:
        '"/mnt/usb-ssd" is the mount point itself (a directory under it, e.g. /mnt/usb-ssd/restic)',
    },
  ]);
});

test("a backup never contains a repository, unless it is excluded", () => {
  expect(problems([{ ...usb, paths: ["/mnt/usb-ssd"] }])).toEqual([
    {
      path: "restic.repositories[0].paths[0]",
      message:
        '"/mnt/usb-ssd" contains the repository usb at /mnt/usb-ssd/restic (back up a narrower path, or add /mnt/usb-ssd/restic to excludes)',
    },
  ]);
  expect(
    problems([{ ...usb, paths: ["/mnt/usb-ssd"], excludes: ["/mnt/usb-ssd/restic"] }]),
  ).toEqual([]);
});

test("two local repositories never share a directory", () => {
  expect(
    problems([usb, { ...usb, name: "usb2", path: "/mnt/usb-ssd/restic/inner", paths: ["/etc"] }]),
  ).toEqual([
    {
      path: "restic.repositories[1].path",
      message:
        '"/mnt/usb-ssd/restic/inner" overlaps repository usb at /mnt/usb-ssd/restic (one directory per repository)',
    },
  ]);
});

test("fields of the other kind are rejected", () => {
  expect(
    problems([
      { ...usb, prefix: "restic/usb" },
      { ...cloud, path: "/x" },
    ]),
  ).toEqual([
    {
      path: "restic.repositories[0].prefix",
      message: "not used by a local repository (remove it, or use kind: s3)",
    },
    {
      path: "restic.repositories[1].path",
      message: "not used by an s3 repository (remove it, or use kind: local)",
    },
  ]);
});

test("an s3 repository stays under the bucket's restic prefix (never archived)", () => {
  expect(problems([usb, { ...cloud, prefix: "database/restic" }])).toEqual([
    {
      path: "restic.repositories[1].prefix",
      message:
        '"database/restic" is outside the bucket\'s restic prefix "restic/": its key could not reach it, and the lifecycle could archive it (a prefix under restic/, e.g. restic/cloud)',
    },
  ]);
});

test("copies: no loops, and a copy backs up nothing itself", () => {
  expect(problems([usb, { ...cloud, paths: ["/etc"] }])).toEqual([
    {
      path: "restic.repositories[1].paths",
      message: 'a copy of "usb" backs up nothing itself (remove paths, excludes and tags)',
    },
  ]);
  const a: RepoInput = { ...cloud, name: "a", copyFrom: "b" };
  const b: RepoInput = { ...cloud, name: "b", copyFrom: "a", prefix: "restic/b" };
  expect(problems([a, b]).filter((p) => p.path.endsWith("copyFrom"))).toEqual([
    {
      path: "restic.repositories[0].copyFrom",
      message:
        "copies form a loop (a <- b <- a) (a chain must start at a repository that backs up paths)",
    },
    {
      path: "restic.repositories[1].copyFrom",
      message:
        "copies form a loop (b <- a <- b) (a chain must start at a repository that backs up paths)",
    },
  ]);
});
