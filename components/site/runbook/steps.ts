// A recovery scenario as data: the steps an operator pastes, each on one machine. RUNBOOK.md shows
// them and the scenario tests run them; both get their shell text from stepScript, so what is
// printed is what was run.
import { shq } from "../../host/render";

/** A value the operator supplies (or accepts): a shell variable set at the top of its block. */
export interface Input {
  /** The variable, e.g. UNTIL. */
  readonly name: string;
  /** Its value as printed: a placeholder to edit, or a shell expression that computes it. */
  readonly value: string;
  /** What it is, as the line's comment. */
  readonly say: string;
}

/**
 * One block, pasted whole: it stops at its first failure (set -e in a subshell, so the shell it is
 * pasted into stays open) and is safe to paste again after a failure in its middle.
 */
export interface Step {
  /** Where it runs: "laptop" (this repository, Pulumi, jq) or the name of a host, as root. */
  readonly on: string;
  /** What it does, in a sentence. */
  readonly say: string;
  readonly inputs?: readonly Input[];
  readonly sh: readonly string[];
}

export interface Scenario {
  readonly title: string;
  /** Paragraphs before the steps: what it recovers, its RPO/RTO. */
  readonly intro: readonly string[];
  /** What must have survived for it to work (the state backend, the escrow, a disk...). */
  readonly needs: readonly string[];
  readonly steps: readonly Step[];
}

export const LAPTOP = "laptop";

/** Where the stack passphrase waits on the laptop: a 0600 file, never a value in the environment. */
export const PASSPHRASE = "$HOME/.b321-passphrase";
export const USE_PASSPHRASE = `export PULUMI_CONFIG_PASSPHRASE_FILE="${PASSPHRASE}"   # a path: the passphrase stays in its 0600 file`;

/**
 * The shell text of a step. `values` binds inputs (quoted as one word each); an input left out
 * keeps its printed value.
 */
export function stepScript(step: Step, values: Readonly<Record<string, string>> = {}): string {
  const unknown = Object.keys(values).filter((k) => !step.inputs?.some((i) => i.name === k));
  if (unknown.length > 0) throw new Error(`step "${step.say}" has no input ${unknown.join(", ")}`);
  return [
    "(",
    "  set -euo pipefail   # stops at the first failure; the shell you paste this into stays open",
    ...(step.inputs ?? []).map(
      (i) => `  ${i.name}=${i.name in values ? shq(values[i.name]) : i.value}   # ${i.say}`,
    ),
    ...step.sh.map((l) => (l === "" ? "" : `  ${l}`)),
    ")",
  ].join("\n");
}

export function renderStep(step: Step, n: number): string[] {
  const where = step.on === LAPTOP ? "On the laptop" : `On ${step.on}, as root`;
  return [`${n}. ${where}: ${step.say}`, "", "```sh", stepScript(step), "```", ""];
}

export function renderScenario(number: number, s: Scenario): string[] {
  return [
    `## Scenario ${number}: ${s.title}`,
    "",
    ...s.intro.flatMap((p) => [p, ""]),
    ...(s.needs.length > 0
      ? ["What must have survived:", "", ...s.needs.map((n) => `- ${n}`), ""]
      : []),
    ...s.steps.flatMap((step, i) => renderStep(step, i + 1)),
  ];
}
