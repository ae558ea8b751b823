// Reads Pulumi.<stack>.yaml the way the offline plan needs it: every config value, with each
// `secure:` value replaced by a placeholder that names its key (nothing here can decrypt them).
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";

export interface StackFile {
  readonly stack: string;
  readonly config: Record<string, unknown>;
  /** Config keys whose values were `secure:` (now placeholders). */
  readonly secretKeys: string[];
}

export const placeholder = (key: string): string => `plan-placeholder(${key})`;

function isSecure(v: unknown): boolean {
  return typeof v === "object" && v !== null && Object.keys(v).length === 1 && "secure" in v;
}

export function readStackFile(stack: string, dir = path.join(__dirname, "..")): StackFile {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new Error(`--stack "${stack}" is not a stack name`);
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) {
    const known = fs
      .readdirSync(dir)
      .filter((f) => /^Pulumi\..+\.yaml$/.test(f))
      .map((f) => f.slice(7, -5));
    throw new Error(`no ${path.basename(file)} (stacks here: ${known.join(", ")})`);
  }
  const doc = (parse(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const config: Record<string, unknown> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    if (isSecure(value)) {
      config[key] = placeholder(key);
      secretKeys.push(key);
    } else {
      config[key] = value;
    }
  }
  return { stack, config, secretKeys };
}
