// Reading the stack's generated keys from its state, for a restore done away from the rebuilt
// hosts: each query writes one 0600 file, so no key reaches a variable, argv or the terminal.
import type { Site } from "../../../stacks/schema";
import { RESTIC_S3_SECRETS } from "../../../stacks/secrets";
import { partName, SITE_RESOURCE } from "../names";
import { keyResource } from "../../mariadb/render";
import { writerKeyResource } from "../../offsite/render";
import { passwordResource } from "../../restic/render";
import { LAPTOP, USE_PASSPHRASE, type Step } from "./steps";
import { generationName, keyGeneration } from "../../../stacks/model/rotation";
import { now } from "../../../stacks/clock";

/** jq's reveal: a secret output of `pulumi stack export --show-secrets` is {"plaintext": JSON}. */
const REVEAL =
  'def reveal: if type == "object" and has("plaintext") then .plaintext | fromjson else . end;';

/** The jq filter printing EXPR (`reveal` defined) of the resource named RESOURCE in an export. */
export function stateFilter(resource: string, expr: string): string {
  return `${REVEAL} .deployment.resources[] | select(.urn | endswith("::${resource}")) | ${expr}`;
}

const KEYS = "$HOME/b321-keys";

/** One key into its file, refusing an empty result (a resource not in the state). */
function query(resource: string, expr: string, file: string): string[] {
  return [
    `pulumi stack export --show-secrets | jq -r '${stateFilter(resource, expr)}' > "${KEYS}/${file}"`,
    `[ -s "${KEYS}/${file}" ] || { echo "no ${resource} in the stack state" >&2; exit 1; }`,
  ];
}

/** The keys a restore may need, each with its exact query. */
export function keySteps(site: Site, stack: string): Step[] {
  const generation = keyGeneration(site.rotation, now());
  /** The current generation of a rotated secret into NAME.EXT, each older one into NAME-generation-I.EXT. */
  const generations = (resource: string, name: string, ext: string) => [
    ...query(generationName(resource, generation), ".outputs.result | reveal", `${name}.${ext}`),
    ...Array.from({ length: generation }, (_, i) =>
      query(
        generationName(resource, i),
        ".outputs.result | reveal",
        `${name}-generation-${i}.${ext}`,
      ),
    ).flat(),
  ];
  const cloud = site.restic.repositories.filter((r) => r.kind === "s3");
  const ownEndpoint = cloud.some((r) => r.endpoint !== undefined);
  const sh = [
    USE_PASSPHRASE,
    `pulumi stack select ${stack}`,
    "umask 077",
    `mkdir -p "${KEYS}"`,
    // each repository's current password, then each older generation (it opens a copy of the
    // repository made before that rotation, e.g. a disk kept away)
    ...site.restic.repositories.flatMap((r) =>
      generations(
        passwordResource(partName.restic(SITE_RESOURCE, r.name)),
        `restic-${r.name}`,
        "password",
      ),
    ),
  ];
  if (cloud.length > 0)
    sh.push(
      ...(ownEndpoint
        ? [
            `printf '[default]\\naws_access_key_id = %s\\naws_secret_access_key = %s\\n' "$(pulumi config get backup321:${RESTIC_S3_SECRETS.accessKeyId})" "$(pulumi config get backup321:${RESTIC_S3_SECRETS.secretAccessKey})" > "${KEYS}/restic-s3.aws"`,
          ]
        : query(
            generationName(
              writerKeyResource(partName.offsite(SITE_RESOURCE), "restic"),
              generation,
            ),
            '"[default]\\naws_access_key_id = \\(.id)\\naws_secret_access_key = \\(.outputs.secret | reveal)"',
            "restic-s3.aws",
          )),
    );
  if (site.mariadb) {
    // the current key, then each older generation (a full made before a rotation needs its own)
    sh.push(...generations(keyResource(partName.mariadb(SITE_RESOURCE)), "mariadb", "key"));
  }
  sh.push(`ls -l "${KEYS}"`);
  return [
    {
      on: LAPTOP,
      say: `every generated key into ${KEYS}/ (restic: \`--password-file\`; S3: \`AWS_SHARED_CREDENTIALS_FILE\`; MariaDB: the fulls' and binlogs' \`openssl -pass file:\`). Shred the directory when done.`,
      sh,
    },
  ];
}
