// OffsiteBucket alone: Object Lock and KMS variants, and the writers' keys as secret outputs.
import * as pulumi from "@pulumi/pulumi";
import { bucket as bucketSchema } from "../../stacks/model/offsite";
import { isSecretValue, runMocked, type Registration } from "../harness/program";
import type { OffsiteBucket } from "../../components/offsite";

let recorded: Registration[];
let locked: OffsiteBucket;
let dumpsOnly: OffsiteBucket;
let unlocked: OffsiteBucket;

async function unwrap<T>(o: pulumi.Output<T>): Promise<{ value: T; secret: boolean }> {
  const value = await new Promise<T>((resolve) => o.apply((v) => resolve(v)));
  return { value, secret: await pulumi.isSecret(o) };
}
const find = (name: string) => recorded.find((r) => r.name === name);

beforeAll(async () => {
  recorded = await runMocked(async () => {
    const { OffsiteBucket } = await import("../../components/offsite");
    locked = new OffsiteBucket("locked", {
      bucket: bucketSchema.parse({
        name: "site-offsite-locked",
        objectLock: { mode: "COMPLIANCE", days: 28 },
        kmsKeyArn: "arn:aws:kms:eu-west-3:123456789012:key/abcd",
      }),
    });
    dumpsOnly = new OffsiteBucket("plain", {
      bucket: bucketSchema.parse({ name: "site-offsite-plain" }),
      resticWriter: false,
    });
    unlocked = new OffsiteBucket("unlocked", {
      bucket: bucketSchema.parse({ name: "site-offsite-unlocked", objectLock: false }),
    });
  });
  expect(unlocked.dumpWriter).toBeDefined();
});

test("Object Lock is on by default, enabled without a default retention; false leaves it off", () => {
  const versioning = (b: string) => find(`${b}-versioning`)!.urn;
  for (const b of ["locked", "plain"]) {
    const bucket = find(`${b}-bucket`)!;
    expect(bucket.inputs).toMatchObject({ objectLockEnabled: true });
    expect(bucket.options.protect).toBe(true);
    // the field forces a replacement, refused on the protected bucket: an existing bucket gets
    // Object Lock from the configuration below instead
    expect(bucket.options.ignoreChanges).toEqual(["objectLockEnabled"]);
    const lock = find(`${b}-object-lock`)!;
    expect(lock.type).toBe("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration");
    // no rule: a bucket default retention makes restic's PutObject fail (restic issue 2202); the
    // uploader locks each dump object itself
    expect(lock.inputs).toEqual({ bucket: `site-offsite-${b}`, objectLockEnabled: "Enabled" });
    expect(lock.options.dependsOn).toContain(versioning(b));
  }
  expect(find("unlocked-object-lock")).toBeUndefined();
  expect(find("unlocked-bucket")?.inputs).toMatchObject({ objectLockEnabled: false });
  expect(find("unlocked-bucket")?.options.ignoreChanges).toEqual(["objectLockEnabled"]);
});

test("the dump writer may set and read retention on its prefix, never bypass it or delete", () => {
  const policy = (b: string) =>
    JSON.parse(String(find(`${b}-dumps-policy`)?.inputs.policy)) as {
      Statement: { Sid: string; Action: string | string[]; Resource: string | string[] }[];
    };
  expect(policy("locked").Statement).toEqual([
    {
      Sid: "WriteAndReadBackDumps",
      Effect: "Allow",
      Action: [
        "s3:AbortMultipartUpload",
        "s3:GetObject",
        "s3:GetObjectRetention",
        "s3:PutObject",
        "s3:PutObjectRetention",
        "s3:RestoreObject",
      ],
      Resource: "arn:aws:s3:::site-offsite-locked/database/*",
    },
    {
      Sid: "ListOwnPrefix",
      Effect: "Allow",
      Action: "s3:ListBucket",
      Resource: "arn:aws:s3:::site-offsite-locked",
      Condition: { StringLike: { "s3:prefix": ["database/*"] } },
    },
    KMS_THROUGH_S3,
  ]);
  for (const b of ["locked", "plain", "unlocked"]) {
    const text = JSON.stringify(policy(b));
    expect(text).not.toMatch(/Bypass|Delete|s3:\*|PutObjectLegalHold|PutBucketObjectLock/);
  }
  // without Object Lock the writer gets no retention rights
  expect(JSON.stringify(policy("unlocked"))).not.toContain("Retention");
  expect(JSON.stringify(find("locked-restic-policy")?.inputs.policy)).not.toContain("Retention");
});

const KMS_THROUGH_S3 = {
  Sid: "BucketKmsKeyThroughS3",
  Effect: "Allow",
  Action: ["kms:Decrypt", "kms:GenerateDataKey"],
  Resource: "arn:aws:kms:eu-west-3:123456789012:key/abcd",
  Condition: { StringEquals: { "kms:ViaService": "s3.eu-west-3.amazonaws.com" } },
};

test("with SSE-KMS both writers may use the key, through S3 in the bucket's region only", () => {
  const statements = (name: string) =>
    (JSON.parse(String(find(name)?.inputs.policy)) as { Statement: { Sid: string }[] }).Statement;
  expect(statements("locked-dumps-policy")).toContainEqual(KMS_THROUGH_S3);
  expect(statements("locked-restic-policy")).toContainEqual(KMS_THROUGH_S3);
  expect(JSON.stringify(find("plain-dumps-policy")?.inputs.policy)).not.toContain("kms:");
});

test("a KMS key makes default encryption aws:kms with a bucket key", () => {
  expect(find("locked-encryption")?.inputs).toEqual({
    bucket: "site-offsite-locked",
    rules: [
      {
        applyServerSideEncryptionByDefault: {
          sseAlgorithm: "aws:kms",
          kmsMasterKeyId: "arn:aws:kms:eu-west-3:123456789012:key/abcd",
        },
        bucketKeyEnabled: true,
      },
    ],
  });
});

test("the default lifecycle archives the dump prefix after 30 days", () => {
  const rules = find("plain-lifecycle")?.inputs.rules as { id: string; transitions?: unknown }[];
  expect(rules.map((r) => r.id)).toEqual([
    "dumps",
    "noncurrent-versions",
    "abort-incomplete-multipart",
  ]);
  expect(rules[0].transitions).toEqual([{ days: 30, storageClass: "GLACIER" }]);
});

test("writers are created only when asked, and their secret keys are secret outputs", async () => {
  expect(find("plain-restic-user")).toBeUndefined();
  expect(dumpsOnly.resticWriter).toBeUndefined();
  expect(find("plain-dumps-user")).toBeDefined();
  const secret = await unwrap(locked.resticWriter!.secretAccessKey);
  expect(secret).toEqual({ value: "mock-aws-secret-locked-restic-key", secret: true });
  const id = await unwrap(locked.resticWriter!.accessKeyId);
  expect(id.value).toBe("mocked::aws:iam/accessKey:AccessKey::locked-restic-key");
  expect(isSecretValue(find("locked-restic-key")?.inputs.user)).toBe(false);
});
