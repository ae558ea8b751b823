// Pure functions for restic repositories: the repository URL, forget's keep flags, the env file of
// each job, and the install-once command of the password file.
import type { RetentionPolicy } from "../../stacks/primitives";
import { resticS3Prefix, type ResticRepository as ResticModel } from "../../stacks/model/restic";
import type { Bucket } from "../../stacks/model/offsite";
import type { HostPaths } from "../../stacks/model/hosts";
import { dirname, IN_PROGRESS_PATTERNS, shq } from "../host/render";

/** Where a repository lives. */
export type ResticLocation =
  | {
      readonly kind: "local";
      /** Directory of the repository. */
      readonly path: string;
      /** Mount point that must be mounted before the repository is touched (the USB SSD). */
      readonly mountpoint?: string;
    }
  | {
      readonly kind: "s3";
      readonly bucket: string;
      /** Key prefix inside the bucket, e.g. restic/cloud. */
      readonly prefix: string;
      /** Endpoint URL (s3rver, MinIO); AWS in `region` when unset. */
      readonly endpoint?: string;
      /** AWS region, used when no endpoint is given. */
      readonly region?: string;
    };

/** Where the model puts a repository: its directory, or its prefix in the offsite bucket. */
export function resticLocation(r: ResticModel, bucket: Bucket | undefined): ResticLocation {
  if (r.kind === "local")
    return { kind: "local", path: r.path ?? "", mountpoint: r.disk?.mountpoint };
  if (!bucket)
    throw new Error(`backup321:site.offsite.bucket: needed by restic repository ${r.name}`);
  return {
    kind: "s3",
    bucket: bucket.name,
    region: bucket.region,
    prefix: resticS3Prefix(r, bucket.resticPrefix),
    endpoint: r.endpoint,
  };
}

/** The restic repository string: a directory, or s3:<endpoint>/<bucket>/<prefix>. */
export function repositoryUrl(loc: ResticLocation): string {
  switch (loc.kind) {
    case "local":
      return loc.path;
    case "s3": {
      const endpoint = (loc.endpoint ?? `https://s3.${loc.region ?? "us-east-1"}.amazonaws.com`)
        .replace(/\/+$/, "")
        .replace(/^s3:/, "");
      const prefix = loc.prefix.replace(/^\/+|\/+$/g, "");
      return `s3:${endpoint}/${loc.bucket}${prefix ? `/${prefix}` : ""}`;
    }
  }
}

const KEEP_FLAGS: readonly [keyof RetentionPolicy, string][] = [
  ["keepLast", "--keep-last"],
  ["keepHourly", "--keep-hourly"],
  ["keepDaily", "--keep-daily"],
  ["keepWeekly", "--keep-weekly"],
  ["keepMonthly", "--keep-monthly"],
  ["keepYearly", "--keep-yearly"],
];

/** forget's keep flags for a retention tier, in a fixed order; fails on a tier that keeps nothing. */
export function forgetArgs(policy: RetentionPolicy): string[] {
  const args = KEEP_FLAGS.flatMap(([key, flag]) => {
    const n = policy[key];
    if (n === undefined) return [];
    if (!Number.isInteger(n) || n < 1) throw new Error(`${key} must be a positive whole number`);
    return [flag, String(n)];
  });
  // restic forget with no keep flag removes nothing, but an empty tier is a mistake: say so.
  if (args.length === 0) throw new Error("the retention tier keeps nothing (set e.g. keepDaily)");
  return args;
}

/** The job that backs up (or copies into) a repository; its init and check jobs add a suffix. */
export const resticJob = (repo: string): string => `restic-${repo}`;

/** The restore drill of a repository (the monitor checks its result like a restore test). */
export const resticDrillJob = (repo: string): string => `${resticJob(repo)}-drill`;

/** The files of a repository on its host. */
export interface ResticFiles {
  readonly passwordFile: string;
  /** An AWS shared credentials file (s3 only), read by restic itself. */
  readonly s3CredentialsFile?: string;
  /** PEM bundle the S3 endpoint's certificate chains to (self-signed endpoints). */
  readonly caFile?: string;
  readonly excludeFile: string;
}

/** Paths of a repository's files on its host: secrets in its secrets dir, the rest in etc. */
export function resticFiles(
  p: Pick<HostPaths, "etc" | "secrets">,
  repo: string,
  opts: { s3: boolean; ca: boolean },
): ResticFiles {
  return {
    passwordFile: `${p.secrets}/restic-${repo}.password`,
    s3CredentialsFile: opts.s3 ? `${p.secrets}/restic-${repo}.s3` : undefined,
    caFile: opts.ca ? `${p.etc}/restic-${repo}.ca.pem` : undefined,
    excludeFile: `${p.etc}/restic-${repo}.exclude`,
  };
}

export interface RepositoryEnvSpec {
  readonly repo: string;
  readonly url: string;
  readonly files: ResticFiles;
  /** Mount point required before a run (local repository on a disk). */
  readonly mountpoint?: string;
  /** restic --host: the site's host name, stable across rebuilds. */
  readonly hostTag: string;
  /** The restic binary. */
  readonly restic: string;
  /** restic's cache directory. */
  readonly cacheDir: string;
  /** The source of `restic copy`, when this repository is a copy. */
  readonly from?: {
    readonly repo: string;
    readonly url: string;
    readonly passwordFile: string;
    readonly mountpoint?: string;
  };
}

/** Variables every restic script reads (no secret: paths to 0600 files only). */
export function repositoryEnv(spec: RepositoryEnvSpec): Record<string, string> {
  return {
    RESTIC_BIN: spec.restic,
    RESTIC_CACHE: spec.cacheDir,
    RESTIC_HOST: spec.hostTag,
    REPO_NAME: spec.repo,
    REPO_URL: spec.url,
    REPO_PASSWORD_FILE: spec.files.passwordFile,
    REPO_S3_CREDENTIALS: spec.files.s3CredentialsFile ?? "",
    REPO_CACERT: spec.files.caFile ?? "",
    REPO_MOUNT: spec.mountpoint ?? "",
    FROM_NAME: spec.from?.repo ?? "",
    FROM_URL: spec.from?.url ?? "",
    FROM_PASSWORD_FILE: spec.from?.passwordFile ?? "",
    FROM_MOUNT: spec.from?.mountpoint ?? "",
  };
}

export interface BackupEnvSpec {
  readonly paths: readonly string[];
  readonly tags: readonly string[];
  readonly retention: RetentionPolicy;
}

/** Variables of the backup (or copy) job on top of repositoryEnv. */
export function backupEnv(spec: BackupEnvSpec): Record<string, string> {
  for (const p of spec.paths) {
    if (!/^\/[A-Za-z0-9._/@+-]*$/.test(p))
      throw new Error(`backup path "${p}" must be absolute, without spaces`);
  }
  for (const t of spec.tags) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(t)) throw new Error(`tag "${t}" must be a simple name`);
  }
  return {
    BACKUP_PATHS: spec.paths.join(" "),
    BACKUP_TAGS: spec.tags.join(","),
    FORGET_ARGS: forgetArgs(spec.retention).join(" "),
  };
}

/** The exclude file: one restic pattern a line, backup321's own unfinished files first. */
export function renderExcludeFile(excludes: readonly string[]): string {
  for (const e of excludes) {
    if (/[\n\r]/.test(e)) throw new Error(`exclude "${e}" must be one line`);
  }
  return (
    [
      "# backup321: restic --exclude-file (managed by pulumi up)",
      "# files backup321's jobs are still writing",
      ...IN_PROGRESS_PATTERNS,
      ...(excludes.length > 0 ? ["# the model's excludes", ...excludes] : []),
    ].join("\n") + "\n"
  );
}

/**
 * Installs the repository password from stdin. Create: never over a different existing file (it
 * opens the existing repository). Update (a rotation): when the repository exists, the init script
 * adds a key for the new password, installs the file, then removes the old key.
 */
export function passwordFileCommand(
  path: string,
  rotation?: { readonly initScript: string; readonly initEnv: string },
): string {
  const f = shq(path);
  const differs = rotation
    ? [
        // Also with the same bytes: it finishes a rotation whose old key could not be removed.
        `if [ -e ${f} ] && [ -e ${shq(rotation.initEnv)} ]; then`,
        `  ${shq(rotation.initScript)} ${shq(rotation.initEnv)} rotate "$tmp"`,
        "fi",
      ]
    : [
        `if [ -e ${f} ]; then`,
        `  if cmp -s -- "$tmp" ${f}; then chmod 0600 -- ${f}; exit 0; fi`,
        `  echo "backup321: refusing to replace ${path.replace(/[`"$\\]/g, "")}: it opens the existing repository (restore the escrowed password, or move the file away for a new repository)" >&2`,
        "  exit 1",
        "fi",
      ];
  return [
    "set -eu",
    `install -d -m 0700 -- ${shq(dirname(path))}`,
    `tmp=$(mktemp -- ${f}.b321.XXXXXX)`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `cat > "$tmp"`,
    ...differs,
    `chmod 0600 -- "$tmp"`,
    `mv -f -- "$tmp" ${f}`,
    "trap - EXIT",
  ].join("\n");
}

/** The generated password of a ResticRepository named REPOSITORY (what opens its data). */
export const passwordResource = (repository: string) => `${repository}-password`;
