// The NAS of the integration suites that sync to it: its directories in the rig's sandbox, reached
// as root through the rig's sshd (127.0.0.1), and the NasSync that sends a source host's backups to
// it. One place, so the NAS sync, its drills and the disaster-recovery drill test the same NAS.
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { Host } from "../../components/host";
import type { NasSync, NasSyncArgs } from "../../components/offsite";
import type { Sandbox } from "./sandbox";
import type { Sshd } from "./sshd";

export interface SandboxNas {
  /** Where the snapshots go (NAS_PATH). */
  readonly root: string;
  /** The NAS account's home: the receiver and its owner stamps live below it. */
  readonly home: string;
  /** The forced command of every NAS key. */
  readonly receiver: string;
  /** The lines the receiver refused so far (its .refused log). */
  refused(): string[];
}

/** The NAS's directories in a sandbox (nothing created: the receiver's install makes them). */
export function sandboxNas(box: Sandbox): SandboxNas {
  const root = box.at("nas/backups/atlastech");
  const home = box.at("nas/home");
  const log = `${root}/.refused`;
  return {
    root,
    home,
    receiver: `${home}/.backup321/nas-receive.sh`,
    refused: () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : []),
  };
}

/** The NAS as a host of the program: the rig's sshd, with no backup321 library installed on it. */
export async function nasHost(box: Sandbox, sshd: Sshd): Promise<Host> {
  const { Host } = await import("../../components/host");
  return new Host("nas", {
    hostName: "nas",
    address: "127.0.0.1",
    port: sshd.port,
    privateKey: pulumi.secret(sshd.privateKey),
    paths: box.paths,
    installLibrary: false,
  });
}

/**
 * The NasSync "sync" (or `opts.name`) from `source` to the sandbox NAS, with no age or interval
 * limit; the NAS host is made here unless `opts.nas` gives it (a second sync to the same NAS).
 */
export async function nasSync(
  nas: SandboxNas,
  box: Sandbox,
  sshd: Sshd,
  source: Host,
  args: Pick<NasSyncArgs, "sources" | "keep"> & Partial<NasSyncArgs>,
  opts: { name?: string; nas?: Host } = {},
): Promise<{ nas: Host; sync: NasSync }> {
  const { NasSync } = await import("../../components/offsite");
  const host = opts.nas ?? (await nasHost(box, sshd));
  const sync = new NasSync(opts.name ?? "sync", {
    host: source,
    nas: host,
    nasAddress: "127.0.0.1",
    nasPort: sshd.port,
    nasUser: "root",
    nasHostKey: fs.readFileSync(path.join(sshd.dir, "host_ed25519.pub"), "utf8"),
    path: nas.root,
    minAgeMinutes: 0,
    minIntervalMinutes: 0,
    schedule: "45 * * * *",
    nasHome: nas.home,
    authorizedKeysFile: path.join(sshd.dir, "authorized_keys"),
    ...args,
  });
  return { nas: host, sync };
}
