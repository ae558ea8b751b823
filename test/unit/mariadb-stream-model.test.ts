// mariadb.stream in the site model: its defaults, the problems named with their key and fix, and
// what it does to the promised RPO when the database host is lost.
import { parseSite } from "../../stacks/load";
import { recoveryReport } from "../../stacks/targets";
import { clone, stackSite, siteProblems } from "../harness/sites";

type Raw = {
  hosts: { name: string; address: string; roles: string[] }[];
  mariadb: { host: string; stream?: Record<string, unknown>; replica?: unknown };
  offsite: { nas?: unknown; upload?: unknown; bucket?: unknown };
};

const problems = siteProblems;

const prod = () => clone(stackSite("prod")) as unknown as Raw;
const withStream = (stream: Record<string, unknown> = { host: "docker-srv" }) => {
  const raw = prod();
  raw.mariadb.stream = stream;
  return raw;
};
const databaseRpo = (raw: Raw) =>
  recoveryReport(parseSite(raw)).onSite.rpo.find((i) => i.what === "database");

test("prod streams db-srv's binlogs to docker-srv, the backup host, a minute behind at most", () => {
  expect(parseSite(prod()).mariadb?.stream).toEqual({
    host: "docker-srv",
    maxLagSeconds: 60,
    dir: "/backups/binlog-stream",
    keepDays: 35,
    port: 3306,
    user: "b321_stream",
    serverId: 4242,
  });
});

test("a stream names its host; everything else has a default", () => {
  expect(parseSite(withStream()).mariadb?.stream).toEqual({
    host: "docker-srv",
    maxLagSeconds: 60,
    dir: "/backups/binlog-stream",
    keepDays: 35,
    port: 3306,
    user: "b321_stream",
    serverId: 4242,
  });
});

test("the stream goes to another host that exists", () => {
  expect(problems(withStream({ host: "db-srv" }))).toEqual([
    'backup321:site.mariadb.stream.host: "db-srv" is the database host itself (mariadb.host): name another host (e.g. the backup host), which keeps the binlogs when the database host is lost',
  ]);
  expect(problems(withStream({ host: "db-ghost" }))).toEqual([
    'backup321:site.mariadb.stream.host: unknown host "db-ghost" (one of: proxmox-srv, docker-srv, db-srv, db-replica, nas)',
  ]);
});

test("a lag limit that is not a positive whole number, a relative CA, an unknown key", () => {
  expect(
    problems(withStream({ host: "docker-srv", maxLagSeconds: 0, sslCa: "ca.pem", lag: 5 })),
  ).toEqual([
    "backup321:site.mariadb.stream.maxLagSeconds: must be a positive whole number of seconds (e.g. 60)",
    "backup321:site.mariadb.stream.sslCa: must be an absolute path of letters, digits and ._/@+- (e.g. /mnt/usb)",
    "backup321:site.mariadb.stream.lag: unknown key (remove it or check its spelling)",
  ]);
});

test("with the database host lost, the database's RPO is the stream's lag limit", () => {
  const without = prod();
  delete without.mariadb.stream;
  const before = databaseRpo(without);
  expect(before?.via).not.toContain("stream");
  expect(before?.hours).toBeGreaterThanOrEqual(1);
  expect(databaseRpo(withStream())).toEqual({
    what: "database",
    via: "binlog stream to docker-srv",
    hours: 0.02,
  });
  expect(databaseRpo(withStream({ host: "docker-srv", maxLagSeconds: 900 }))?.hours).toBe(0.25);
});

test("without a full anywhere but on the database host, the stream alone restores nothing", () => {
  const raw = withStream();
  delete raw.mariadb.replica;
  delete raw.offsite.nas;
  delete raw.offsite.upload;
  delete (raw.mariadb as Record<string, unknown>).drDrill;
  expect(() => parseSite(raw)).toThrow(
    "backup321:site.targets.rpoHours: when a host is lost, no copy of the database survives: every copy is on the lost host (binlog shipping on host:db-srv)",
  );
});
