// npm run bench -- <name>: runs test/bench/<name>.ts (a module exporting run()).
const name = process.argv[2];
if (!name || !/^[a-z0-9-]+$/.test(name)) {
  console.error("usage: npm run bench -- <name> (e.g. db)");
  process.exit(2);
}
import(`./${name}`)
  .then((m: { run(): Promise<void> }) => m.run())
  .catch((e: unknown) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exitCode = 1;
  });
