// The real Pulumi engine for lifecycle tests: the CLI and plugins built by `npm run engine`, a
// temp file:// backend, a passphrase in a 0600 file, no update checks and no plugin downloads. The
// program is backupProgram(), run inline through the Automation API (the same code the CLI runs).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  LocalWorkspace,
  PulumiCommand,
  type EngineEvent,
  type Stack,
} from "@pulumi/pulumi/automation";
import { parseDocument } from "yaml";
import { backupProgram } from "../../infra/program";
import { SITE_KEY } from "../../stacks/load";
import { run } from "./proc";
import type { ApartOutcome, ApartRequest } from "./engine-apart";
import type { SiteInput } from "../../stacks/schema";

const ROOT = path.resolve(__dirname, "../..");

/** Where `npm run engine` put the CLI and plugins. */
export function engineBin(): string {
  const bin = process.env.B321_ENGINE_BIN ?? path.join(ROOT, ".engine", "bin");
  if (!fs.existsSync(path.join(bin, "pulumi"))) {
    throw new Error(`no Pulumi engine in ${bin}: run \`npm run engine\` first`);
  }
  return bin;
}

/** One engine step: what the engine did (or would do) to one resource. */
export interface Step {
  readonly op: string;
  readonly urn: string;
  readonly type: string;
  /** The resource's name (the URN's last part). */
  readonly name: string;
}

/** The steps of a preview or update that change something (every op but "same"). */
export function changes(steps: readonly Step[]): Step[] {
  return steps.filter((s) => s.op !== "same" && s.op !== "read");
}

/** Steps of resources that do something (components only group them), as sorted "op name" lines. */
export function summarize(steps: readonly Step[]): string[] {
  return changes(steps)
    .filter((s) => !s.type.startsWith("backup321:") && !s.type.startsWith("pulumi:pulumi:"))
    .map((s) => `${s.op} ${s.name}`)
    .sort();
}

export interface EngineStack {
  readonly stack: Stack;
  readonly name: string;
  /** Sets the site model and secrets (config), replacing the previous ones. */
  configure(site: SiteInput, secrets: Record<string, string>): Promise<void>;
  preview(opts?: { replace?: string[] }): Promise<Step[]>;
  /** `pulumi up`; extra options such as `replace: [urn]` pass through. */
  up(opts?: { replace?: string[]; refresh?: boolean; continueOnError?: boolean }): Promise<Step[]>;
  /**
   * `pulumi up` in a process of its own, for an update meant to fail (a host unreachable): what the
   * engine did, and its error.
   */
  upApart(opts?: {
    continueOnError?: boolean;
    replace?: string[];
  }): Promise<{ error?: string; steps: Step[] }>;
  destroy(): Promise<Step[]>;
  /** `pulumi stack export --show-secrets`: the deployment's resources. */
  resources(): Promise<{ urn: string; type: string; outputs?: Record<string, unknown> }[]>;
  /** The URN of the resource of that type and name. */
  urn(type: string, name: string): Promise<string>;
  /** The backend's URL (`pulumi login`). */
  readonly backendUrl: string;
  /**
   * The operator's laptop for RUNBOOK.md's steps: HOME holds the stack passphrase in
   * .b321-passphrase, `pulumi` is the real CLI except `up`, which runs this stack's program through
   * the Automation API in a process of its own (no Node.js language host is built here). Each `up`
   * appends its outcome to `ups`.
   */
  laptop(): { env: NodeJS.ProcessEnv; cwd: string; ups: () => ApartOutcome[] };
  /** Runs the engine's CLI on this stack (what the Automation API does not cover). */
  cli(args: readonly string[]): { code: number; stdout: string; stderr: string };
  /** Removes the backend, workspace and passphrase (the stack must be destroyed or abandoned). */
  dispose(): void;
}

function collector(): { steps: Step[]; onEvent: (e: EngineEvent) => void } {
  const steps: Step[] = [];
  return {
    steps,
    onEvent: (e) => {
      const m = e.resourcePreEvent?.metadata;
      if (!m) return;
      steps.push({ op: m.op, urn: m.urn, type: m.type, name: m.urn.split("::").pop() ?? "" });
    },
  };
}

/** A stack of the backup321 project on a fresh temp backend. */
export async function engineStack(name: string): Promise<EngineStack> {
  const bin = engineBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-engine-"));
  fs.chmodSync(dir, 0o700);
  const backend = path.join(dir, "state");
  const home = path.join(dir, "home");
  fs.mkdirSync(backend);
  fs.mkdirSync(home);
  const passphrase = path.join(dir, "passphrase");
  fs.writeFileSync(passphrase, `b321-test-${process.pid}-${Date.now()}\n`, { mode: 0o600 });
  const pulumiCommand = await PulumiCommand.get({ root: path.dirname(bin) });
  const envVars = {
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    PULUMI_HOME: home,
    PULUMI_CONFIG_PASSPHRASE_FILE: passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
  };
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: name, projectName: "backup321", program: async () => backupProgram() },
    {
      pulumiCommand,
      envVars,
      projectSettings: {
        name: "backup321",
        runtime: "nodejs",
        backend: { url: `file://${backend}` },
      },
      secretsProvider: "passphrase",
    },
  );
  const color = "never" as const;
  const exported = async () => {
    const d = await stack.exportStack();
    return (d.deployment?.resources ?? []) as {
      urn: string;
      type: string;
      outputs?: Record<string, unknown>;
    }[];
  };
  return {
    stack,
    name,
    async configure(site, secrets) {
      const config: Record<string, { value: string; secret?: boolean }> = {};
      for (const [k, v] of Object.entries(secrets))
        config[`backup321:${k}`] = { value: v, secret: true };
      const current = await stack.getAllConfig();
      const stale = Object.keys(current).filter((k) => !(k in config) && k !== SITE_KEY);
      if (stale.length > 0) await stack.removeAllConfig(stale);
      await stack.setAllConfig(config);
      // The model as an object, the way a user's Pulumi.<stack>.yaml holds it: RUNBOOK.md's
      // `pulumi config set --path` edits inside it (a JSON string would be replaced whole).
      const file = path.join(stack.workspace.workDir, `Pulumi.${name}.yaml`);
      const doc = parseDocument(fs.readFileSync(file, "utf8"));
      doc.setIn(["config", SITE_KEY], doc.createNode(site));
      fs.writeFileSync(file, doc.toString());
    },
    async preview(opts = {}) {
      const c = collector();
      await stack.preview({ diff: true, color, onEvent: c.onEvent, ...opts });
      return c.steps;
    },
    async up(opts = {}) {
      const c = collector();
      await stack.up({ color, onEvent: c.onEvent, ...opts });
      return c.steps;
    },
    async upApart(opts = {}) {
      const request: ApartRequest = {
        root: path.dirname(bin),
        workDir: stack.workspace.workDir,
        stackName: name,
        envVars,
        continueOnError: opts.continueOnError,
        replace: opts.replace,
      };
      const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
      const r = run(tsx, [path.join(__dirname, "engine-apart.ts"), JSON.stringify(request)], {
        cwd: ROOT,
      });
      if (r.code !== 0) throw new Error(`engine-apart exited ${r.code}: ${r.stderr}`);
      const outcome = JSON.parse(r.stdout.trim().split("\n").pop()!) as ApartOutcome;
      return { error: outcome.error, steps: outcome.steps };
    },
    async destroy() {
      const c = collector();
      await stack.destroy({ color, onEvent: c.onEvent });
      return c.steps;
    },
    resources: exported,
    backendUrl: `file://${backend}`,
    laptop() {
      const home = fs.mkdtempSync(path.join(dir, "laptop-"));
      fs.copyFileSync(passphrase, path.join(home, ".b321-passphrase"));
      const wrappers = path.join(home, "bin");
      fs.mkdirSync(wrappers);
      const request: ApartRequest = {
        root: path.dirname(bin),
        workDir: stack.workspace.workDir,
        stackName: name,
        envVars,
      };
      fs.writeFileSync(path.join(home, "request.json"), JSON.stringify(request));
      const ups = path.join(home, "ups.jsonl");
      const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
      fs.writeFileSync(
        path.join(wrappers, "pulumi"),
        [
          "#!/bin/bash",
          'if [ "${1:-}" = up ]; then',
          `  out=$(cd ${ROOT} && ${tsx} ${path.join(__dirname, "engine-apart.ts")} "$(cat ${home}/request.json)") || exit 1`,
          `  printf '%s\n' "\${out##*$'\n'}" >> ${ups}`,
          `  printf '%s\n' "\${out##*$'\n'}" | jq -e .ok > /dev/null || { printf '%s\n' "\${out##*$'\n'}" | jq -r .error >&2; exit 1; }`,
          "  exit 0",
          "fi",
          `exec ${path.join(bin, "pulumi")} "$@"`,
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      return {
        cwd: stack.workspace.workDir,
        env: {
          PATH: `${wrappers}:${bin}:${process.env.PATH ?? ""}`,
          HOME: home,
          PULUMI_HOME: path.join(home, ".pulumi"),
          PULUMI_SKIP_UPDATE_CHECK: "true",
          PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        },
        ups: () =>
          fs.existsSync(ups)
            ? fs
                .readFileSync(ups, "utf8")
                .trim()
                .split("\n")
                .map((l) => JSON.parse(l) as ApartOutcome)
            : [],
      };
    },
    cli: (args) =>
      run(path.join(bin, "pulumi"), [...args, "--stack", name, "--non-interactive"], {
        cwd: stack.workspace.workDir,
        env: { ...process.env, ...envVars, PULUMI_BACKEND_URL: `file://${backend}` },
      }),
    async urn(type, resourceName) {
      const found = (await exported()).find(
        (r) => r.type === type && r.urn.endsWith(`::${resourceName}`),
      );
      if (!found) throw new Error(`no ${type} named ${resourceName} in stack ${name}`);
      return found.urn;
    },
    dispose() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
