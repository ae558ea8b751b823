// The name infra/program.ts gives the BackupSite: every resource name starts with it, and
// RUNBOOK.md's state queries find the generated keys by it.
export const SITE_RESOURCE = "backup321";
