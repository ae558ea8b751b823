// Runs the real program under Pulumi's mock runtime and records every registration. Used by the
// offline plan and by the unit and integration tests: one recorder, so what tests check is what
// the plan shows.
import * as pulumi from "@pulumi/pulumi";

export interface Registration {
  readonly type: string;
  readonly name: string;
  readonly urn: string;
  /** Parent URN, or undefined for a root resource. */
  readonly parent?: string;
  readonly custom: boolean;
  /** Inputs as the engine received them; secret values are still wrapped (see isSecretValue). */
  readonly inputs: Record<string, unknown>;
  /** The resource options the engine received (what decides replacements, deletes and secrets). */
  readonly options: RegisteredOptions;
}

/**
 * Resource options as they reach the engine: after the SDK's own additions (@pulumi/command adds
 * `triggers[*]` to replaceOnChanges) and inheritance (protect comes from the parent when unset).
 */
export interface RegisteredOptions {
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
  readonly deleteBeforeReplace: boolean;
  readonly replaceOnChanges: readonly string[];
  readonly ignoreChanges: readonly string[];
  readonly additionalSecretOutputs: readonly string[];
  /**
   * URNs of the resources this one waits for: its dependsOn (a component stands for its custom
   * resources) and the resources its inputs came from. Sorted.
   */
  readonly dependsOn: readonly string[];
}

/** Options of a resource registered without any (what mocks.newResource alone would give). */
const NO_OPTIONS: RegisteredOptions = {
  protect: false,
  retainOnDelete: false,
  deleteBeforeReplace: false,
  replaceOnChanges: [],
  ignoreChanges: [],
  additionalSecretOutputs: [],
  dependsOn: [],
};

const SIG = pulumi.runtime.specialSigKey;
const SECRET = pulumi.runtime.specialSecretSig;

/** True for a value the program marked secret. */
export function isSecretValue(v: unknown): boolean {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG] === SECRET;
}

/** True when the value, or anything inside it, is secret. */
export function containsSecret(v: unknown): boolean {
  if (isSecretValue(v)) return true;
  if (Array.isArray(v)) return v.some(containsSecret);
  if (typeof v === "object" && v !== null) return Object.values(v).some(containsSecret);
  return false;
}

/** The plain value, secrets unwrapped: for tests that check what a secret would contain. */
export function reveal(v: unknown): unknown {
  if (isSecretValue(v)) return reveal((v as { value: unknown }).value);
  if (Array.isArray(v)) return v.map(reveal);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)]));
  }
  return v;
}

/** The value with every secret replaced by "[secret]": what may be printed or written. */
export function redact(v: unknown): unknown {
  if (isSecretValue(v)) return "[secret]";
  if (Array.isArray(v)) return v.map(redact);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redact(x)]));
  }
  return v;
}

/** What a mocked `ssh-keygen -y` prints. */
export const MOCK_PUBLIC_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockMockMockMockMockMockMockMockMockMockMock backup321-mock";

/** Outputs a mock provider returns for a resource, beyond its inputs (ids, generated values). */
function mockState(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
): Record<string, unknown> {
  switch (type) {
    case "random:index/randomPassword:RandomPassword":
      return { ...inputs, result: { [SIG]: SECRET, value: `mock-password-${name}` } };
    case "random:index/randomBytes:RandomBytes": {
      const bytes = Buffer.alloc(Number(inputs.length ?? 32), name.length);
      return {
        ...inputs,
        base64: { [SIG]: SECRET, value: bytes.toString("base64") },
        hex: { [SIG]: SECRET, value: bytes.toString("hex") },
      };
    }
    case "command:remote:Command":
    case "command:local:Command":
      // What a command would print is unknown offline: a recognisable placeholder, or a valid-looking
      // public key for one that prints one (ssh-keygen -y).
      return /ssh-keygen -y/.test(String(inputs.create ?? ""))
        ? { ...inputs, stdout: MOCK_PUBLIC_KEY, stderr: "" }
        : { ...inputs, stdout: `mock-stdout-${name}`, stderr: "" };
    case "aws:iam/accessKey:AccessKey":
      return {
        ...inputs,
        id: `AKIAMOCK${name.length}`,
        secret: { [SIG]: SECRET, value: `mock-aws-secret-${name}` },
      };
    case "aws:s3/bucket:Bucket":
    case "aws:s3/bucketV2:BucketV2":
      return {
        ...inputs,
        arn: `arn:aws:s3:::${String(inputs.bucket ?? name)}`,
        bucket: inputs.bucket ?? name,
      };
    case "aws:iam/user:User":
      return { ...inputs, arn: `arn:aws:iam::123456789012:user/${String(inputs.name ?? name)}` };
    default:
      return inputs;
  }
}

export interface MockRunOptions {
  readonly project?: string;
  readonly stack: string;
  /** Full config keys (backup321:site) to values; objects are JSON-encoded for the runtime. */
  readonly config: Record<string, unknown>;
  /** Keys whose values are secrets. */
  readonly secretKeys?: readonly string[];
  /** Run as a preview (unknowns stay unknown). Defaults to false. */
  readonly preview?: boolean;
}

// Where each registration sits in the tree and its options, captured from the monitor's requests.
const seen = new Map<string, { urn: string; parent: string; options: RegisteredOptions }>();

/**
 * Sets the mocks and config, then returns the recorder. Load the program (require) only after this.
 * Parents and resource options are captured from the monitor's requests, which mocks.newResource
 * does not see.
 */
export function startMockRuntime(opts: MockRunOptions): Registration[] {
  const recorded: Registration[] = [];
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.config))
    config[k] = typeof v === "string" ? v : JSON.stringify(v);
  pulumi.runtime.setAllConfig(config, [...(opts.secretKeys ?? [])]);

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks");
  seen.clear();
  const original = MockMonitor.prototype.registerResource;
  if (!original.__b321) {
    // The getters of RegisterResourceRequest (@pulumi/pulumi/proto/resource_pb.d.ts) read here.
    type Req = {
      getType(): string;
      getName(): string;
      getParent(): string;
      getProtect(): boolean | undefined;
      getRetainondelete(): boolean | undefined;
      getDeletebeforereplace(): boolean;
      getReplaceonchangesList(): string[];
      getIgnorechangesList(): string[];
      getAdditionalsecretoutputsList(): string[];
      getDependenciesList(): string[];
    };
    type Monitor = { newUrn(parent: string, type: string, name: string): string };
    const wrapped = function (this: Monitor, req: Req, cb: unknown) {
      const urn = this.newUrn(req.getParent(), req.getType(), req.getName());
      seen.set(`${req.getType()}::${req.getName()}`, {
        urn,
        parent: req.getParent(),
        options: {
          protect: req.getProtect() ?? false,
          retainOnDelete: req.getRetainondelete() ?? false,
          deleteBeforeReplace: req.getDeletebeforereplace(),
          replaceOnChanges: [...req.getReplaceonchangesList()],
          ignoreChanges: [...req.getIgnorechangesList()],
          additionalSecretOutputs: [...req.getAdditionalsecretoutputsList()],
          dependsOn: [...new Set(req.getDependenciesList())].sort(),
        },
      });
      return original.call(this, req, cb);
    };
    (wrapped as unknown as { __b321: boolean }).__b321 = true;
    MockMonitor.prototype.registerResource = wrapped;
  }
  const project = opts.project ?? "backup321";
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        const where = seen.get(`${args.type}::${args.name}`);
        recorded.push({
          type: args.type,
          name: args.name,
          urn: where?.urn ?? "",
          parent: where?.parent || undefined,
          custom: args.custom ?? true,
          inputs: args.inputs,
          options: where?.options ?? NO_OPTIONS,
        });
        return {
          id: `mocked::${args.type}::${args.name}`,
          state: mockState(args.type, args.name, args.inputs),
        };
      },
      call(args) {
        switch (args.token) {
          case "aws:index/getCallerIdentity:getCallerIdentity":
            return {
              accountId: "123456789012",
              arn: "arn:aws:iam::123456789012:user/mock",
              userId: "mock",
            };
          case "aws:index/getRegion:getRegion":
          case "aws:index/getRegion:getRegionPlain":
            return { name: "eu-west-3", region: "eu-west-3" };
          default:
            return args.inputs;
        }
      },
    },
    project,
    opts.stack,
    opts.preview ?? false,
  );
  return recorded;
}

// Exported by the runtime but left out of its typings.
const waitForRPCs = (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs;

/** Waits until the program has registered everything (the mock RPC queue is empty and stays so). */
export async function settle(recorded: readonly Registration[]): Promise<void> {
  let last = -1;
  let stable = 0;
  while (stable < 5) {
    await waitForRPCs();
    await new Promise((r) => setImmediate(r));
    if (recorded.length === last) stable++;
    else {
      stable = 0;
      last = recorded.length;
    }
  }
}
