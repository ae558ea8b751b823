// A lifecycle scenario: one real engine stack deployed on two sandboxed hosts, and the check every
// change of the model must pass (converge): the preview shows exactly the expected steps, `pulumi up`
// does them, each host's managed tree then equals what a fresh deploy of the new model writes on
// empty hosts, every job runs green, and no backup is lost.
import * as fs from "node:fs";
import * as path from "node:path";
import { engineStack, summarize, type EngineStack } from "./engine";
import {
  ensureSudoUser,
  lifecycleSecrets,
  lifecycleSite,
  startServers,
  startTarget,
  type Servers,
  type Target,
} from "./lifecycle";
import { treeDiff } from "./tree";
import { clone } from "./sites";
import type { SiteInput } from "../../stacks/schema";

export type HostInput = {
  name: string;
  user?: string;
  port?: number;
  generation?: number;
  disarmed?: boolean;
};
export type RepoInput = {
  name: string;
  host: string;
  check?: unknown;
  path?: string;
  paths?: string[];
};
export const hosts = (s: SiteInput) => s.hosts as HostInput[];
export const host = (s: SiteInput, name: string) => hosts(s).find((h) => h.name === name)!;
export const repos = (s: SiteInput) => (s.restic as { repositories: RepoInput[] }).repositories;
export const mariadb = (s: SiteInput) =>
  s.mariadb as {
    schedules: Record<string, string>;
    retention?: Record<string, number>;
    stream?: Record<string, unknown>;
  };

/** An update of a RemoteFile (its command), as a summarize() line. */
export const FILE = (name: string) => `update ${name}-file`;

export interface ConvergeOptions {
  replace?: string[];
  runJobs?: boolean;
  /** Files a fresh deploy does not write but this one must keep (the keys of retained backups). */
  kept?: Partial<Record<"db" | "files", string[]>>;
  /** Checks right after `pulumi up`, before the fresh deploy and the jobs run. */
  afterUp?: () => void | Promise<void>;
}

export class Scenario {
  /** The model deployed now, written against `target`'s paths. */
  site!: SiteInput;
  secrets!: Record<string, string>;
  stack!: EngineStack;
  servers!: Servers;
  target!: Target;

  static async start(label: string): Promise<Scenario> {
    const s = new Scenario();
    ensureSudoUser();
    s.servers = await startServers();
    s.target = await startTarget(label);
    s.site = lifecycleSite(s.target, s.servers);
    s.secrets = lifecycleSecrets(s.servers);
    // One stack name everywhere: the fresh deploys it is compared with use it too.
    s.stack = await engineStack("lifecycle");
    s.site.stateBackend = s.stack.backendUrl;
    await s.stack.configure(s.site, s.secrets);
    return s;
  }

  async stop(): Promise<void> {
    this.stack?.dispose();
    try {
      // the services first: a stream would otherwise see its server go and be restarted meanwhile
      this.target?.stopServices();
    } finally {
      try {
        await this.target?.mariadb.stop(); // the rebuilt host's server, when a rebuild replaced it
        await this.target?.stop();
      } finally {
        await this.servers?.db.stop();
        await this.servers?.files.stop();
      }
    }
  }

  /** Names of every backup file on the db host's disk (fulls, manifests, shipped binlogs). */
  backupFiles(): string[] {
    const out: string[] = [];
    for (const dir of ["database", "binlogs"]) {
      const d = path.join(this.target.db.disk, dir);
      if (fs.existsSync(d)) out.push(...fs.readdirSync(d).map((f) => `${dir}/${f}`));
    }
    return out.filter((f) => !/\.partial|\.work/.test(f)).sort();
  }

  jobsGreen(): void {
    expect(this.target.runJobs(this.target.db, ["b321-mariadb-pitr"])).toEqual([]);
    expect(this.target.runJobs(this.target.files)).toEqual([]);
  }

  /** Commands in the state, by name. */
  async commandNames(): Promise<string[]> {
    return (await this.stack.resources())
      .filter((r) => r.type === "command:remote:Command")
      .map((r) => r.urn.split("::").pop()!);
  }

  /** Every command whose name starts with one of the prefixes, as "update <name>" lines. */
  async commandsOf(prefixes: readonly string[]): Promise<string[]> {
    return (await this.commandNames())
      .filter((n) => prefixes.some((p) => n.startsWith(p)))
      .map((n) => `update ${n}`);
  }

  /** What a fresh `pulumi up` of the model writes on empty hosts: the reference trees. */
  async freshTrees(model: SiteInput) {
    const fresh = await startTarget("fresh");
    const s = await engineStack(this.stack.name);
    try {
      // The same model with this target's directories moved to the fresh one's.
      const moved = JSON.parse(
        JSON.stringify(model).split(this.target.base).join(fresh.base),
      ) as SiteInput;
      await s.configure(moved, this.secrets);
      await s.up();
      return fresh.trees();
    } finally {
      s.dispose();
      await fresh.stop();
    }
  }

  /**
   * One change of the catalogue: the preview lists exactly `expected` ("op name" lines), up does
   * the same, the trees equal a fresh deploy's, the jobs run green and every earlier backup stays.
   */
  async converge(
    change: (s: SiteInput) => void,
    expected: readonly string[],
    opts: ConvergeOptions = {},
  ): Promise<void> {
    const before = this.backupFiles();
    const next = clone(this.site);
    change(next);
    await this.stack.configure(next, this.secrets);
    const replace = opts.replace;
    expect(summarize(await this.stack.preview({ replace }))).toEqual([...expected].sort());
    expect(summarize(await this.stack.up({ replace }))).toEqual([...expected].sort());
    this.site = next;
    await opts.afterUp?.();
    await this.matchesFresh(opts.kept);
    if (opts.runJobs !== false) this.jobsGreen();
    expect(this.lost(before, this.backupFiles())).toEqual([]);
  }

  /** Each host's managed tree equals a fresh deploy's of the current model, but for `kept`. */
  async matchesFresh(kept: ConvergeOptions["kept"] = {}): Promise<void> {
    const fresh = await this.freshTrees(this.site);
    const now = this.target.trees();
    for (const h of ["db", "files"] as const) {
      const keep = kept[h] ?? [];
      for (const k of keep) expect(now[h][k]).toMatchObject({ type: "file", mode: "600" });
      expect(
        treeDiff(now[h], fresh[h]).filter((d) => !keep.some((k) => d === `extra ${k}`)),
      ).toEqual([]);
    }
  }

  /**
   * Backups of before that are gone though retention keeps them: fulls among the newest `fulls` of
   * all seen (retention prunes older ones once a newer full is verified), and the newest binlog.
   */
  lost(before: readonly string[], after: readonly string[]): string[] {
    const keep = mariadb(this.site).retention?.fulls ?? 4;
    const isFull = (f: string) => /_full_.*\.enc$/.test(f);
    const kept = [...new Set([...before, ...after].filter(isFull))].sort().slice(-keep);
    const fulls = before.filter((f) => kept.includes(f));
    const binlogs = before.filter((f) => f.startsWith("binlogs/")).slice(-1);
    return [...fulls, ...binlogs].filter((f) => !after.includes(f));
  }
}
