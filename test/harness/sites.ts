// Site models for tests: the stacks' own, and a minimal valid one to mutate.
import { readStackFile } from "../../infra/stackFile";
import { SITE_KEY } from "../../stacks/load";
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
