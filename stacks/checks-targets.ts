// The promises of the site (targets:) against what its schedules, copies and sizes can deliver:
// a plan that cannot keep a target fails, with the numbers and what to change.
import type { Check, Problem } from "./problem";
import { recoveryReport, type Scenario, type ScenarioReport, type Unprotected } from "./targets";

const WHEN: Record<Scenario, string> = {
  "host lost": "when a host is lost",
  "data lost": "when data is lost and its host remains",
  "site lost": "when the site is lost",
};

/** Where the missing copy has to go, and for a lost host the honest alternative. */
const ADD_COPY: Record<Scenario, string> = {
  "host lost":
    "add a copy that lives off that host: on another host, a removable disk, the NAS or the bucket; or, if the site promises nothing when a host is lost, set targets.hostLoss: none",
  "data lost": "add a copy of it",
  "site lost": "add a copy of it that goes offsite",
};

function unprotectedMessage(kind: Scenario, u: Unprotected): string {
  const where =
    u.copies.length === 0
      ? ", it has no copy"
      : `: ${kind === "site lost" ? "every copy stays on site" : "every copy is on the lost host"} (${u.copies.join("; ")})`;
  return `${WHEN[kind]}, no copy of ${u.data} survives${where} (${ADD_COPY[kind]})`;
}

function scenarioProblems(s: ScenarioReport, rpoPath: string, rtoPath: string): Problem[] {
  const when = WHEN[s.scenario];
  const out: Problem[] = s.unprotected.map((u) => ({
    path: rpoPath,
    message: unprotectedMessage(s.scenario, u),
  }));
  // A daily job at a fixed local time has one 25 h gap a year at the clock change: not a broken promise.
  const over = s.rpo.filter((i) => i.hours > s.rpoTargetHours + s.rpoAllowanceHours);
  if (over.length > 0) {
    const why = over.map((i) => `${i.what}: ${i.hours} h via ${i.via}`).join("; ");
    out.push({
      path: rpoPath,
      message: `${when}, up to ${s.worstRpoHours} h of data can be lost (${why}), more than the target of ${s.rpoTargetHours} h (run those copies more often, or raise ${rpoPath} to at least ${s.worstRpoHours})`,
    });
  }
  if (s.rtoHours !== undefined && s.rtoHours > s.rtoTargetHours) {
    const why = s.rto.map((i) => `${i.what} ${i.hours} h (${i.how})`).join("; ");
    out.push({
      path: rtoPath,
      message: `${when}, the restore is estimated at ${s.rtoHours} h (${why}), more than the target of ${s.rtoTargetHours} h (restore less data, use faster media, or raise ${rtoPath} to at least ${Math.ceil(s.rtoHours)})`,
    });
  }
  return out;
}

const recoveryTargets: Check = (site) => {
  const r = recoveryReport(site);
  return [
    ...scenarioProblems(r.onSite, "targets.rpoHours", "targets.rtoHours"),
    ...(r.siteLoss
      ? scenarioProblems(
          r.siteLoss,
          site.targets.siteLoss ? "targets.siteLoss.rpoHours" : "targets.rpoHours",
          site.targets.siteLoss ? "targets.siteLoss.rtoHours" : "targets.rtoHours",
        )
      : []),
  ];
};

export const targetsChecks: Check[] = [recoveryTargets];
