// Every child's name starts with its parent's name and a dash: names stay unique in the stack, and a
// name in a preview says which part of the site it belongs to. Checked here once, over whole stacks,
// instead of in each component's tests.
import { runStack } from "../harness/program";

test.each(["prod", "dev"])("stack %s: every child is named under its parent", async (stack) => {
  const recorded = await runStack(stack);
  const nameOf = new Map(recorded.map((r) => [r.urn, r.name]));
  const typeOf = new Map(recorded.map((r) => [r.urn, r.type]));
  const outside = recorded
    .filter((r) => r.parent !== undefined && typeOf.get(r.parent) !== "pulumi:pulumi:Stack")
    .filter((r) => !r.name.startsWith(`${nameOf.get(r.parent!)}-`))
    .map((r) => `${r.name} (parent ${nameOf.get(r.parent!)})`);
  expect(outside).toEqual([]);
  // and the check has something to check
  expect(recorded.filter((r) => r.parent !== undefined).length).toBeGreaterThan(50);
});
