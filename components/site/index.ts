// BackupSite: the whole site from its model. Each component gets only its own slice of the model.
import * as pulumi from "@pulumi/pulumi";
import type { Site } from "../../stacks/schema";
import type { Host as HostModel } from "../../stacks/model/hosts";
import { Host } from "../host";
import { Monitor } from "../monitoring";
import { monitorChecksFor } from "../monitoring/render";

/** A NAS only receives copies: nothing of backup321 runs there. */
const isStorageOnly = (h: HostModel): boolean =>
  h.roles.length > 0 && h.roles.every((r) => r === "nas");

export interface BackupSiteArgs {
  /** The validated site model (stacks/). */
  readonly site: Site;
  /** Stack secrets by config key, as listed by stacks/secrets.ts requiredSecrets(). */
  readonly secrets: Readonly<Record<string, pulumi.Input<string>>>;
  /** RUNBOOK.md (stacks/runbook.ts), installed on every host that runs jobs. Defaults to none. */
  readonly runbook?: string;
}

export class BackupSite extends pulumi.ComponentResource {
  public readonly hosts: Readonly<Record<string, Host>>;
  /** The monitor of each host that runs jobs, by host name. */
  public readonly monitors: Readonly<Record<string, Monitor>>;
  /** What was installed where: hosts and their roles, resource counts per concern. */
  public readonly summary: pulumi.Output<pulumi.UnwrappedObject<Record<string, unknown>>>;

  constructor(name: string, args: BackupSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:site:BackupSite", name, {}, opts);
    const { site } = args;
    this.hosts = this.connectHosts(name, args);
    this.monitors = this.buildMonitoring(name, args);
    const summary: Record<string, unknown> = {
      site: site.name,
      targets: site.targets,
      hosts: Object.fromEntries(
        site.hosts.map((h) => [h.name, { address: h.address, roles: h.roles }]),
      ),
      monitoring: { hosts: Object.keys(this.monitors), schedule: site.monitoring.schedule },
    };
    this.summary = pulumi.output(summary);
    this.registerOutputs({ summary: this.summary });
  }

  /** Alerts, the hourly check and the runbook on every host that runs jobs (not a storage-only NAS). */
  private buildMonitoring(name: string, args: BackupSiteArgs): Record<string, Monitor> {
    const { site } = args;
    const mon = site.monitoring;
    const webhookUrl =
      mon.webhookSecret === undefined ? undefined : args.secrets[mon.webhookSecret];
    if (mon.webhookSecret !== undefined && webhookUrl === undefined)
      throw new pulumi.ResourceError(
        `backup321:${mon.webhookSecret}: missing alert webhook URL (monitoring.webhookSecret)`,
        this,
      );
    return Object.fromEntries(
      site.hosts
        .filter((h) => !isStorageOnly(h))
        .map((h) => [
          h.name,
          new Monitor(
            `${name}-${h.name}-monitor`,
            {
              host: this.hosts[h.name],
              schedule: mon.schedule,
              checks: monitorChecksFor(site, h.name),
              email: mon.email,
              webhookUrl: webhookUrl === undefined ? undefined : pulumi.secret(webhookUrl),
              webhookStyle: mon.webhookStyle,
              pingOnSuccess: mon.pingOnSuccess,
              runbook: args.runbook,
            },
            { parent: this },
          ),
        ]),
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
            timezone: h.timezone ?? args.site.timezone,
            installLibrary: !isStorageOnly(h),
          },
          { parent: this },
        ),
      ]),
    );
  }
}
