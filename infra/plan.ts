// Offline plan: `npm run plan -- --stack <name>`. Runs the real program under Pulumi's mock runtime
// with the stack's config and writes out/<stack>/plan.json (each resource's type, name, parent,
// resource options and redacted inputs), out/<stack>/hosts/<host>/<path> for
// every file that would be pushed, and a short summary. Needs no cloud, Proxmox or Pulumi CLI.
import * as fs from "node:fs";
import * as path from "node:path";
import { readStackFile } from "./stackFile";
import {
  redact,
  reveal,
  isSecretValue,
  settle,
  startMockRuntime,
  type Registration,
} from "./mockRuntime";
import { parseSite, SiteError, SITE_KEY } from "../stacks/load";
import { parseFileMarker } from "../components/host/render";
import { renderRunbook } from "../components/site/runbook";
import { renderCompliance } from "../components/site/compliance";
import { renderTargetsSummary } from "../stacks/targets";
import { planWarnings } from "../stacks/warnings";
import type { Site } from "../stacks/schema";

interface Options {
  readonly stack: string;
  readonly outDir: string;
  /** Directory holding Pulumi.<stack>.yaml. Defaults to the project root. */
  readonly configDir?: string;
}

function parseArgs(argv: readonly string[]): Options {
  let stack: string | undefined;
  let outDir: string | undefined;
  let configDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--stack") stack = argv[++i];
    else if (a.startsWith("--stack=")) stack = a.slice(8);
    else if (a === "--out") outDir = argv[++i];
    else if (a === "--config-dir") configDir = argv[++i];
    else
      throw new Error(
        `unknown argument "${a}" (usage: npm run plan -- --stack <name> [--out <dir>] [--config-dir <dir>])`,
      );
  }
  if (!stack) throw new Error("missing --stack (usage: npm run plan -- --stack <name>)");
  return { stack, outDir: outDir ?? path.join("out", stack), configDir };
}

export interface PushedFile {
  readonly host: string;
  readonly path: string;
  /** undefined when the content is a secret (never written out). */
  readonly content?: string;
}

/** The files RemoteFile would push, read from the recorded install commands. */
export function pushedFiles(recorded: readonly Registration[]): PushedFile[] {
  return recorded.flatMap((r) => {
    const create = reveal(r.inputs.create);
    if (r.type !== "command:remote:Command" || typeof create !== "string") return [];
    const where = parseFileMarker(create);
    if (!where) return [];
    const stdin = r.inputs.stdin;
    return [{ ...where, content: isSecretValue(stdin) ? undefined : String(stdin ?? "") }];
  });
}

/** The resource name a URN ends with. */
function urnName(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

/**
 * A resource's options as plan.json shows them: only those set (no false, no empty list), and
 * dependsOn as sorted resource names instead of URNs.
 */
export function planOptions(r: Registration): Record<string, unknown> {
  const o = r.options;
  const out: Record<string, unknown> = {};
  if (o.protect) out.protect = true;
  if (o.retainOnDelete) out.retainOnDelete = true;
  if (o.deleteBeforeReplace) out.deleteBeforeReplace = true;
  if (o.replaceOnChanges.length > 0) out.replaceOnChanges = o.replaceOnChanges;
  if (o.ignoreChanges.length > 0) out.ignoreChanges = o.ignoreChanges;
  if (o.additionalSecretOutputs.length > 0) out.additionalSecretOutputs = o.additionalSecretOutputs;
  if (o.dependsOn.length > 0)
    out.dependsOn = [...new Set(o.dependsOn.map(urnName))].sort((a, b) => a.localeCompare(b));
  return out;
}

function writeOut(opts: Options, recorded: readonly Registration[]): PushedFile[] {
  fs.rmSync(opts.outDir, { recursive: true, force: true });
  fs.mkdirSync(opts.outDir, { recursive: true });
  const plan = [...recorded]
    .sort((a, b) => a.urn.localeCompare(b.urn))
    .map((r) => ({
      type: r.type,
      name: r.name,
      parent: r.parent ?? null,
      options: planOptions(r),
      inputs: redact(r.inputs),
    }));
  fs.writeFileSync(path.join(opts.outDir, "plan.json"), JSON.stringify(plan, null, 2) + "\n");
  const files = pushedFiles(recorded);
  for (const f of files) {
    const target = path.join(opts.outDir, "hosts", f.host, f.path);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, f.content ?? "[secret: content not written by the offline plan]\n");
  }
  return files;
}

function summarize(
  opts: Options,
  site: Site,
  recorded: readonly Registration[],
  files: readonly PushedFile[],
): string {
  const count = (keys: string[]) =>
    [...keys.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>())].sort(
      ([a], [b]) => a.localeCompare(b),
    );
  const lines = [
    `backup321 offline plan for stack ${opts.stack}: ${recorded.length} resources`,
    "",
    "Resources per type:",
  ];
  for (const [t, n] of count(recorded.map((r) => r.type)))
    lines.push(`  ${String(n).padStart(4)}  ${t}`);
  lines.push("", "Files pushed per host:");
  for (const [h, n] of count(files.map((f) => f.host)))
    lines.push(`  ${String(n).padStart(4)}  ${h}`);
  lines.push("", renderTargetsSummary(site));
  const warnings = planWarnings(site);
  if (warnings.length > 0) lines.push("", "Warnings:", ...warnings.map((w) => `  - ${w}`));
  lines.push(
    "",
    `Written to ${opts.outDir}/ (plan.json, RUNBOOK.md, COMPLIANCE.md, hosts/<host>/<path>)`,
  );
  return lines.join("\n");
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  let stackFile;
  try {
    stackFile = readStackFile(opts.stack, opts.configDir);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  // Validate first: a bad model must fail with its list of problems before any resource exists.
  let site: Site;
  try {
    site = parseSite(stackFile.config[SITE_KEY]);
  } catch (e) {
    if (e instanceof SiteError) {
      console.error(`Pulumi.${opts.stack}.yaml: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const recorded = startMockRuntime({
    stack: opts.stack,
    config: stackFile.config,
    secretKeys: stackFile.secretKeys,
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("./index");
  await settle(recorded);
  const files = writeOut(opts, recorded);
  fs.writeFileSync(path.join(opts.outDir, "RUNBOOK.md"), renderRunbook(site, opts.stack));
  fs.writeFileSync(path.join(opts.outDir, "COMPLIANCE.md"), renderCompliance(site, opts.stack));
  console.log(summarize(opts, site, recorded, files));
  return 0;
}

if (require.main === module) {
  let failed = false;
  process.on("unhandledRejection", (e) => {
    if (!failed) console.error(`plan failed: ${e instanceof Error ? e.message : String(e)}`);
    failed = true;
    process.exitCode = 1;
  });
  main().then(
    (code) => {
      if (!failed) process.exitCode = code;
    },
    (e) => {
      console.error(`plan failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
    },
  );
}
