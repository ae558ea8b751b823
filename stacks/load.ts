// Turns the raw config value into a validated Site, or a list of every problem found.
import { z } from "zod";
import { siteSchema, type Site } from "./schema";
import { crossCheck, crossChecks } from "./checks";
import type { Check, Problem } from "./problem";

export const SITE_KEY = "backup321:site";

export class SiteError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(
      `The site model has ${problems.length} problem(s):\n` +
        problems.map((p) => `  ${formatProblem(p)}`).join("\n"),
    );
    this.name = "SiteError";
  }
}

export function formatProblem(p: Problem): string {
  return `${SITE_KEY}${p.path ? "." + p.path : ""}: ${p.message}`;
}

function pathOf(segments: readonly PropertyKey[]): string {
  return segments
    .map((s, i) => (typeof s === "number" ? `[${s}]` : `${i === 0 ? "" : "."}${String(s)}`))
    .join("");
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "a map" : `the ${typeof v} ${JSON.stringify(v)}`;
}

function fromZod(issue: z.core.$ZodIssue): Problem[] {
  const at = pathOf(issue.path);
  const join = (k: string) => (at ? `${at}.${k}` : k);
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => ({
        path: join(k),
        message: "unknown key (remove it or check its spelling)",
      }));
    case "invalid_type":
      return [
        {
          path: at,
          message:
            issue.input === undefined
              ? `missing (expected ${issue.expected})`
              : `is ${describe(issue.input)} (expected ${issue.expected})`,
        },
      ];
    case "invalid_value":
      return [
        {
          path: at,
          message: `not allowed (one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")})`,
        },
      ];
    case "too_small":
      return [
        {
          path: at,
          message: /\(/.test(issue.message)
            ? issue.message
            : `${issue.message} (minimum ${String(issue.minimum)})`,
        },
      ];
    default: {
      const msg = issue.message.includes("(")
        ? issue.message
        : `${issue.message} (see the site model reference in README.md)`;
      return [{ path: at, message: msg }];
    }
  }
}

/** Validates the raw model; throws SiteError listing every problem, schema and cross-checks alike. */
export function parseSite(raw: unknown): Site {
  const parsed = siteSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success)
    throw new SiteError([...parsed.error.issues.flatMap(fromZod), ...crossCheckValidSections(raw)]);
  const problems = crossCheck(parsed.data);
  if (problems.length > 0) throw new SiteError(problems);
  return parsed.data;
}

/**
 * The cross-checks that can run while the schema has problems: each top-level section is parsed on
 * its own, and every check runs on the sections that parsed. A check that reads a broken section is
 * left out: its answer would rest on a section that is not there.
 */
function crossCheckValidSections(raw: unknown): Problem[] {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return [];
  const valid: Record<string, unknown> = {};
  const broken = new Set<string>();
  for (const [key, schema] of Object.entries(siteSchema.shape)) {
    const r = schema.safeParse((raw as Record<string, unknown>)[key]);
    if (r.success) valid[key] = r.data;
    else broken.add(key);
  }
  return crossChecks.flatMap((check) => runUnlessBroken(check, valid, broken));
}

function runUnlessBroken(
  check: Check,
  valid: Record<string, unknown>,
  broken: ReadonlySet<string>,
): Problem[] {
  let readBroken = false;
  const touch = (key: string | symbol) => {
    if (typeof key === "string" && broken.has(key)) readBroken = true;
  };
  const site = new Proxy(valid, {
    get(target, key) {
      touch(key);
      return Reflect.get(target, key);
    },
    has(target, key) {
      touch(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      broken.forEach(touch);
      return Reflect.ownKeys(target);
    },
  }) as unknown as Site;
  try {
    const problems = check(site);
    return readBroken ? [] : problems;
  } catch (e) {
    // A broken section is missing from the site: a check that read it may fail on that.
    if (readBroken) return [];
    throw e;
  }
}
