// The copies of a site as a mermaid flowchart: every copy and the schedule that makes it.
import type { Site } from "../../../stacks/schema";
import { fullsHost } from "../../../stacks/model/mariadb";

const id = (s: string): string => s.replace(/[^A-Za-z0-9]/g, "_");

/** A mermaid flowchart of every copy and the schedule that makes it. */
export function renderCopiesDiagram(site: Site): string {
  const lines = ["```mermaid", "flowchart LR"];
  const node = (key: string, label: string, shape: "box" | "db" = "box") =>
    lines.push(shape === "db" ? `    ${key}[("${label}")]` : `    ${key}["${label}"]`);
  const edge = (from: string, label: string, to: string) =>
    lines.push(`    ${from} -- "${label}" --> ${to}`);
  for (const h of site.hosts) node(`H_${id(h.name)}`, `${h.name}<br/>${h.address}`);
  const px = site.proxmox;
  if (px?.snapshots) {
    node("SNAP", `Snapshots on ${px.host}<br/>local rollback, keep ${px.snapshots.keep}`, "db");
    edge(`H_${id(px.host)}`, `snapshot ${px.snapshots.schedule}`, "SNAP");
  }
  for (const d of site.pbs?.datastores ?? []) {
    const on = d.disk ? `USB SSD ${d.disk.mountpoint}` : d.path;
    node(`DS_${id(d.name)}`, `PBS datastore ${d.name}<br/>${site.pbs?.host}: ${on}`, "db");
  }
  for (const j of px?.jobs ?? []) {
    edge(`H_${id(px?.host ?? "")}`, `vzdump ${j.id} ${j.schedule}`, `DS_${id(j.datastore)}`);
  }
  const bucket = site.offsite.bucket;
  for (const r of site.restic.repositories) {
    const where =
      r.kind === "s3"
        ? `${bucket?.name ?? "bucket"}/${r.prefix ?? `restic/${r.name}`}`
        : `${r.host}: ${r.disk ? `USB SSD ${r.path}` : r.path}`;
    node(`R_${id(r.name)}`, `restic ${r.name}<br/>${where}`, "db");
  }
  for (const r of site.restic.repositories) {
    if (r.copyFrom) {
      edge(`R_${id(r.copyFrom)}`, `restic copy ${r.schedule}`, `R_${id(r.name)}`);
      continue;
    }
    edge(`H_${id(r.host)}`, `restic backup ${r.schedule}`, `R_${id(r.name)}`);
    for (const d of site.pbs?.datastores ?? []) {
      if (r.paths.some((p) => d.path === p || d.path.startsWith(`${p}/`)))
        edge(`DS_${id(d.name)}`, `in restic ${r.name}`, `R_${id(r.name)}`);
    }
  }
  const m = site.mariadb;
  if (m) {
    const fulls = fullsHost(m);
    if (fulls === m.host) {
      node("DBB", `${m.host}: fulls ${m.backupDir}<br/>binlogs ${m.binlogBackupDir}`, "db");
      edge(`H_${id(m.host)}`, `full ${m.schedules.full}, binlogs ${m.schedules.binlogs}`, "DBB");
    } else {
      // the replica takes the fulls and hands them to the primary, which ships its binlogs
      node("DBB", `${m.host}: fulls ${m.backupDir}<br/>binlogs ${m.binlogBackupDir}`, "db");
      edge(`H_${id(m.host)}`, "replication", `H_${id(fulls)}`);
      edge(`H_${id(fulls)}`, `full ${m.schedules.full}, handed over`, "DBB");
      edge(`H_${id(m.host)}`, `binlogs ${m.schedules.binlogs}`, "DBB");
    }
    const { nas, upload } = site.offsite;
    if (nas) {
      node("NAS", `NAS ${nas.host}: ${nas.path}<br/>dated snapshots, keep ${nas.keep}`, "db");
      edge("DBB", `rsync ${nas.schedule}`, "NAS");
    }
    if (upload && bucket) {
      const glacier = (bucket.transitions ?? [])
        .filter((t) => t.prefix === bucket.dumpPrefix)
        .map((t) => `, ${t.storageClass} after ${t.days} d`)
        .join("");
      node("DUMPS", `${bucket.name}/${bucket.dumpPrefix}<br/>database dumps${glacier}`, "db");
      edge("DBB", `upload ${upload.schedule}`, "DUMPS");
    }
    const st = m.stream;
    if (st) {
      node("STREAM", `${st.host}: ${st.dir}<br/>binlog stream, sealed once closed`, "db");
      edge(`H_${id(m.host)}`, `binlog stream, lag < ${st.maxLagSeconds} s`, "STREAM");
      if (nas) edge("STREAM", `rsync ${nas.schedule}`, "NAS");
      if (upload && bucket) edge("STREAM", `upload ${upload.schedule}`, "DUMPS");
    }
  }
  lines.push("```");
  return lines.join("\n");
}
