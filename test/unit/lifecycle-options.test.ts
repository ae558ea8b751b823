// What the real engine does to a site's resources on a change, a replacement and a destroy is decided
// by resource options and a command's triggers, not by the text of its commands. Pinned here for the
// dev and prod programs, as the engine receives them (the SDK's additions included):
// - a changed input is an update that runs the idempotent create again, never a create-before-delete
//   replacement whose old delete would undo the new create;
// - only identities (a file's path, a repository's URL) replace, and then the old is deleted first;
// - a delete removes only what its resource still owns (the owner stamp written by its create);
// - what opens backups (keys, passwords, the bucket, the repositories) is never deleted.
import { readStackFile } from "../../infra/stackFile";
import { parseSite, SITE_KEY } from "../../stacks/load";
import type { Site } from "../../stacks/schema";
import {
  containsSecret,
  isSecretValue,
  reveal,
  runStack,
  type Registration,
} from "../harness/program";
import {
  asRoot,
  claimCommand,
  ownerStampFile,
  parseFileMarker,
  releaseCommand,
  removeFileCommand,
} from "../../components/host/render";
import { dropUserCommand, userCommand } from "../../components/mariadb/render";

type SiteHost = Site["hosts"][number];

interface Stack {
  readonly site: Site;
  readonly recorded: Registration[];
}

const STACKS = ["dev", "prod"] as const;
const stacks = new Map<string, Stack>();

beforeAll(async () => {
  for (const name of STACKS) {
    const file = readStackFile(name);
    const recorded = await runStack(name);
    stacks.set(name, { site: parseSite(file.config[SITE_KEY]), recorded });
  }
}, 240_000);

const COMMAND = "command:remote:Command";
const REMOTE_FILE = "backup321:host:RemoteFile";

/** A remote command with what the checks need: inputs revealed, its host in the model, its file. */
interface Cmd {
  readonly r: Registration;
  readonly name: string;
  readonly create: string;
  readonly update?: string;
  readonly delete?: string;
  readonly triggers?: unknown[];
  readonly host: SiteHost;
  /** The path a RemoteFile's command writes (undefined for any other command). */
  readonly file?: string;
}

function commands(stack: string): Cmd[] {
  const { site, recorded } = stacks.get(stack)!;
  return recorded
    .filter((r) => r.type === COMMAND)
    .map((r) => {
      const i = reveal(r.inputs) as Record<string, unknown>;
      const conn = i.connection as { host: string; port: number };
      const host = site.hosts.find((h) => h.address === conn.host && h.port === conn.port);
      if (!host) throw new Error(`${r.name}: no host at ${conn.host}:${conn.port}`);
      const parent = recorded.find((p) => p.urn === r.parent);
      const create = String(i.create);
      return {
        r,
        name: r.name,
        create,
        update: i.update as string | undefined,
        delete: i.delete as string | undefined,
        triggers: i.triggers as unknown[] | undefined,
        host,
        file: parent?.type === REMOTE_FILE ? parseFileMarker(create)?.path : undefined,
      };
    });
}

const one = (stack: string, name: string): Cmd => {
  const found = commands(stack).filter((c) => c.name === name);
  expect(found.map((c) => c.name)).toEqual([name]);
  return found[0];
};

/** A host whose only role is nas: used as its own login user (no sudo there). */
const storageOnly = (h: SiteHost) => h.roles.length > 0 && h.roles.every((r) => r === "nas");

/** How the host runs a command: as is for root or a storage-only host, else through sudo. */
const asHost = (h: SiteHost, text: string) => (storageOnly(h) ? text : asRoot(h.user, text));

/** What `wrap` put around a command, or undefined when the text is not wrap(something). */
function unwrap(text: string, wrap: (inner: string) => string): string | undefined {
  const hole = "\u0000HOLE\u0000";
  const [pre, post] = wrap(hole).split(hole);
  if (text.length < pre.length + post.length) return undefined;
  return text.startsWith(pre) && text.endsWith(post)
    ? text.slice(pre.length, text.length - post.length)
    : undefined;
}

/** The command text after the optional file marker and the host generation line (both checked). */
function body(c: Cmd, text: string): string {
  const lines = text.split("\n");
  const marker = parseFileMarker(text);
  const at = marker ? 1 : 0;
  expect([c.name, lines[at]]).toEqual([c.name, `# backup321 host generation ${c.host.generation}`]);
  return lines.slice(at + 1).join("\n");
}

/** The owner stamp a delete checks: [stamp file, "<resource name> <what it owns>"]. */
function stampOf(c: Cmd): { file: string; stamp: string; owns: string } | undefined {
  const m = /if \[ -e '([^']+)' \] && \[ "\$\(cat -- '\1'\)" != '([^']+)' \]; then/.exec(
    c.delete ?? "",
  );
  if (!m) return undefined;
  const [, file, stamp] = m;
  return { file, stamp, owns: stamp.slice(c.name.length + 1) };
}

describe.each(STACKS)("the %s stack", (stack) => {
  test("every command carries its host's generation (after a file's marker) and runs as root", () => {
    const all = commands(stack);
    expect(all.length).toBeGreaterThan(10);
    for (const c of all) {
      for (const text of [c.create, c.update ?? c.create]) {
        const rest = body(c, text);
        const root = c.host.user === "root" || storageOnly(c.host);
        expect([c.name, rest.startsWith("sudo -n -- bash -c ")]).toEqual([c.name, !root]);
      }
    }
  });

  test("no command is replaced for anything but its triggers (only the SDK's triggers[*]; no delete, no stdin)", () => {
    for (const c of commands(stack))
      expect([c.name, c.r.options.replaceOnChanges]).toEqual([c.name, ["triggers[*]"]]);
  });

  test("triggers are identities only (no content hash, nothing secret), and what they replace is deleted first", () => {
    for (const c of commands(stack)) {
      expect([c.name, c.r.options.deleteBeforeReplace]).toEqual([c.name, c.triggers !== undefined]);
      if (c.triggers === undefined) continue;
      expect([c.name, containsSecret(c.r.inputs.triggers)]).toEqual([c.name, false]);
      for (const t of c.triggers) {
        expect(typeof t).toBe("string");
        expect([c.name, /^[0-9a-f]{64}$/.test(String(t))]).toEqual([c.name, false]);
      }
    }
  });

  test("a RemoteFile's command: triggers exactly [its path], content on stdin, a content change is an update", () => {
    const files = commands(stack).filter((c) => c.file !== undefined);
    expect(files.length).toBeGreaterThan(10);
    // every RemoteFile has its command
    const components = stacks.get(stack)!.recorded.filter((r) => r.type === REMOTE_FILE);
    expect(files.length).toBe(components.length);
    for (const c of files) {
      expect([c.name, c.triggers]).toEqual([c.name, [c.file]]);
      expect([c.name, c.r.options.deleteBeforeReplace]).toEqual([c.name, true]);
      // No update command of its own: an update runs the install (create) again, with the new stdin.
      expect([c.name, c.update]).toEqual([c.name, c.create]);
      expect(c.r.inputs.stdin).toBeDefined();
    }
  });

  test("every delete runs only while its resource still owns what it deletes, and its create claims it", () => {
    const withDelete = commands(stack).filter((c) => c.delete !== undefined);
    expect(withDelete.length).toBeGreaterThan(0);
    for (const c of withDelete) {
      const s = stampOf(c);
      expect([c.name, s !== undefined]).toEqual([c.name, true]);
      const { file, stamp, owns } = s!;
      expect([c.name, stamp.startsWith(`${c.name} `)]).toEqual([c.name, true]);
      expect(file).toBe(ownerStampFile(file.slice(0, file.lastIndexOf("/")), owns));
      const release = (inner: string) => asHost(c.host, releaseCommand(inner, file, stamp));
      const claim = (inner: string) => asHost(c.host, claimCommand(inner, file, stamp));
      expect([c.name, unwrap(c.delete!, release) !== undefined]).toEqual([c.name, true]);
      expect([c.name, unwrap(body(c, c.create), claim) !== undefined]).toEqual([c.name, true]);
      if (c.file !== undefined) {
        // A RemoteFile owns its path, in the host's owners directory, and removes that file. A
        // job's registry entry (a one-off job's env file: PITR, restic init) takes what the job's
        // runs wrote with it, and nothing else.
        expect(owns).toBe(c.file);
        const state = c.host.paths.state;
        const job =
          /\/jobs\.d\/([^/]+)\.json$/.exec(c.file)?.[1] ??
          /\/(mariadb-pitr|restic-[^/]+-init)\.env$/.exec(c.file)?.[1];
        const results =
          job === undefined
            ? []
            : [
                `${state}/status/${job}.json`,
                `${state}/metrics/${job}.prom`,
                ...(job === "monitor" ? [`${state}/metrics/monitor-checks.prom`] : []),
                // the binlog stream's watchdog takes the stream's own results with it
                ...(job === "mariadb-stream-watch"
                  ? [`${state}/status/mariadb-stream.json`, `${state}/metrics/mariadb-stream.prom`]
                  : []),
              ];
        expect(c.delete).toBe(
          asHost(
            c.host,
            releaseCommand(
              [c.file, ...results].map(removeFileCommand).join("\n"),
              ownerStampFile(`${c.host.paths.owners}`, c.file),
              `${c.name} ${c.file}`,
            ),
          ),
        );
      }
    }
  });

  test("keys and passwords are never deleted: no delete, and the MariaDB key file is protected", () => {
    const all = commands(stack);
    const opensBackups = all.filter(
      (c) =>
        /\.(key|keyring|password)$|_ed25519$/.test(
          c.file ?? parseFileMarker(c.create)?.path ?? "",
        ) || /-nas-sync(-stream)?-key$/.test(c.name),
    );
    const expected = {
      dev: [
        "backup321-mariadb-key-file-file",
        "backup321-mariadb-keyring-file",
        "backup321-restic-local-password-file",
      ],
      prod: [
        "backup321-mariadb-key-file-file",
        "backup321-mariadb-keyring-file",
        "backup321-mariadb-replica-key-file-file",
        "backup321-mariadb-replica-keyring-file",
        "backup321-mariadb-stream-key-file-file",
        "backup321-mariadb-stream-keyring-file",
        "backup321-nas-sync-key",
        "backup321-nas-sync-stream-key",
        "backup321-restic-cloud-password-file",
        "backup321-restic-usb-password-file",
      ],
    }[stack];
    expect(opensBackups.map((c) => c.name).sort()).toEqual(expected);
    for (const c of opensBackups) expect([c.name, c.delete]).toEqual([c.name, undefined]);
    // The only RemoteFiles kept on delete are the MariaDB key files and key rings (prod: the
    // primary's, the replica's, which takes the fulls, and the stream host's, which seals binlogs).
    const keyFiles = {
      dev: ["backup321-mariadb-keyring-file", "backup321-mariadb-key-file-file"],
      prod: [
        "backup321-mariadb-keyring-file",
        "backup321-mariadb-key-file-file",
        "backup321-mariadb-replica-keyring-file",
        "backup321-mariadb-replica-key-file-file",
        "backup321-mariadb-stream-keyring-file",
        "backup321-mariadb-stream-key-file-file",
      ],
    }[stack];
    expect(
      all
        .filter((c) => c.file !== undefined && c.delete === undefined)
        .map((c) => c.name)
        .sort(),
    ).toEqual([...keyFiles].sort());
    for (const name of keyFiles) {
      const keyFile = one(stack, name);
      expect(keyFile.r.options.protect).toBe(true);
      const component = stacks.get(stack)!.recorded.find((r) => r.urn === keyFile.r.parent)!;
      expect([component.type, component.options.protect]).toEqual([REMOTE_FILE, true]);
    }
  });

  test("a restic password file is installed once, rotated by its update, never deleted, retained", () => {
    const passwordFiles = commands(stack).filter((c) => c.name.endsWith("-password-file"));
    expect(passwordFiles.length).toBeGreaterThan(0);
    for (const c of passwordFiles) {
      expect(c.triggers).toBeUndefined();
      expect(c.delete).toBeUndefined();
      expect(c.r.options.retainOnDelete).toBe(true);
      expect(c.r.options.deleteBeforeReplace).toBe(false);
      expect(isSecretValue(c.r.inputs.stdin)).toBe(true);
      // create refuses a different existing file; update rotates the repository's key first
      expect(body(c, c.create)).toContain("refusing to replace");
      expect(body(c, c.update!)).not.toContain("refusing to replace");
      expect(body(c, c.update!)).toMatch(/restic-init\.sh' '[^']+-init\.env' rotate "\$tmp"/);
    }
  });

  test("generated secrets: the MariaDB key, PBS key bytes and restic passwords protected; the passwords retained too", () => {
    const generated = stacks
      .get(stack)!
      .recorded.filter(
        (r) =>
          r.type === "random:index/randomPassword:RandomPassword" ||
          r.type === "random:index/randomBytes:RandomBytes",
      )
      .map((r) => [
        r.name,
        { protect: r.options.protect, retainOnDelete: r.options.retainOnDelete },
      ])
      .sort(([a], [b]) => String(a).localeCompare(String(b)));
    // A removed repository's password leaves the state (once unprotected), its file stays.
    const kept = { protect: true, retainOnDelete: true };
    const protect = { protect: true, retainOnDelete: false };
    // The backup user's password is neither: a new one is an update (ALTER USER, then its option file).
    const neither = { protect: false, retainOnDelete: false };
    expect(generated).toEqual(
      {
        dev: [
          ["backup321-mariadb-key", protect],
          ["backup321-mariadb-password", neither],
          ["backup321-restic-local-password", kept],
        ],
        prod: [
          ["backup321-mariadb-key", protect],
          ["backup321-mariadb-password", neither],
          // the stream user's, likewise: a new one is ALTER USER, then its option file
          ["backup321-mariadb-stream-password", neither],
          ["backup321-proxmox-usb-ssd-key", protect],
          ["backup321-restic-cloud-password", kept],
          ["backup321-restic-usb-password", kept],
        ],
      }[stack],
    );
  });

  test("the MariaDB backup user: triggers exactly [the user it owns] (a rotation is an update), DROP USER only while still the owner", () => {
    const m = stacks.get(stack)!.site.mariadb!;
    const c = one(stack, "backup321-mariadb-user");
    const owns = `mariadb-user:${m.backupUser}@${m.socket}`;
    const stampFile = ownerStampFile(`${c.host.paths.owners}`, owns);
    const stamp = `${c.name} ${owns}`;
    // Another user name or socket is another user: the old one dropped first, then the new created.
    expect(c.triggers).toEqual([owns]);
    expect(c.r.options.deleteBeforeReplace).toBe(true);
    // A new password is stdin only (the triggers name the user, not its password): an update.
    const password = "mock-password-backup321-mariadb-password";
    expect(String(reveal(c.r.inputs.stdin))).toBe(`${password}\n`);
    expect(JSON.stringify([c.triggers, c.create, c.update, c.delete])).not.toContain(password);
    expect(c.delete).toBe(
      asHost(c.host, releaseCommand(dropUserCommand(m.socket, m.backupUser), stampFile, stamp)),
    );
    expect(c.delete).toContain("DROP USER");
    expect(c.delete).toContain(stampFile);
    expect(body(c, c.create)).toBe(
      asHost(
        c.host,
        claimCommand(
          userCommand(m.socket, {
            user: m.backupUser,
            method: m.method,
            databases: m.databases,
            onReplica: m.replica !== undefined,
          }),
          stampFile,
          stamp,
        ),
      ),
    );
    // The same idempotent SQL (CREATE OR REPLACE / ALTER, then grants) on create and update.
    expect(c.update).toBe(c.create);
    expect(isSecretValue(c.r.inputs.stdin)).toBe(true);
    expect(c.r.inputs.logging).toBe("none");
    expect(c.r.options.additionalSecretOutputs).toEqual(
      expect.arrayContaining(["stdin", "stdout", "stderr"]),
    );
  });

  test("a command with a secret stdin logs nothing and keeps stdin, stdout and stderr secret", () => {
    const secret = commands(stack).filter((c) => isSecretValue(c.r.inputs.stdin));
    expect(secret.length).toBeGreaterThan(1);
    for (const c of secret) {
      expect([c.name, c.r.inputs.logging]).toEqual([c.name, "none"]);
      expect([c.name, c.r.options.additionalSecretOutputs]).toEqual([
        c.name,
        expect.arrayContaining(["stdin", "stdout", "stderr"]),
      ]);
    }
  });

  test("every command waits for its host's readiness check", () => {
    const all = commands(stack);
    for (const c of all) {
      if (c.name.endsWith("-ready")) continue;
      const ready = one(stack, `backup321-${c.host.name}-ready`);
      expect([c.name, c.r.options.dependsOn]).toEqual([
        c.name,
        expect.arrayContaining([ready.r.urn]),
      ]);
    }
  });

  test("a repository's init is replaced only for a new URL (old first) and never deletes the repository", () => {
    const inits = commands(stack).filter((c) => /^backup321-restic-[^-]+-init$/.test(c.name));
    expect(
      inits.map((c) => [c.name, c.triggers]).sort(([a], [b]) => String(a).localeCompare(String(b))),
    ).toEqual(
      {
        dev: [["backup321-restic-local-init", ["/var/backups/backup321/restic", ""]]],
        prod: [
          [
            "backup321-restic-cloud-init",
            [
              "s3:https://s3.eu-west-3.amazonaws.com/atlastech-backups/restic/cloud",
              "/mnt/usb-ssd/restic",
            ],
          ],
          ["backup321-restic-usb-init", ["/mnt/usb-ssd/restic", ""]],
        ],
      }[stack],
    );
    for (const c of inits) {
      expect(c.delete).toBeUndefined();
      expect(c.r.options.retainOnDelete).toBe(true);
      expect(c.r.options.deleteBeforeReplace).toBe(true);
    }
  });
});

test("prod: the S3 bucket is protected, and the only protected resource besides the keys", () => {
  const { recorded } = stacks.get("prod")!;
  const bucket = recorded.filter((r) => r.type === "aws:s3/bucket:Bucket");
  expect(bucket.map((r) => [r.name, r.options.protect])).toEqual([
    ["backup321-offsite-bucket", true],
  ]);
  expect(
    recorded
      .filter((r) => r.options.protect)
      .map((r) => r.name)
      .sort(),
  ).toEqual([
    "backup321-mariadb-key",
    "backup321-mariadb-key-file",
    "backup321-mariadb-key-file-file",
    "backup321-mariadb-keyring",
    "backup321-mariadb-keyring-file",
    "backup321-mariadb-replica-key-file",
    "backup321-mariadb-replica-key-file-file",
    "backup321-mariadb-replica-keyring",
    "backup321-mariadb-replica-keyring-file",
    "backup321-mariadb-stream-key-file",
    "backup321-mariadb-stream-key-file-file",
    "backup321-mariadb-stream-keyring",
    "backup321-mariadb-stream-keyring-file",
    "backup321-offsite-bucket",
    "backup321-proxmox-usb-ssd-key",
    "backup321-restic-cloud-password",
    "backup321-restic-usb-password",
  ]);
});
