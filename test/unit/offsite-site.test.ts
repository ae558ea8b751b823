// The prod stack's offsite part under Pulumi mocks: the exact bucket configuration, lifecycle,
// policies, writers, and what reaches the hosts (secrets secret, no secret on a command line).
import { isSecretValue, reveal, runStack, type Registration } from "../harness/program";
import { MOCK_PUBLIC_KEY } from "../../infra/mockRuntime";
import {
  claimCommand,
  ownerStampFile,
  releaseCommand,
  removeFileCommand,
} from "../../components/host/render";
import {
  installAuthorizedKeyCommand,
  removeAuthorizedKeyCommand,
} from "../../components/host/ssh-trust";
import { nasKeyComment } from "../../components/offsite/render";

let recorded: Registration[];

const one = (type: string, name: string): Registration => {
  const found = recorded.filter((r) => r.type === type && r.name === name);
  expect(found).toHaveLength(1);
  return found[0];
};
const childrenOf = (type: string, name: string): [string, string][] => {
  const parent = one(type, name).urn;
  return recorded
    .filter((r) => r.parent === parent)
    .map((r): [string, string] => [r.type, r.name])
    .sort((a, b) => a[1].localeCompare(b[1]));
};
/** The file a RemoteFile would write at this path (of that host, if given): its install command's stdin. */
const fileAt = (p: string, host?: string): unknown => {
  const found = recorded.filter(
    (r) =>
      r.type === "command:remote:Command" &&
      String(reveal(r.inputs.create)).startsWith(
        `# backup321: install ${p} on ${host === undefined ? "" : `${host}\n`}`,
      ),
  );
  expect(found).toHaveLength(1);
  return found[0].inputs.stdin;
};

beforeAll(async () => {
  recorded = await runStack("prod");
});

const B = "backup321:offsite:OffsiteBucket";

test("the offsite bucket component has exactly these children (renames would replace the bucket)", () => {
  expect(childrenOf(B, "backup321-offsite")).toEqual([
    ["aws:s3/bucket:Bucket", "backup321-offsite-bucket"],
    ["aws:iam/accessKey:AccessKey", "backup321-offsite-dumps-key"],
    ["aws:iam/userPolicy:UserPolicy", "backup321-offsite-dumps-policy"],
    ["aws:iam/user:User", "backup321-offsite-dumps-user"],
    [
      "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
      "backup321-offsite-encryption",
    ],
    [
      "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
      "backup321-offsite-lifecycle",
    ],
    // new: enables Object Lock on the existing bucket in place
    [
      "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
      "backup321-offsite-object-lock",
    ],
    ["aws:s3/bucketPolicy:BucketPolicy", "backup321-offsite-policy"],
    ["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "backup321-offsite-public-access"],
    ["aws:iam/accessKey:AccessKey", "backup321-offsite-restic-key"],
    ["aws:iam/userPolicy:UserPolicy", "backup321-offsite-restic-policy"],
    ["aws:iam/user:User", "backup321-offsite-restic-user"],
    ["aws:s3/bucketVersioning:BucketVersioning", "backup321-offsite-versioning"],
  ]);
  expect(one(B, "backup321-offsite").parent).toBe(
    one("backup321:site:BackupSite", "backup321").urn,
  );
});

test("the aws provider takes the model's region and no credentials", () => {
  const p = one("pulumi:providers:aws", "backup321-aws");
  expect(reveal(p.inputs)).toEqual(expect.objectContaining({ region: "eu-west-3" }));
  for (const k of ["accessKey", "secretKey", "token", "profile"])
    expect(p.inputs[k]).toBeUndefined();
});

test("the bucket is protected, never force-destroyed, and the only protected offsite resource", () => {
  const bucket = one("aws:s3/bucket:Bucket", "backup321-offsite-bucket");
  expect(bucket.options.protect).toBe(true);
  expect(bucket.inputs).toMatchObject({
    bucket: "atlastech-backups",
    forceDestroy: false,
    objectLockEnabled: true,
  });
  // the existing prod bucket was made without Object Lock: the field would replace it, which
  // protect refuses, so it is ignored and the lock configuration below enables it in place
  expect(bucket.options.ignoreChanges).toEqual(["objectLockEnabled"]);
  const lock = one(
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "backup321-offsite-object-lock",
  );
  expect(lock.inputs).toEqual({ bucket: "atlastech-backups", objectLockEnabled: "Enabled" });
  expect(lock.options.dependsOn).toContain(
    one("aws:s3/bucketVersioning:BucketVersioning", "backup321-offsite-versioning").urn,
  );
  const offsite = recorded.filter((r) => r.name.startsWith("backup321-offsite"));
  expect(offsite.filter((r) => r.options.protect).map((r) => r.name)).toEqual([
    "backup321-offsite-bucket",
  ]);
});

test("versioning on, SSE-S3 by default, public access fully blocked", () => {
  expect(
    one("aws:s3/bucketVersioning:BucketVersioning", "backup321-offsite-versioning").inputs,
  ).toEqual({
    bucket: "atlastech-backups",
    versioningConfiguration: { status: "Enabled" },
  });
  expect(
    one(
      "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
      "backup321-offsite-encryption",
    ).inputs,
  ).toEqual({
    bucket: "atlastech-backups",
    rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
  });
  expect(
    one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "backup321-offsite-public-access")
      .inputs,
  ).toEqual({
    bucket: "atlastech-backups",
    blockPublicAcls: true,
    blockPublicPolicy: true,
    ignorePublicAcls: true,
    restrictPublicBuckets: true,
  });
});

test("the lifecycle: dumps to GLACIER after 30 days and gone after 365; restic never moves", () => {
  const lc = one(
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "backup321-offsite-lifecycle",
  );
  expect(lc.inputs).toEqual({
    bucket: "atlastech-backups",
    rules: [
      {
        id: "dumps",
        status: "Enabled",
        filter: { prefix: "database/" },
        transitions: [{ days: 30, storageClass: "GLACIER" }],
        expiration: { days: 365 },
      },
      {
        id: "noncurrent-versions",
        status: "Enabled",
        filter: {},
        noncurrentVersionExpiration: { noncurrentDays: 30 },
        expiration: { expiredObjectDeleteMarker: true },
      },
      {
        id: "abort-incomplete-multipart",
        status: "Enabled",
        filter: {},
        abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
      },
    ],
  });
  const rules = lc.inputs.rules as { filter: { prefix?: string }; transitions?: unknown[] }[];
  for (const r of rules.filter((x) => x.transitions)) {
    expect(r.filter.prefix).toBeDefined();
    expect("restic/".startsWith(r.filter.prefix!) || r.filter.prefix!.startsWith("restic/")).toBe(
      false,
    );
  }
});

test("the bucket policy denies every request without TLS", () => {
  const policy = one("aws:s3/bucketPolicy:BucketPolicy", "backup321-offsite-policy");
  expect(JSON.parse(String(policy.inputs.policy))).toEqual({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: ["arn:aws:s3:::atlastech-backups", "arn:aws:s3:::atlastech-backups/*"],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  });
});

test("each writer is its own IAM user, scoped to its prefix; the dump uploader cannot delete", () => {
  expect(one("aws:iam/user:User", "backup321-offsite-dumps-user").inputs).toMatchObject({
    name: "atlastech-backups-dumps",
    path: "/backup321/",
  });
  expect(one("aws:iam/user:User", "backup321-offsite-restic-user").inputs).toMatchObject({
    name: "atlastech-backups-restic",
    path: "/backup321/",
  });
  // Each writer's policy reaches only its own prefix of this site's bucket (their full statements:
  // offsite-bucket.test.ts).
  const policy = (writer: string) => {
    const p = one("aws:iam/userPolicy:UserPolicy", `backup321-offsite-${writer}-policy`);
    const doc = JSON.parse(String(p.inputs.policy)) as {
      Statement: { Sid: string; Action: unknown; Resource: string; Condition?: unknown }[];
    };
    return {
      user: p.inputs.user,
      actions: doc.Statement[0].Action,
      reaches: doc.Statement.map((st) => [st.Sid, st.Resource, st.Condition ?? null]),
    };
  };
  const list = (prefix: string) => ({ StringLike: { "s3:prefix": [`${prefix}*`] } });
  expect(policy("dumps")).toMatchObject({
    user: "atlastech-backups-dumps",
    reaches: [
      ["WriteAndReadBackDumps", "arn:aws:s3:::atlastech-backups/database/*", null],
      ["ListOwnPrefix", "arn:aws:s3:::atlastech-backups", list("database/")],
    ],
  });
  expect(
    String(one("aws:iam/userPolicy:UserPolicy", "backup321-offsite-dumps-policy").inputs.policy),
  ).not.toContain("Delete");
  expect(policy("restic")).toEqual({
    user: "atlastech-backups-restic",
    actions: ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
    reaches: [
      ["ResticRepository", "arn:aws:s3:::atlastech-backups/restic/*", null],
      ["ListOwnPrefix", "arn:aws:s3:::atlastech-backups", list("restic/")],
      ["BucketLocation", "arn:aws:s3:::atlastech-backups", null],
    ],
  });
});

test("the dump writer's secret reaches db-srv only as a secret 0600 credentials file", () => {
  const path = "/etc/backup321/secrets/offsite-upload-aws";
  const stdin = fileAt(path, "db-srv");
  expect(isSecretValue(stdin)).toBe(true);
  expect(reveal(stdin)).toBe(
    "[default]\naws_access_key_id = mocked::aws:iam/accessKey:AccessKey::backup321-offsite-dumps-key\naws_secret_access_key = mock-aws-secret-backup321-offsite-dumps-key\n",
  );
  const cmd = recorded.find((r) =>
    String(reveal(r.inputs.create)).includes(`install ${path} on db-srv`),
  )!;
  expect(String(reveal(cmd.inputs.create))).toContain("chmod -- 0600");
  expect(cmd.inputs.logging).toBe("none");
  for (const r of recorded) {
    for (const k of ["create", "update", "delete"]) {
      expect(String(reveal(r.inputs[k]) ?? "")).not.toContain("mock-aws-secret");
    }
  }
  // the job's own variables (the B321_* every env file carries: host.test.ts)
  const env = String(fileAt("/etc/backup321/offsite-upload.env", "db-srv")).split("\n");
  expect(env[0]).toBe("# backup321 job offsite-upload");
  expect(env.filter((l) => !l.startsWith("#") && !l.startsWith("B321_"))).toEqual([
    "OFFSITE_BACKUP_DIR='/backups/database'",
    "OFFSITE_BINLOG_BASENAME='mysql-bin'",
    "OFFSITE_BINLOG_DIR='/backups/binlogs'",
    "OFFSITE_BUCKET='atlastech-backups'",
    "OFFSITE_CREDENTIALS='/etc/backup321/secrets/offsite-upload-aws'",
    "OFFSITE_LOCK_DAYS='35'",
    "OFFSITE_LOCK_MODE='GOVERNANCE'",
    "OFFSITE_MAX_AGE_HOURS='362'",
    "OFFSITE_PREFIX='database/'",
    "OFFSITE_REGION='eu-west-3'",
    "OFFSITE_SSE='AES256'",
    "",
  ]);
  expect(env).toContain("B321_JOB='offsite-upload'");
  expect(fileAt("/etc/cron.d/backup321-offsite-upload", "db-srv")).toContain(
    "30 5 * * * root '/usr/local/lib/backup321/b321-cron.sh' 'offsite-upload' '/usr/local/lib/backup321/offsite-upload.sh' '/etc/backup321/offsite-upload.env'",
  );
});

/** A job's own variables in its env file (the B321_* every env file carries: host.test.ts). */
const ownVars = (job: string, host?: string) =>
  String(fileAt(`/etc/backup321/${job}.env`, host))
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("B321_"));

test("the drills of prod's NAS and offsite copies: monthly jobs on db-srv, no secret in their env", () => {
  expect(ownVars("nas-sync-drill")).toEqual([
    "DRILL_SCRATCH='/var/lib/backup321/nas-scratch'",
    ...ownVars("nas-sync", "db-srv"),
  ]);
  expect(fileAt("/etc/cron.d/backup321-nas-sync-drill")).toContain(
    "0 10 4 * * root '/usr/local/lib/backup321/b321-cron.sh' 'nas-sync-drill' '/usr/local/lib/backup321/nas-drill.sh' '/etc/backup321/nas-sync-drill.env'",
  );
  const fingerprint = ownVars("mariadb-full").find((l) => l.startsWith("MARIADB_KEY_FINGERPRINT="));
  expect(fingerprint).toMatch(/^MARIADB_KEY_FINGERPRINT='[0-9a-f]{64}'$/);
  // the upload's bucket and key file (read only here), the stack's key by its path and fingerprint
  expect(ownVars("offsite-upload-drill")).toEqual([
    "DRILL_SCRATCH='/var/lib/backup321/offsite-scratch'",
    "MARIADB_KEYRING='/etc/backup321/secrets/mariadb-backup.keyring'",
    "MARIADB_KEY_FILE='/etc/backup321/secrets/mariadb-backup.key'",
    fingerprint,
    "OFFSITE_BUCKET='atlastech-backups'",
    "OFFSITE_CREDENTIALS='/etc/backup321/secrets/offsite-upload-aws'",
    "OFFSITE_PREFIX='database/'",
    "OFFSITE_REGION='eu-west-3'",
  ]);
  expect(fileAt("/etc/cron.d/backup321-offsite-upload-drill")).toContain(
    "0 11 5 * * root '/usr/local/lib/backup321/b321-cron.sh' 'offsite-upload-drill' '/usr/local/lib/backup321/offsite-drill.sh' '/etc/backup321/offsite-upload-drill.env'",
  );
});

test("the drills are the sync's and the upload's own children, beside the jobs they read back", () => {
  const drills = (type: string, name: string) =>
    childrenOf(type, name).filter(([, n]) => n.includes("drill"));
  expect(drills("backup321:offsite:NasSync", "backup321-nas-sync")).toEqual([
    ["backup321:host:ScheduledJob", "backup321-nas-sync-drill"],
    // the read-back library, shared with a standby's disaster-recovery drill
    ["backup321:host:RemoteFile", "backup321-nas-sync-drill-lib"],
    ["backup321:host:RemoteFile", "backup321-nas-sync-drill-script"],
  ]);
  expect(drills("backup321:offsite:DumpUpload", "backup321-offsite-upload")).toEqual([
    ["backup321:host:ScheduledJob", "backup321-offsite-upload-drill"],
    ["backup321:host:RemoteFile", "backup321-offsite-upload-drill-script"],
  ]);
});

test("the NAS sync: key made on db-srv, a restricted forced-command line on the NAS, hourly job", () => {
  const key = one("command:remote:Command", "backup321-nas-sync-key");
  expect((reveal(key.inputs.connection) as { host: string }).host).toBe("192.168.10.25");
  expect(String(key.inputs.create)).toContain("ssh-keygen -q -t ed25519 -N ''");
  expect(key.inputs.delete).toBeUndefined();
  const auth = one("command:remote:Command", "backup321-nas-sync-authorized-key");
  expect(reveal(auth.inputs.connection) as { host: string; user: string }).toMatchObject({
    host: "192.168.10.30",
    user: "backup",
  });
  expect(auth.inputs.stdin).toBe(
    `restrict,command="/home/backup/.backup321/nas-receive.sh /backups/atlastech 168 2880 30" ${MOCK_PUBLIC_KEY.split(" ").slice(0, 2).join(" ")} backup321-nas-sync@db-srv\n`,
  );
  expect(String(auth.inputs.create)).not.toContain("sudo");
  // the NAS is used as its own user (backup): nothing there runs through sudo
  for (const r of recorded.filter(
    (x) =>
      x.type === "command:remote:Command" &&
      (reveal(x.inputs.connection) as { host: string }).host === "192.168.10.30",
  )) {
    expect(String(r.inputs.create)).not.toContain("sudo");
  }
  expect(String(one("command:remote:Command", "backup321-nas-ready").inputs.create)).toContain(
    "for t in 'sh'",
  );
  const receiver = one("command:remote:Command", "backup321-nas-sync-receiver");
  expect(String(receiver.inputs.stdin)).toContain("backup321 NAS receiver");
  const env = String(fileAt("/etc/backup321/nas-sync.env", "db-srv"));
  expect(env).toContain("NAS_SOURCES='/backups/database /backups/binlogs'\n");
  expect(env).toContain("NAS_USER='backup'\n");
  expect(fileAt("/etc/cron.d/backup321-nas-sync", "db-srv")).toContain("45 * * * * root ");
  // no pinned host key in prod: scanned once from db-srv
  expect(
    String(one("command:remote:Command", "backup321-nas-sync-known-hosts").inputs.create),
  ).toContain("ssh-keyscan -T 15 -t ed25519 -p 22 -- '192.168.10.30'");
});

test("the NAS commands run as the NAS user, stamp their ownership in its home, and delete only what they still own", () => {
  const owners = "/home/backup/.backup321/owners";
  const auth = one("command:remote:Command", "backup321-nas-sync-authorized-key");
  const authKey = "authorized-key:/home/backup/.ssh/authorized_keys:db-srv";
  const authStamp = ownerStampFile(owners, authKey);
  expect(auth.inputs.create).toBe(
    [
      "# backup321 host generation 1",
      claimCommand(
        installAuthorizedKeyCommand("/home/backup/.ssh/authorized_keys", nasKeyComment("db-srv")),
        authStamp,
        `backup321-nas-sync-authorized-key ${authKey}`,
      ),
    ].join("\n"),
  );
  expect(auth.inputs.delete).toBe(
    releaseCommand(
      removeAuthorizedKeyCommand("/home/backup/.ssh/authorized_keys", nasKeyComment("db-srv")),
      authStamp,
      `backup321-nas-sync-authorized-key ${authKey}`,
    ),
  );
  // Its only trigger is the line it owns (the file and the source host): another file or source
  // host removes the old line first. A new key line (db-srv's key regenerated) is stdin only: an
  // update of the line, not a replacement.
  expect(auth.inputs.triggers).toEqual([authKey]);
  expect(auth.options.deleteBeforeReplace).toBe(true);
  expect(auth.inputs.update).toBe(auth.inputs.create);
  const keyBody = MOCK_PUBLIC_KEY.split(" ")[1];
  expect(String(auth.inputs.stdin)).toContain(keyBody);
  expect(
    JSON.stringify([auth.inputs.triggers, auth.inputs.create, auth.inputs.delete]),
  ).not.toContain(keyBody);
  const receiver = one("command:remote:Command", "backup321-nas-sync-receiver");
  const script = "/home/backup/.backup321/nas-receive.sh";
  expect(receiver.inputs.delete).toBe(
    releaseCommand(
      removeFileCommand(script),
      ownerStampFile(owners, script),
      `backup321-nas-sync-receiver ${script}`,
    ),
  );
  // another receiver path removes the old script first; a new script is stdin only (an update)
  expect(receiver.inputs.triggers).toEqual([script]);
  expect(receiver.options.deleteBeforeReplace).toBe(true);
  expect(receiver.inputs.update).toBe(receiver.inputs.create);
  // on db-srv (root), the scanned known_hosts file is owned from the host's state directory
  const known = one("command:remote:Command", "backup321-nas-sync-known-hosts");
  const file = "/etc/backup321/nas-sync.known_hosts";
  expect(known.inputs.delete).toBe(
    releaseCommand(
      removeFileCommand(file),
      ownerStampFile("/var/lib/backup321/owners", file),
      `backup321-nas-sync-known-hosts ${file}`,
    ),
  );
  // another known_hosts path removes the old file first
  expect(known.inputs.triggers).toEqual([file]);
  expect(known.options.deleteBeforeReplace).toBe(true);
});

test("the binlog stream's host (docker-srv) uploads its sealed files itself: no fulls, no shipped binlogs there", () => {
  const upload = one("backup321:offsite:DumpUpload", "backup321-offsite-upload-stream");
  expect(upload.parent).toBe(one("backup321:site:BackupSite", "backup321").urn);
  expect(ownVars("offsite-upload", "docker-srv")).toEqual([
    "OFFSITE_BINLOG_BASENAME='mysql-bin'",
    "OFFSITE_BUCKET='atlastech-backups'",
    "OFFSITE_CREDENTIALS='/etc/backup321/secrets/offsite-upload-aws'",
    "OFFSITE_LOCK_DAYS='35'",
    "OFFSITE_LOCK_MODE='GOVERNANCE'",
    "OFFSITE_PREFIX='database/'",
    "OFFSITE_REGION='eu-west-3'",
    "OFFSITE_SSE='AES256'",
    "OFFSITE_STREAM_DIR='/backups/binlog-stream'",
  ]);
  // the same daily schedule as the database host's upload, and the same writer's key, secret
  expect(fileAt("/etc/cron.d/backup321-offsite-upload", "docker-srv")).toContain(
    "30 5 * * * root '/usr/local/lib/backup321/b321-cron.sh' 'offsite-upload'",
  );
  const creds = fileAt("/etc/backup321/secrets/offsite-upload-aws", "docker-srv");
  expect(isSecretValue(creds)).toBe(true);
  expect(reveal(creds)).toContain("backup321-offsite-dumps-key");
  // the database host's upload does not send the stream's files (they are not there)
  expect(ownVars("offsite-upload", "db-srv").filter((l) => l.includes("STREAM"))).toEqual([]);
});

test("the binlog stream's host syncs its sealed files to a NAS path of its own, with its own key and the NAS's one receiver", () => {
  expect(ownVars("nas-sync", "docker-srv")).toEqual([
    "NAS_ADDRESS='192.168.10.30'",
    "NAS_EXCLUDES='/backups/binlog-stream/live/ .stream.err *.b321-partial'",
    "NAS_KEY='/etc/backup321/secrets/nas-sync_ed25519'",
    "NAS_KNOWN_HOSTS='/etc/backup321/nas-sync.known_hosts'",
    "NAS_PATH='/backups/atlastech/binlog-stream'",
    "NAS_PORT='22'",
    "NAS_SOURCES='/backups/binlog-stream'",
    "NAS_USER='backup'",
  ]);
  const key = one("command:remote:Command", "backup321-nas-sync-stream-key");
  expect((reveal(key.inputs.connection) as { host: string }).host).toBe("192.168.10.20");
  expect(key.inputs.delete).toBeUndefined();
  const auth = one("command:remote:Command", "backup321-nas-sync-stream-authorized-key");
  expect(auth.inputs.stdin).toBe(
    `restrict,command="/home/backup/.backup321/nas-receive.sh /backups/atlastech/binlog-stream 168 2880 30" ${MOCK_PUBLIC_KEY.split(" ").slice(0, 2).join(" ")} backup321-nas-sync@docker-srv\n`,
  );
  // no receiver of its own: the database host's sync installs it, and this key line waits for it
  expect(recorded.filter((r) => r.name === "backup321-nas-sync-stream-receiver")).toEqual([]);
  expect(auth.options.dependsOn).toContain(
    one("command:remote:Command", "backup321-nas-sync-receiver").urn,
  );
  // no drill of its own: the NAS drill checks the database host's snapshots (fulls and binlogs)
  expect(recorded.filter((r) => r.name.startsWith("backup321-nas-sync-stream-drill"))).toEqual([]);
});
