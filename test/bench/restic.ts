// restic on this machine: backup throughput to a local repository, copy to s3rver over TLS, and
// what deduplication saves (a second copy, a renamed duplicate, a day's small change).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { startS3rver } from "../harness/s3rver";
import { runOk } from "../harness/proc";

const MIB = 1024 * 1024;

function timed<T>(f: () => T): [T, number] {
  const t = process.hrtime.bigint();
  const r = f();
  return [r, Number(process.hrtime.bigint() - t) / 1e9];
}

function du(dir: string): number {
  return Number(runOk("du", ["-sb", dir]).stdout.split("\t")[0]);
}

export async function run(): Promise<void> {
  const sizeMiB = Number(process.env.BENCH_RESTIC_MIB ?? 256);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b321-bench-restic-"));
  const s3 = await startS3rver({ bucket: "bench" });
  try {
    const src = path.join(dir, "src");
    fs.mkdirSync(src);
    for (let i = 0; i < sizeMiB / 16; i++)
      fs.writeFileSync(path.join(src, `f${i}.bin`), randomBytes(16 * MIB));
    const pw = path.join(dir, "pw");
    fs.writeFileSync(pw, "bench-password\n", { mode: 0o600 });
    const local = path.join(dir, "repo");
    const cloud = `s3:${s3.endpoint}/${s3.bucket}/restic/cloud`;
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    };
    const common = ["--password-file", pw, "--cacert", s3.caFile, "--cache-dir", `${dir}/cache`];
    const r = (args: string[]) => runOk("restic", [...common, ...args], { env });
    r(["-r", local, "init"]);
    r([
      "-r",
      cloud,
      "init",
      "--from-repo",
      local,
      "--from-password-file",
      pw,
      "--copy-chunker-params",
    ]);
    const backup = () => r(["-r", local, "backup", "--host", "bench", "--tag", "data", src]);
    const copy = () => r(["-r", cloud, "copy", "--from-repo", local, "--from-password-file", pw]);
    const prefix = path.join(s3.directory, s3.bucket, "restic", "cloud");
    const [, tBackup] = timed(backup);
    const [, tCopy] = timed(copy);
    const cloud1 = du(prefix);
    const [, tCopy2] = timed(copy);
    const cloud2 = du(prefix);
    fs.copyFileSync(path.join(src, "f0.bin"), path.join(src, "renamed.bin"));
    fs.appendFileSync(path.join(src, "f1.bin"), randomBytes(64 * 1024));
    const [, tBackup2] = timed(backup);
    const [, tCopy3] = timed(copy);
    const cloud3 = du(prefix);
    const [, tRestore] = timed(() =>
      r(["-r", cloud, "restore", "latest", "--host", "bench", "--target", `${dir}/restore`]),
    );
    runOk("diff", ["-r", src, `${dir}/restore${src}`]);
    const line = (k: string, v: string) => console.log(`${k.padEnd(46)} ${v}`);
    line("source", `${sizeMiB} MiB of random data`);
    line(
      "first backup to local repository",
      `${tBackup.toFixed(1)} s (${(sizeMiB / tBackup).toFixed(0)} MiB/s)`,
    );
    line(
      "first copy to s3rver over TLS",
      `${tCopy.toFixed(1)} s (${(sizeMiB / tCopy).toFixed(0)} MiB/s), ${(cloud1 / MIB).toFixed(1)} MiB stored`,
    );
    line(
      "second copy, nothing new",
      `${tCopy2.toFixed(1)} s, +${((cloud2 - cloud1) / 1024).toFixed(1)} KiB stored`,
    );
    line("backup after 16 MiB renamed + 64 KiB appended", `${tBackup2.toFixed(1)} s`);
    line(
      "copy of that snapshot",
      `${tCopy3.toFixed(1)} s, +${((cloud3 - cloud2) / 1024).toFixed(1)} KiB stored`,
    );
    line(
      "restore from s3rver (diff -r equal)",
      `${tRestore.toFixed(1)} s (${((sizeMiB + 16) / tRestore).toFixed(0)} MiB/s)`,
    );
  } finally {
    await s3.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
