// npm run bench -- proxmox: wall time of the Proxmox/PBS host scripts against the recording shims
// (the shims' own cost included, so these are upper bounds): the PBS setup on a new and on a
// configured datastore, and snapshot runs with rotation over many guests.
import * as fs from "node:fs";
import * as path from "node:path";
import { makeSandbox } from "../harness/sandbox";
import { installProxmoxShims } from "../harness/proxmoxShims";
import { jobEnv, renderEnvFile } from "../../components/host/render";
import { datastoreEnv } from "../../components/pbs/render";
import { runOk } from "../harness/proc";

const GUESTS = 20;
const RUNS = 5;
const KEEP = 3;

function timed(label: string, f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(`${label.padEnd(52)} ${ms.toFixed(0).padStart(6)} ms`);
  return ms;
}

export async function run(): Promise<void> {
  const box = makeSandbox("b321-bench-pve-");
  try {
    const shims = installProxmoxShims(box.at("tools"));
    const scripts = path.join(__dirname, "../../components");
    const lib = box.paths.lib;
    fs.mkdirSync(lib, { recursive: true });
    for (const f of [
      "host/scripts/common.sh",
      "pbs/scripts/pbs-lib.sh",
      "pbs/scripts/pbs-setup.sh",
      "proxmox/scripts/pve-snapshots.sh",
    ])
      fs.copyFileSync(path.join(scripts, f), path.join(lib, path.basename(f)));
    const env = box.at("pbs.env");
    fs.writeFileSync(
      env,
      renderEnvFile(
        "bench",
        datastoreEnv(
          { name: "bench", path: box.at("store/pbs"), retention: { keepDaily: 5, keepWeekly: 4 } },
          {
            prefix: `env PATH=${shims.bin}:/usr/bin:/bin`,
            user: "bench@pbs",
            tokenFile: box.at("secrets/token"),
            fstab: box.at("fstab"),
          },
        ),
      ),
    );
    const setup = (n: number) => {
      shims.clearCalls();
      runOk("bash", [path.join(lib, "pbs-setup.sh"), "apply", env]);
      return `${shims.calls().length} PBS calls, run ${n}`;
    };
    let calls = "";
    timed("PBS setup, new datastore", () => (calls = setup(1)));
    console.log(`  ${calls}`);
    timed("PBS setup, already configured (no change)", () => (calls = setup(2)));
    console.log(`  ${calls}`);

    const snapEnv = box.at("snap.env");
    const ids = Array.from({ length: GUESTS }, (_, i) => 100 + i);
    ids.forEach((id) => shims.addGuest("qemu", id, ["before-upgrade"]));
    fs.writeFileSync(
      snapEnv,
      renderEnvFile("bench", {
        ...jobEnv({ ...box.paths, lib }, "pve-snapshots"),
        SNAP_NODE: "pve",
        SNAP_VMS: ids.join(" "),
        SNAP_CONTAINERS: "",
        SNAP_KEEP: KEEP,
      }),
    );
    const envs = {
      ...process.env,
      PATH: `${shims.bin}:${process.env.PATH}`,
      B321_ALERT: "/bin/true",
    };
    let total = 0;
    for (let r = 1; r <= RUNS; r++) {
      runOk("sleep", ["1.05"]);
      total += timed(`snapshot run ${r}: ${GUESTS} VMs, keep ${KEEP}`, () =>
        runOk("bash", [path.join(lib, "pve-snapshots.sh"), snapEnv], { env: envs }),
      );
    }
    const kept = shims.snapshots("qemu", 100).length;
    console.log(
      `  per guest per run: ${(total / RUNS / GUESTS).toFixed(1)} ms; guest 100 holds ${kept} snapshots (${KEEP} own + 1 foreign)`,
    );
  } finally {
    box.remove();
  }
}
