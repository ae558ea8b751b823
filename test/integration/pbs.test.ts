// The PBS component's remote commands, taken from a mock run and executed over real SSH against a
// sandbox whose proxmox-backup-manager is a recording shim reached through the command prefix (as
// "docker exec pbs" would be): exact command lines, no create on a second run, a datastore never
// set up on an unmounted disk, the guard taking it offline and alerting, and a destroy that keeps
// the chunk store.
import * as fs from "node:fs";
import { ownerStamps } from "../harness/program";
import { useRig } from "../harness/rig";
import { installProxmoxShims, type ProxmoxShims } from "../harness/proxmoxShims";
import { run, runOk } from "../harness/proc";

const UUID = "5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b";
const PBM = "proxmox-backup-manager";

let shims: ProxmoxShims;
let mnt: string;
/** Stands in for the USB SSD's file system: bind-mounted on mnt when "plugged in". */
let disk: string;
let mounted = false;

const step = (suffix: string) => rig.step(`pbs${suffix}`);
/** The backup right on the datastore, granted to (or, with --delete, taken from) an auth id. */
const aclUpdate = (authId: string, ...more: string[]) => [
  PBM,
  "acl",
  "update",
  "/datastore/usb-ssd",
  "DatastoreBackup",
  "--auth-id",
  authId,
  ...more,
];

function mount(): void {
  runOk("mount", ["--bind", disk, mnt]);
  mounted = true;
}

function umount(): void {
  runOk("umount", [mnt]);
  mounted = false;
}

/** Runs every create in order until one fails; returns the failing step's name and output. */
function createAll(): { failed?: string; stderr: string; outputs: Record<string, string> } {
  const outputs: Record<string, string> = {};
  for (const s of rig.steps) {
    if (!s.create) continue;
    const r = rig.sshd.exec(s.create, s.stdin);
    if (r.code !== 0) return { failed: s.name, stderr: r.stderr, outputs };
    outputs[s.name] = r.stdout;
  }
  return { stderr: "", outputs };
}

/** The calls that change PBS (anything but list/show/info). */
const writes = (calls: string[][]) =>
  calls.filter((c) => !["list", "list-tokens", "show", "info"].includes(c[2]));

const rig = useRig({
  prefix: "b321-pbs-",
  host: { hostName: "docker-srv" },
  prepare: ({ box }) => {
    shims = installProxmoxShims(box.at("pbs-container"));
    mnt = box.at("mnt/usb-ssd");
    disk = box.at("disk");
    fs.mkdirSync(mnt, { recursive: true });
    fs.mkdirSync(disk, { recursive: true });
  },
  program: async ({ box }, host) => {
    const { ProxmoxBackupServer } = await import("../../components/pbs");
    new ProxmoxBackupServer("pbs", {
      host,
      // What "docker exec pbs" is in production: the way into PBS's own PATH.
      commandPrefix: `env PATH=${shims.bin}:/usr/bin:/bin`,
      fstab: box.at("etc/fstab"),
      datastores: [
        {
          name: "usb-ssd",
          path: `${mnt}/pbs`,
          disk: { uuid: UUID, mountpoint: mnt },
          retention: { keepDaily: 5 },
          reverifyAfterDays: 30,
        },
      ],
    });
  },
  cleanup: () => {
    if (mounted) umount();
  },
});

test("with the disk missing, setup fails before touching PBS and nothing lands on the root fs", () => {
  const r = createAll();
  expect(r.failed).toBe("pbs-usb-ssd-setup");
  expect(r.stderr).toContain(`${mnt} is not mounted (plug in the disk UUID=${UUID})`);
  // only the read-only certificate query (it needs no disk) reached PBS
  expect(shims.calls()).toEqual([[PBM, "cert", "info"]]);
  expect(fs.existsSync(`${mnt}/pbs`)).toBe(false);
  expect(fs.readFileSync(rig.box.at("etc/fstab"), "utf8")).toBe(
    `# backup321: USB disk ${UUID} (pulumi up manages the next line)\n` +
      `UUID=${UUID} ${mnt} ext4 defaults,nofail,x-systemd.device-timeout=10s 0 2\n`,
  );
});

test("with the disk mounted, setup issues exactly the documented commands", () => {
  mount();
  const r = createAll();
  expect(r.failed).toBeUndefined();
  expect(writes(shims.calls())).toEqual([
    [PBM, "datastore", "create", "usb-ssd", `${mnt}/pbs`, "--gc-schedule", "daily"],
    [
      PBM,
      "prune-job",
      "create",
      "b321-usb-ssd",
      "--store",
      "usb-ssd",
      "--schedule",
      "daily",
      "--keep-daily",
      "5",
    ],
    [
      PBM,
      "verify-job",
      "create",
      "b321-usb-ssd",
      "--store",
      "usb-ssd",
      "--schedule",
      "weekly",
      "--ignore-verified",
      "true",
      "--outdated-after",
      "30",
    ],
    [PBM, "user", "create", "backup321@pbs", "--comment", "backup321: Proxmox VE backups"],
    [PBM, "user", "generate-token", "backup321@pbs", "pve-usb-ssd"],
    aclUpdate("backup321@pbs"),
    aclUpdate("backup321@pbs!pve-usb-ssd"),
  ]);
  // The token secret PBS printed once is in a 0600 file, and only the token command prints it.
  const tokenFile = `${rig.box.paths.secrets}/pbs-token-usb-ssd`;
  const secret = fs.readFileSync(tokenFile, "utf8");
  expect(secret).toMatch(/^[0-9a-f-]{36}$/);
  expect((fs.statSync(tokenFile).mode & 0o777).toString(8)).toBe("600");
  expect(r.outputs["pbs-usb-ssd-token"]).toBe(secret);
  for (const [name, out] of Object.entries(r.outputs)) {
    if (name !== "pbs-usb-ssd-token") expect(out).not.toContain(secret);
  }
  expect(r.outputs["pbs-fingerprint"]).toBe(
    "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89\n",
  );
  expect(fs.existsSync(`${disk}/pbs/.chunks`)).toBe(true);
  expect(shims.pbsState()["acl"]).toHaveLength(2);
  // The datastore's configuration is owned by its setup (its delete removes it).
  expect(ownerStamps(`${rig.box.paths.owners}`)).toContain(
    "pbs-usb-ssd-setup pbs-datastore:usb-ssd",
  );
});

test("a second run reads PBS's configuration and issues no create or update", () => {
  shims.clearCalls();
  const r = createAll();
  expect(r.failed).toBeUndefined();
  expect(writes(shims.calls())).toEqual([]);
  expect(shims.calls().map((c) => c.slice(1, 3).join(" "))).toEqual([
    "cert info",
    "datastore list",
    "prune-job list",
    "verify-job list",
    "user list",
    "user list-tokens",
    "acl list",
  ]);
});

test("drift is corrected with updates, and a lost token secret is renewed", () => {
  runOk("bash", [
    "-c",
    `${shims.bin}/${PBM} prune-job update b321-usb-ssd --keep-daily 2 --keep-weekly 9 --schedule hourly`,
  ]);
  fs.rmSync(`${rig.box.paths.secrets}/pbs-token-usb-ssd`);
  shims.clearCalls();
  const r = rig.sshd.exec(step("-usb-ssd-setup").create ?? "");
  expect(r.code).toBe(0);
  expect(writes(shims.calls())).toEqual([
    [
      PBM,
      "prune-job",
      "update",
      "b321-usb-ssd",
      "--keep-daily",
      "5",
      "--schedule",
      "daily",
      "--delete",
      "keep-weekly",
    ],
    [PBM, "user", "delete-token", "backup321@pbs", "pve-usb-ssd"],
    [PBM, "user", "generate-token", "backup321@pbs", "pve-usb-ssd"],
  ]);
  expect(shims.pbsState()["prune-jobs"]).toEqual([
    { id: "b321-usb-ssd", store: "usb-ssd", schedule: "daily", "keep-daily": 5 },
  ]);
  expect(fs.readFileSync(`${rig.box.paths.secrets}/pbs-token-usb-ssd`, "utf8")).toMatch(
    /^[0-9a-f-]{36}$/,
  );
});

describe("the disk guard", () => {
  const alertLog = () => rig.box.at("alerts.log");
  const guard = () => {
    const hook = rig.box.at("alert-hook.sh");
    fs.writeFileSync(hook, `#!/bin/bash\nprintf '%s|%s|%s\\n' "$1" "$2" "$3" >> '${alertLog()}'\n`);
    fs.chmodSync(hook, 0o755);
    return rig.sshd.exec(`B321_ALERT='${hook}' '${rig.box.paths.sbin}/b321-pbs-guard-usb-ssd'`);
  };
  const status = () =>
    JSON.parse(fs.readFileSync(`${rig.box.paths.status}/pbs-guard-usb-ssd.json`, "utf8"));
  const maintenance = () =>
    (shims.pbsState()["datastores"] as Record<string, unknown>[])[0]["maintenance-mode"];

  test("passes while the disk is mounted", () => {
    shims.clearCalls();
    const r = guard();
    expect(r.code).toBe(0);
    expect(status()).toMatchObject({ job: "pbs-guard-usb-ssd", result: "success", mounted: 1 });
    expect(writes(shims.calls())).toEqual([]);
    expect(fs.existsSync(alertLog())).toBe(false);
  });

  test("takes the datastore offline, fails and alerts when the disk is gone", () => {
    umount();
    shims.clearCalls();
    const r = guard();
    expect(r.code).toBe(1);
    expect(writes(shims.calls())).toEqual([
      [PBM, "datastore", "update", "usb-ssd", "--maintenance-mode", "offline"],
    ]);
    expect(maintenance()).toBe("type=offline");
    const msg = `${mnt} is not mounted: datastore usb-ssd is offline until the USB SSD is back (UUID ${UUID})`;
    expect(status()).toMatchObject({ result: "failed", exit_code: 1, mounted: 0, error: msg });
    expect(fs.readFileSync(alertLog(), "utf8")).toBe(`pbs-guard-usb-ssd|failed|${msg}\n`);
    // Still gone: fails and alerts again, without a second update.
    shims.clearCalls();
    expect(guard().code).toBe(1);
    expect(writes(shims.calls())).toEqual([]);
    expect(fs.readFileSync(alertLog(), "utf8").split("\n")).toHaveLength(3);
    expect(fs.existsSync(`${mnt}/pbs`)).toBe(false);
  });

  test("lifts the maintenance mode it set once the disk is back", () => {
    mount();
    shims.clearCalls();
    expect(guard().code).toBe(0);
    expect(writes(shims.calls())).toEqual([
      [PBM, "datastore", "update", "usb-ssd", "--delete", "maintenance-mode"],
    ]);
    expect(maintenance()).toBeUndefined();
    expect(status()).toMatchObject({ result: "success", mounted: 1, recovered: 1 });
    shims.clearCalls();
    expect(guard().code).toBe(0);
    expect(writes(shims.calls())).toEqual([]);
  });

  test("never lifts a maintenance mode someone else set", () => {
    runOk("bash", [
      "-c",
      `${shims.bin}/${PBM} datastore update usb-ssd --maintenance-mode read-only`,
    ]);
    shims.clearCalls();
    expect(guard().code).toBe(0);
    expect(writes(shims.calls())).toEqual([]);
    expect(maintenance()).toBe("type=read-only");
    runOk("bash", ["-c", `${shims.bin}/${PBM} datastore update usb-ssd --delete maintenance-mode`]);
  });

  test("warns and alerts when the disk is nearly full", () => {
    const env = `${rig.box.paths.etc}/pbs-guard-usb-ssd.env`;
    const full = rig.box.at("guard-full.env");
    fs.writeFileSync(full, fs.readFileSync(env, "utf8") + "PBS_MIN_FREE_PERCENT='100'\n");
    fs.rmSync(alertLog(), { force: true });
    const r = rig.sshd.exec(
      `B321_ALERT='${rig.box.at("alert-hook.sh")}' '${rig.box.paths.lib}/pbs-guard.sh' '${full}'`,
    );
    expect(r.code).toBe(0);
    const s = status();
    expect(s.result).toBe("warning");
    expect(s.free_percent).toBeLessThan(100);
    expect(s.error).toBe(
      `datastore usb-ssd has only ${s.free_percent}% free (below 100%): prune, GC or a bigger disk`,
    );
    expect(fs.readFileSync(alertLog(), "utf8")).toBe(`pbs-guard-usb-ssd|warning|${s.error}\n`);
    expect(fs.readFileSync(env, "utf8")).toContain("PBS_MIN_FREE_PERCENT='10'\n");
  });
});

test("destroy removes the configuration, keeps the chunk store, and can run twice", () => {
  shims.clearCalls();
  rig.applyDeletes();
  expect(writes(shims.calls())).toEqual([
    [PBM, "prune-job", "remove", "b321-usb-ssd"],
    [PBM, "verify-job", "remove", "b321-usb-ssd"],
    aclUpdate("backup321@pbs!pve-usb-ssd", "--delete", "true"),
    aclUpdate("backup321@pbs", "--delete", "true"),
    [PBM, "user", "delete-token", "backup321@pbs", "pve-usb-ssd"],
    [PBM, "user", "remove", "backup321@pbs"],
    [PBM, "datastore", "remove", "usb-ssd"],
  ]);
  expect(shims.pbsState()).toEqual({
    datastores: [],
    "prune-jobs": [],
    "verify-jobs": [],
    users: [],
    tokens: [],
    acl: [],
  });
  expect(fs.existsSync(`${disk}/pbs/.chunks`)).toBe(true);
  expect(fs.existsSync(`${rig.box.paths.secrets}/pbs-token-usb-ssd`)).toBe(false);
  expect(fs.existsSync(`${rig.box.paths.cron}/backup321-pbs-guard-usb-ssd`)).toBe(false);
  // Every delete forgot its owner stamp (the datastore's configuration included).
  expect(ownerStamps(`${rig.box.paths.owners}`)).toEqual([]);
  // the fstab entry stays: the disk still holds the chunk store
  expect(fs.readFileSync(rig.box.at("etc/fstab"), "utf8")).toContain(`UUID=${UUID} `);
  shims.clearCalls();
  rig.applyDeletes();
  expect(writes(shims.calls())).toEqual([]);
  expect(run("find", [rig.box.root, "-name", "*.b321.*"]).stdout).toBe("");
});

// The shim must refuse what PBS refuses, or the tests above would pass on command lines PBS rejects.
test("the shim refuses what proxmox-backup-manager refuses", () => {
  const pbm = (args: string) => run("bash", ["-c", `${shims.bin}/${PBM} ${args}`]);
  const token = pbm("user generate-token backup321@pbs x --output-format json");
  expect(token.code).toBe(255);
  expect(token.stderr).toBe(
    "Error: parameter verification errors\n\nparameter 'output-format': schema does not allow additional properties\n",
  );
  const role = pbm("acl update /datastore/usb-ssd DatastoreWriter --auth-id backup321@pbs");
  expect(role.code).toBe(255);
  expect(role.stderr).toBe(
    "Error: parameter verification errors\n\nparameter 'role': value 'DatastoreWriter' is not defined in the enumeration.\n",
  );
  // the certificate's alt names come before the fingerprint line the setup reads
  expect(pbm("cert info").stdout).toContain("\n    DNS:localhost\n");
});
