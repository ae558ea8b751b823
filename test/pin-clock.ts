// Every test sees the same "now" (stacks/clock.ts): a plan whose key generation followed the real
// date would change under the tests each month. A test that rotates keys sets its own.
process.env.BACKUP321_NOW ??= "2026-12-15T12:00:00Z";
