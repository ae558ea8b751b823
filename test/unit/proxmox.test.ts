// The prod program under mocks: exact inputs of every Proxmox VE provider resource, retention mapped
// to prune-backups, PBS outputs wired into the PVE storage, secrets secret, child names pinned.
import { placeholder } from "../../infra/stackFile";
import {
  isSecretValue,
  reveal,
  runStack,
  containsSecret,
  type Registration,
} from "../harness/program";
import { claimCommand, ownerStampFile, releaseCommand, sha256 } from "../../components/host/render";

let recorded: Registration[];

const one = (type: string, name: string): Registration => {
  const r = recorded.filter((x) => x.type === type && x.name === name);
  if (r.length !== 1) throw new Error(`${r.length} × ${type} ${name}`);
  return r[0];
};

beforeAll(async () => {
  recorded = await runStack("prod");
}, 120_000);

const SECRET_TYPES = ["proxmoxve:storage/pbs:Pbs", "pulumi:providers:proxmoxve"];

test("the provider is built from the site model, with the API token secret", () => {
  const p = one("pulumi:providers:proxmoxve", "backup321-proxmox-provider");
  expect(reveal(p.inputs)).toEqual({
    apiToken: placeholder("backup321:proxmoxApiToken"),
    endpoint: "https://192.168.10.10:8006/",
    insecure: "true",
  });
  expect(isSecretValue(p.inputs.apiToken)).toBe(true);
});

test("the PBS storage gets PBS's token and fingerprint and a generated key file, secrets secret", () => {
  const s = one("proxmoxve:storage/pbs:Pbs", "backup321-proxmox-usb-ssd-storage");
  const key = reveal(s.inputs.encryptionKey) as string;
  expect(reveal(s.inputs)).toEqual({
    resourceId: "pbs-usb-ssd",
    server: "192.168.10.20",
    datastore: "usb-ssd",
    username: "backup321@pbs!pve-usb-ssd",
    // the token secret read back from PBS (the command's stdout under mocks)
    password: "mock-stdout-backup321-pbs-usb-ssd-token",
    fingerprint: "mock-stdout-backup321-pbs-fingerprint",
    encryptionKey: key,
    contents: ["backup"],
    nodes: ["proxmox-srv"],
  });
  expect(isSecretValue(s.inputs.password)).toBe(true);
  expect(isSecretValue(s.inputs.encryptionKey)).toBe(true);
  expect(isSecretValue(s.inputs.fingerprint)).toBe(false);
  const file = JSON.parse(key);
  expect(Object.keys(file)).toEqual(["kdf", "created", "modified", "data"]);
  expect(file.kdf).toBeNull();
  expect(Buffer.from(file.data, "base64")).toHaveLength(32);
  const bytes = one("random:index/randomBytes:RandomBytes", "backup321-proxmox-usb-ssd-key");
  expect(bytes.inputs).toEqual({ length: 32 });
});

test("the daily vzdump job: snapshot mode, no pruning (PBS prunes), mail on failure to mailto, no script", () => {
  const j = one("proxmoxve:backup/job:Job", "backup321-proxmox-daily-pbs");
  expect(j.inputs).toEqual({
    resourceId: "b321-daily-pbs",
    schedule: "01:00",
    storage: "pbs-usb-ssd",
    node: "proxmox-srv",
    all: true,
    mode: "snapshot",
    remove: false,
    mailtos: ["admin@atlastech.ma"],
    mailnotification: "failure",
    repeatMissed: true,
    enabled: true,
  });
  // it waits for the key check and the node-wide key guard (and its storage, an input)
  expect(j.options.dependsOn).toEqual([
    one("command:remote:Command", "backup321-proxmox-usb-ssd-key-check").urn,
    one("command:remote:Command", "backup321-proxmox-vzdump-conf").urn,
    one("proxmoxve:storage/pbs:Pbs", "backup321-proxmox-usb-ssd-storage").urn,
  ]);
});

test("nothing secret reaches a command line, and the token is read without logging", () => {
  const commands = recorded.filter((r) => r.type === "command:remote:Command");
  for (const c of commands) {
    const create = String(reveal(c.inputs.create));
    expect(create).not.toContain("plan-placeholder");
    expect(create).not.toContain("mock-stdout-backup321-pbs-usb-ssd-token");
  }
  const token = one("command:remote:Command", "backup321-pbs-usb-ssd-token");
  const tokenLines = String(reveal(token.inputs.create)).split("\n");
  expect(tokenLines[0]).toBe("# backup321 host generation 1");
  expect(tokenLines[1]).toMatch(/^# backup321 inputs /);
  expect(tokenLines.at(-1)).toBe("cat -- '/etc/backup321/secrets/pbs-token-usb-ssd'");
  expect(token.inputs.logging).toBe("none");
  expect(token.options.additionalSecretOutputs).toEqual(
    expect.arrayContaining(["stdin", "stdout", "stderr"]),
  );
  expect(token.inputs.triggers).toBeUndefined();
  expect(token.options.dependsOn).toContain(
    one("command:remote:Command", "backup321-pbs-usb-ssd-setup").urn,
  );
  const check = one("command:remote:Command", "backup321-proxmox-usb-ssd-key-check");
  const checkLines = String(reveal(check.inputs.create)).split("\n");
  expect(checkLines[0]).toBe("# backup321 host generation 1");
  // runs again (an update) when the storage or its key changes: the hashes of the storage's id (the
  // mock's) and of the key file's SHA-256 (the provider's key fingerprint never changes)
  const storage = one("proxmoxve:storage/pbs:Pbs", "backup321-proxmox-usb-ssd-storage");
  const keyFile = String(reveal(storage.inputs.encryptionKey));
  expect(checkLines[1]).toBe(
    `# backup321 inputs ${[`mocked::${storage.type}::${storage.name}`, sha256(keyFile)].map(sha256).join(" ")}`,
  );
  expect(checkLines.slice(2).join("\n")).toBe(
    "test -s '/etc/pve/priv/storage/pbs-usb-ssd.enc' || { echo 'backup321: /etc/pve/priv/storage/pbs-usb-ssd.enc is missing: storage pbs-usb-ssd would back up unencrypted (re-apply its encryption key)' >&2; exit 1; }",
  );
  expect(check.inputs.triggers).toBeUndefined();
  expect(check.inputs.delete).toBeUndefined();
  for (const r of recorded.filter((x) => !SECRET_TYPES.includes(x.type))) {
    if (r.type === "command:remote:Command") continue;
    expect([r.name, containsSecret(r.inputs)]).toEqual([r.name, false]);
  }
});

/** The stdin of the command that installs this file on docker-srv. */
const pushed = (path: string): string => {
  const found = recorded.filter((r) =>
    String(reveal(r.inputs.create)).startsWith(`# backup321: install ${path} on docker-srv\n`),
  );
  expect(found).toHaveLength(1);
  return String(found[0].inputs.stdin);
};

test("the datastore setup runs again (an update) when its env file or a PBS script changes; its remove only while it owns the datastore", () => {
  const setup = one("command:remote:Command", "backup321-pbs-usb-ssd-setup");
  // runAgainOn gets each file's content hash, which the inputs line hashes again
  const hashes = [
    "/etc/backup321/pbs-usb-ssd.env",
    "/usr/local/lib/backup321/pbs-lib.sh",
    "/usr/local/lib/backup321/pbs-setup.sh",
    "/usr/local/lib/backup321/pbs-guard.sh",
  ].map((p) => sha256(sha256(pushed(p))));
  const stampFile = ownerStampFile("/var/lib/backup321/owners", "pbs-datastore:usb-ssd");
  const stamp = "backup321-pbs-usb-ssd-setup pbs-datastore:usb-ssd";
  expect(reveal(setup.inputs.create)).toBe(
    [
      "# backup321 host generation 1",
      claimCommand(
        [
          `# backup321 inputs ${hashes.join(" ")}`,
          "'/usr/local/lib/backup321/pbs-setup.sh' 'apply' '/etc/backup321/pbs-usb-ssd.env'",
        ].join("\n"),
        stampFile,
        stamp,
      ),
    ].join("\n"),
  );
  expect(setup.inputs.update).toBe(setup.inputs.create);
  // Its only trigger is the datastore it owns: another datastore removes the old one's
  // configuration first; a new env file or script is an update.
  expect(setup.inputs.triggers).toEqual(["pbs-datastore:usb-ssd"]);
  expect(setup.options.deleteBeforeReplace).toBe(true);
  expect(reveal(setup.inputs.delete)).toBe(
    releaseCommand(
      "[ ! -e '/etc/backup321/pbs-usb-ssd.env' ] || '/usr/local/lib/backup321/pbs-setup.sh' 'remove' '/etc/backup321/pbs-usb-ssd.env'",
      stampFile,
      stamp,
    ),
  );
});

// runAgainOn gets the setup's whole (multi-line) create text: the inputs line holds its hash, so
// none of the setup (the datastore apply, its owner stamp) runs again inside the token read.
test("the token read is its inputs line (the hash of the setup's create) and the cat, nothing else", () => {
  const token = one("command:remote:Command", "backup321-pbs-usb-ssd-token");
  const setup = one("command:remote:Command", "backup321-pbs-usb-ssd-setup");
  const setupCreate = String(reveal(setup.inputs.create));
  expect(setupCreate).toContain("\n");
  expect(reveal(token.inputs.create)).toBe(
    [
      "# backup321 host generation 1",
      `# backup321 inputs ${sha256(setupCreate)}`,
      "cat -- '/etc/backup321/secrets/pbs-token-usb-ssd'",
    ].join("\n"),
  );
});

test("the datastore env file maps the tier to the PBS prune options", () => {
  const env = recorded.find(
    (r) =>
      r.type === "command:remote:Command" &&
      String(reveal(r.inputs.create)).startsWith(
        "# backup321: install /etc/backup321/pbs-usb-ssd.env on docker-srv",
      ),
  );
  expect(env?.inputs.stdin).toBe(
    [
      "# backup321 PBS datastore usb-ssd",
      "# Managed by backup321 (pulumi up): local edits are overwritten.",
      "PBS_DATASTORE='usb-ssd'",
      "PBS_FSTAB='/etc/fstab'",
      "PBS_FSTYPE='ext4'",
      "PBS_GC_SCHEDULE='daily'",
      "PBS_KEEP='keep-daily=5'",
      "PBS_MOUNT='/mnt/usb-ssd'",
      "PBS_PATH='/mnt/usb-ssd/pbs'",
      "PBS_PREFIX='docker exec pbs'",
      "PBS_PRUNE_SCHEDULE='daily'",
      "PBS_REVERIFY_DAYS='30'",
      "PBS_TOKEN='pve-usb-ssd'",
      "PBS_TOKEN_FILE='/etc/backup321/secrets/pbs-token-usb-ssd'",
      "PBS_USER='backup321@pbs'",
      "PBS_UUID='5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b'",
      "PBS_VERIFY_SCHEDULE='weekly'",
      "",
    ].join("\n"),
  );
});

const children = (type: string, name: string): string[] => {
  const parent = one(type, name);
  return recorded
    .filter((r) => r.parent === parent.urn)
    .map((r) => `${r.type} ${r.name}`)
    .sort();
};

test("child names are pinned (a rename would replace the storage or the key)", () => {
  expect(children("backup321:proxmox:ProxmoxBackups", "backup321-proxmox")).toEqual([
    "backup321:host:RemoteFile backup321-proxmox-snapshot-script",
    "backup321:host:RemoteFile backup321-proxmox-vzdump-hook",
    "backup321:host:ScheduledJob backup321-proxmox-snapshots",
    "command:remote:Command backup321-proxmox-snapshot-check",
    "command:remote:Command backup321-proxmox-usb-ssd-key-check",
    "command:remote:Command backup321-proxmox-vzdump-conf",
    "proxmoxve:backup/job:Job backup321-proxmox-daily-pbs",
    "proxmoxve:storage/pbs:Pbs backup321-proxmox-usb-ssd-storage",
    "pulumi:providers:proxmoxve backup321-proxmox-provider",
    "random:index/randomBytes:RandomBytes backup321-proxmox-usb-ssd-key",
  ]);
  expect(children("backup321:pbs:ProxmoxBackupServer", "backup321-pbs")).toEqual([
    "backup321:host:RemoteFile backup321-pbs-env",
    "backup321:host:RemoteFile backup321-pbs-guard-script",
    "backup321:host:RemoteFile backup321-pbs-lib",
    "backup321:host:RemoteFile backup321-pbs-setup-script",
    "backup321:host:RemoteFile backup321-pbs-usb-ssd-env",
    "backup321:host:ScheduledJob backup321-pbs-usb-ssd-guard",
    "command:remote:Command backup321-pbs-fingerprint",
    "command:remote:Command backup321-pbs-usb-ssd-setup",
    "command:remote:Command backup321-pbs-usb-ssd-token",
  ]);
  const site = one("backup321:site:BackupSite", "backup321");
  expect(one("backup321:pbs:ProxmoxBackupServer", "backup321-pbs").parent).toBe(site.urn);
  expect(one("backup321:proxmox:ProxmoxBackups", "backup321-proxmox").parent).toBe(site.urn);
});

test("the snapshot job runs on proxmox-srv with the model's guests and keep", () => {
  const env = recorded.find(
    (r) =>
      r.type === "command:remote:Command" &&
      String(reveal(r.inputs.create)).startsWith(
        "# backup321: install /etc/backup321/pve-snapshots.env on proxmox-srv",
      ),
  );
  expect(String(env?.inputs.stdin)).toContain(
    "SNAP_CONTAINERS='200'\nSNAP_KEEP='3'\nSNAP_NODE='proxmox-srv'\nSNAP_VMS='100 101'\n",
  );
});
