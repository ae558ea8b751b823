// The managed tree of a sandbox host: every path below its root with type, mode, owner and content
// hash, the sandbox's base directory written as BASE so two deployments of one model compare equal.
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";

export interface TreeEntry {
  readonly type: "file" | "dir" | "link";
  /** Octal permission bits. */
  readonly mode: string;
  readonly owner: string;
  /** sha256 of the content with the base replaced by BASE (files), or the link target. */
  readonly content?: string;
}

/**
 * Walks `root`, leaving out `exclude` (paths relative to root: backup data and run state). Files
 * whose content differs by design between two deployments (generated secrets) are listed in
 * `opaque`: compared by type, mode and owner only.
 */
export function managedTree(
  root: string,
  base: string,
  exclude: readonly string[],
  opaque: readonly string[] = [],
  /** Directories whose files are named by a hash of paths: listed by their content instead. */
  byContent: readonly string[] = [],
  /** Lines derived from an opaque secret (a key's fingerprint): replaced before hashing. */
  masks: readonly (readonly [RegExp, string])[] = [],
): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const skip = new Set(exclude.map((p) => p.replace(/^\/+/, "")));
  const walk = (rel: string): void => {
    if (skip.has(rel)) return;
    const abs = rel === "" ? root : path.join(root, rel);
    const st = fs.lstatSync(abs);
    const mode = (st.mode & 0o7777).toString(8);
    const owner = `${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) {
      out[rel] = {
        type: "link",
        mode,
        owner,
        content: fs.readlinkSync(abs).split(base).join("BASE"),
      };
    } else if (st.isDirectory()) {
      if (rel !== "") out[rel] = { type: "dir", mode, owner };
      for (const name of fs.readdirSync(abs).sort()) walk(rel === "" ? name : `${rel}/${name}`);
    } else {
      const text = masks.reduce(
        (t, [re, by]) => t.replace(re, by),
        fs.readFileSync(abs).toString("latin1").split(base).join("BASE"),
      );
      const dir = path.dirname(rel);
      const key = byContent.includes(dir) ? `${dir}/{${text.trim()}}` : rel;
      out[key] = {
        type: "file",
        mode,
        owner,
        content: opaque.includes(rel)
          ? "(opaque)"
          : createHash("sha256").update(text, "latin1").digest("hex"),
      };
    }
  };
  walk("");
  return out;
}

/** The differences between two trees, one line per path: empty when they are equal. */
export function treeDiff(
  actual: Record<string, TreeEntry>,
  expected: Record<string, TreeEntry>,
): string[] {
  const keys = [...new Set([...Object.keys(actual), ...Object.keys(expected)])].sort();
  return keys.flatMap((k) => {
    const a = actual[k];
    const e = expected[k];
    if (!a) return [`missing ${k}`];
    if (!e) return [`extra ${k}`];
    const d = (["type", "mode", "owner", "content"] as const).filter((f) => a[f] !== e[f]);
    return d.length === 0 ? [] : [`differs ${k} (${d.join(", ")})`];
  });
}
