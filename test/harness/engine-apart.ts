// `pulumi up` of an engine stack in a process of its own (run with tsx; the request as JSON in
// argv[2], the outcome as one JSON line on stdout). For updates that are meant to fail: when a
// resource fails, the engine ends the run while the inline program still has calls in flight, and
// their rejections would land in the test's process as failures of the test.
import { LocalWorkspace, PulumiCommand, type EngineEvent } from "@pulumi/pulumi/automation";
import { backupProgram } from "../../infra/program";

export interface ApartRequest {
  readonly root: string;
  readonly workDir: string;
  readonly stackName: string;
  readonly envVars: Record<string, string>;
  readonly continueOnError?: boolean;
  readonly replace?: string[];
}

export interface ApartOutcome {
  readonly ok: boolean;
  readonly error?: string;
  readonly steps: { op: string; urn: string; type: string; name: string }[];
}

async function main(req: ApartRequest): Promise<ApartOutcome> {
  // The late rejections this process exists to contain.
  process.on("unhandledRejection", () => undefined);
  const pulumiCommand = await PulumiCommand.get({ root: req.root });
  const stack = await LocalWorkspace.selectStack(
    { stackName: req.stackName, projectName: "backup321", program: async () => backupProgram() },
    { workDir: req.workDir, pulumiCommand, envVars: req.envVars },
  );
  const steps: ApartOutcome["steps"] = [];
  const onEvent = (e: EngineEvent) => {
    const m = e.resourcePreEvent?.metadata;
    if (m) steps.push({ op: m.op, urn: m.urn, type: m.type, name: m.urn.split("::").pop() ?? "" });
  };
  try {
    await stack.up({
      color: "never",
      onEvent,
      continueOnError: req.continueOnError,
      replace: req.replace,
    });
    return { ok: true, steps };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e), steps };
  }
}

main(JSON.parse(process.argv[2]) as ApartRequest).then(
  (outcome) => {
    process.stdout.write(`${JSON.stringify(outcome)}\n`);
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
