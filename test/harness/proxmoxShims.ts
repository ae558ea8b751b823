// Recording stand-ins for qm, pct, pvesh and proxmox-backup-manager (test/shims/proxmox-shim.sh),
// installed under a sandbox directory: they keep state as JSON and log every call as an argv array.
import * as fs from "node:fs";
import * as path from "node:path";

export const SHIM_TOOLS = [
  "qm",
  "pct",
  "pvesh",
  "pvesm",
  "qmrestore",
  "proxmox-backup-manager",
] as const;

export interface ProxmoxShims {
  readonly root: string;
  /** Directory to put first on PATH. */
  readonly bin: string;
  /** Every call since the last clear, as argv arrays (tool first). */
  calls(): string[][];
  clearCalls(): void;
  /** PBS's configuration as the shim holds it. */
  pbsState(): Record<string, unknown[]>;
  /** Makes `verify-job run <id>` fail as a verify that finds a bad chunk does, or succeed again. */
  failVerify(job: string, fail: boolean): void;
  /** Moves every task of PBS's task list back in time by that many seconds (time passing). */
  ageTasks(seconds: number): void;
  /** Declares a guest (qemu or lxc) with existing snapshots. */
  addGuest(kind: "qemu" | "lxc", id: number, snapshots?: readonly string[]): void;
  /** Snapshot names of a guest, in creation order. */
  snapshots(kind: "qemu" | "lxc", id: number): string[];
  /** Makes `<tool> snapshot <id>` fail with the message, or succeed again (undefined). */
  failSnapshot(tool: "qm" | "pct", id: number, message: string | undefined): void;
  /** Locks a guest (e.g. "backup", as vzdump does), or unlocks it (undefined). */
  lockGuest(kind: "qemu" | "lxc", id: number, lock: string | undefined): void;
  /** Puts a guest on storage that can or cannot take snapshots. */
  snapshotFeature(kind: "qemu" | "lxc", id: number, available: boolean): void;
  /** Starts or stops a guest. */
  setRunning(kind: "qemu" | "lxc", id: number, running: boolean): void;
  isRunning(kind: "qemu" | "lxc", id: number): boolean;
  /** A vzdump backup in a PVE storage (pvesm list), e.g. pbs-usb-ssd:backup/vm/100/<time>. */
  addBackup(volid: string, vmid: number): void;
  /** What happened to a guest: the snapshot it was rolled back to, the archive it was restored from. */
  rolledBackTo(kind: "qemu" | "lxc", id: number): string | undefined;
  restoredFrom(kind: "qemu" | "lxc", id: number): string | undefined;
}

export function installProxmoxShims(root: string): ProxmoxShims {
  const bin = path.join(root, "bin");
  const state = path.join(root, "state");
  const log = path.join(root, "calls.log");
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(path.join(state, "guests"), { recursive: true });
  const shim = path.resolve(__dirname, "../shims/proxmox-shim.sh");
  for (const t of SHIM_TOOLS) fs.symlinkSync(shim, path.join(bin, t));
  const guest = (kind: string, id: number) => path.join(state, "guests", `${kind}-${id}.json`);
  return {
    root,
    bin,
    calls: () =>
      fs.existsSync(log)
        ? fs
            .readFileSync(log, "utf8")
            .split("\n")
            .filter((l) => l !== "")
            .map((l) => JSON.parse(l) as string[])
        : [],
    clearCalls: () => fs.rmSync(log, { force: true }),
    pbsState: () => JSON.parse(fs.readFileSync(path.join(state, "pbs.json"), "utf8")),
    failVerify: (job, fail) => {
      const f = path.join(state, `fail-verify-${job}`);
      if (fail) fs.writeFileSync(f, "");
      else fs.rmSync(f, { force: true });
    },
    ageTasks: (seconds) => {
      const f = path.join(state, "tasks.json");
      const tasks = (fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, "utf8")) : []) as Record<
        string,
        number
      >[];
      fs.writeFileSync(
        f,
        JSON.stringify(
          tasks.map((t) => ({
            ...t,
            starttime: t.starttime - seconds,
            ...(t.endtime === undefined ? {} : { endtime: t.endtime - seconds }),
          })),
        ),
      );
    },
    addGuest: (kind, id, snapshots = []) =>
      fs.writeFileSync(
        guest(kind, id),
        JSON.stringify(snapshots.map((name, i) => ({ name, description: "", snaptime: i + 1 }))),
      ),
    snapshots: (kind, id) =>
      (JSON.parse(fs.readFileSync(guest(kind, id), "utf8")) as { name: string }[]).map(
        (s) => s.name,
      ),
    failSnapshot: (tool, id, message) => {
      const f = path.join(state, `fail-${tool}-${id}`);
      if (message === undefined) fs.rmSync(f, { force: true });
      else fs.writeFileSync(f, message);
    },
    lockGuest: (kind, id, lock) => {
      const f = guest(kind, id).replace(/\.json$/, ".lock");
      if (lock === undefined) fs.rmSync(f, { force: true });
      else fs.writeFileSync(f, lock);
    },
    setRunning: (kind, id, running) => {
      const f = guest(kind, id).replace(/\.json$/, ".running");
      if (running) fs.writeFileSync(f, "");
      else fs.rmSync(f, { force: true });
    },
    isRunning: (kind, id) => fs.existsSync(guest(kind, id).replace(/\.json$/, ".running")),
    addBackup: (volid, vmid) => {
      const f = path.join(state, "storage.json");
      const all = fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, "utf8")) as unknown[]) : [];
      const format = volid.includes("/ct/") ? "pbs-ct" : "pbs-vm";
      fs.writeFileSync(f, JSON.stringify([...all, { volid, vmid, format, size: 34359738368 }]));
    },
    rolledBackTo: (kind, id) => readMark(guest(kind, id).replace(/\.json$/, ".rolledback")),
    restoredFrom: (kind, id) => readMark(guest(kind, id).replace(/\.json$/, ".restored")),
    snapshotFeature: (kind, id, available) => {
      const f = guest(kind, id).replace(/\.json$/, ".nosnap");
      if (available) fs.rmSync(f, { force: true });
      else fs.writeFileSync(f, "");
    },
  };
}

const readMark = (f: string): string | undefined =>
  fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim() : undefined;
