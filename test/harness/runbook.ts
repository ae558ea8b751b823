// RUNBOOK.md's steps pasted as the operator pastes them: the block stepScript() prints (the same
// text RUNBOOK.md shows), run whole by bash, with the test's values for its inputs.
import { stepScript, type Step } from "../../components/site/runbook/steps";
import { run, type RunResult } from "./proc";

export interface PasteOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** One step pasted; its result, whatever it is. */
export function pasteStep(
  step: Step,
  values: Readonly<Record<string, string>> = {},
  opts: PasteOptions = {},
): RunResult {
  return run("bash", ["-c", stepScript(step, values)], { ...opts, timeoutMs: 600_000 });
}

/** One step pasted that must succeed: fails the test naming the step and its stderr. */
export function pasteOk(
  step: Step,
  values: Readonly<Record<string, string>> = {},
  opts: PasteOptions = {},
): string {
  const r = pasteStep(step, values, opts);
  expect({ step: step.say, code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({
    step: step.say,
    code: 0,
    stderr: "",
  });
  return r.stdout;
}
