// One setup for the integration suites that replay a mock run's remote commands over real SSH.
// They all need the same things in the same order (servers and a sandbox up before the program, the
// suite's own cleanup before the servers stop, the sandbox's file-contract check last), so that
// order lives here once instead of in every suite's beforeAll and afterAll.
import type { Host } from "../../components/host";
import { startMariaDb, type MariaDbServer } from "./mariadb";
import type { RunResult } from "./proc";
import {
  applyCreates,
  applyDeletes,
  applyUpdates,
  remoteSteps,
  runMocked,
  sandboxHost,
  type Registration,
  type RemoteStep,
} from "./program";
import { startS3rver, type S3rverServer } from "./s3rver";
import { makeSandbox, type Sandbox } from "./sandbox";
import { startSshd, type Sshd } from "./sshd";

export interface RigOptions {
  /** The sandbox's temp-dir prefix. */
  readonly prefix?: string;
  /** Host directories placed elsewhere in the sandbox (makeSandbox). Defaults to none. */
  readonly moved?: Parameters<typeof makeSandbox>[1];
  /** Start s3rver with this bucket. */
  readonly s3Bucket?: string;
  /** Start a MariaDB server. */
  readonly mariadb?: boolean;
  /** The sandbox host the program receives. Defaults to resource "h", hostName "sandbox". */
  readonly host?: {
    readonly name?: string;
    readonly hostName?: string;
    readonly timezone?: string;
  };
  /** Runs once the servers and the sandbox are up, before the program (what the program reads). */
  readonly prepare?: (rig: Rig) => void | Promise<void>;
  /** The Pulumi program, run under the mocks: import component modules inside it. */
  readonly program?: (rig: Rig, host: Host) => void | Promise<void>;
  /** Runs first in afterAll (unmount, close a listener), before the servers stop. */
  readonly cleanup?: (rig: Rig) => void | Promise<void>;
  /** beforeAll's timeout. Defaults to 2 minutes. */
  readonly timeoutMs?: number;
}

/** What useRig sets up: every field is there once the suite's beforeAll has run. */
export interface Rig {
  readonly sshd: Sshd;
  readonly box: Sandbox;
  /** Only with the s3Bucket option. */
  readonly s3: S3rverServer;
  /** Only with the mariadb option. */
  readonly mariadb: MariaDbServer;
  /** Every registration of the program. */
  recorded: Registration[];
  /** The program's remote commands, in order (a suite may rewrite them in its own beforeAll). */
  steps: RemoteStep[];
  /** The step of this name; throws naming the steps there are. */
  step(name: string): RemoteStep;
  /** applyCreates, applyUpdates and applyDeletes over the rig's sshd, of all its steps by default. */
  applyCreates(steps?: readonly RemoteStep[]): RunResult[];
  applyUpdates(steps?: readonly RemoteStep[]): RunResult[];
  applyDeletes(steps?: readonly RemoteStep[]): RunResult[];
  /** Runs another program as the rig ran its own (same host); returns its remote commands. */
  mocked(program: (rig: Rig, host: Host) => void | Promise<void>): Promise<RemoteStep[]>;
}

/** The step of this name among steps; throws naming the steps there are. */
export function findStep(steps: readonly RemoteStep[], name: string): RemoteStep {
  const s = steps.find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name} among: ${steps.map((x) => x.name).join(", ")}`);
  return s;
}

/** Registers the suite's beforeAll and afterAll; returns the rig they fill in and tear down. */
export function useRig(opts: RigOptions = {}): Rig {
  const up: { sshd?: Sshd; box?: Sandbox; s3?: S3rverServer; mariadb?: MariaDbServer } = {};
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`rig: no ${what}`);
    return v;
  };
  const run = async (program: NonNullable<RigOptions["program"]>) =>
    runMocked(async () => {
      const { name = "h", hostName = "sandbox", timezone } = opts.host ?? {};
      const extra = timezone === undefined ? {} : { timezone };
      await program(rig, await sandboxHost(name, hostName, rig.sshd, rig.box.paths, extra));
    });
  const rig: Rig = {
    get sshd() {
      return need(up.sshd, "sshd (used before beforeAll?)");
    },
    get box() {
      return need(up.box, "sandbox (used before beforeAll?)");
    },
    get s3() {
      return need(up.s3, "s3rver (the s3Bucket option starts one)");
    },
    get mariadb() {
      return need(up.mariadb, "MariaDB server (the mariadb option starts one)");
    },
    recorded: [],
    steps: [],
    step: (name) => findStep(rig.steps, name),
    applyCreates: (steps = rig.steps) => applyCreates(rig.sshd, steps),
    applyUpdates: (steps = rig.steps) => applyUpdates(rig.sshd, steps),
    applyDeletes: (steps = rig.steps) => applyDeletes(rig.sshd, steps),
    mocked: async (program) => remoteSteps(await run(program)),
  };
  beforeAll(async () => {
    // each one kept as soon as it is up, so that afterAll stops it even when another failed
    const started = await Promise.allSettled([
      startSshd().then((s) => (up.sshd = s)),
      opts.s3Bucket && startS3rver({ bucket: opts.s3Bucket }).then((s) => (up.s3 = s)),
      opts.mariadb && startMariaDb().then((s) => (up.mariadb = s)),
    ]);
    for (const r of started) if (r.status === "rejected") throw r.reason;
    up.box = makeSandbox(opts.prefix, opts.moved);
    await opts.prepare?.(rig);
    if (opts.program) {
      rig.recorded = await run(opts.program);
      rig.steps = remoteSteps(rig.recorded);
    }
  }, opts.timeoutMs ?? 120_000);
  afterAll(async () => {
    try {
      await opts.cleanup?.(rig);
    } finally {
      await up.mariadb?.stop();
      await up.sshd?.stop();
      await up.s3?.stop();
      up.box?.remove();
    }
  });
  return rig;
}
