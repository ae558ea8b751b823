// The offline plan of the prod stack shows the Proxmox VE and PBS side: the PBS storage, the daily
// job with keep-daily=5, the datastore setup on docker-srv and the snapshot cron on proxmox-srv.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runOk } from "../harness/proc";
import { claimCommand, ownerStampFile, sha256 } from "../../components/host/render";

let out: string;
let plan: {
  type: string;
  name: string;
  options: Record<string, unknown>;
  inputs: Record<string, unknown>;
}[];

beforeAll(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), "b321-plan-"));
  runOk("npx", ["tsx", "infra/plan.ts", "--stack", "prod", "--out", out], {
    cwd: path.join(__dirname, "../.."),
  });
  plan = JSON.parse(fs.readFileSync(path.join(out, "plan.json"), "utf8"));
}, 120_000);

afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

const host = (h: string, p: string) => fs.readFileSync(path.join(out, "hosts", h, p), "utf8");

test("the PBS storage and the daily job, which prunes nothing, secrets redacted", () => {
  const storage = plan.find((r) => r.type === "proxmoxve:storage/pbs:Pbs");
  expect(storage?.inputs).toMatchObject({
    resourceId: "pbs-usb-ssd",
    datastore: "usb-ssd",
    server: "192.168.10.20",
    password: "[secret]",
    encryptionKey: "[secret]",
  });
  const job = plan.find((r) => r.type === "proxmoxve:backup/job:Job");
  expect(job?.inputs).toMatchObject({
    schedule: "01:00",
    storage: "pbs-usb-ssd",
    remove: false,
  });
  expect(job?.inputs).not.toHaveProperty("pruneBackups");
});

test("the datastore setup on docker-srv and the snapshot cron on proxmox-srv", () => {
  expect(host("docker-srv", "etc/backup321/pbs-usb-ssd.env")).toContain("PBS_KEEP='keep-daily=5'");
  expect(host("docker-srv", "usr/local/lib/backup321/pbs-setup.sh")).toBe(
    fs.readFileSync(path.join(__dirname, "../../components/pbs/scripts/pbs-setup.sh"), "utf8"),
  );
  expect(host("docker-srv", "etc/cron.d/backup321-pbs-guard-usb-ssd")).toContain(
    "*/5 * * * * root '/usr/local/lib/backup321/b321-cron.sh' 'pbs-guard-usb-ssd'",
  );
  expect(host("proxmox-srv", "etc/cron.d/backup321-pve-snapshots")).toContain(
    "30 0 * * * root '/usr/local/lib/backup321/b321-cron.sh' 'pve-snapshots' '/usr/local/lib/backup321/pve-snapshots.sh' '/etc/backup321/pve-snapshots.env'",
  );
});

test("the datastore setup runs again when the env file or a script shown under hosts/ changes", () => {
  const setup = plan.find((r) => r.name === "backup321-pbs-usb-ssd-setup");
  // runAgainOn gets each file's content hash, which the inputs line hashes again
  const hashes = [
    "etc/backup321/pbs-usb-ssd.env",
    "usr/local/lib/backup321/pbs-lib.sh",
    "usr/local/lib/backup321/pbs-setup.sh",
    "usr/local/lib/backup321/pbs-guard.sh",
  ].map((p) => sha256(sha256(host("docker-srv", p))));
  expect(setup?.inputs.create).toBe(
    [
      "# backup321 host generation 1",
      claimCommand(
        [
          `# backup321 inputs ${hashes.join(" ")}`,
          "'/usr/local/lib/backup321/pbs-setup.sh' 'apply' '/etc/backup321/pbs-usb-ssd.env'",
        ].join("\n"),
        ownerStampFile("/var/lib/backup321/owners", "pbs-datastore:usb-ssd"),
        "backup321-pbs-usb-ssd-setup pbs-datastore:usb-ssd",
      ),
    ].join("\n"),
  );
  // an update, not a replacement: its only trigger is the datastore it owns (another datastore
  // removes the old one first), and it waits for what it runs
  expect(setup?.inputs.triggers).toEqual(["pbs-datastore:usb-ssd"]);
  expect(setup?.options).toEqual({
    deleteBeforeReplace: true,
    replaceOnChanges: ["triggers[*]"],
    additionalSecretOutputs: ["connection"],
    dependsOn: [
      "backup321-docker-srv-ready",
      "backup321-pbs-guard-script-file",
      "backup321-pbs-lib-file",
      "backup321-pbs-setup-script-file",
      "backup321-pbs-usb-ssd-env-file",
    ],
  });
});
