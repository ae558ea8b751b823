// The repository stands alone: no file cites a document that is not in it, and every relative link
// of its markdown resolves.
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.join(__dirname, "..", "..");
const SKIP = new Set(["node_modules", "out", ".engine", ".git", "bin"]);

function* files(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (/\.(ts|sh|md|ya?ml|json|mjs|js|go)$|^run$/.test(e.name)) yield p;
  }
}

const all = [...files(ROOT)].filter((f) => !f.endsWith("package-lock.json"));
const rel = (f: string) => path.relative(ROOT, f);

test("no file cites the design notes or source documents that live outside the repository", () => {
  expect(all.length).toBeGreaterThan(100);
  const outside = /\b(DESIGN\.md|PITFALLS\.md|STYLE\.md|seeds\/|\.\.\/shared\/)/;
  const self = rel(__filename);
  expect(
    all.filter((f) => rel(f) !== self && outside.test(fs.readFileSync(f, "utf8"))).map(rel),
  ).toEqual([]);
});

test("every relative link of the markdown files resolves", () => {
  const broken: string[] = [];
  for (const f of all.filter((x) => x.endsWith(".md"))) {
    for (const m of fs.readFileSync(f, "utf8").matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      if (!fs.existsSync(path.resolve(path.dirname(f), target)))
        broken.push(`${rel(f)}: ${target}`);
    }
  }
  expect(broken).toEqual([]);
});
