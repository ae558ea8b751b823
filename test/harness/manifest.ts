// A database full's manifest for tests that need one without running a full (the upload, the
// monitor): every field of the contract, checked against it, so it cannot drift from what
// mariadb-full.sh writes (whose manifests the MariaDB tests check against the same contract).
import { manifestSchema } from "../../components/host/file-contracts";

type Manifest = ReturnType<typeof manifestSchema.parse>;

export function manifestFixture(fields: Partial<Manifest> = {}): string {
  const m = {
    format: "backup321-mariadb-full/1",
    file: "atlastech_db_full.xb.zst.enc",
    verified: true,
    method: "physical",
    compression: "zstd",
    encryption: "openssl enc -aes-256-cbc -pbkdf2",
    key_fingerprint: "0".repeat(64),
    databases: "atlastech_db",
    sha256: "0".repeat(64),
    bytes: 1,
    raw_bytes: 1,
    started: "2026-11-15T02:00:00Z",
    consistent_before_epoch: 1,
    duration_seconds: 1,
    binlog_file: "mysql-bin.000001",
    binlog_position: 4,
    binlog_identity: "mysql-bin.000001.20261115T015000Z.s1",
    gtid: "",
    counted_binlog_file: "mysql-bin.000001",
    counted_binlog_position: 4,
    tables: { "atlastech_db.orders": 1 },
    ...fields,
  };
  return JSON.stringify(manifestSchema.parse(m), null, 2) + "\n";
}
