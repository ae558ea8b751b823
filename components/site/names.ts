// The name infra/program.ts gives the BackupSite: every resource name starts with it, and
// RUNBOOK.md's state queries find the generated keys by it.
export const SITE_RESOURCE = "backup321";

/** The names BackupSite gives its parts, under its own name (RUNBOOK.md's queries build on them). */
export const partName = {
  mariadb: (site: string) => `${site}-mariadb`,
  restic: (site: string, repo: string) => `${site}-restic-${repo}`,
  offsite: (site: string) => `${site}-offsite`,
};
