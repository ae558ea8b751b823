// BackupSite: the whole site from its model. Each component gets only its own slice of the model.
import * as pulumi from "@pulumi/pulumi";
import type { Site } from "../../stacks/schema";
import type { Host as HostModel } from "../../stacks/model/hosts";
import { Host } from "../host";
import { MariaDbBackup } from "../mariadb";
import { MARIADB_TOOLS } from "../mariadb/render";

/** A NAS only receives copies: nothing of backup321 runs there. */
const isStorageOnly = (h: HostModel): boolean =>
  h.roles.length > 0 && h.roles.every((r) => r === "nas");

export interface BackupSiteArgs {
  /** The validated site model (stacks/). */
  readonly site: Site;
  /** Stack secrets by config key, as listed by stacks/secrets.ts requiredSecrets(). */
  readonly secrets: Readonly<Record<string, pulumi.Input<string>>>;
}

export class BackupSite extends pulumi.ComponentResource {
  public readonly hosts: Readonly<Record<string, Host>>;
  /** What was installed where: hosts and their roles, resource counts per concern. */
  public readonly summary: pulumi.Output<pulumi.UnwrappedObject<Record<string, unknown>>>;

  constructor(name: string, args: BackupSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:site:BackupSite", name, {}, opts);
    const { site } = args;
    this.hosts = this.connectHosts(name, args);
    const mariadb = this.buildMariaDb(name, site);
    const summary: Record<string, unknown> = {
      site: site.name,
      targets: site.targets,
      hosts: Object.fromEntries(
        site.hosts.map((h) => [h.name, { address: h.address, roles: h.roles }]),
      ),
      mariadb: mariadb && {
        host: site.mariadb?.host,
        method: site.mariadb?.method,
        jobs: mariadb.statusFiles,
        pitr: mariadb.pitrCommand,
      },
    };
    this.summary = pulumi.output(summary);
    this.registerOutputs({ summary: this.summary });
  }

  private buildMariaDb(name: string, site: Site): MariaDbBackup | undefined {
    const m = site.mariadb;
    if (!m) return undefined;
    return new MariaDbBackup(
      `${name}-mariadb`,
      { host: this.hosts[m.host], config: m, siteName: site.name, timezone: site.timezone },
      { parent: this },
    );
  }

  private connectHosts(name: string, args: BackupSiteArgs): Record<string, Host> {
    const secret = (h: HostModel) => {
      const key = args.secrets[h.sshKeySecret];
      if (key === undefined)
        throw new pulumi.ResourceError(
          `backup321:${h.sshKeySecret}: missing SSH key for host ${h.name}`,
          this,
        );
      return pulumi.secret(key);
    };
    return Object.fromEntries(
      args.site.hosts.map((h) => [
        h.name,
        new Host(
          `${name}-${h.name}`,
          {
            hostName: h.name,
            address: h.address,
            port: h.port,
            user: h.user,
            privateKey: secret(h),
            hostKey: h.hostKey,
            paths: h.paths,
            installLibrary: !isStorageOnly(h),
            requiredTools: h.roles.includes("mariadb") ? MARIADB_TOOLS : undefined,
          },
          { parent: this },
        ),
      ]),
    );
  }
}
