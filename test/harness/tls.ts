// Certificates for the servers tests start over TLS (s3rver, MariaDB): made here with openssl, in
// the test's own directory, valid two days.
import * as fs from "node:fs";
import * as path from "node:path";
import { runOk } from "./proc";

/**
 * DIR/NAME.key and DIR/NAME.pem, subject CN: self-signed, or signed by ISSUER (a certificate this
 * made, its key beside it). With `localhost`, valid for the address 127.0.0.1.
 */
export function makeCertificate(
  dir: string,
  name: string,
  opts: { cn?: string; issuer?: string; localhost?: boolean } = {},
): { key: string; cert: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  const subject = ["-subj", `/CN=${opts.cn ?? name}`];
  const san = "subjectAltName=IP:127.0.0.1";
  const newKey = ["-newkey", "rsa:2048", "-nodes", "-keyout", key];
  if (!opts.issuer) {
    const ext = opts.localhost ? ["-addext", san] : [];
    runOk("openssl", ["req", "-x509", ...newKey, "-days", "2", ...subject, ...ext, "-out", cert]);
    return { key, cert };
  }
  const csr = path.join(dir, `${name}.csr`);
  runOk("openssl", ["req", ...newKey, ...subject, "-out", csr]);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, opts.localhost ? `${san}\n` : "");
  runOk("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    opts.issuer,
    "-CAkey",
    opts.issuer.replace(/\.pem$/, ".key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    ext,
    "-out",
    cert,
  ]);
  return { key, cert };
}
