// RUNBOOK.md for the seed site: the exact restore commands, where the keys are, and a snapshot.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readStackFile } from "../../infra/stackFile";
import { parseSite } from "../../stacks/load";
import { siteSchema, type SiteInput } from "../../stacks/schema";
import { renderCopiesDiagram, renderRunbook, resticRepoUrl } from "../../stacks/runbook";
import { repositoryUrl } from "../../components/restic/render";
import { resticS3Prefix } from "../../stacks/model/restic";

const prodRaw = () => structuredClone(readStackFile("prod").config["backup321:site"]) as SiteInput;
const prod = parseSite(prodRaw());
const md = renderRunbook(prod, "prod");
const lines = md.split("\n");

test("the seed site's runbook (snapshot)", () => {
  expect(md).toMatchSnapshot();
});

test("targets table with the computed numbers", () => {
  expect(lines).toContain(
    "| Data lost on site: a guest, files, the database, a host (the copies off that host remain) | 25 h | 24 h | 0.92 h | 4 h |",
  );
  expect(lines).toContain(
    "| The whole site lost (offsite copies only) | 172 h | 192 h | 6.27 h | 24 h |",
  );
  expect(lines).toContain(
    "3-2-1: 5 copies on 4 media, 1 offsite, 1 immutable (database dumps in s3:atlastech-backups, 35 days GOVERNANCE): satisfied.",
  );
});

test("which copy is immutable, and how long a deleted restic object can be brought back", () => {
  expect(lines).toContain(
    "| s3:atlastech-backups | object storage | yes | database dumps, 35 days GOVERNANCE | database dumps, restic cloud |",
  );
  expect(lines).toContain(
    "restic data under restic/ is never locked (restic deletes what it prunes): an object there that is overwritten or deleted comes back only from its noncurrent version, kept 30 days (offsite.bucket.noncurrentDays; `aws s3api list-object-versions --prefix restic/`). Notice within that window or it is gone.",
  );
});

test("scenario 1: rollback of every snapshotted guest", () => {
  for (const l of [
    "qm listsnapshot 100",
    "qm rollback 100 <snapshot>   # then: qm start 100",
    "qm rollback 101 <snapshot>   # then: qm start 101",
    "pct rollback 200 <snapshot>   # then: pct start 200",
  ])
    expect(lines).toContain(l);
});

test("scenario 2: restore from the PBS storage on PVE", () => {
  expect(lines).toContain(
    "qm stop <vmid>; qmrestore pbs-usb-ssd:backup/vm/<vmid>/<YYYY-MM-DDTHH:MM:SSZ> <vmid> --force 1",
  );
  expect(lines).toContain(
    "pct stop <ctid>; pct restore <ctid> pbs-usb-ssd:backup/ct/<ctid>/<YYYY-MM-DDTHH:MM:SSZ> --force 1",
  );
  expect(lines).toContain(
    "docker exec pbs proxmox-backup-client snapshot list --repository localhost:usb-ssd",
  );
});

test("scenario 3: point in time from the newest full", () => {
  // into a fresh datadir, never over the live one, then swapped with the broken one kept aside
  expect(lines).toContain(
    "  /usr/local/sbin/b321-mariadb-pitr --until 'YYYY-MM-DD HH:MM:SS' --tz Europe/Paris --target-datadir /var/lib/mysql.pitr   # newest full before that time + binlogs",
  );
  expect(lines).toContain("  mv -T /var/lib/mysql /var/lib/mysql.broken");
  expect(lines).toContain("  mv -T /var/lib/mysql.pitr /var/lib/mysql");
  expect(lines).toContain("On db-srv, as root; times are Europe/Paris:");
});

describe("scenario 3's block, pasted into an interactive shell, stops at its first failure", () => {
  const start = lines.findIndex((l) => l.startsWith("## Scenario 3"));
  const open = lines.indexOf("```sh", start);
  const block = lines.slice(open + 1, lines.indexOf("```", open + 1)).join("\n");
  // Every command of the block recorded instead of run; the one named in FAIL fails.
  const fakes = [
    'fake() { echo "$1" >> "$CALLS"; [ "$1" != "$FAIL" ]; }',
    'function /usr/local/sbin/b321-mariadb-pitr { fake pitr "$@"; }',
    ...["systemctl", "mv", "chown", "ls"].map((c) => `${c}() { fake ${c} "$@"; }`),
  ].join("\n");
  const paste = (fail: string) => {
    const calls = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "b321-runbook-")), "calls");
    const r = spawnSync("bash", ["--norc", "--noprofile", "-i"], {
      input: `${fakes}\n${block}\necho the shell is still open\n`,
      env: { ...process.env, CALLS: calls, FAIL: fail },
      encoding: "utf8",
    });
    expect(r.stdout).toContain("the shell is still open");
    const ran = fs.readFileSync(calls, "utf8").trim().split("\n");
    fs.rmSync(path.dirname(calls), { recursive: true });
    return ran;
  };

  test("a failed PITR: nothing is stopped or moved", () => {
    expect(paste("pitr")).toEqual(["ls", "pitr"]);
  });

  test("the server does not stop: nothing is moved", () => {
    expect(paste("systemctl")).toEqual(["ls", "pitr", "systemctl"]);
  });

  test("the broken datadir cannot be set aside: the restored one is not moved in", () => {
    expect(paste("mv")).toEqual(["ls", "pitr", "systemctl", "mv"]);
  });

  test("all well: restore, stop, swap, start", () => {
    expect(paste("")).toEqual(["ls", "pitr", "systemctl", "mv", "mv", "chown", "systemctl"]);
  });
});

test("scenario 4: the exact restic repository, password from the stack state, Glacier retrieval", () => {
  const url = "s3:s3.eu-west-3.amazonaws.com/atlastech-backups/restic/cloud";
  expect(resticRepoUrl(prod, "cloud")).toBe(url);
  expect(lines).toContain(
    `restic -r ${url} --password-file /root/restic-cloud.pass restore latest --tag system,pbs-datastore --target /restore`,
  );
  expect(lines).toContain(
    "rsync -a /restore/mnt/usb-ssd/pbs/ /mnt/usb-ssd/pbs/   # the USB SSD mounted first",
  );
  expect(lines).toContain(
    "docker exec pbs proxmox-backup-manager datastore create usb-ssd /mnt/usb-ssd/pbs --reuse-datastore true",
  );
  // Glacier: asked for first, in the bucket's region, then the full and its manifest are copied.
  const at = (l: string) => lines.indexOf(l);
  const restore =
    "aws s3api restore-object --bucket atlastech-backups --key database/<newest> --restore-request 'Days=7,GlacierJobParameters={Tier=Standard}' --region eu-west-3";
  const full =
    "aws s3 cp s3://atlastech-backups/database/<newest> /backups/database/ --region eu-west-3";
  const manifest =
    "aws s3 cp s3://atlastech-backups/database/<newest>.manifest.json /backups/database/ --region eu-west-3";
  expect([at(restore), at(full), at(manifest)].every((i) => i > 0)).toBe(true);
  expect(at(restore)).toBeLessThan(at(full));
});

test("a rebuilt host comes back disarmed, and is re-armed only after its restore", () => {
  const db = prod.hosts.findIndex((h) => h.name === "db-srv");
  const rebuild = `pulumi config set --path 'backup321:site.hosts[${db}].generation' 2 && pulumi config set --path 'backup321:site.hosts[${db}].disarmed' true && pulumi up --yes`;
  const rebuilds = lines.filter((l) => l === rebuild);
  expect(rebuilds).toHaveLength(1); // scenario 4, step 1
  const rearm = lines.find((l) => l.includes(".disarmed' false") && l.endsWith("pulumi up --yes"));
  expect(rearm).toBeDefined();
  for (let i = 0; i < prod.hosts.length; i++)
    expect(rearm).toContain(`pulumi config set --path 'backup321:site.hosts[${i}].disarmed' false`);
  // after every restore step of scenario 4
  const pitr =
    lines.length - 1 - [...lines].reverse().findIndex((l) => l.includes("b321-mariadb-pitr"));
  expect(lines.indexOf(rearm!)).toBeGreaterThan(pitr);
  // scenario 3's rebuild names the re-arm after the recovery
  expect(md).toMatch(
    /disarmed: nothing runs over the restore.*only then re-arm the jobs with `pulumi config set --path 'backup321:site\.hosts\[\d\]\.disarmed' false && pulumi up --yes`/,
  );
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

test("an S3 endpoint override goes into the repository URL", () => {
  const raw = prodRaw();
  raw.restic!.repositories![1].endpoint = "https://127.0.0.1:9000";
  expect(resticRepoUrl(siteSchema.parse(raw), "cloud")).toBe(
    "s3:127.0.0.1:9000/atlastech-backups/restic/cloud",
  );
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
  expect(resticRepoUrl(site, "cloud")).toBe(jobs.replace("s3:https://", "s3:"));
  expect(renderRunbook(site, "prod")).toContain(
    `restic -r ${resticRepoUrl(site, "cloud")} --password-file`,
  );
});

test("secrets reach the operator through 0600 files, never an export of a literal", () => {
  const restic = lines.filter((l) => /restic-cloud\.(pass|aws)/.test(l));
  expect(
    restic.filter((l) => l.includes("> /root/")).every((l) => l.startsWith("( umask 077; ")),
  ).toBe(true);
  expect(restic.filter((l) => l.includes("> /root/"))).toHaveLength(2);
  expect(md).not.toMatch(/export AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)/);
  // the stack passphrase is read without echo into a 0600 file, never exported
  expect(md).not.toMatch(/export PULUMI_CONFIG_PASSPHRASE=/);
  expect(lines).toContain(
    "( umask 077; read -rs -p 'stack passphrase (from the escrow): ' p; printf '%s\\n' \"$p\" > /root/.b321-passphrase )",
  );
  expect(md).not.toContain("chmod 600 /root/restic");
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
