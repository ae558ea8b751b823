// The Service primitive's rendering: the systemd unit and the plain supervisor's cron file, exact;
// the create command's two branches (systemd where /run/systemd/system exists, the supervisor
// elsewhere) run by bash against a recording systemctl, since no host here runs systemd.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run } from "../harness/proc";
import {
  DISARMED,
  renderServiceCron,
  renderServiceUnit,
  serviceCreateCommand,
  serviceDeleteCommand,
  serviceFiles,
  type ServiceSpec,
} from "../../components/host/render";

const spec: ServiceSpec = {
  name: "mariadb-stream",
  program: "/usr/local/lib/backup321/mariadb-stream.sh",
  args: ["/etc/backup321/mariadb-stream.env"],
  paths: { cron: "/etc/cron.d", state: "/var/lib/backup321" },
};

test("the unit restarts the program whatever ends it, never rate-limited", () => {
  expect(renderServiceUnit(spec)).toBe(
    [
      "# Managed by backup321 (pulumi up): local edits are overwritten.",
      "[Unit]",
      "Description=backup321 mariadb-stream",
      "After=network-online.target",
      "Wants=network-online.target",
      "StartLimitIntervalSec=0",
      "",
      "[Service]",
      "Type=simple",
      "ExecStart=/usr/local/lib/backup321/mariadb-stream.sh /etc/backup321/mariadb-stream.env",
      "Restart=always",
      "RestartSec=5",
      "KillMode=control-group",
      "TimeoutStopSec=30",
      "SyslogIdentifier=backup321",
      "",
      "[Install]",
      "WantedBy=multi-user.target",
      "",
    ].join("\n"),
  );
  expect(() => renderServiceUnit({ ...spec, args: ["a b"] })).toThrow(/needs quoting/);
});

test("without systemd, cron starts the supervisor at boot and every minute (commented out when disarmed)", () => {
  const line =
    "root '/var/lib/backup321/services/mariadb-stream/supervise.sh' 'start' '/var/lib/backup321/services/mariadb-stream' '--' '/usr/local/lib/backup321/mariadb-stream.sh' '/etc/backup321/mariadb-stream.env'";
  const cron = renderServiceCron(spec);
  expect(cron.split("\n").slice(-3)).toEqual([`@reboot ${line}`, `* * * * * ${line}`, ""]);
  const off = renderServiceCron({ ...spec, disarmed: true });
  expect(off.split("\n").slice(-3)).toEqual([
    `# ${DISARMED} @reboot ${line}`,
    `# ${DISARMED} * * * * * ${line}`,
    "",
  ]);
  expect(serviceFiles(spec)).toEqual({
    unitName: "backup321-mariadb-stream.service",
    unit: "/etc/systemd/system/backup321-mariadb-stream.service",
    cronFile: "/etc/cron.d/backup321-service-mariadb-stream",
    runDir: "/var/lib/backup321/services/mariadb-stream",
    supervisor: "/var/lib/backup321/services/mariadb-stream/supervise.sh",
  });
});

describe("with systemd (a recording systemctl, the probe directory in a sandbox)", () => {
  let root: string;
  let calls: string;
  let sandboxed: ServiceSpec;
  const sh = (text: string, stdin = "#!/bin/bash\n") =>
    run("bash", ["-c", text], {
      input: stdin,
      env: { ...process.env, PATH: `${root}/bin:${process.env.PATH}` },
    });
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-unit-"));
    calls = path.join(root, "systemctl.log");
    fs.mkdirSync(path.join(root, "bin"));
    fs.mkdirSync(path.join(root, "run/systemd/system"), { recursive: true });
    fs.mkdirSync(path.join(root, "state"));
    fs.writeFileSync(path.join(root, "bin/systemctl"), `#!/bin/sh\necho "$*" >> '${calls}'\n`, {
      mode: 0o755,
    });
    sandboxed = {
      ...spec,
      paths: { cron: `${root}/cron.d`, state: `${root}/state` },
      unitDir: `${root}/units`,
      systemdProbe: `${root}/run/systemd/system`,
    };
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  test("create writes the unit, enables and restarts it; no cron file, no supervisor", () => {
    const r = sh(serviceCreateCommand(sandboxed));
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(fs.readFileSync(`${root}/units/backup321-mariadb-stream.service`, "utf8")).toBe(
      renderServiceUnit(sandboxed),
    );
    expect(fs.readFileSync(calls, "utf8")).toBe(
      "daemon-reload\nenable backup321-mariadb-stream.service\nrestart backup321-mariadb-stream.service\n",
    );
    expect(fs.existsSync(`${root}/cron.d`)).toBe(false);
    expect(fs.existsSync(`${root}/state/services`)).toBe(false);
    expect(fs.readdirSync(`${root}/state`)).toEqual([]);
  });

  test("a disarmed host gets the unit disabled and stopped", () => {
    expect(sh(serviceCreateCommand({ ...sandboxed, disarmed: true })).code).toBe(0);
    expect(fs.readFileSync(calls, "utf8")).toBe(
      "daemon-reload\ndisable --now backup321-mariadb-stream.service\n",
    );
  });

  test("delete stops and disables it before the unit goes", () => {
    expect(sh(serviceCreateCommand(sandboxed)).code).toBe(0);
    fs.writeFileSync(calls, "");
    expect(sh(serviceDeleteCommand(sandboxed)).code).toBe(0);
    expect(fs.readFileSync(calls, "utf8")).toBe(
      "disable --now backup321-mariadb-stream.service\ndaemon-reload\n",
    );
    expect(fs.existsSync(`${root}/units/backup321-mariadb-stream.service`)).toBe(false);
    // twice: nothing left to do
    fs.writeFileSync(calls, "");
    expect(sh(serviceDeleteCommand(sandboxed)).code).toBe(0);
    expect(fs.readFileSync(calls, "utf8")).toBe("");
  });
});
