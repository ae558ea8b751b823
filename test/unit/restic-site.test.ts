// The restic repositories of the prod and dev stacks, as BackupSite builds them from the model.
import { readStackFile } from "../../infra/stackFile";
import { reveal, runMocked, type Registration } from "../harness/program";

async function plan(stack: string): Promise<Registration[]> {
  const file = readStackFile(stack);
  return runMocked(
    () => {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        require("../../infra/index");
      });
    },
    file.config,
    file.secretKeys,
    stack,
  );
}

const cronFiles = (recorded: Registration[]) =>
  recorded
    .filter((r) => r.type === "command:remote:Command")
    .map((r) => String(reveal(r.inputs.create)))
    .map((c) => /^# backup321: install (\S+\/cron\.d\/backup321-restic\S*) on (\S+)\n/.exec(c))
    .filter((m) => m !== null)
    .map((m) => `${m[2]} ${m[1]}`)
    .sort();

test("prod: the usb and cloud repositories and their jobs on docker-srv", async () => {
  const recorded = await plan("prod");
  const repos = recorded.filter((r) => r.type === "backup321:restic:ResticRepository");
  expect(repos.map((r) => r.name).sort()).toEqual([
    "backup321-restic-cloud",
    "backup321-restic-usb",
  ]);
  const site = recorded.find((r) => r.type === "backup321:site:BackupSite");
  for (const r of repos) expect(r.parent).toBe(site?.urn);
  expect(cronFiles(recorded)).toEqual([
    "docker-srv /etc/cron.d/backup321-restic-cloud",
    "docker-srv /etc/cron.d/backup321-restic-cloud-check",
    "docker-srv /etc/cron.d/backup321-restic-cloud-drill",
    "docker-srv /etc/cron.d/backup321-restic-usb",
    "docker-srv /etc/cron.d/backup321-restic-usb-check",
    "docker-srv /etc/cron.d/backup321-restic-usb-drill",
  ]);
  const scripts = recorded.filter((r) => r.type === "backup321:restic:ResticScripts");
  expect(scripts.map((r) => r.name)).toEqual(["backup321-restic-docker-srv"]);
});

test("dev: its one local repository on localhost", async () => {
  const recorded = await plan("dev");
  expect(
    recorded.filter((r) => r.type === "backup321:restic:ResticRepository").map((r) => r.name),
  ).toEqual(["backup321-restic-local"]);
  expect(cronFiles(recorded)).toEqual([
    "localhost /etc/cron.d/backup321-restic-local",
    "localhost /etc/cron.d/backup321-restic-local-check",
  ]);
});

// A first deploy creates the key, the policies and the bucket in one run: init must wait for all of
// them, not just the access key (restic-init.sh also retries while IAM propagates).
test("prod: the cloud repository's init waits for the bucket, its policy and the writer's user policy", async () => {
  const recorded = await plan("prod");
  const urn = (type: string, name: string) => {
    const found = recorded.filter((r) => r.type === type && r.name === name);
    expect(found).toHaveLength(1);
    return found[0].urn;
  };
  const init = recorded.find(
    (r) => r.type === "command:remote:Command" && r.name === "backup321-restic-cloud-init",
  );
  const deps = init?.options.dependsOn ?? [];
  for (const [type, name] of [
    ["aws:s3/bucket:Bucket", "backup321-offsite-bucket"],
    ["aws:s3/bucketPolicy:BucketPolicy", "backup321-offsite-policy"],
    ["aws:iam/userPolicy:UserPolicy", "backup321-offsite-restic-policy"],
    ["aws:iam/accessKey:AccessKey", "backup321-offsite-restic-key"],
  ])
    expect([name, deps.includes(urn(type, name))]).toEqual([name, true]);
});
