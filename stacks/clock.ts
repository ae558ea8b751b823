// What "now" is for the program: the real date, or BACKUP321_NOW (an ISO date) to see what a
// later `pulumi up` would do, e.g. which key generation it brings (tests and rotation drills).
export function now(): Date {
  const v = process.env.BACKUP321_NOW;
  if (v === undefined || v === "") return new Date();
  const d = new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new Error(
      `BACKUP321_NOW="${v}" is not a date: give an ISO date (2027-01-15) or unset it`,
    );
  return d;
}
