// mariadb.schedules.incremental in the site model: prod's Monday-to-Saturday increments, the
// method they need (named with its key and fix), and the RTO's binlog replay after the last
// restore point.
import { parseSite } from "../../stacks/load";
import { recoveryReport } from "../../stacks/targets";
import { clone, stackSite, siteProblems } from "../harness/sites";

type Raw = {
  mariadb: {
    method?: string;
    schedules: Record<string, string | undefined>;
    retention: Record<string, number>;
  };
  sizes: Record<string, number>;
};

const prod = () => clone(stackSite("prod")) as unknown as Raw;
const databaseRto = (raw: Raw) =>
  recoveryReport(parseSite(raw)).onSite.rto.find((i) => i.what === "database");

test("prod takes increments Monday to Saturday at 02:00 on top of Sunday's full, kept 7 days", () => {
  const m = parseSite(prod()).mariadb!;
  expect(m.schedules).toMatchObject({ full: "0 2 * * 0", incremental: "0 2 * * 1-6" });
  expect(m.retention.incrementDays).toBe(7);
});

test("increments are optional, and kept 7 days by default", () => {
  const raw = prod();
  delete raw.mariadb.schedules.incremental;
  delete raw.mariadb.retention.incrementDays;
  const m = parseSite(raw).mariadb!;
  expect(m.schedules.incremental).toBeUndefined();
  expect(m.retention.incrementDays).toBe(7);
});

test("increments of a logical full are refused, naming the key and the fix", () => {
  const raw = prod();
  raw.mariadb.method = "logical";
  expect(siteProblems(raw)).toContainEqual(
    expect.stringMatching(
      /^backup321:site\.mariadb\.schedules\.incremental: increments need the physical method .* set mariadb\.method to physical, or remove mariadb\.schedules\.incremental/,
    ),
  );
});

test("the database RTO replays a day of binlogs with increments, a week without", () => {
  const withIncrements = databaseRto(prod())!;
  expect(withIncrements.how).toMatch(
    // a day, and the night the clocks go back
    /0\.52 GB of binlogs \(25 h since the last full or increment\)/,
  );
  const raw = prod();
  delete raw.mariadb.schedules.incremental;
  const weekly = databaseRto(raw)!;
  expect(weekly.how).toMatch(/3\.52 GB of binlogs \(169 h since the last full\)/);
  // 3 GB more to replay at 10 MB/s: 5 minutes more
  expect(weekly.hours - withIncrements.hours).toBeCloseTo((3 * 1000) / 10 / 3600, 1);
  delete raw.sizes.binlogGbPerDay;
  expect(databaseRto(raw)!.how).not.toMatch(/binlogs/);
});
