// Key rotation: a period in the model, counted from a first month; each `pulumi up` after a period
// has elapsed brings the next key generation (stacks/clock.ts says what "now" is).
import { z } from "zod";

export const rotation = z.strictObject({
  /** Months between two key generations (the seed rotates keys at its monthly maintenance: 1). */
  months: z.number().int().min(1, "must be at least 1 (months between two rotations)"),
  /**
   * The month generation 0 (the keys made by the first deploy) starts, YYYY-MM: generation N is in
   * use from `since` plus N periods. Never change it once set: moving it back adds generations,
   * moving it forward makes none go away (every key ever used is kept).
   */
  since: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "must be a month, YYYY-MM (e.g. 2026-12)"),
});
export type Rotation = z.infer<typeof rotation>;

/** The key generation in use at `now`: 0 before the first period has elapsed, or without rotation. */
export function keyGeneration(r: Rotation | undefined, now: Date): number {
  if (!r) return 0;
  const [y, m] = r.since.split("-").map(Number);
  const elapsed = (now.getUTCFullYear() - y) * 12 + (now.getUTCMonth() + 1 - m);
  return Math.max(0, Math.floor(elapsed / r.months));
}

/** The first month of generation N, YYYY-MM. */
export function generationStart(r: Rotation, n: number): string {
  const [y, m] = r.since.split("-").map(Number);
  const months = y * 12 + (m - 1) + n * r.months;
  return `${Math.floor(months / 12)}-${String((months % 12) + 1).padStart(2, "0")}`;
}

/**
 * The resource name of generation N of a rotated secret: generation 0 keeps the name it had before
 * the stack took up rotation, so taking it up replaces nothing.
 */
export const generationName = (base: string, n: number): string =>
  n === 0 ? base : `${base}-${n}`;

/** How the outputs and the runbook name generation N: with its first month when there is a rotation. */
export function generationLabel(r: Rotation | undefined, n: number): string {
  return r ? `generation ${n} (from ${generationStart(r, n)})` : `generation ${n}`;
}
