// The status file a job writes is JSON whatever its fields hold: numbers stay numbers, a string of
// digits that is no JSON number ("007") stays text, and an id set as text stays text when it is
// all digits (restic's short snapshot ids are, one time in 43).
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "../harness/proc";
import { useRig } from "../harness/rig";
import { jobScript } from "../harness/program";

const rig = useRig({
  prefix: "b321-status-",
  async program({ box }, host) {
    const { RemoteFile, ScheduledJob } = await import("../../components/host");
    const script = new RemoteFile("fields-script", {
      host,
      path: `${box.paths.lib}/fields.sh`,
      mode: "0755",
      content: jobScript(
        "b321_set whole 12",
        "b321_set negative -3",
        "b321_set real 1.5",
        "b321_set zero 0",
        "b321_set padded 007",
        "b321_set_text snapshot 01234567",
        "b321_set_text other 12345678",
        "b321_set words 'a b'",
      ),
    });
    new ScheduledJob("fields", {
      host,
      job: "fields",
      schedule: "0 3 * * *",
      script: script.path,
      env: {},
      dependsOn: [script],
    });
  },
});

beforeAll(() => rig.applyCreates());

test("numbers are JSON numbers; leading zeros and ids set as text are strings", () => {
  const r = run(`${rig.box.paths.sbin}/b321-fields`, [], {
    env: { ...process.env, B321_ALERT: "/bin/true" },
  });
  expect(r.code).toBe(0);
  const status = JSON.parse(
    fs.readFileSync(path.join(rig.box.paths.status, "fields.json"), "utf8"),
  ) as Record<string, unknown>;
  expect(status).toMatchObject({
    result: "success",
    whole: 12,
    negative: -3,
    real: 1.5,
    zero: 0,
    padded: "007",
    snapshot: "01234567",
    other: "12345678",
    words: "a b",
  });
});
