// A sandbox root standing in for a host's file system in integration tests.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hostPaths, type HostPaths } from "../../stacks/model/hosts";
import { expectFileContracts } from "./contracts";

export interface Sandbox {
  readonly root: string;
  readonly paths: HostPaths;
  /** Absolute path of a file under the sandbox root. */
  at(p: string): string;
  /** Deletes the sandbox, then fails when a status, registry or manifest file in it broke its contract. */
  remove(): void;
}

/** A host's default layout under another root; `moved` places some directories elsewhere. */
export function rootedPaths(root: string, moved: Partial<HostPaths> = {}): HostPaths {
  return hostPaths.parse({
    etc: `${root}/etc/backup321`,
    lib: `${root}/usr/local/lib/backup321`,
    sbin: `${root}/usr/local/sbin`,
    state: `${root}/var/lib/backup321`,
    cron: `${root}/etc/cron.d`,
    ...moved,
  });
}

/** A sandbox root; `moved` places some of the host's directories elsewhere (paths under the root). */
export function makeSandbox(
  prefix = "b321-host-",
  moved: Partial<Record<keyof HostPaths, string>> = {},
): Sandbox {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(root, 0o755);
  const paths = rootedPaths(
    root,
    Object.fromEntries(Object.entries(moved).map(([k, p]) => [k, path.join(root, p)])),
  );
  return {
    root,
    paths,
    at: (p) => path.join(root, p),
    remove: () => {
      try {
        expectFileContracts(root);
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    },
  };
}
