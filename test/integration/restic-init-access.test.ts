// restic-init.sh on a first deploy, when S3 still refuses the new IAM key: a restic wrapper answers
// the first N calls as restic does when S3 says AccessDenied or InvalidAccessKeyId (its error
// message, after "unable to open config file: Stat:"), then runs the real restic on a local
// repository. init retries those answers for INIT_ACCESS_WAIT_SECONDS, and nothing else.
import * as fs from "node:fs";
import * as path from "node:path";
import { makeSandbox, type Sandbox } from "../harness/sandbox";
import { run } from "../harness/proc";
import { jobEnv } from "../../components/host/render";

const SCRIPTS = path.resolve(__dirname, "../../components");
const DENIED = [
  "Fatal: unable to open config file: Stat: Access Denied.",
  "Fatal: unable to open config file: Stat: The AWS Access Key Id you provided does not exist in our records.",
];

let box: Sandbox;

beforeAll(() => {
  box = makeSandbox("b321-restic-init-");
  fs.mkdirSync(box.paths.lib, { recursive: true });
  for (const f of [
    "host/scripts/common.sh",
    "restic/scripts/restic-lib.sh",
    "restic/scripts/restic-init.sh",
  ])
    fs.copyFileSync(path.join(SCRIPTS, f), path.join(box.paths.lib, path.basename(f)));
  fs.chmodSync(path.join(box.paths.lib, "restic-init.sh"), 0o755);
  fs.mkdirSync(`${box.paths.secrets}`, { recursive: true });
  fs.writeFileSync(`${box.paths.secrets}/restic-cloud.password`, "pw\n", { mode: 0o600 });
});

afterAll(() => box?.remove());

/** A restic that fails its first `denied` calls with S3's refusals (alternating), then is restic. */
function wrapper(name: string, denied: number): string {
  const file = box.at(`bin/${name}`);
  const count = box.at(`bin/${name}.count`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    [
      "#!/bin/bash",
      `n=$(cat '${count}' 2>/dev/null || echo 0); echo $((n + 1)) > '${count}'`,
      `if [ "$n" -lt ${denied} ]; then`,
      `  if [ $((n % 2)) -eq 0 ]; then echo '${DENIED[0]}' >&2; else echo '${DENIED[1]}' >&2; fi`,
      "  echo 'Is there a repository at the following location?' >&2",
      "  echo 's3:s3.amazonaws.com/atlastech-backups/restic/cloud' >&2",
      "  exit 1",
      "fi",
      'exec restic "$@"',
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return file;
}

function init(repo: string, restic: string, waitSeconds: number) {
  const env = box.at(`${repo}.env`);
  fs.writeFileSync(
    env,
    [
      ...Object.entries(jobEnv(box.paths, `restic-${repo}-init`)).map(([k, v]) => `${k}='${v}'`),
      `REPO_NAME='${repo}'`,
      `REPO_URL='${box.at(`repos/${repo}`)}'`,
      `REPO_PASSWORD_FILE='${box.paths.secrets}/restic-cloud.password'`,
      `RESTIC_BIN='${restic}'`,
      `RESTIC_CACHE='${box.at("cache")}'`,
      `INIT_ACCESS_WAIT_SECONDS='${waitSeconds}'`,
      "INIT_ACCESS_RETRY_SECONDS='1'",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const r = run(path.join(box.paths.lib, "restic-init.sh"), [env], {
    env: { ...process.env, B321_ALERT: "" },
  });
  const status = JSON.parse(
    fs.readFileSync(`${box.paths.status}/restic-${repo}-init.json`, "utf8"),
  );
  return {
    ...r,
    status,
    calls: Number(fs.readFileSync(box.at(`bin/${path.basename(restic)}.count`), "utf8")),
  };
}

test("S3 refusing the key for the first three calls: init waits, then creates the repository", () => {
  const r = init("cloud", wrapper("restic-a", 3), 30);
  expect([r.code, r.status.result, r.status.created]).toEqual([0, "success", "true"]);
  expect(fs.existsSync(box.at("repos/cloud/config"))).toBe(true);
  const retries = r.stderr.split("\n").filter((l) => l.includes("S3 refused the key of cloud"));
  expect(retries).toHaveLength(3);
  expect(retries[0]).toContain(`try 1: retrying in 1s: ${DENIED[0]}`);
  expect(retries[1]).toContain(`try 2: retrying in 1s: ${DENIED[1]}`);
  // 3 refused probes, the probe that finds no repository, init, the check that it opens
  expect(r.calls).toBe(6);
});

test("a key still refused after INIT_ACCESS_WAIT_SECONDS fails with S3's answer", () => {
  const r = init("never", wrapper("restic-b", 1000), 3);
  expect(r.code).toBe(1);
  expect(r.status.result).toBe("failed");
  expect(r.status.error).toMatch(
    /^S3 still refuses the key of never after 3s \(IAM propagation takes seconds to minutes; check the user's policy and the bucket policy\): Fatal: unable to open config file: Stat: /,
  );
  expect(r.calls).toBeGreaterThanOrEqual(3);
  expect(r.calls).toBeLessThanOrEqual(4);
  expect(fs.existsSync(box.at("repos/never"))).toBe(false);
});

test("any other error fails at once, without a retry", () => {
  fs.mkdirSync(box.at("repos/other"), { recursive: true });
  fs.writeFileSync(box.at("repos/other/config"), "not a restic config");
  const r = init("other", wrapper("restic-c", 0), 30);
  expect(r.code).toBe(1);
  expect(r.status.error).toMatch(/^cannot open the repository other /);
  expect(r.calls).toBe(1);
});
