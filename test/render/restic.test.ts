// Pure restic rendering: forget flags from a tier, repository URLs, env files, the install-once
// password command.
import {
  backupEnv,
  forgetArgs,
  passwordFileCommand,
  renderExcludeFile,
  repositoryEnv,
  repositoryUrl,
  resticFiles,
} from "../../components/restic/render";
import { run } from "../harness/proc";
import { hostPaths } from "../../stacks/model/hosts";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

describe("forgetArgs", () => {
  test("maps each keep-* of the tier to restic's flag, in a fixed order", () => {
    expect(forgetArgs({ keepDaily: 5 })).toEqual(["--keep-daily", "5"]);
    expect(forgetArgs({ keepWeekly: 4 })).toEqual(["--keep-weekly", "4"]);
    expect(
      forgetArgs({
        keepYearly: 1,
        keepMonthly: 6,
        keepWeekly: 4,
        keepDaily: 7,
        keepHourly: 24,
        keepLast: 3,
      }),
    ).toEqual([
      "--keep-last",
      "3",
      "--keep-hourly",
      "24",
      "--keep-daily",
      "7",
      "--keep-weekly",
      "4",
      "--keep-monthly",
      "6",
      "--keep-yearly",
      "1",
    ]);
  });
  test("refuses a tier that keeps nothing or a bad count", () => {
    expect(() => forgetArgs({})).toThrow("the retention tier keeps nothing (set e.g. keepDaily)");
    expect(() => forgetArgs({ keepDaily: 0 })).toThrow("keepDaily must be a positive whole number");
    expect(() => forgetArgs({ keepDaily: 1.5 })).toThrow(
      "keepDaily must be a positive whole number",
    );
  });
});

describe("repositoryUrl", () => {
  test("local is the directory", () => {
    expect(repositoryUrl({ kind: "local", path: "/mnt/usb-ssd/restic" })).toBe(
      "/mnt/usb-ssd/restic",
    );
  });
  test("s3 on AWS uses the region's endpoint", () => {
    expect(
      repositoryUrl({
        kind: "s3",
        bucket: "atlastech-backups",
        prefix: "restic/cloud",
        region: "eu-west-3",
      }),
    ).toBe("s3:https://s3.eu-west-3.amazonaws.com/atlastech-backups/restic/cloud");
  });
  test("s3 with an endpoint override, slashes trimmed", () => {
    expect(
      repositoryUrl({
        kind: "s3",
        bucket: "b",
        prefix: "/restic/cloud/",
        endpoint: "https://127.0.0.1:9000/",
      }),
    ).toBe("s3:https://127.0.0.1:9000/b/restic/cloud");
  });
});

test("repository and backup env files are exact", () => {
  const files = resticFiles(hostPaths.parse({}), "cloud", { s3: true, ca: true });
  expect(files).toEqual({
    passwordFile: "/etc/backup321/secrets/restic-cloud.password",
    s3CredentialsFile: "/etc/backup321/secrets/restic-cloud.s3",
    caFile: "/etc/backup321/restic-cloud.ca.pem",
    excludeFile: "/etc/backup321/restic-cloud.exclude",
  });
  expect(
    repositoryEnv({
      repo: "cloud",
      url: "s3:https://s3.eu-west-3.amazonaws.com/b/restic/cloud",
      files,
      hostTag: "docker-srv",
      restic: "restic",
      cacheDir: "/var/lib/backup321/cache/restic",
      from: {
        repo: "usb",
        url: "/mnt/usb-ssd/restic",
        passwordFile: "/etc/backup321/secrets/restic-usb.password",
        mountpoint: "/mnt/usb-ssd",
      },
    }),
  ).toMatchSnapshot();
  expect(
    backupEnv({
      paths: ["/etc", "/root", "/mnt/usb-ssd/pbs"],
      tags: ["system", "pbs-datastore"],
      retention: { keepDaily: 5 },
    }),
  ).toEqual({
    BACKUP_PATHS: "/etc /root /mnt/usb-ssd/pbs",
    BACKUP_TAGS: "system,pbs-datastore",
    FORGET_ARGS: "--keep-daily 5",
  });
  expect(() => backupEnv({ paths: ["/my docs"], tags: [], retention: { keepDaily: 1 } })).toThrow(
    'backup path "/my docs" must be absolute, without spaces',
  );
});

test("exclude file", () => {
  const own = "*.partial\n*.partial.manifest.json\n.b321-full.*\n*.b321-partial\n.b321-replay.*\n";
  expect(renderExcludeFile(["/root/.cache", "*.tmp"])).toBe(
    "# backup321: restic --exclude-file (managed by pulumi up)\n" +
      `# files backup321's jobs are still writing\n${own}` +
      "# the model's excludes\n/root/.cache\n*.tmp\n",
  );
  expect(() => renderExcludeFile(["a\nb"])).toThrow("must be one line");
});

describe("passwordFileCommand", () => {
  test("snapshot", () => {
    expect(passwordFileCommand("/etc/backup321/secrets/restic-usb.password")).toMatchSnapshot();
  });
  test("installs once, keeps the same password, refuses another", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-restic-pw-"));
    const file = path.join(dir, "secrets", "restic-usb.password");
    const cmd = passwordFileCommand(file);
    try {
      expect(run("bash", ["-c", cmd], { input: "first" }).code).toBe(0);
      expect(fs.readFileSync(file, "utf8")).toBe("first");
      expect((fs.statSync(file).mode & 0o777).toString(8)).toBe("600");
      expect((fs.statSync(path.dirname(file)).mode & 0o777).toString(8)).toBe("700");
      expect(run("bash", ["-c", cmd], { input: "first" }).code).toBe(0);
      const other = run("bash", ["-c", cmd], { input: "second" });
      expect(other.code).toBe(1);
      expect(other.stderr).toContain(`refusing to replace ${file}`);
      expect(fs.readFileSync(file, "utf8")).toBe("first");
      expect(fs.readdirSync(path.dirname(file))).toEqual(["restic-usb.password"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
