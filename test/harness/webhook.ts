// A webhook receiver on loopback for alert tests: a node http server in its own process (tests run
// the jobs with spawnSync, which would block an in-process server while curl waits for its
// answer). Every POST body is appended as one line to a file the test reads.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { freePort, run, waitFor } from "./proc";

export interface WebhookAlert {
  readonly job: string;
  readonly result: string;
  readonly host: string;
  readonly message: string;
  /** Who to call (alert.env's ALERT_CONTACTS). */
  readonly contacts: string;
}

export interface WebhookReceiver {
  /** http://127.0.0.1:<port>/<topic> */
  readonly url: string;
  /** The JSON bodies received so far, oldest first. */
  received(): WebhookAlert[];
  /** Forgets what was received. */
  clear(): void;
  stop(): Promise<void>;
}

const MAIN = `
const fs = require("node:fs");
const http = require("node:http");
const log = process.env.WEBHOOK_LOG;
http
  .createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      if (req.method === "POST") fs.appendFileSync(log, body.replace(/\\n/g, " ") + "\\n");
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok\\n");
    });
  })
  .listen(Number(process.env.WEBHOOK_PORT), "127.0.0.1", () => process.stdout.write("ready\\n"));
process.on("SIGTERM", () => process.exit(0));
`;

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-webhook-"));
  const log = path.join(dir, "received.jsonl");
  fs.writeFileSync(log, "");
  const port = await freePort();
  const proc = spawn(process.execPath, ["-e", MAIN], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WEBHOOK_LOG: log, WEBHOOK_PORT: String(port) },
  });
  const url = `http://127.0.0.1:${port}/backup321-alerts`;
  await waitFor(
    `webhook receiver on ${url}`,
    () => proc.exitCode === null && run("curl", ["-fs", "-o", "/dev/null", url]).code === 0,
    20_000,
  );
  return {
    url,
    received: () =>
      fs
        .readFileSync(log, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as WebhookAlert),
    clear: () => fs.writeFileSync(log, ""),
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once("exit", r)));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
