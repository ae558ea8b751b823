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

test("with a replica, prod warns of nothing about where its fulls are: the primary keeps them too", () => {
  const site = prod();
  expect(site.mariadb?.replica).toBeDefined();
  expect(planWarnings(parseSite(site)).filter((x) => /replica|fulls/.test(x))).toEqual([]);
});
