// The Proxmox component's host side, from a mock run over real SSH against a sandbox with
// recording qm/pct/pvesh shims: the snapshot job (exact commands, rotation that keeps N and never
// touches other snapshots, per-guest status, one failing guest fails the run after the others and
// alerts) and the checks that refuse vzdump jobs while a storage's encryption key is missing: at
// deploy, and at every run through the node-wide hook in vzdump.conf (backups to other storages
// pass).
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ownerStamps } from "../harness/program";
import { useRig } from "../harness/rig";
import { installProxmoxShims, type ProxmoxShims } from "../harness/proxmoxShims";

const FOREIGN = ["before-upgrade", "b321-manual", "b321-20200101-00000"];

let shims: ProxmoxShims;
let pveDir: string;
let vzdumpConf: string;

const rig = useRig({
  prefix: "b321-pve-",
  host: { hostName: "proxmox-srv" },
  prepare: ({ box }) => {
    shims = installProxmoxShims(box.at("pve-tools"));
    pveDir = box.at("etc/pve");
    vzdumpConf = box.at("etc/vzdump.conf");
    // what PVE installs: every option commented out
    fs.mkdirSync(path.dirname(vzdumpConf), { recursive: true });
    fs.writeFileSync(vzdumpConf, "# vzdump default settings\n\n#tmpdir: DIR\n#script: FILENAME\n");
    shims.addGuest("qemu", 100, ["before-upgrade"]);
    shims.addGuest("qemu", 101);
    shims.addGuest("lxc", 200, ["b321-manual", "b321-20200101-00000"]);
  },
  program: async (_rig, host) => {
    const { ProxmoxBackups } = await import("../../components/proxmox");
    new ProxmoxBackups("pve", {
      host,
      endpoint: "https://127.0.0.1:8006/",
      apiToken: pulumi.secret("backup321@pve!iac=00000000-0000-0000-0000-000000000000"),
      node: "pve1",
      pveDir,
      vzdumpConf,
      storages: [
        {
          datastore: "usb-ssd",
          server: "127.0.0.1",
          username: "backup321@pbs!pve-usb-ssd",
          password: pulumi.secret("token-secret"),
          fingerprint: "ab:cd",
        },
      ],
      jobs: [
        {
          id: "daily",
          schedule: "0 1 * * *",
          guests: "all",
          datastore: "usb-ssd",
          retention: { keepDaily: 5 },
        },
      ],
      snapshots: { schedule: "30 0 * * *", vms: [100, 101], containers: [200], keep: 3 },
    });
  },
});

beforeAll(() => {
  // On a PVE node qm, pct and pvesh are on root's PATH: here the shims are.
  rig.steps = rig.steps.map((s) => ({
    ...s,
    create: s.create && `export PATH='${shims.bin}':"$PATH"\n${s.create}`,
  }));
});

const keyFile = () => `${pveDir}/priv/storage/pbs-usb-ssd.enc`;
const keyCheck = () => rig.step("pve-usb-ssd-key-check");

test("the key check fails while PVE holds no encryption key for the storage", () => {
  const r = rig.sshd.exec(keyCheck().create ?? "");
  expect(r.code).toBe(1);
  expect(r.stderr).toBe(
    `backup321: ${keyFile()} is missing: storage pbs-usb-ssd would back up unencrypted (re-apply its encryption key)\n`,
  );
  fs.mkdirSync(`${pveDir}/priv/storage`, { recursive: true });
  fs.writeFileSync(keyFile(), '{"kdf":null}');
  expect(rig.sshd.exec(keyCheck().create ?? "").code).toBe(0);
});

const hook = () => `${rig.box.paths.lib}/vzdump-hook.sh`;
const MARKER = "# backup321: the key guard of its PBS storages (pulumi up manages the next line)";

test("the key guard is the node's vzdump hook (vzdump.conf), set once, since a job's script needs root@pam", () => {
  rig.applyCreates();
  rig.applyCreates();
  expect(fs.readFileSync(vzdumpConf, "utf8")).toBe(
    `# vzdump default settings\n\n#tmpdir: DIR\n#script: FILENAME\n${MARKER}\nscript: ${hook()}\n`,
  );
});

test("the vzdump hook refuses a run to a guarded storage whose key is missing, at job-start only; other storages pass", () => {
  const vzdump = (phase: string, store: string) =>
    rig.sshd.exec(`STOREID='${store}' B321_PVE_DIR='${pveDir}' '${hook()}' ${phase} snapshot 100`);
  expect(vzdump("job-start", "pbs-usb-ssd").code).toBe(0);
  fs.renameSync(keyFile(), `${keyFile()}.away`);
  const gone = vzdump("job-start", "pbs-usb-ssd");
  expect(gone.code).toBe(1);
  expect(gone.stderr).toBe(
    `backup321: ${keyFile()} is missing: refusing an unencrypted backup to pbs-usb-ssd (re-apply its encryption key with pulumi up)\n`,
  );
  expect(vzdump("job-init", "pbs-usb-ssd").code).toBe(1);
  expect(vzdump("backup-start", "pbs-usb-ssd").code).toBe(0);
  // the hook runs for every backup on the node: storages backup321 does not manage are not its business
  expect(vzdump("job-start", "pbs-other").code).toBe(0);
  expect(vzdump("job-start", "local").code).toBe(0);
  expect(rig.sshd.exec(`'${hook()}' job-start`).code).toBe(0);
  fs.renameSync(`${keyFile()}.away`, keyFile());
});

test("a vzdump.conf that already names another hook script is refused, and left as it was", () => {
  const conf = fs.readFileSync(vzdumpConf, "utf8");
  const step = rig.step("pve-vzdump-conf");
  fs.writeFileSync(vzdumpConf, "script: /root/my-hook.sh\n");
  const r = rig.sshd.exec(step.create ?? "");
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(
    `backup321: ${vzdumpConf} already sets script: /root/my-hook.sh; backup321's key guard needs its own hook there (call /root/my-hook.sh from ${hook()}, or remove that line) before pulumi up can continue\n`,
  );
  expect(fs.readFileSync(vzdumpConf, "utf8")).toBe("script: /root/my-hook.sh\n");
  fs.writeFileSync(vzdumpConf, conf);
});

test("the snapshot job installs and its cron line runs the entry point's script", () => {
  rig.applyCreates();
  rig.applyCreates();
  expect(fs.readFileSync(`${rig.box.paths.cron}/backup321-pve-snapshots`, "utf8")).toContain(
    `30 0 * * * root '${rig.box.paths.lib}/b321-cron.sh' 'pve-snapshots' '${rig.box.paths.lib}/pve-snapshots.sh' '${rig.box.paths.etc}/pve-snapshots.env'`,
  );
  expect(fs.readFileSync(`${rig.box.paths.etc}/pve-snapshots.env`, "utf8")).toContain(
    "SNAP_CONTAINERS='200'\nSNAP_KEEP='3'\nSNAP_NODE='pve1'\nSNAP_VMS='100 101'\n",
  );
});

const alerts = () => rig.box.at("alerts.log");
function snapshotRun(): { code: number; stderr: string } {
  const hook = rig.box.at("alert-hook.sh");
  fs.writeFileSync(hook, `#!/bin/bash\nprintf '%s|%s|%s\\n' "$1" "$2" "$3" >> '${alerts()}'\n`);
  fs.chmodSync(hook, 0o755);
  // Names carry the second: runs a second apart, as cron runs are days apart.
  const r = rig.sshd.exec(
    `sleep 1.1; PATH='${shims.bin}':"$PATH" B321_ALERT='${hook}' '${rig.box.paths.sbin}/b321-pve-snapshots'`,
  );
  return { code: r.code, stderr: r.stderr };
}
const status = () =>
  JSON.parse(fs.readFileSync(`${rig.box.paths.status}/pve-snapshots.json`, "utf8"));
const own = (names: string[]) => names.filter((n) => /^b321-\d{8}-\d{6}$/.test(n));

test("a run snapshots every guest with the documented commands", () => {
  shims.clearCalls();
  const r = snapshotRun();
  expect(r.code).toBe(0);
  const s = status();
  const name: string = s.snapshot;
  expect(name).toMatch(/^b321-\d{8}-\d{6}$/);
  const desc = ["--description", "backup321 scheduled snapshot"];
  expect(shims.calls()).toEqual([
    ["qm", "snapshot", "100", name, ...desc],
    ["pvesh", "get", "/nodes/pve1/qemu/100/snapshot", "--output-format", "json"],
    ["qm", "snapshot", "101", name, ...desc],
    ["pvesh", "get", "/nodes/pve1/qemu/101/snapshot", "--output-format", "json"],
    ["pct", "snapshot", "200", name, ...desc],
    ["pvesh", "get", "/nodes/pve1/lxc/200/snapshot", "--output-format", "json"],
  ]);
  expect(s).toMatchObject({
    result: "success",
    vm_100: "ok",
    vm_101: "ok",
    ct_200: "ok",
    vm_100_kept: 1,
    vm_100_deleted: 0,
    guests_ok: 3,
    guests_failed: 0,
  });
  expect(shims.snapshots("qemu", 100)).toEqual(["before-upgrade", name]);
});

test("rotation keeps the newest N of its own snapshots and never touches the others", () => {
  const made = [status().snapshot as string];
  for (let i = 0; i < 3; i++) {
    shims.clearCalls();
    expect(snapshotRun().code).toBe(0);
    made.push(status().snapshot);
  }
  expect(new Set(made).size).toBe(4);
  // the fourth run deleted exactly the oldest one of its own, on each guest
  expect(shims.calls().filter((c) => c[1] === "delsnapshot")).toEqual([
    ["qm", "delsnapshot", "100", made[0]],
    ["qm", "delsnapshot", "101", made[0]],
    ["pct", "delsnapshot", "200", made[0]],
  ]);
  expect(shims.snapshots("qemu", 100)).toEqual(["before-upgrade", ...made.slice(1)]);
  expect(shims.snapshots("qemu", 101)).toEqual(made.slice(1));
  expect(shims.snapshots("lxc", 200)).toEqual([...FOREIGN.slice(1), ...made.slice(1)]);
  expect(status()).toMatchObject({ vm_100_kept: 3, vm_100_deleted: 1, ct_200_kept: 3 });
  expect(fs.existsSync(alerts())).toBe(false);
});

test("snapshots dated in the future (a clock ahead) never make the rotation delete the one just taken", () => {
  // Three of its own snapshots taken while the clock was ten years ahead: names and times.
  const future = Math.floor(Date.now() / 1000) + 10 * 365 * 86400;
  const ahead = [0, 1, 2].map((i) => ({
    name: `b321-20361204-00000${i}`,
    description: "backup321 scheduled snapshot",
    snaptime: future + i,
  }));
  fs.writeFileSync(`${shims.root}/state/guests/qemu-101.json`, JSON.stringify(ahead));
  shims.clearCalls();
  expect(snapshotRun().code).toBe(0);
  const taken = status().snapshot as string;
  // Kept: the one just taken and the two newest by their own time; the oldest of those went.
  expect(shims.snapshots("qemu", 101)).toEqual([ahead[1].name, ahead[2].name, taken]);
  expect(shims.calls().filter((c) => c[1] === "delsnapshot" && c[2] === "101")).toEqual([
    ["qm", "delsnapshot", "101", ahead[0].name],
  ]);
  expect(status()).toMatchObject({
    result: "warning",
    error: expect.stringContaining(`vm 101: snapshot ${ahead[1].name} is dated in the future`),
  });
  expect(fs.readFileSync(alerts(), "utf8")).toMatch(/^pve-snapshots\|warning\|vm 101: snapshot/);
  fs.rmSync(alerts());
});

test("one failing guest fails the run after the others are done, and alerts", () => {
  // vzdump holds the guest's lock while it backs it up
  shims.lockGuest("qemu", 101, "backup");
  shims.clearCalls();
  const r = snapshotRun();
  expect(r.code).toBe(1);
  const s = status();
  const msg = "qm snapshot failed: VM is locked (backup)";
  expect(s).toMatchObject({
    result: "failed",
    exit_code: 1,
    vm_100: "ok",
    vm_101: `failed: ${msg}`,
    ct_200: "ok",
    guests_ok: 2,
    guests_failed: 1,
    error: `snapshot failed for 1 guest(s): vm 101 (${msg})`,
  });
  // the failed guest keeps what it had: nothing deleted there
  expect(
    shims
      .calls()
      .filter((c) => c[2] === "101")
      .map((c) => c[1]),
  ).toEqual(["snapshot"]);
  expect(own(shims.snapshots("qemu", 101))).toHaveLength(3);
  expect(own(shims.snapshots("qemu", 100))).toHaveLength(3);
  expect(own(shims.snapshots("qemu", 100))).toContain(s.snapshot);
  expect(fs.readFileSync(alerts(), "utf8")).toBe(
    `pve-snapshots|failed|snapshot failed for 1 guest(s): vm 101 (${msg})\n`,
  );
  shims.lockGuest("qemu", 101, undefined);
});

test("a failure while snapshotting the volumes is reported by its own message, not the cleanup warning", () => {
  shims.failSnapshot("qm", 101, "VM 101 qmp command 'savevm-start' failed - unable to save state");
  expect(snapshotRun().code).toBe(1);
  expect(status().vm_101).toBe(
    "failed: qm snapshot failed: VM 101 qmp command 'savevm-start' failed - unable to save state",
  );
  shims.failSnapshot("qm", 101, undefined);
});

test("a guest whose storage cannot snapshot fails the deploy by name, and each run with PVE's text", () => {
  const check = rig.step("pve-snapshot-check");
  expect(rig.sshd.exec(check.create ?? "").code).toBe(0);
  shims.snapshotFeature("qemu", 101, false);
  shims.snapshotFeature("lxc", 200, false);
  const r = rig.sshd.exec(check.create ?? "");
  expect(r.code).toBe(1);
  expect(r.stderr).toBe(
    "backup321: snapshots of vm 101 ct 200 would fail on every run: PVE says their storage cannot snapshot ('snapshot feature is not available'); move their disks to storage that can (ZFS, LVM-thin, Ceph RBD, qcow2 on a directory) or take them out of proxmox.snapshots\n",
  );
  expect(snapshotRun().code).toBe(1);
  expect(status().vm_101).toBe("failed: qm snapshot failed: snapshot feature is not available");
  shims.snapshotFeature("qemu", 101, true);
  shims.snapshotFeature("lxc", 200, true);
});

test("a guest that does not exist is reported by id", () => {
  fs.rmSync(`${shims.root}/state/guests/lxc-200.json`);
  const r = snapshotRun();
  expect(r.code).toBe(1);
  expect(status().ct_200).toBe(
    "failed: pct snapshot failed: Configuration file 'nodes/pve/lxc/200.conf' does not exist",
  );
  expect(status().vm_100).toBe("ok");
});

test("deletes remove the job and script, never a snapshot, and take the hook out of vzdump.conf first", () => {
  shims.addGuest("lxc", 200, FOREIGN);
  const before = shims.snapshots("qemu", 100);
  shims.clearCalls();
  rig.applyDeletes();
  expect(shims.calls()).toEqual([]);
  expect(shims.snapshots("qemu", 100)).toEqual(before);
  expect(fs.existsSync(`${rig.box.paths.cron}/backup321-pve-snapshots`)).toBe(false);
  expect(fs.existsSync(`${rig.box.paths.lib}/pve-snapshots.sh`)).toBe(false);
  expect(fs.existsSync(hook())).toBe(false);
  expect(fs.readFileSync(vzdumpConf, "utf8")).toBe(
    "# vzdump default settings\n\n#tmpdir: DIR\n#script: FILENAME\n",
  );
  expect(ownerStamps(`${rig.box.paths.owners}`)).toEqual([]);
});
