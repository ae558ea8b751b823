// ProxmoxBackups on its own: guest lists become vmids, the job prunes nothing (PBS's prune job
// does), plain inputs that are secrets become secret.
import { isSecretValue, mockHost, reveal, recordMocked } from "../harness/program";

const recorded = recordMocked(async () => {
  const { ProxmoxBackups } = await import("../../components/proxmox");
  const host = await mockHost("h", { hostName: "pve", address: "10.0.0.1" });
  new ProxmoxBackups("pve", {
    host,
    endpoint: "https://10.0.0.1:8006/",
    apiToken: "root@pam!iac=x",
    storages: [
      {
        datastore: "main",
        server: "10.0.0.2",
        username: "u@pbs!pve-main",
        password: "token",
        fingerprint: "aa:bb",
      },
    ],
    jobs: [
      {
        id: "workdays",
        schedule: "0 */6 * * 1-5",
        guests: [100, 205],
        datastore: "main",
        retention: { keepLast: 2, keepWeekly: 4, keepMonthly: 6 },
      },
    ],
  });
}, 60_000);

// The token has DatastoreBackup only: a job that prunes (pruneBackups, remove on by default) would
// fail every guest after its upload; the key guard is no job option (root@pam only); no mailto, so
// no mailnotification (PVE 8 reads it only with mailto); no compress (ignored for PBS).
test("a guest list becomes vmids, a weekday schedule a PVE calendar event, and the job prunes nothing", () => {
  const job = recorded.find((r) => r.type === "proxmoxve:backup/job:Job");
  expect(job?.name).toBe("pve-workdays");
  expect(job?.inputs).toEqual({
    resourceId: "b321-workdays",
    schedule: "mon..fri 0/6:00",
    storage: "pbs-main",
    node: "pve",
    vmids: ["100", "205"],
    mode: "snapshot",
    remove: false,
    repeatMissed: true,
    enabled: true,
  });
});

test("plain inputs are still made secret", () => {
  const provider = recorded.find((r) => r.type === "pulumi:providers:proxmoxve");
  expect(isSecretValue(provider?.inputs.apiToken)).toBe(true);
  expect(provider?.inputs.insecure).toBe("false");
  const storage = recorded.find((r) => r.type === "proxmoxve:storage/pbs:Pbs");
  expect(isSecretValue(storage?.inputs.password)).toBe(true);
  expect(reveal(storage?.inputs.password)).toBe("token");
});
