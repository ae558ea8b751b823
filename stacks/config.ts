// The only module that reads pulumi.Config: the site model and the secrets it names.
import * as pulumi from "@pulumi/pulumi";
import { parseSite } from "./load";
import type { Site } from "./schema";

export interface LoadedSite {
  readonly site: Site;
  /** A secret config value under backup321:<key>; fails with the `pulumi config set --secret` fix. */
  readonly secret: (key: string) => pulumi.Output<string>;
  /** Same, but undefined when the key is not set. */
  readonly optionalSecret: (key: string) => pulumi.Output<string> | undefined;
}

export function loadSite(): LoadedSite {
  const config = new pulumi.Config("backup321");
  // requireObject does not validate: parseSite does, and lists every problem at once.
  const site = parseSite(config.requireObject<unknown>("site"));
  const secret = (key: string): pulumi.Output<string> => {
    const value = config.getSecret(key);
    if (value === undefined) {
      throw new Error(
        `backup321:${key}: missing secret (set it with: pulumi config set --secret backup321:${key} ...)`,
      );
    }
    return value;
  };
  return { site, secret, optionalSecret: (key) => config.getSecret(key) };
}
