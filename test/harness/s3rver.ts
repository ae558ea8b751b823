// An S3 API on 127.0.0.1 for integration tests: the npm package s3rver over TLS with a throwaway
// self-signed certificate (SAN IP:127.0.0.1), so clients verify it with --ca-bundle / --cacert
// (restic's S3 client sends aws-chunked bodies on plain http, which s3rver does not decode).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { runOk } from "./proc";

export interface S3Server {
  /** https://127.0.0.1:<port> */
  readonly endpoint: string;
  /** PEM of the self-signed certificate: what a client trusts. */
  readonly caFile: string;
  /** Where s3rver keeps the buckets on disk. */
  readonly directory: string;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  /** Buckets created at start. Defaults to none. */
  readonly buckets?: readonly string[];
}

// s3rver runs in its own node process: tests call the aws CLI synchronously (spawnSync), which
// would block an in-process server and deadlock.
const SERVER = `
const fs = require("node:fs");
const S3rver = require(process.env.S3RVER_MODULE);
const o = JSON.parse(process.env.S3RVER_OPTIONS);
new S3rver({
  port: 0,
  address: "127.0.0.1",
  silent: true,
  directory: o.directory,
  key: fs.readFileSync(o.keyFile),
  cert: fs.readFileSync(o.certFile),
  configureBuckets: o.buckets.map((name) => ({ name })),
})
  .run()
  .then((a) => process.stdout.write(JSON.stringify({ port: a.port }) + "\\n"))
  .catch((e) => { console.error(e); process.exit(1); });
`;

export async function startS3rver(opts: S3ServerOptions = {}): Promise<S3Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-s3rver-"));
  const directory = path.join(dir, "data");
  fs.mkdirSync(directory);
  const keyFile = path.join(dir, "key.pem");
  const caFile = path.join(dir, "cert.pem");
  runOk("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-keyout",
    keyFile,
    "-out",
    caFile,
  ]);
  const child: ChildProcess = spawn(process.execPath, ["-e", SERVER], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      S3RVER_MODULE: require.resolve("s3rver"),
      S3RVER_OPTIONS: JSON.stringify({
        directory,
        keyFile,
        certFile: caFile,
        buckets: opts.buckets ?? [],
      }),
    },
  });
  let err = "";
  child.stderr?.on("data", (d) => (err += d));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${err}`)), 30_000);
    child.stdout?.on("data", (d) => {
      out += d;
      const line = out.split("\n")[0];
      if (out.includes("\n")) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with ${code}: ${err}`));
    });
  });
  return {
    endpoint: `https://127.0.0.1:${port}`,
    caFile,
    directory,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
