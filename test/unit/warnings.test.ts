// Plan-time warnings: what the model allows but an operator should know before relying on it.
import { readStackFile } from "../../infra/stackFile";
import { parseSite } from "../../stacks/load";
import type { SiteInput } from "../../stacks/schema";
import { planWarnings } from "../../stacks/warnings";

const prod = () => structuredClone(readStackFile("prod").config["backup321:site"]) as SiteInput;

test("a disarmed host is named with its config key, and only while it is disarmed", () => {
  const site = prod();
  expect(planWarnings(parseSite(site)).filter((w) => w.includes("disarmed"))).toEqual([]);
  const i = site.hosts.findIndex((h) => h.name === "db-srv");
  (site.hosts[i] as { disarmed?: boolean }).disarmed = true;
  expect(planWarnings(parseSite(site)).filter((w) => w.includes("disarmed"))).toEqual([
    `db-srv is disarmed (backup321:site.hosts[${i}].disarmed): none of its jobs is scheduled and its monitor does not run; set it back to false once its restore is done`,
  ]);
});

test("with a replica, an upload or NAS sync from a host without the fulls is named", () => {
  const site = prod();
  // prod uploads from the replica; without that the upload would run on the primary
  expect(site.offsite?.upload?.host).toBe("db-replica");
  delete (site.offsite?.upload as { host?: string }).host;
  const w = planWarnings(parseSite(site)).filter((x) => x.includes("mariadb.replica"));
  expect(w).toEqual([
    "the fulls are taken on db-replica (backup321:site.mariadb.replica) but the offsite upload runs on db-srv, which has none of them: no full reaches the bucket; set offsite.upload.host to db-replica (the binlogs on db-srv are then not uploaded), or remove mariadb.replica",
    "the fulls are taken on db-replica (backup321:site.mariadb.replica) but the NAS sync copies from db-srv: no full reaches the NAS; until both hosts are synced, copy /backups/database from db-replica by hand or remove mariadb.replica",
  ]);
  delete (site.mariadb as { replica?: unknown }).replica;
  expect(planWarnings(parseSite(site)).filter((x) => x.includes("mariadb.replica"))).toEqual([]);
});
