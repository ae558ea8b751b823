// ResticScripts and ResticRepository under Pulumi mocks: the exact children, their inputs, the
// secrets kept secret, and what survives a destroy.
import * as pulumi from "@pulumi/pulumi";
import { isSecretValue, mockHost, reveal, recordMocked } from "../harness/program";

const recorded = recordMocked(async () => {
  const { ResticScripts, ResticRepository } = await import("../../components/restic");
  const host = await mockHost("docker", { hostName: "docker-srv", address: "192.168.10.20" });
  const scripts = new ResticScripts("restic", { host });
  const usb = new ResticRepository("usb", {
    scripts,
    repo: "usb",
    location: { kind: "local", path: "/mnt/usb-ssd/restic", mountpoint: "/mnt/usb-ssd" },
    hostTag: "docker-srv",
    schedule: "0 3 * * *",
    paths: ["/etc", "/root"],
    excludes: ["/root/.cache"],
    tags: ["system", "pbs-datastore"],
    retention: { keepDaily: 5 },
    check: { schedule: "0 6 * * *", subsets: 7 },
  });
  new ResticRepository("cloud", {
    scripts,
    repo: "cloud",
    location: {
      kind: "s3",
      bucket: "atlastech-backups",
      prefix: "restic/cloud",
      region: "eu-west-3",
    },
    s3: { accessKeyId: pulumi.secret("AKIAX"), secretAccessKey: pulumi.secret("SECRETX") },
    hostTag: "docker-srv",
    schedule: "0 4 * * 0",
    retention: { keepWeekly: 4 },
    copyFrom: usb,
  });
});

const byName = (n: string) => {
  const r = recorded.find((x) => x.name === n);
  if (!r) throw new Error(`no resource ${n}`);
  return r;
};
const childrenOf = (n: string) =>
  recorded
    .filter((r) => r.parent === byName(n).urn)
    .map((r) => `${r.type} ${r.name}`)
    .sort();

test("a repository's children are exactly these (renames would replace stateful resources)", () => {
  expect(childrenOf("usb")).toEqual([
    "backup321:host:RemoteFile usb-exclude",
    "backup321:host:RemoteFile usb-init-env",
    "backup321:host:ScheduledJob usb-backup",
    "backup321:host:ScheduledJob usb-check",
    "command:remote:Command usb-init",
    "command:remote:Command usb-password-file",
    "random:index/randomPassword:RandomPassword usb-password",
  ]);
  expect(childrenOf("cloud")).toEqual([
    "backup321:host:RemoteFile cloud-init-env",
    "backup321:host:RemoteFile cloud-s3-credentials",
    "backup321:host:ScheduledJob cloud-copy",
    "command:remote:Command cloud-init",
    "command:remote:Command cloud-password-file",
    "random:index/randomPassword:RandomPassword cloud-password",
  ]);
  expect(childrenOf("restic")).toEqual([
    "backup321:host:RemoteFile restic-backup",
    "backup321:host:RemoteFile restic-check",
    "backup321:host:RemoteFile restic-copy",
    "backup321:host:RemoteFile restic-drill",
    "backup321:host:RemoteFile restic-init",
    "backup321:host:RemoteFile restic-lib",
    "command:remote:Command restic-tools",
  ]);
  expect(byName("usb").type).toBe("backup321:restic:ResticRepository");
  expect(byName("restic").type).toBe("backup321:restic:ResticScripts");
});

test("the password is random, long, secret, and reaches the host only on stdin", () => {
  expect(byName("usb-password").inputs).toEqual({ length: 48, special: false });
  const file = byName("usb-password-file").inputs;
  expect(isSecretValue(file.stdin)).toBe(true);
  expect(reveal(file.stdin)).toBe("mock-password-usb-password");
  expect(file.logging).toBe("none");
  expect(String(file.create)).toMatch(
    /^# backup321: install \/etc\/backup321\/secrets\/restic-usb.password on docker-srv\n# backup321 host generation 1\n/,
  );
  expect(String(file.create)).toContain(
    "refusing to replace /etc/backup321/secrets/restic-usb.password",
  );
  expect(String(file.create) + String(file.update)).not.toContain("mock-password");
});

test("a new password is an update that rotates the repository's key, never a replacement", () => {
  const file = byName("usb-password-file");
  expect(file.inputs.triggers).toBeUndefined();
  expect(file.options.replaceOnChanges).toEqual(["triggers[*]"]);
  expect(file.options.deleteBeforeReplace).toBe(false);
  const update = String(file.inputs.update);
  expect(update).not.toContain("refusing to replace");
  expect(update).toContain(
    `'/usr/local/lib/backup321/restic-init.sh' '/etc/backup321/restic-usb-init.env' rotate "$tmp"`,
  );
  // the rotation needs the init script installed first
  expect(file.options.dependsOn).toContain(byName("restic-init-file").urn);
});

test("destroy keeps the password, its file and the repository", () => {
  for (const n of ["usb-password", "usb-password-file", "usb-init", "cloud-init"])
    expect([n, byName(n).options.retainOnDelete]).toEqual([n, true]);
  expect(byName("usb-exclude-file").options.retainOnDelete).toBe(false);
  expect(byName("usb-init").inputs.delete).toBeUndefined();
  expect(byName("usb-password-file").inputs.delete).toBeUndefined();
});

test("the S3 keys go to a 0600 AWS credentials file, secret", () => {
  const creds = byName("cloud-s3-credentials-file").inputs;
  expect(isSecretValue(creds.stdin)).toBe(true);
  expect(reveal(creds.stdin)).toBe(
    "[default]\naws_access_key_id = AKIAX\naws_secret_access_key = SECRETX\n",
  );
  expect(String(creds.create)).toContain("chmod -- 0600");
  expect(String(creds.create)).not.toContain("SECRETX");
  // nowhere else
  for (const r of recorded) {
    if (r.name === "cloud-s3-credentials-file") continue;
    expect(JSON.stringify(reveal(r.inputs))).not.toContain("SECRETX");
  }
});

test("init runs the init script with its env file; a copy target waits for its source", () => {
  expect(byName("usb-init").inputs.create).toBe(
    "# backup321 host generation 1\n'/usr/local/lib/backup321/restic-init.sh' '/etc/backup321/restic-usb-init.env'",
  );
  expect(byName("usb-init").inputs.update).toBe(byName("usb-init").inputs.create);
  expect(byName("cloud-init").options.dependsOn).toContain(byName("usb-init").urn);
  expect(byName("usb-init").options.dependsOn).toContain(byName("usb-password-file").urn);
});

test("init is replaced only for a new repository URL (or source), the old one dropped first", () => {
  expect(byName("cloud-init").inputs.triggers).toEqual([
    "s3:https://s3.eu-west-3.amazonaws.com/atlastech-backups/restic/cloud",
    "/mnt/usb-ssd/restic",
  ]);
  expect(byName("usb-init").inputs.triggers).toEqual(["/mnt/usb-ssd/restic", ""]);
  for (const n of ["usb-init", "cloud-init"]) {
    expect(byName(n).options.deleteBeforeReplace).toBe(true);
    expect(byName(n).options.replaceOnChanges).toEqual(["triggers[*]"]);
  }
});

function envOf(job: string): string {
  const r = recorded.find(
    (x) =>
      x.type === "command:remote:Command" &&
      String(reveal(x.inputs.create)).startsWith(`# backup321: install /etc/backup321/${job}.env `),
  );
  if (!r) throw new Error(`no env file for ${job}`);
  return String(reveal(r.inputs.stdin));
}

test("the jobs' env files carry the repository, the keep policy and the tags", () => {
  const usb = envOf("restic-usb");
  expect(usb).toContain("FORGET_ARGS='--keep-daily 5'\n");
  expect(usb).toContain("BACKUP_PATHS='/etc /root'\n");
  expect(usb).toContain("BACKUP_TAGS='system,pbs-datastore'\n");
  expect(usb).toContain("REPO_MOUNT='/mnt/usb-ssd'\n");
  expect(usb).toContain("RESTIC_HOST='docker-srv'\n");
  expect(usb).toContain("BACKUP_EXCLUDE_FILE='/etc/backup321/restic-usb.exclude'\n");
  const cloud = envOf("restic-cloud");
  expect(cloud).toContain("FORGET_ARGS='--keep-weekly 4'\n");
  expect(cloud).toContain("FROM_URL='/mnt/usb-ssd/restic'\n");
  expect(cloud).toContain("FROM_MOUNT='/mnt/usb-ssd'\n");
  expect(cloud).toContain("COPY_LOCK_WAIT='3600'\n");
  expect(cloud).toContain("REPO_S3_CREDENTIALS='/etc/backup321/secrets/restic-cloud.s3'\n");
  expect(cloud).not.toContain("BACKUP_PATHS");
  const check = envOf("restic-usb-check");
  expect(check).toContain("CHECK_SUBSETS='7'\n");
  expect(check).toContain("FROM_MOUNT=''\n");
  expect(usb).not.toContain("mock-password");
});
