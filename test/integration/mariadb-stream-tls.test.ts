// The binlog stream over TLS, against a real MariaDB 10.11 with a certificate its own CA signed:
// with mariadb.stream.sslCa the stream requires TLS and verifies the server's certificate (the CA
// and the address), streams and seals over it, and refuses a server whose certificate another CA
// signed: a failed run with an alert, nothing streamed.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startMariaDb, type MariaDbServer } from "../harness/mariadb";
import { run, runOk } from "../harness/proc";
import { streamHost, streamWhile } from "../harness/stream";
import { makeCertificate } from "../harness/tls";
import { jobFiles } from "../../components/host/render";
import { STREAM_JOB } from "../../components/mariadb/render";

let server: MariaDbServer;
let root: string;
let keyFile: string;
let ca: string;
let rogueCa: string;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "b321-stream-tls-"));
  fs.chmodSync(root, 0o755);
  const certs = path.join(root, "certs");
  fs.mkdirSync(certs);
  ca = makeCertificate(certs, "site-ca").cert;
  rogueCa = makeCertificate(certs, "rogue-ca").cert;
  // the server's certificate, for the address the stream connects to
  const { key, cert } = makeCertificate(certs, "server", {
    cn: "127.0.0.1",
    issuer: ca,
    localhost: true,
  });
  runOk("chown", ["-R", "mysql:", certs]);
  server = await startMariaDb({
    parent: root,
    extraArgs: [`--ssl-ca=${ca}`, `--ssl-cert=${cert}`, `--ssl-key=${key}`],
  });
  keyFile = path.join(root, "mariadb-backup.key");
  fs.writeFileSync(keyFile, runOk("openssl", ["rand", "-base64", "32"]).stdout, { mode: 0o600 });
}, 300_000);

afterAll(async () => {
  await server?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

const statusOf = (host: ReturnType<typeof streamHost>) =>
  JSON.parse(fs.readFileSync(jobFiles(host.paths, STREAM_JOB).statusFile, "utf8"));

test("with the site's CA, the stream verifies the server's certificate and streams over TLS", async () => {
  const host = streamHost(server, {
    lib: path.join(root, "lib"),
    keyFile,
    root: path.join(root, "trusted"),
    sslCa: ca,
  });
  const r = await streamWhile(server, host, () => {
    server.sql("CREATE DATABASE tls_db; CREATE TABLE tls_db.t (id INT PRIMARY KEY) ENGINE=InnoDB");
    server.sql("INSERT INTO tls_db.t SELECT seq FROM seq_1_to_1000", "tls_db");
    server.sql("FLUSH BINARY LOGS");
  });
  expect(r.stderr).not.toMatch(/offers no TLS/);
  expect(statusOf(host).tls).toMatch(/^TLS_|^ECDHE-/);
  expect(host.sealed().length).toBeGreaterThanOrEqual(1);
}, 300_000);

test("a server whose certificate another CA signed is refused: a failed run with an alert, nothing streamed", () => {
  const alerts = path.join(root, "rogue-alerts.log");
  const hook = path.join(root, "rogue-alert.sh");
  fs.writeFileSync(hook, `#!/bin/sh\necho "$@" >> '${alerts}'\n`, { mode: 0o755 });
  const host = streamHost(server, {
    lib: path.join(root, "lib"),
    keyFile,
    root: path.join(root, "rogue"),
    sslCa: rogueCa,
    alert: hook,
  });
  const r = run(path.join(host.paths.lib, "mariadb-stream.sh"), [host.env], { timeoutMs: 60_000 });
  expect(r.code).not.toBe(0);
  const status = statusOf(host);
  expect(status.result).toBe("failed");
  expect(String(status.error)).toMatch(
    /cannot reach the primary at 127\.0\.0\.1:\d+ as the stream user: .*(certificate|SSL|TLS)/i,
  );
  expect(fs.readFileSync(alerts, "utf8")).toContain("mariadb-stream failed");
  expect(host.live()).toEqual([]);
  expect(host.sealed()).toEqual([]);
});
