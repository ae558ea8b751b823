// `npm run docs` writes the generated parts of docs/ (the file contracts in docs/monitoring.md);
// `npm run docs -- --check` fails when they are stale (part of npm run lint).
import * as fs from "node:fs";
import * as path from "node:path";
import * as prettier from "prettier";
import { withFileContracts } from "../components/host/file-contracts-doc";

const PAGE = path.join(__dirname, "..", "docs", "monitoring.md");

async function main(check: boolean): Promise<number> {
  const current = fs.readFileSync(PAGE, "utf8");
  const options = { ...(await prettier.resolveConfig(PAGE)), filepath: PAGE };
  const wanted = await prettier.format(withFileContracts(current), options);
  if (wanted === current) return 0;
  if (check) {
    console.error(`${path.relative(process.cwd(), PAGE)} is stale: run npm run docs`);
    return 1;
  }
  fs.writeFileSync(PAGE, wanted);
  console.log(`wrote ${path.relative(process.cwd(), PAGE)}`);
  return 0;
}

main(process.argv.includes("--check")).then(
  (code) => (process.exitCode = code),
  (e) => {
    console.error(`docs: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
