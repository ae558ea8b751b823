// The offline plan, run as a new user runs it: a subprocess, the real program under mocks.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { run } from "../harness/proc";
import { readStackFile } from "../../infra/stackFile";

const root = path.join(__dirname, "..", "..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "b321-plan-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function plan(stack: string, extra: string[] = []) {
  const out = path.join(tmp, stack);
  const r = run(
    path.join(root, "node_modules/.bin/tsx"),
    ["infra/plan.ts", "--stack", stack, "--out", out, ...extra],
    {
      cwd: root,
    },
  );
  return { ...r, out };
}

function allFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

describe.each(["prod", "dev"])("npm run plan -- --stack %s", (stack) => {
  let result: ReturnType<typeof plan>;
  beforeAll(() => {
    result = plan(stack);
  }, 120_000);

  test("exits 0 with a short summary", () => {
    expect(result.stderr.replace(/npm warn.*\n/g, "")).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(`^backup321 offline plan for stack ${stack}: \\d+ resources`),
    );
    expect(result.stdout).toContain("Resources per type:");
    expect(result.stdout).toContain("Files pushed per host:");
    expect(result.stdout.length).toBeLessThan(8000);
  });

  test("writes RUNBOOK.md and COMPLIANCE.md for the stack", () => {
    expect(fs.readFileSync(path.join(result.out, "RUNBOOK.md"), "utf8")).toMatch(
      new RegExp(`^# .*: disaster recovery runbook \\(stack ${stack}\\)`),
    );
    const compliance = fs.readFileSync(path.join(result.out, "COMPLIANCE.md"), "utf8");
    expect(compliance).toMatch(new RegExp(`^# .*: backup compliance \\(stack ${stack}\\)`));
    expect(compliance).toContain("ISO/IEC 27001:2022, Annex A control 8.13");
    expect(compliance).toContain("GDPR, article 32(1)(b) to (d)");
  });

  test("warns when syslog is the only alert channel (dev), and only then", () => {
    const warning =
      "alerts go to syslog only (backup321:site.monitoring has no email and no webhookSecret)";
    if (stack === "dev") expect(result.stdout).toContain(`Warnings:\n  - ${warning}`);
    else expect(result.stdout).not.toContain(warning);
  });

  test("plan.json lists every resource with type, name, parent, options and inputs", () => {
    const planJson = JSON.parse(fs.readFileSync(path.join(result.out, "plan.json"), "utf8")) as {
      type: string;
      name: string;
      parent: string | null;
      inputs: Record<string, unknown>;
    }[];
    expect(planJson.length).toBeGreaterThan(5);
    for (const r of planJson)
      expect(Object.keys(r)).toEqual(["type", "name", "parent", "options", "inputs"]);
    const site = planJson.find((r) => r.type === "backup321:site:BackupSite");
    expect(site?.parent).toBeNull();
    const ready = planJson.filter((r) => r.name.endsWith("-ready"));
    expect(ready.length).toBe(
      (readStackFile(stack).config["backup321:site"] as { hosts: unknown[] }).hosts.length,
    );
    for (const r of ready) expect(r.inputs.connection).toBe("[secret]");
  });

  test("plan.json shows the options that decide replacements and deletes, only those set", () => {
    type Entry = { type: string; name: string; options: Record<string, unknown> };
    const planJson = JSON.parse(
      fs.readFileSync(path.join(result.out, "plan.json"), "utf8"),
    ) as Entry[];
    const byName = (n: string) => planJson.find((r) => r.name === n)!;
    const names = new Set(planJson.map((r) => r.name));
    for (const r of planJson) {
      for (const [k, v] of Object.entries(r.options)) {
        expect([r.name, k, v === false || (Array.isArray(v) && v.length === 0)]).toEqual([
          r.name,
          k,
          false,
        ]);
      }
      // dependsOn names resources of the plan, sorted
      const deps = (r.options.dependsOn ?? []) as string[];
      expect(deps).toEqual([...deps].sort((a, b) => a.localeCompare(b)));
      for (const d of deps) expect([r.name, names.has(d)]).toEqual([r.name, true]);
      // the SDK's own replaceOnChanges of a command shows
      if (r.type === "command:remote:Command")
        expect(r.options.replaceOnChanges).toEqual(["triggers[*]"]);
    }
    // a file on a host: replaced (old deleted first) only for a new path, after its host is ready
    const common = planJson.find(
      (r) => r.type === "command:remote:Command" && r.name.endsWith("-common-file"),
    )!;
    expect(common.options).toEqual({
      deleteBeforeReplace: true,
      replaceOnChanges: ["triggers[*]"],
      additionalSecretOutputs: ["connection"],
      dependsOn: [common.name.replace(/-common-file$/, "-ready")],
    });
    expect(byName("backup321-mariadb-key").options.protect).toBe(true);
    expect(byName("backup321-mariadb-key-file-file").options.protect).toBe(true);
    expect(byName("backup321").options).toEqual({});
    if (stack === "prod") expect(byName("backup321-offsite-bucket").options.protect).toBe(true);
  });

  test("every pushed file is written under hosts/<host>/<path>", () => {
    const files = allFiles(path.join(result.out, "hosts")).map((f) =>
      path.relative(path.join(result.out, "hosts"), f),
    );
    expect(files.length).toBeGreaterThan(0);
    const firstHost = files[0].split(path.sep)[0];
    expect(files).toContain(path.join(firstHost, "usr/local/lib/backup321/common.sh"));
    const common = fs.readFileSync(
      path.join(result.out, "hosts", firstHost, "usr/local/lib/backup321/common.sh"),
      "utf8",
    );
    expect(common).toBe(
      fs.readFileSync(path.join(root, "components/host/scripts/common.sh"), "utf8"),
    );
  });

  test("no secret value reaches out/", () => {
    for (const f of allFiles(result.out)) {
      const text = fs.readFileSync(f, "utf8");
      expect(text).not.toMatch(/plan-placeholder\(|mock-password-|mock-aws-secret-/);
    }
  });
});

test("a config with an unknown host in a role exits non-zero naming the key", () => {
  const doc = readStackFile("prod");
  const site = doc.config["backup321:site"] as { mariadb: { host: string } };
  site.mariadb.host = "db-srv-typo";
  const dir = fs.mkdtempSync(path.join(tmp, "cfg-"));
  fs.writeFileSync(
    path.join(dir, "Pulumi.broken.yaml"),
    stringify({ config: { "backup321:site": site } }),
  );
  const r = plan("broken", ["--config-dir", dir]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(
    'backup321:site.mariadb.host: unknown host "db-srv-typo" (one of: proxmox-srv, docker-srv, db-srv, db-replica, nas)',
  );
  expect(fs.existsSync(path.join(r.out, "plan.json"))).toBe(false);
}, 60_000);

test("an unknown stack and a bad argument exit 2 with usage", () => {
  const a = plan("nosuchstack");
  expect(a.code).toBe(2);
  expect(a.stderr).toContain("no Pulumi.nosuchstack.yaml (stacks here: dev, prod)");
  const b = run(path.join(root, "node_modules/.bin/tsx"), ["infra/plan.ts", "--stak", "prod"], {
    cwd: root,
  });
  expect(b.code).toBe(2);
  expect(b.stderr).toContain("usage: npm run plan -- --stack <name>");
}, 60_000);
