// Runs components under Pulumi's mock runtime for tests, and replays the remote commands they
// register over real SSH.
import { reveal, settle, startMockRuntime, type Registration } from "../../infra/mockRuntime";
import * as fs from "node:fs";
import type { Sshd } from "./sshd";
import type { Host, HostArgs } from "../../components/host";
import type { RunResult } from "./proc";
import { hostPaths, type HostPaths } from "../../stacks/model/hosts";
import { readStackFile } from "../../infra/stackFile";

/** The host layout of docs/architecture.md, as the site model's defaults give it. */
export const defaultPaths: HostPaths = hostPaths.parse({});

export {
  reveal,
  redact,
  isSecretValue,
  containsSecret,
  type Registration,
} from "../../infra/mockRuntime";

/**
 * Starts the mock runtime with the given config, runs `build` (which must require component or
 * program modules itself, after the mocks are set: use jest.isolateModules or a dynamic import),
 * and returns every registration once the program has settled.
 */
export async function runMocked(
  build: () => void | Promise<void>,
  config: Record<string, unknown> = {},
  secretKeys: readonly string[] = [],
  stack = "test",
): Promise<Registration[]> {
  const recorded = startMockRuntime({ stack, config, secretKeys });
  await build();
  await settle(recorded);
  return recorded;
}

/**
 * For a unit test file of one program: registers a beforeAll that runs `build` under the mocks, and
 * returns the array its registrations fill in there.
 */
export function recordMocked(
  build: () => void | Promise<void>,
  timeoutMs?: number,
): Registration[] {
  const recorded: Registration[] = [];
  beforeAll(async () => {
    recorded.push(...(await runMocked(build)));
  }, timeoutMs);
  return recorded;
}

export interface RemoteStep {
  readonly name: string;
  readonly create?: string;
  readonly update?: string;
  readonly delete?: string;
  readonly stdin?: string;
  /** The connection's host and port, as the provider would dial them. */
  readonly host: string;
  readonly port: number;
}

/** The remote commands in registration order (dependencies come first), secrets revealed. */
export function remoteSteps(recorded: readonly Registration[]): RemoteStep[] {
  return recorded
    .filter((r) => r.type === "command:remote:Command")
    .map((r) => {
      const i = reveal(r.inputs) as Record<string, unknown>;
      const conn = i.connection as { host: string; port?: number };
      return {
        name: r.name,
        create: i.create as string | undefined,
        update: i.update as string | undefined,
        delete: i.delete as string | undefined,
        stdin: i.stdin as string | undefined,
        host: conn.host,
        port: conn.port ?? 22,
      };
    });
}

/** Runs every step's create over SSH, in order; throws on the first failure. */
export function applyCreates(sshd: Sshd, steps: readonly RemoteStep[]): RunResult[] {
  return steps.map((s) => {
    if (!s.create) return { code: 0, stdout: "", stderr: "" };
    const r = sshd.exec(s.create, s.stdin);
    if (r.code !== 0) throw new Error(`create of ${s.name} failed (${r.code}):\n${r.stderr}`);
    return r;
  });
}

/**
 * Runs every step's update over SSH, in order, as `pulumi up` does for a changed input (a new
 * password, new content); a step without one runs its create, as the provider does.
 */
export function applyUpdates(sshd: Sshd, steps: readonly RemoteStep[]): RunResult[] {
  return steps.map((s) => {
    const text = s.update ?? s.create;
    if (!text) return { code: 0, stdout: "", stderr: "" };
    const r = sshd.exec(text, s.stdin);
    if (r.code !== 0) throw new Error(`update of ${s.name} failed (${r.code}):\n${r.stderr}`);
    return r;
  });
}

/** Runs every step's delete over SSH in reverse order, as a destroy would. */
export function applyDeletes(sshd: Sshd, steps: readonly RemoteStep[]): RunResult[] {
  return [...steps].reverse().map((s) => {
    if (!s.delete) return { code: 0, stdout: "", stderr: "" };
    const r = sshd.exec(s.delete);
    if (r.code !== 0) throw new Error(`delete of ${s.name} failed (${r.code}):\n${r.stderr}`);
    return r;
  });
}

/**
 * A Host reached over the test's sshd on 127.0.0.1, laid out in a sandbox. Call it inside
 * runMocked's build: the component module is loaded only then, after the mocks are set.
 */
export async function sandboxHost(
  name: string,
  hostName: string,
  sshd: Sshd,
  paths: HostPaths,
  extra: { timezone?: string } = {},
): Promise<Host> {
  const pulumi = await import("@pulumi/pulumi");
  const { Host: HostClass } = await import("../../components/host");
  return new HostClass(name, {
    hostName,
    address: "127.0.0.1",
    port: sshd.port,
    privateKey: pulumi.secret(sshd.privateKey),
    paths,
    ...extra,
  });
}

/**
 * A Host for unit tests, never dialled: the default layout and a placeholder key unless given. Call
 * it inside runMocked's build, like sandboxHost.
 */
export async function mockHost(
  name: string,
  args: Omit<HostArgs, "paths" | "privateKey"> & Partial<Pick<HostArgs, "paths" | "privateKey">>,
): Promise<Host> {
  const pulumi = await import("@pulumi/pulumi");
  const { Host: HostClass } = await import("../../components/host");
  return new HostClass(name, { paths: defaultPaths, privateKey: pulumi.secret("key"), ...args });
}

/**
 * The whole program (infra/index) under the mocks, with a stack file's config and secrets, as
 * `pulumi up` runs it for that stack. The program is loaded afresh (a run per stack in one file);
 * `loaded` receives its module, whose exports are the stack's outputs.
 */
export async function runStack(
  stack: string,
  loaded: (program: Record<string, unknown>) => void = () => {},
): Promise<Registration[]> {
  const file = readStackFile(stack);
  return runMocked(
    () =>
      jest.isolateModulesAsync(async () => {
        loaded(await import("../../infra/index"));
      }),
    file.config,
    file.secretKeys,
    stack,
  );
}

/**
 * The owner stamps a host holds (<state>/owners unless the command names another dir): what each
 * stamp says, "<resource name> <what it owns>", sorted. Empty when the dir does not exist.
 */
export function ownerStamps(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => fs.readFileSync(`${dir}/${f}`, "utf8").trim())
    .sort();
}

/** A job script as the components' scripts start: strict bash, common.sh, b321_start; then BODY. */
export function jobScript(...body: string[]): string {
  return [
    "#!/bin/bash",
    "set -Eeuo pipefail",
    'source "${BASH_SOURCE[0]%/*}/common.sh"',
    'b321_start "$@"',
    ...body,
    "",
  ].join("\n");
}
