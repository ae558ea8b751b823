// mariadb.replica in the site model: its defaults, and the problems named with their key and fix
// before any resource is touched.
import { parseSite } from "../../stacks/load";
import { fullsHost } from "../../stacks/model/mariadb";
import { clone, stackSite, siteProblems } from "../harness/sites";

type Raw = {
  hosts: { name: string; address: string; roles: string[] }[];
  mariadb: { host: string; replica?: Record<string, unknown>; drDrill?: Record<string, unknown> };
  offsite?: { nas?: unknown };
};

const problems = siteProblems;

const prod = () => clone(stackSite("prod")) as unknown as Raw;

test("prod takes its fulls on the seed's replica, 192.168.10.21, with the default socket", () => {
  const site = parseSite(stackSite("prod"));
  expect(site.mariadb?.replica).toEqual({
    host: "db-replica",
    maxLagSeconds: 300,
    socket: "/run/mysqld/mysqld.sock",
  });
  expect(site.hosts.find((h) => h.name === "db-replica")).toMatchObject({
    address: "192.168.10.21",
    roles: ["mariadb"],
  });
  expect(fullsHost(site.mariadb!)).toBe("db-replica");
});

test("without a replica the fulls are taken on the primary", () => {
  const raw = prod();
  delete raw.mariadb.replica;
  const site = parseSite(raw);
  expect(site.mariadb?.replica).toBeUndefined();
  expect(fullsHost(site.mariadb!)).toBe("db-srv");
});

test("the replica cannot be the primary's host", () => {
  const raw = prod();
  raw.mariadb.replica = { host: "db-srv" };
  expect(problems(raw)).toEqual([
    'backup321:site.mariadb.replica.host: "db-srv" is the primary (mariadb.host): name the replica\'s host, or remove mariadb.replica to back up the primary',
  ]);
});

test("the replica's host must exist and run MariaDB", () => {
  const raw = prod();
  raw.mariadb.replica = { host: "db-ghost" };
  expect(problems(raw)).toEqual([
    'backup321:site.mariadb.replica.host: unknown host "db-ghost" (one of: proxmox-srv, docker-srv, db-srv, db-replica, nas)',
  ]);
  raw.mariadb.replica = { host: "nas" };
  expect(problems(raw)).toEqual([
    'backup321:site.mariadb.replica.host: host "nas" does not have the role mariadb (add mariadb to its roles)',
  ]);
});

test("a lag limit that is not a positive whole number, a relative socket, an unknown key", () => {
  const raw = prod();
  raw.mariadb.replica = { host: "db-replica", maxLagSeconds: 0, socket: "mysqld.sock", lag: 5 };
  expect(problems(raw)).toEqual([
    "backup321:site.mariadb.replica.maxLagSeconds: must be a positive whole number of seconds (e.g. 300)",
    "backup321:site.mariadb.replica.socket: must be an absolute path of letters, digits and ._/@+- (e.g. /mnt/usb)",
    "backup321:site.mariadb.replica.lag: unknown key (remove it or check its spelling)",
  ]);
});

test("prod's yearly disaster-recovery drill runs on db-replica, the host that would replace db-srv", () => {
  const site = parseSite(stackSite("prod"));
  expect(site.mariadb?.drDrill).toEqual({ host: "db-replica", schedule: "0 6 10 3 *" });
  const raw = prod();
  delete raw.mariadb.drDrill;
  expect(parseSite(raw).mariadb?.drDrill).toBeUndefined();
});

test("the drill's standby is another host with the role mariadb, and needs the NAS copy", () => {
  const raw = prod();
  raw.mariadb.drDrill = { host: "db-srv", schedule: "0 6 10 3 *" };
  expect(problems(raw)).toEqual([
    'backup321:site.mariadb.drDrill.host: "db-srv" is the database host itself (mariadb.host): name a standby host with the role mariadb, the one that would replace it',
  ]);
  raw.mariadb.drDrill = { host: "nas", schedule: "0 6 10 3 *" };
  expect(problems(raw)).toEqual([
    'backup321:site.mariadb.drDrill.host: host "nas" does not have the role mariadb (add mariadb to its roles)',
  ]);
  raw.mariadb.drDrill = { host: "db-ghost", schedule: "0 6 10 3 *" };
  expect(problems(raw)[0]).toContain(
    'backup321:site.mariadb.drDrill.host: unknown host "db-ghost" (one of: ',
  );
  raw.mariadb.drDrill = { host: "db-replica", schedule: "0 6 10 3 *" };
  delete raw.offsite!.nas;
  expect(problems(raw)).toContain(
    "backup321:site.mariadb.drDrill: the drill rebuilds the database host from the NAS copy, and there is none: configure offsite.nas, or remove mariadb.drDrill",
  );
  raw.mariadb.drDrill = { host: "db-replica" };
  expect(problems(raw)[0]).toMatch(/^backup321:site\.mariadb\.drDrill\.schedule: /);
});
