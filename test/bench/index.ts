// `npm run bench -- <name>`: runs test/bench/<name>.ts, whose module exports run().
async function main(): Promise<void> {
  const name = process.argv[2];
  if (!name || !/^[a-z0-9-]+$/.test(name)) {
    throw new Error("usage: npm run bench -- <name> (e.g. offsite)");
  }
  const mod = (await import(`./${name}`)) as { run(): Promise<void> };
  await mod.run();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
