// An S3 API on 127.0.0.1 for integration tests: the npm package s3rver over TLS with a throwaway
// self-signed certificate (SAN IP:127.0.0.1), so clients verify it with --ca-bundle / --cacert
// (restic's S3 client sends aws-chunked bodies on plain http, which s3rver does not decode).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
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

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (opts: Record<string, unknown>) => S3rverInstance;

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
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require("s3rver") as S3rverClass;
  const server = new S3rver({
    port: 0,
    address: "127.0.0.1",
    silent: true,
    directory,
    key: fs.readFileSync(keyFile),
    cert: fs.readFileSync(caFile),
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
  });
  const { port } = await server.run();
  return {
    endpoint: `https://127.0.0.1:${port}`,
    caFile,
    directory,
    stop: async () => {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
