// What a cross-check returns: the types every checks*.ts shares, apart so that checks.ts (which
// runs them all) and each checks-<concern>.ts import them without importing one another.
import type { Site } from "./schema";

export interface Problem {
  /** Path under backup321:site, e.g. "mariadb.host". */
  readonly path: string;
  /** What is wrong, then in parentheses what would be valid. */
  readonly message: string;
}

export type Check = (site: Site) => Problem[];
