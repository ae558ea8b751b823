// The prod program under Pulumi mocks: a monitor on every host that runs jobs (not the NAS), its
// alert channels with the webhook URL kept secret, the job registry entries, the runbook on every
// host, and the 3-2-1 and recovery stack outputs.
import { readStackFile } from "../../infra/stackFile";
import { runStack, reveal, isSecretValue, type Registration } from "../harness/program";
import { parseSite } from "../../stacks/load";
import { renderRunbook } from "../../components/site/runbook";
import { threeTwoOne, recoveryReport } from "../../stacks/targets";

let recorded: Registration[];
let program: Record<string, unknown>;
const stack = readStackFile("prod");
const site = parseSite(stack.config["backup321:site"]);

beforeAll(async () => {
  recorded = await runStack("prod", (p) => (program = p));
}, 120_000);

const byName = (name: string) => {
  const r = recorded.find((x) => x.name === name);
  if (!r) throw new Error(`no resource named ${name}`);
  return r;
};
const urnOf = (name: string) => byName(name).urn;
/** The install command of a RemoteFile: its stdin is the file's content. */
const fileCommand = (fileName: string) => byName(`${fileName}-file`);

test("one Monitor per host that runs jobs, none on the storage-only NAS", () => {
  const monitors = recorded.filter((r) => r.type === "backup321:monitoring:Monitor");
  expect(monitors.map((m) => m.name).sort()).toEqual([
    "backup321-db-replica-monitor",
    "backup321-db-srv-monitor",
    "backup321-docker-srv-monitor",
    "backup321-proxmox-srv-monitor",
  ]);
  for (const m of monitors) expect(m.parent).toBe(urnOf("backup321"));
});

test("the monitor's children, pinned (a rename would replace them)", () => {
  const parent = urnOf("backup321-db-srv-monitor");
  const children = recorded
    .filter((r) => r.parent === parent)
    .map((r) => `${r.type} ${r.name}`)
    .sort();
  expect(children).toEqual([
    "backup321:host:RemoteFile backup321-db-srv-monitor-alert-env",
    "backup321:host:RemoteFile backup321-db-srv-monitor-runbook",
    "backup321:host:RemoteFile backup321-db-srv-monitor-script",
    "backup321:host:RemoteFile backup321-db-srv-monitor-webhook",
    "backup321:host:ScheduledJob backup321-db-srv-monitor-job",
  ]);
});

test("the webhook URL is a secret file (0600) and never in a command line or the alert env", () => {
  const cmd = fileCommand("backup321-docker-srv-monitor-webhook");
  expect(isSecretValue(cmd.inputs.stdin)).toBe(true);
  expect(reveal(cmd.inputs.stdin)).toBe("plan-placeholder(backup321:alertWebhookUrl)\n");
  const create = String(reveal(cmd.inputs.create));
  expect(create).toContain(
    "# backup321: install /etc/backup321/secrets/alert-webhook-url on docker-srv",
  );
  expect(create).toContain("chmod -- 0600");
  expect(create).not.toContain("plan-placeholder");
  expect(cmd.inputs.logging).toBe("none");
  const env = String(fileCommand("backup321-docker-srv-monitor-alert-env").inputs.stdin);
  expect(env).toBe(
    [
      "# backup321 alert channels (read by alert.sh)",
      "# Managed by backup321 (pulumi up): local edits are overwritten.",
      // site.contacts, in the model's order
      "ALERT_CONTACTS='Oumayma Lafridi (IT manager, +212 6 00 00 00 01); Ibtissam Elghbali (DBA, +212 6 00 00 00 02)'",
      "ALERT_EMAIL='admin@atlastech.ma'",
      "ALERT_PING_ON_SUCCESS='0'",
      "ALERT_WEBHOOK_FILE='/etc/backup321/secrets/alert-webhook-url'",
      "ALERT_WEBHOOK_STYLE='json'",
      "",
    ].join("\n"),
  );
});

test("the monitor job: hourly, its env from the site model, registered like every job", () => {
  const env = String(fileCommand("backup321-docker-srv-monitor-job-env").inputs.stdin);
  expect(env).toContain("MONITOR_MOUNTS='/mnt/usb-ssd'\n");
  expect(env).toContain(
    "MONITOR_SMART_DEVICES='/dev/disk/by-uuid/5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b'\n",
  );
  expect(env).toContain("MONITOR_RESTIC_REPOS='/mnt/usb-ssd/restic'\n");
  expect(env).toContain("B321_JOB='monitor'\n");
  const cron = String(fileCommand("backup321-docker-srv-monitor-job-cron-crontab").inputs.stdin);
  expect(cron).toContain(
    "0 * * * * root '/usr/local/lib/backup321/b321-cron.sh' 'monitor' '/usr/local/lib/backup321/monitor.sh' '/etc/backup321/monitor.env'",
  );
  const registry = JSON.parse(
    String(fileCommand("backup321-docker-srv-monitor-job-registry").inputs.stdin),
  );
  expect(registry).toEqual({
    job: "monitor",
    schedule: "0 * * * *",
    timezone: "Europe/Paris",
    maxIntervalHours: 1,
    graceHours: 1,
    maxAgeSeconds: 7200,
  });
  expect(
    String(reveal(fileCommand("backup321-docker-srv-monitor-job-registry").inputs.create)),
  ).toContain("# backup321: install /etc/backup321/jobs.d/monitor.json on docker-srv");
});

test("the runbook is installed on every host that runs jobs", () => {
  const expected = renderRunbook(site, "prod");
  for (const h of ["proxmox-srv", "docker-srv", "db-srv"]) {
    const cmd = fileCommand(`backup321-${h}-monitor-runbook`);
    expect(cmd.inputs.stdin).toBe(expected);
    expect(String(reveal(cmd.inputs.create))).toContain(
      `# backup321: install /etc/backup321/RUNBOOK.md on ${h}`,
    );
  }
});

test("stack outputs: threeTwoOne and recovery", () => {
  expect(program.threeTwoOne).toEqual(threeTwoOne(site));
  expect(program.threeTwoOne).toMatchObject({ copies: 5, media: 4, offsite: 1, immutable: 1 });
  expect(program.recovery).toEqual(recoveryReport(site));
});
