// An S3 API on loopback for integration tests: s3rver over TLS with a self-signed certificate for
// 127.0.0.1 (restic's S3 client sends aws-chunked bodies on plain http, which s3rver does not
// decode; over https they are fine). Clients trust the certificate through caFile (--cacert).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { makeCertificate } from "./tls";
import { freePort, run, waitFor } from "./proc";

export interface S3rverServer {
  /** https://127.0.0.1:<port> */
  readonly endpoint: string;
  /** The self-signed certificate (PEM) clients must trust. */
  readonly caFile: string;
  /** Where s3rver keeps the objects: <directory>/<bucket>/... */
  readonly directory: string;
  readonly bucket: string;
  /** s3rver's built-in credentials. */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  stop(): Promise<void>;
}

export interface S3rverOptions {
  /** Bucket created at start. Defaults to backup321-test. */
  readonly bucket?: string;
}

// s3rver runs in its own node process: tests call restic synchronously (spawnSync), which would
// block an in-process server's event loop.
const MAIN = `
const fs = require("node:fs");
const S3rver = require(process.env.S3RVER_MODULE);
const o = JSON.parse(process.env.S3RVER_OPTIONS);
const server = new S3rver({ ...o, key: fs.readFileSync(o.key), cert: fs.readFileSync(o.cert) });
server.run().then(() => process.stdout.write("ready\\n"));
process.on("SIGTERM", () => server.close().then(() => process.exit(0)));
`;

export async function startS3rver(opts: S3rverOptions = {}): Promise<S3rverServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-s3rver-"));
  const { key, cert } = makeCertificate(dir, "s3rver", { cn: "127.0.0.1", localhost: true });
  const directory = path.join(dir, "data");
  fs.mkdirSync(directory);
  const bucket = opts.bucket ?? "backup321-test";
  const port = await freePort();
  const proc = spawn(process.execPath, ["-e", MAIN], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      S3RVER_MODULE: require.resolve("s3rver"),
      S3RVER_OPTIONS: JSON.stringify({
        port,
        address: "127.0.0.1",
        silent: true,
        directory,
        key,
        cert,
        configureBuckets: [{ name: bucket }],
      }),
    },
  });
  let log = "";
  proc.stdout?.on("data", (d) => (log += d));
  proc.stderr?.on("data", (d) => (log += d));
  const endpoint = `https://127.0.0.1:${port}`;
  await waitFor(
    `s3rver on ${endpoint} (${log})`,
    () =>
      proc.exitCode === null &&
      run("curl", ["-s", "-o", "/dev/null", "--cacert", cert, `${endpoint}/`]).code === 0,
    20_000,
  );
  return {
    endpoint,
    caFile: cert,
    directory,
    bucket,
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once("exit", r)));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
