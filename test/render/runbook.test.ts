// RUNBOOK.md for the seed site: the exact restore commands, where the keys are, and a snapshot.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readStackFile } from "../../infra/stackFile";
import { parseSite } from "../../stacks/load";
import { siteSchema, type Site, type SiteInput } from "../../stacks/schema";
import { pasteOk } from "../harness/runbook";
import { freePort, run } from "../harness/proc";
import { renderCopiesDiagram, renderRunbook } from "../../components/site/runbook";
import { keySteps } from "../../components/site/runbook/keys";
import { resticRestoreStep, scenarios } from "../../components/site/runbook/scenarios";
import { LAPTOP, stepScript, type Step } from "../../components/site/runbook/steps";
import { writerPolicy } from "../../components/offsite/render";
import { pbsStorageId } from "../../components/proxmox/render";
import { planWarnings } from "../../stacks/warnings";
import { repositoryUrl } from "../../components/restic/render";
import { resticS3Prefix } from "../../stacks/model/restic";

const prodRaw = () => structuredClone(readStackFile("prod").config["backup321:site"]) as SiteInput;
const prod = parseSite(prodRaw());
const md = renderRunbook(prod, "prod");
const lines = md.split("\n");

/** The point-in-time recovery among a scenario's steps. */
const pitrOf = (steps: readonly Step[]) => {
  const s = steps.find((x) => x.say.startsWith("recover into a fresh datadir"));
  if (!s) throw new Error(`no recovery among: ${steps.map((x) => x.say).join(" | ")}`);
  return s;
};

test("the seed site's runbook (snapshot)", () => {
  expect(md).toMatchSnapshot();
});

test("targets table with the computed numbers", () => {
  expect(lines).toContain(
    "| Data lost on site: a guest, files, the database, a host (the copies off that host remain) | 25 h | 24 h | 0.92 h | 4 h |",
  );
  expect(lines).toContain(
    "| The whole site lost (offsite copies only) | 172 h | 192 h | 6.28 h | 24 h |",
  );
  expect(lines).toContain(
    "3-2-1: 5 copies on 4 media, 1 offsite, 1 immutable (database dumps in s3:atlastech-backups, 35 days GOVERNANCE): satisfied.",
  );
});

test("which copy is immutable, and how long a deleted restic object can be brought back", () => {
  expect(lines).toContain(
    "| s3:atlastech-backups | object storage | yes | database dumps, 35 days GOVERNANCE | database binlog stream, database dumps, restic cloud |",
  );
  expect(lines).toContain(
    "restic data under restic/ is never locked (restic deletes what it prunes): an object there that is overwritten or deleted comes back only from its noncurrent version, kept 30 days (offsite.bucket.noncurrentDays; `aws s3api list-object-versions --prefix restic/`). Notice within that window or it is gone.",
  );
});

/** The scenario whose title starts so, and its steps. */
const scenario = (title: string, site = prod) => {
  const found = scenarios(site, "prod").find((x) => x.title.startsWith(title));
  if (!found) throw new Error(`no scenario "${title}"`);
  return found;
};
const block = (step: Step) => stepScript(step).split("\n");

test("RUNBOOK.md prints each step's block exactly as the scenario tests run it", () => {
  const all = scenarios(prod, "prod");
  expect(all.map((x) => x.title)).toEqual([
    "a configuration mistake — roll a guest back to a snapshot",
    "a VM or container is lost — restore it from PBS",
    "the database is lost or damaged — newest full plus binlogs (point in time)",
    "db-srv is lost — rebuild it, then its database",
    "db-srv is lost — rebuild it, then its database up to the last streamed write",
    "files are lost — restore them from restic",
    "total loss — restore from the cloud",
  ]);
  for (const [i, x] of all.entries()) {
    expect(lines).toContain(`## Scenario ${i + 1}: ${x.title}`);
    for (const step of x.steps) expect(md).toContain(`\n\`\`\`sh\n${stepScript(step)}\n\`\`\`\n`);
  }
  // an input bound by the operator (or a test) is one shell word, whatever it holds
  const pitr = pitrOf(scenario("the database").steps);
  expect(stepScript(pitr, { UNTIL: "2026-12-04 10:00:00" })).toContain(
    "  UNTIL='2026-12-04 10:00:00'   # ",
  );
  expect(() => stepScript(pitr, { UNTL: "x" })).toThrow(/has no input UNTL/);
});

test("scenario 1: rollback of every snapshotted guest", () => {
  const [list, rollback] = scenario("a configuration mistake").steps;
  expect(block(list)).toEqual(
    expect.arrayContaining(["  qm listsnapshot 100", "  pct listsnapshot 200"]),
  );
  expect(rollback.inputs?.map((i) => i.name)).toEqual(["GUEST", "SNAPSHOT"]);
});

test("scenario 2: restore from the PBS storage on PVE, the newest backup unless one is named", () => {
  const steps = scenario("a VM or container is lost").steps;
  expect(steps.map((x) => x.on)).toEqual([LAPTOP, LAPTOP, "docker-srv", "proxmox-srv", LAPTOP]);
  expect(block(steps[2])).toContain(
    "  docker exec pbs proxmox-backup-client snapshot list --repository localhost:usb-ssd",
  );
  expect(stepScript(steps[3])).toContain(
    `BACKUP="$(pvesm list ${pbsStorageId("usb-ssd")} --vmid "$GUEST" |`,
  );
});

describe("the point-in-time block, pasted into an interactive shell", () => {
  // The server's stop/start and the PITR script recorded instead of run (the PITR leaves its result
  // directory, as the script's final rename does); mv and chown are real, on a temp datadir.
  const fakes = [
    'fake() { echo "$*" >> "$CALLS"; [ "$*" != "$FAIL" ]; }',
    'function /usr/local/sbin/b321-mariadb-pitr { fake pitr && mkdir "${@: -1}" && echo restored > "${@: -1}/marker"; }',
    'systemctl() { fake systemctl "$@"; }',
  ].join("\n");
  const setup = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-runbook-"));
    fs.mkdirSync(path.join(dir, "mysql"));
    fs.writeFileSync(path.join(dir, "mysql", "marker"), "old\n");
    const raw = prodRaw();
    (raw.mariadb as { datadir?: string }).datadir = path.join(dir, "mysql");
    delete raw.application; // the swap alone (the application's gate: its own tests below)
    const step = pitrOf(scenario("the database", parseSite(raw)).steps);
    const paste = (fail = "") => {
      const calls = path.join(dir, "calls");
      fs.rmSync(calls, { force: true });
      const r = spawnSync("bash", ["--norc", "--noprofile", "-i"], {
        input: `${fakes}\n${stepScript(step, { UNTIL: "2026-12-04 10:00:00" })}\necho the shell is still open\n`,
        env: { ...process.env, CALLS: calls, FAIL: fail },
        encoding: "utf8",
      });
      expect(r.stdout).toContain("the shell is still open");
      return fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").trim().split("\n") : [];
    };
    const dirs = () => {
      const out: Record<string, string> = {};
      for (const d of fs.readdirSync(dir).filter((x) => x.startsWith("mysql")))
        out[d.replace(/-\d{8}T\d{6}$/, "-<time>")] = fs
          .readFileSync(path.join(dir, d, "marker"), "utf8")
          .trim();
      return out;
    };
    return { dir, paste, dirs };
  };

  test("a failed PITR: nothing is stopped or moved", () => {
    const t = setup();
    expect(t.paste("pitr")).toEqual(["pitr"]);
    expect(t.dirs()).toEqual({ mysql: "old" });
  });

  test("the server does not stop: nothing is moved; pasted again, the finished recovery is reused", () => {
    const t = setup();
    expect(t.paste("systemctl stop mariadb")).toEqual(["pitr", "systemctl stop mariadb"]);
    expect(t.dirs()).toEqual({ mysql: "old", "mysql.pitr-20261204100000": "restored" });
    expect(t.paste()).toEqual(["systemctl stop mariadb", "systemctl start mariadb"]);
    expect(t.dirs()).toEqual({ mysql: "restored", "mysql.before-pitr-<time>": "old" });
  });

  test("all well: restore, stop, swap (the old datadir kept aside), start", () => {
    const t = setup();
    expect(t.paste()).toEqual(["pitr", "systemctl stop mariadb", "systemctl start mariadb"]);
    expect(t.dirs()).toEqual({ mysql: "restored", "mysql.before-pitr-<time>": "old" });
  });
});

describe("the application around a database restore, against a real HTTP server", () => {
  // The application: a node HTTP server on loopback, started and stopped by the model's commands.
  let dir: string;
  let port: number;
  let server: string;
  const app = () => ({
    host: "db-srv",
    stop: `kill "$(cat ${dir}/app.pid)"`,
    start: `setsid nohup node ${server} ${port} >/dev/null 2>&1 & echo $! > ${dir}/app.pid`,
    healthUrl: `http://127.0.0.1:${port}/health`,
  });
  const answers = () =>
    run("curl", ["-fsS", "-o", "/dev/null", `http://127.0.0.1:${port}/health`]).code === 0;
  const site = (over: Record<string, unknown> = {}) => {
    const raw = prodRaw();
    (raw.mariadb as { datadir?: string }).datadir = path.join(dir, "mysql");
    raw.application = { ...app(), ...over } as SiteInput["application"];
    return parseSite(raw);
  };
  const steps = (s: Site) => scenario("the database", s).steps;
  const paste = (step: Step, values: Record<string, string> = {}) =>
    run("bash", [
      "-c",
      `systemctl() { echo "systemctl $*" >> ${dir}/calls; }\n${stepScript(step, values)}`,
    ]);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-app-"));
    server = path.join(dir, "app-server.js");
    fs.writeFileSync(
      server,
      'require("node:http").createServer((q, r) => r.end("ok")).listen(Number(process.argv[2]), "127.0.0.1");\n',
    );
    port = await freePort();
  });
  afterAll(() => {
    if (fs.existsSync(`${dir}/app.pid`))
      run("kill", [fs.readFileSync(`${dir}/app.pid`, "utf8").trim()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("started: the start block runs the model's command and waits until the URL answers", () => {
    const start = steps(site()).find((x) => x.say.startsWith("start the application"))!;
    expect(answers()).toBe(false);
    expect(pasteOk(start)).toContain("the application answers");
    expect(answers()).toBe(true);
  });

  test("a stop that leaves it answering: the stop block fails, and the swap refuses", () => {
    const s = site({ stop: "true" });
    const stop = steps(s).find((x) => x.say.startsWith("stop the application"))!;
    const r = paste(stop);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the application still answers at http://127.0.0.1:${port}/health`);
    // the recovery is built; the swap must not happen while the application writes
    fs.mkdirSync(path.join(dir, "mysql"), { recursive: true });
    fs.mkdirSync(path.join(dir, "mysql.pitr-20261204100000"), { recursive: true });
    const swap = paste(pitrOf(steps(s)), { UNTIL: "2026-12-04 10:00:00" });
    expect(swap.code).toBe(1);
    expect(swap.stderr).toContain("stop it first (or FORCE=1)");
    expect(fs.existsSync(path.join(dir, "calls"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "mysql.pitr-20261204100000"))).toBe(true);
  });

  test("stopped: the stop block passes, and the swap goes on", () => {
    const s = site();
    const stop = steps(s).find((x) => x.say.startsWith("stop the application"))!;
    expect(pasteOk(stop)).toContain("the application is stopped");
    expect(answers()).toBe(false);
    const swap = paste(pitrOf(steps(s)), { UNTIL: "2026-12-04 10:00:00" });
    expect(swap.stderr).toBe("");
    expect(fs.readFileSync(path.join(dir, "calls"), "utf8")).toBe(
      "systemctl stop mariadb\nsystemctl start mariadb\n",
    );
    expect(fs.existsSync(path.join(dir, "mysql.pitr-20261204100000"))).toBe(false);
  });
});

test("a total loss: the newest full comes back from Glacier first, then everything the copies hold", () => {
  const steps = scenario("total loss").steps;
  const dumps = steps.find((x) => x.say.startsWith("fetch the newest full"))!;
  const sh = stepScript(dumps);
  expect(dumps.on).toBe("db-srv");
  expect(sh).toContain(". /etc/backup321/offsite-upload.env");
  expect(sh.indexOf("s3api restore-object")).toBeGreaterThan(0);
  expect(sh.indexOf("s3api restore-object")).toBeLessThan(
    sh.indexOf('s3 s3 cp "s3://$OFFSITE_BUCKET/$key" /backups/database/'),
  );
  expect(sh).toContain('s3 s3 cp "s3://$OFFSITE_BUCKET/$key.manifest.json" /backups/database/');
  // the dump writer's key may ask for it back
  const policy = JSON.stringify(writerPolicy("atlastech-backups", "dumps", "database/"));
  expect(policy).toContain("s3:RestoreObject");
  // no --until to make up: now, in the site's zone
  const after = steps.slice(steps.indexOf(dumps) + 1);
  expect(after[0].say).toMatch(/^stop the application/);
  expect(pitrOf(after).inputs).toEqual([
    expect.objectContaining({
      name: "UNTIL",
      value: `"$(TZ=Europe/Paris date '+%Y-%m-%d %H:%M:%S')"`,
    }),
    expect.objectContaining({ name: "FORCE", value: "0" }),
  ]);
  // the PBS datastore goes back into the one `pulumi up` created, no second `datastore create`
  expect(md).not.toContain("datastore create");
  expect(steps.map((x) => stepScript(x)).join("\n")).toContain(
    "rsync -a /restore/cloud/mnt/usb-ssd/pbs/ /mnt/usb-ssd/pbs/",
  );
});

test("a rebuilt host comes back disarmed, and is re-armed only after its restore", () => {
  const db = prod.hosts.findIndex((h) => h.name === "db-srv");
  const lost = scenario("db-srv is lost").steps;
  expect(lost.map((x) => x.on)).toEqual([
    LAPTOP,
    LAPTOP,
    "db-srv", // the NAS snapshot
    "db-srv", // the newest full
    "db-srv", // the application stopped (it runs on db-srv)
    "db-srv", // the recovery
    "db-srv", // the application started and checked
    LAPTOP,
  ]);
  expect(lost[2].say).toMatch(/^bring back the newest NAS snapshot/);
  expect(block(lost[1]).slice(3)).toEqual([
    `  pulumi config set --path 'backup321:site.hosts[${db}].generation' 2 --type int`,
    `  pulumi config set --path 'backup321:site.hosts[${db}].disarmed' true --type bool`,
    "  pulumi up --yes",
    ")",
  ]);
  expect(block(lost[7]).slice(3)).toEqual([
    `  pulumi config set --path 'backup321:site.hosts[${db}].disarmed' false --type bool`,
    "  pulumi up --yes",
    ")",
  ]);
  // a total loss rebuilds every host in one `pulumi up` and re-arms them all last
  const total = scenario("total loss").steps;
  const rebuild = stepScript(total.find((x) => x.say.startsWith("tell `pulumi up`"))!);
  for (let i = 0; i < prod.hosts.length; i++)
    expect(rebuild).toContain(`'backup321:site.hosts[${i}].disarmed' true --type bool`);
  expect(rebuild.match(/pulumi up --yes/g)).toHaveLength(1);
  expect(stepScript(total.at(-1)!)).toContain("pulumi up --yes");
  expect(total.at(-1)!.say).toMatch(/^once every restore above is done/);
});

test("each scenario says what must have survived: the state backend, the escrow, the NAS", () => {
  const lost = scenario("db-srv is lost");
  expect(lost.needs[0]).toBe(
    `the Pulumi state (s3://atlastech-pulumi-state?region=eu-west-3) and the escrowed passphrase (${prod.escrow})`,
  );
  expect(lost.needs[1]).toContain(
    "or the NAS (nas:/backups/atlastech), whose newest snapshot step 3 brings back with the host's own sync key",
  );
  expect(stepScript(lost.steps[0])).toContain(
    "pulumi login 's3://atlastech-pulumi-state?region=eu-west-3'",
  );
  // a model that does not say where its state is: a plan-time warning naming the key
  const raw = prodRaw();
  delete (raw as { stateBackend?: string }).stateBackend;
  expect(planWarnings(parseSite(raw)).find((w) => w.includes("stateBackend"))).toMatch(
    /backup321:site\.stateBackend is not set/,
  );
  delete (raw as { escrow?: string }).escrow;
  expect(planWarnings(parseSite(raw)).find((w) => w.includes(".escrow"))).toMatch(
    /backup321:site\.escrow is not set/,
  );
  expect(planWarnings(prod)).toEqual([]);
});

test("where the keys are: the escrow and every stack secret by key, never a value", () => {
  expect(md).toContain(
    "- **Stack passphrase and Pulumi state login**: sealed envelope in the office safe",
  );
  expect(lines).toContain("  - `backup321:alertWebhookUrl`: alert webhook URL");
  expect(lines).toContain(
    "  - `backup321:proxmoxApiToken`: Proxmox VE API token (user@realm!id=secret)",
  );
  expect(md).not.toMatch(/secure:|plan-placeholder|v1:/);
});

test("a custom offsite.bucket.resticPrefix is the runbook's repository URL, the one the jobs use", () => {
  const raw = prodRaw();
  raw.offsite!.bucket!.resticPrefix = "site-a/restic/";
  delete raw.restic!.repositories![1].prefix; // the bucket's prefix plus the repository's name
  const site = siteSchema.parse(raw);
  const b = site.offsite.bucket!;
  const cloud = site.restic.repositories.find((r) => r.name === "cloud")!;
  const jobs = repositoryUrl({
    kind: "s3",
    bucket: b.name,
    region: b.region,
    prefix: resticS3Prefix(cloud, b.resticPrefix),
  });
  expect(jobs).toBe("s3:https://s3.eu-west-3.amazonaws.com/atlastech-backups/site-a/restic/cloud");
  expect(renderRunbook(site, "prod")).toContain(`restic repository cloud, \`${jobs}\``);
  // and the restore itself reads the job's own env file, so it opens what the jobs wrote
  expect(stepScript(resticRestoreStep(site, "cloud"))).toContain(
    ". /etc/backup321/restic-cloud.env",
  );
});

test("secrets reach the operator through 0600 files, never an export of a literal", () => {
  expect(md).not.toMatch(/export AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)/);
  // the stack passphrase is read without echo into a 0600 file, never exported
  expect(md).not.toMatch(/export PULUMI_CONFIG_PASSPHRASE=/);
  expect(md).toContain(
    `( umask 077; read -rs -p 'stack passphrase (from the escrow): ' p; echo >&2; printf '%s\\n' "$p" > "$HOME/.b321-passphrase" )`,
  );
  // every key query writes into a file under umask 077
  const keys = keySteps(prod, "prod").map((x) => block(x));
  for (const b of keys) {
    const writes = b.filter((l) => l.includes('> "$HOME/b321-keys/'));
    expect(writes.length).toBeGreaterThan(0);
    expect(b.indexOf("  umask 077")).toBeLessThan(b.indexOf(writes[0]));
  }
  expect(
    keys
      .flat()
      .filter((l) => l.includes('> "$HOME/b321-keys/'))
      .map((l) => l.split("/").pop()),
  ).toEqual(['restic-usb.password"', 'restic-cloud.password"', 'restic-s3.aws"', 'mariadb.key"']);
  expect(md).not.toContain("chmod 600");
});

test("the copies diagram: every copy and the schedule that makes it", () => {
  const d = renderCopiesDiagram(prod).split("\n");
  expect(d[0]).toBe("```mermaid");
  expect(d[1]).toBe("flowchart LR");
  expect(d).toContain('    H_proxmox_srv -- "vzdump daily-pbs 0 1 * * *" --> DS_usb_ssd');
  expect(d).toContain('    R_usb -- "restic copy 0 4 * * 0" --> R_cloud');
  expect(d).toContain('    DS_usb_ssd -- "in restic usb" --> R_usb');
  expect(d).toContain('    DBB -- "rsync 45 * * * *" --> NAS');
  expect(d).toContain('    DBB -- "upload 30 5 * * *" --> DUMPS');
  expect(d.at(-1)).toBe("```");
});

test("a site without offsite copies says so", () => {
  const dev = parseSite(readStackFile("dev").config["backup321:site"]);
  const text = renderRunbook(dev, "dev");
  expect(text).toContain(
    "This site has no offsite copy: a total loss cannot be recovered. Add an s3 restic repository or the dump upload.",
  );
  expect(text).toContain("NOT STATED: set escrow: in the site model");
});

describe("the binlog stream's section (mariadb.stream)", () => {
  const title = "db-srv is lost — rebuild it, then its database up to the last streamed write";

  test("saves the stream's files before the rebuild, recovers from them on the rebuilt host, then starts a new stream", () => {
    const sc = scenario(title);
    expect(sc.steps.map((x) => x.on)).toEqual([
      "docker-srv", // the stream's files saved, before the rebuilt db-srv runs a server
      LAPTOP,
      LAPTOP,
      "db-srv", // the NAS snapshot (the fulls)
      "db-srv", // the newest full
      "docker-srv", // the saved files to db-srv
      "db-srv",
      "db-srv", // the recovery
      "db-srv",
      "docker-srv", // a new stream
      LAPTOP,
    ]);
    expect(sc.needs[1]).toBe("docker-srv and the stream's files in /backups/binlog-stream");
    // only the sealed binlogs and the open one: no seal in progress, no error log
    expect(block(sc.steps[0])).toContain(
      "    rsync -a --exclude='.stream.err' --exclude='*.b321-partial' -- /backups/binlog-stream/ \"$COPY.partial/\"",
    );
    expect(block(sc.steps[5])).toContain('  rsync -a -- "$COPY/" "root@192.168.10.25:$COPY/"');
    // PITR with the job's own env file, its binlogs read from the copy: sealed, and live/ plain
    const pitr = block(pitrOf(sc.steps));
    expect(pitr).toContain(
      "  UNTIL=\"$(TZ=Europe/Paris date '+%Y-%m-%d %H:%M:%S')\"   # now: every write the stream received (or an earlier moment, Europe/Paris)",
    );
    expect(pitr).toContain(
      "  ( umask 077; grep -v -e '^MARIADB_BINLOG_BACKUP_DIR=' -e '^MARIADB_BINLOG_BASENAME=' /etc/backup321/mariadb-pitr.env > \"$env\" )",
    );
    expect(pitr).toContain(
      "  printf '%s=%s\\n' MARIADB_BINLOG_BACKUP_DIR '/restore/binlog-stream' MARIADB_BINLOG_BASENAME '/restore/binlog-stream/live/mysql-bin' >> \"$env\"",
    );
    expect(pitr).toContain(
      '  [ -d "$pitr" ] || /usr/local/lib/backup321/mariadb-pitr.sh "$env" --until "$UNTIL" --tz Europe/Paris --target-datadir "$pitr"',
    );
    expect(block(sc.steps[9])).toContain(
      '  if [ -d /backups/binlog-stream ]; then mv -T /backups/binlog-stream "/backups/binlog-stream.before-$(date +%Y%m%dT%H%M%S)"; fi',
    );
    // the plain host-loss scenario points to it
    expect(scenario("db-srv is lost — rebuild it, then its database").intro).toContain(
      `This recovers up to the newest shipped binlog (15 * * * *). While docker-srv and its binlog stream survive, follow "${title}" instead: it recovers up to the last streamed write.`,
    );
    expect(md).toContain(`## Scenario 5: ${title}`);
  });

  test("without a stream, no such section and no pointer to it", () => {
    const raw = prodRaw();
    delete (raw.mariadb as { stream?: unknown }).stream;
    const site = parseSite(raw);
    expect(scenarios(site, "prod").map((x) => x.title)).not.toContain(title);
    expect(renderRunbook(site, "prod")).not.toContain("last streamed write");
  });
});
