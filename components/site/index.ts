// BackupSite: the whole site from its model. Each component gets only its own slice of the model.
import * as pulumi from "@pulumi/pulumi";
import type { Site } from "../../stacks/schema";
import type { Host as HostModel } from "../../stacks/model/hosts";
import { Host } from "../host";
import { ProxmoxBackupServer } from "../pbs";
import { ProxmoxBackups } from "../proxmox";

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
  public readonly pbs?: ProxmoxBackupServer;
  public readonly proxmox?: ProxmoxBackups;
  /** What was installed where: hosts and their roles, resource counts per concern. */
  public readonly summary: pulumi.Output<pulumi.UnwrappedObject<Record<string, unknown>>>;

  constructor(name: string, args: BackupSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:site:BackupSite", name, {}, opts);
    const { site } = args;
    this.hosts = this.connectHosts(name, args);
    this.pbs = this.buildPbs(name, site);
    this.proxmox = this.buildProxmox(name, args);
    const summary: Record<string, unknown> = {
      site: site.name,
      targets: site.targets,
      hosts: Object.fromEntries(
        site.hosts.map((h) => [h.name, { address: h.address, roles: h.roles }]),
      ),
      proxmox: this.proxmox && {
        storages: Object.keys(this.proxmox.storages),
        jobs: Object.keys(this.proxmox.jobs),
        snapshots: this.proxmox.snapshotJob !== undefined,
      },
      pbs: this.pbs && { datastores: Object.keys(this.pbs.access), tls: this.pbs.fingerprint },
    };
    this.summary = pulumi.output(summary);
    this.registerOutputs({ summary: this.summary });
  }

  private buildPbs(name: string, site: Site): ProxmoxBackupServer | undefined {
    const p = site.pbs;
    if (!p) return undefined;
    return new ProxmoxBackupServer(
      `${name}-pbs`,
      {
        host: this.hosts[p.host],
        commandPrefix: p.commandPrefix,
        user: p.user,
        guardSchedule: p.guardSchedule,
        datastores: p.datastores.map((d) => ({ ...d, retention: site.retention[d.retention] })),
      },
      { parent: this },
    );
  }

  private buildProxmox(name: string, args: BackupSiteArgs): ProxmoxBackups | undefined {
    const { site } = args;
    const p = site.proxmox;
    if (!p) return undefined;
    const pbs = this.pbs;
    const server = site.pbs?.server ?? site.hosts.find((h) => h.name === site.pbs?.host)?.address;
    const apiToken = args.secrets[p.apiTokenSecret];
    if (apiToken === undefined)
      throw new pulumi.ResourceError(
        `backup321:${p.apiTokenSecret}: missing Proxmox API token`,
        this,
      );
    const used = [...new Set(p.jobs.map((j) => j.datastore))];
    return new ProxmoxBackups(
      `${name}-proxmox`,
      {
        host: this.hosts[p.host],
        endpoint: p.endpoint,
        apiToken: pulumi.secret(apiToken),
        insecure: p.insecure,
        node: p.node,
        storages:
          pbs && server
            ? used.map((ds) => ({
                datastore: ds,
                server,
                username: pbs.access[ds].tokenId,
                password: pbs.access[ds].tokenSecret,
                fingerprint: pbs.fingerprint,
              }))
            : [],
        jobs: p.jobs.map((j) => ({ ...j, retention: site.retention[j.retention] })),
        snapshots: p.snapshots,
      },
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
          },
          { parent: this },
        ),
      ]),
    );
  }
}
