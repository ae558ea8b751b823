// BackupSite: the whole site from its model. Each component gets only its own slice of the model.
import * as pulumi from "@pulumi/pulumi";
import type { Site } from "../../stacks/schema";
import { maxIntervalHours } from "../../stacks/schedule";
import type { Host as HostModel } from "../../stacks/model/hosts";
import * as aws from "@pulumi/aws";
import { Host } from "../host";
import { DumpUpload, NasSync, OffsiteBucket } from "../offsite";

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
  /** The offsite bucket, when the model has one (its restic writer key feeds the restic repositories). */
  public readonly offsiteBucket?: OffsiteBucket;
  /** What was installed where: hosts and their roles, resource counts per concern. */
  public readonly summary: pulumi.Output<pulumi.UnwrappedObject<Record<string, unknown>>>;

  constructor(name: string, args: BackupSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:site:BackupSite", name, {}, opts);
    const { site } = args;
    this.hosts = this.connectHosts(name, args);
    this.offsiteBucket = this.buildOffsite(name, site);
    const summary: Record<string, unknown> = {
      site: site.name,
      targets: site.targets,
      hosts: Object.fromEntries(
        site.hosts.map((h) => [h.name, { address: h.address, roles: h.roles }]),
      ),
      offsite: {
        bucket: site.offsite.bucket?.name ?? null,
        upload: site.offsite.upload ? (site.offsite.upload.host ?? site.mariadb?.host) : null,
        nas: site.offsite.nas ? `${site.offsite.nas.host}:${site.offsite.nas.path}` : null,
      },
    };
    this.summary = pulumi.output(summary);
    this.registerOutputs({ summary: this.summary });
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

  /** The bucket (own aws provider in the model's region), the dump upload and the NAS sync. */
  private buildOffsite(name: string, site: Site): OffsiteBucket | undefined {
    const { bucket, upload, nas } = site.offsite;
    let offsite: OffsiteBucket | undefined;
    if (bucket) {
      // Credentials come from the environment of `pulumi up` (AWS_PROFILE, SSO...), never the program.
      const provider = new aws.Provider(`${name}-aws`, { region: bucket.region }, { parent: this });
      offsite = new OffsiteBucket(
        `${name}-offsite`,
        {
          bucket,
          dumpWriter: upload !== undefined,
          resticWriter: site.restic.repositories.some((r) => r.kind === "s3"),
        },
        { parent: this, providers: { aws: provider } },
      );
    }
    const dbHost = site.mariadb?.host;
    if (upload && bucket && offsite?.dumpWriter && site.mariadb) {
      new DumpUpload(
        `${name}-offsite-upload`,
        {
          host: this.hosts[upload.host ?? site.mariadb.host],
          bucket: bucket.name,
          region: bucket.region,
          prefix: bucket.dumpPrefix,
          backupDir: site.mariadb.backupDir,
          schedule: upload.schedule,
          accessKeyId: offsite.dumpWriter.accessKeyId,
          secretAccessKey: offsite.dumpWriter.secretAccessKey,
          kmsKeyArn: bucket.kmsKeyArn,
          // a missed full plus a day before the upload warns that it has nothing new
          maxAgeHours: maxIntervalHours(site.mariadb.schedules.full, site.timezone) * 2 + 24,
        },
        { parent: this },
      );
    }
    const from = nas?.from ?? dbHost;
    if (nas && from) {
      const nasModel = site.hosts.find((h) => h.name === nas.host)!;
      new NasSync(
        `${name}-nas-sync`,
        {
          host: this.hosts[from],
          nas: this.hosts[nas.host],
          nasAddress: nasModel.address,
          nasPort: nasModel.port,
          nasUser: nasModel.user,
          nasHostKey: nasModel.hostKey,
          path: nas.path,
          sources: nas.sources ?? [site.mariadb!.backupDir, site.mariadb!.binlogBackupDir],
          keep: nas.keep,
          schedule: nas.schedule,
        },
        { parent: this },
      );
    }
    return offsite;
  }
}
