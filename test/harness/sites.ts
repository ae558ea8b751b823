// Site models for tests: the stacks' own, and a minimal valid one to mutate.
import { readStackFile } from "../../infra/stackFile";
import { parseSite, SITE_KEY, SiteError } from "../../stacks/load";
import type { SiteInput } from "../../stacks/schema";

/** The site model of Pulumi.<stack>.yaml, as written. */
export function stackSite(stack: string): SiteInput {
  return readStackFile(stack).config[SITE_KEY] as SiteInput;
}

/** The smallest valid site: one host, nothing else. */
export function minimalSite(): SiteInput {
  return { name: "t", hosts: [{ name: "h1", address: "10.0.0.1", roles: ["restic"] }] };
}

/** A deep copy, for tests that mutate a model. */
export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * The problems parseSite names for a model, one "backup321:site.<key>: <message>" line each (none
 * when it is valid). The recovery targets' own are left out: test/render/targets.test.ts has them.
 */
export function siteProblems(raw: unknown): string[] {
  try {
    parseSite(raw);
  } catch (e) {
    if (e instanceof SiteError)
      return e.message
        .split("\n")
        .slice(1)
        .map((l) => l.trim())
        .filter((l) => !l.startsWith("backup321:site.targets."));
    throw e;
  }
  return [];
}
