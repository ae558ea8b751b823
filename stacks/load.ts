// Turns the raw config value into a validated Site, or a list of every problem found.
import { z } from "zod";
import { siteSchema, type Site } from "./schema";
import { crossCheck, type Problem } from "./checks";

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
  if (!parsed.success) throw new SiteError(parsed.error.issues.flatMap(fromZod));
  const problems = crossCheck(parsed.data);
  if (problems.length > 0) throw new SiteError(problems);
  return parsed.data;
}
