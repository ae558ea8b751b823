// OffsiteBucket alone: Object Lock and KMS variants, and the writers' keys as secret outputs.
import * as pulumi from "@pulumi/pulumi";
import { bucket as bucketSchema } from "../../stacks/model/offsite";
import { isSecretValue, runMocked, type Registration } from "../harness/program";
import type { OffsiteBucket } from "../../components/offsite";

let recorded: Registration[];
let locked: OffsiteBucket;
let dumpsOnly: OffsiteBucket;

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
  });
});

test("Object Lock is enabled at creation and gets its default retention", () => {
  expect(find("locked-bucket")?.inputs).toMatchObject({ objectLockEnabled: true });
  expect(find("locked-object-lock")?.inputs).toEqual({
    bucket: "site-offsite-locked",
    objectLockEnabled: "Enabled",
    rule: { defaultRetention: { mode: "COMPLIANCE", days: 28 } },
  });
  expect(find("plain-object-lock")).toBeUndefined();
  expect(find("plain-bucket")?.inputs).toMatchObject({ objectLockEnabled: false });
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
