// RUNBOOK.md's Proxmox scenarios pasted as printed, against the recording stand-ins of qm, pct,
// pvesm and qmrestore (no Proxmox VE here): a guest rolled back to a snapshot and started, and a
// lost guest restored from its newest PBS backup, or from the one the operator names.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { installProxmoxShims, type ProxmoxShims } from "../harness/proxmoxShims";
import { readStackFile } from "../../infra/stackFile";
import { scenarios } from "../../components/site/runbook/scenarios";
import type { Step } from "../../components/site/runbook/steps";
import { pasteStep } from "../harness/runbook";
import { pbsStorageId } from "../../components/proxmox/render";
import { parseSite } from "../../stacks/load";
import type { SiteInput } from "../../stacks/schema";

const prod = parseSite(
  structuredClone(readStackFile("prod").config["backup321:site"]) as SiteInput,
);
const steps = (title: string) =>
  scenarios(prod, "prod").find((s) => s.title.startsWith(title))!.steps;
const storage = pbsStorageId(prod.proxmox!.jobs[0].datastore);

let dir: string;
let shims: ProxmoxShims;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-runbook-pve-"));
  shims = installProxmoxShims(dir);
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function paste(step: Step, values: Record<string, string> = {}) {
  expect(step.on).toBe(prod.proxmox!.host);
  return pasteStep(step, values, {
    env: { ...process.env, PATH: `${shims.bin}:${process.env.PATH ?? ""}` },
  });
}

test("a configuration mistake: the guest is rolled back to the named snapshot and started again", () => {
  const [list, rollback] = steps("a configuration mistake");
  shims.addGuest("qemu", 100, ["auto-20261201", "auto-20261202"]);
  shims.addGuest("qemu", 101);
  shims.addGuest("lxc", 200, ["auto-20261202"]);
  shims.setRunning("lxc", 200, true);
  const listed = paste(list);
  expect(listed.code).toBe(0);
  expect(listed.stdout).toContain("`-> auto-20261202");
  const r = paste(rollback, { GUEST: "200", SNAPSHOT: "auto-20261202" });
  expect(r.stderr).toBe("");
  expect(shims.rolledBackTo("lxc", 200)).toBe("auto-20261202");
  expect(shims.isRunning("lxc", 200)).toBe(true);
  // qm does not know 200, so pct rolls it back, finds it stopped and starts it
  const calls = shims.calls().map((c) => c.slice(0, 3).join(" "));
  expect(calls.slice(calls.indexOf("qm status 200"))).toEqual([
    "qm status 200",
    "pct rollback 200",
    "pct status 200",
    "pct start 200",
  ]);
  // a snapshot that is not there: the block stops with Proxmox's error, the guest untouched
  const wrong = paste(rollback, { GUEST: "100", SNAPSHOT: "auto-20260101" });
  expect(wrong.code).not.toBe(0);
  expect(wrong.stderr).toContain("snapshot 'auto-20260101' does not exist");
  expect(shims.rolledBackTo("qemu", 100)).toBeUndefined();
});

test("a lost guest comes back from its newest PBS backup unless one is named, stopped first", () => {
  const restore = steps("a VM or container is lost").find((s) =>
    s.inputs?.some((i) => i.name === "BACKUP"),
  )!;
  const older = `${storage}:backup/vm/101/2026-12-02T01:00:00Z`;
  const newest = `${storage}:backup/vm/101/2026-12-03T01:00:00Z`;
  shims.addBackup(newest, 101);
  shims.addBackup(older, 101);
  shims.addBackup(`${storage}:backup/ct/200/2026-12-03T01:00:00Z`, 200);
  shims.addGuest("qemu", 101, ["auto-20261203"]);
  shims.setRunning("qemu", 101, true);
  expect(paste(restore, { GUEST: "101" }).stderr).toBe("");
  expect(shims.restoredFrom("qemu", 101)).toBe(newest);
  expect(shims.isRunning("qemu", 101)).toBe(true);
  // the operator names an older one; a container comes back with pct
  expect(paste(restore, { GUEST: "101", BACKUP: older }).stderr).toBe("");
  expect(shims.restoredFrom("qemu", 101)).toBe(older);
  expect(paste(restore, { GUEST: "200" }).stderr).toBe("");
  expect(shims.restoredFrom("lxc", 200)).toBe(`${storage}:backup/ct/200/2026-12-03T01:00:00Z`);
  // no backup of that guest: a clear stop, nothing restored
  const none = paste(restore, { GUEST: "999" });
  expect(none.code).not.toBe(0);
  expect(none.stderr).toContain("no backup of 999 in the storage");
});
