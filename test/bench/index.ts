// npm run bench -- <name>: runs test/bench/<name>.ts (a module exporting run()).
async function main(): Promise<void> {
  const name = process.argv[2];
  if (!name || !/^[a-z0-9-]+$/.test(name)) throw new Error("usage: npm run bench -- <name>");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(`./${name}`) as { run(): Promise<void> };
  await mod.run();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
