// The promises of the site (targets:) against what its schedules, copies and sizes can deliver:
// a plan that cannot keep a target fails, with the numbers and what to change.
import type { Check, Problem } from "./checks";
import { recoveryReport, type ScenarioReport } from "./targets";

function scenarioProblems(
  s: ScenarioReport,
  when: string,
  rpoPath: string,
  rtoPath: string,
): Problem[] {
  const out: Problem[] = [];
  for (const what of s.unprotected) {
    out.push({
      path: rpoPath,
      message: `${when}, the ${what} have no copy that survives, so they are lost (add a copy of the ${what} that ${when === "when the site is lost" ? "goes offsite" : "lives off their host"})`,
    });
  }
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
    ...scenarioProblems(r.onSite, "when a host is lost", "targets.rpoHours", "targets.rtoHours"),
    ...(r.siteLoss
      ? scenarioProblems(
          r.siteLoss,
          "when the site is lost",
          site.targets.siteLoss ? "targets.siteLoss.rpoHours" : "targets.rpoHours",
          site.targets.siteLoss ? "targets.siteLoss.rtoHours" : "targets.rtoHours",
        )
      : []),
  ];
};

export const targetsChecks: Check[] = [recoveryTargets];
