// The monitor of one host: the alert channels every job's alert hook uses, the hourly check of
// every registered job and of the site's extra checks, and the runbook beside them.
import * as pulumi from "@pulumi/pulumi";
import { Host, RemoteFile, ScheduledJob } from "../host";
import { monitorEnv, renderAlertEnv, textfileDirCommands, type MonitorChecks } from "./render";

export interface MonitorArgs {
  readonly host: Host;
  /** Cron schedule of the check. Defaults to hourly ("0 * * * *"). */
  readonly schedule?: string;
  /** What is checked besides the registered jobs. */
  readonly checks: MonitorChecks;
  /** Addresses mailed on an alert. Defaults to none. */
  readonly email?: readonly string[];
  /** Webhook URL (a secret: the URL is the credential). Defaults to none. */
  readonly webhookUrl?: pulumi.Input<string>;
  /** json (ntfy, any receiver) or healthchecks (alerts to <URL>/fail). Defaults to json. */
  readonly webhookStyle?: "json" | "healthchecks";
  /** Ping the webhook after a run that found nothing wrong. Defaults to true. */
  readonly pingOnSuccess?: boolean;
  /** RUNBOOK.md installed as <etc>/RUNBOOK.md. Defaults to none. */
  /** Who to call, one line each: every alert names them. Defaults to none. */
  readonly contacts?: readonly string[];
  readonly runbook?: string;
}

export class Monitor extends pulumi.ComponentResource {
  public readonly alertEnvFile: string;
  public readonly webhookFile?: string;
  public readonly job: ScheduledJob;
  public readonly runbookFile?: string;

  constructor(name: string, args: MonitorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("backup321:monitoring:Monitor", name, {}, opts);
    const { host } = args;
    const p = host.paths;
    this.alertEnvFile = `${p.etc}/alert.env`;
    this.webhookFile = args.webhookUrl === undefined ? undefined : `${p.secrets}/alert-webhook-url`;
    const channels = this.installAlertChannels(name, args);
    const script = host.installScript(`${name}-script`, __dirname, "monitor.sh", {
      parent: this,
    });
    // The copies for node_exporter go with the monitor (after its cron file: no run copies again).
    const textfile =
      args.checks.textfileDir === undefined
        ? []
        : [
            host.command(
              `${name}-textfile`,
              {
                ...textfileDirCommands(args.checks.textfileDir),
                owns: `${args.checks.textfileDir}/backup321-*.prom`,
              },
              { parent: this },
            ),
          ];
    this.job = new ScheduledJob(
      `${name}-job`,
      {
        host,
        job: "monitor",
        schedule: args.schedule ?? "0 * * * *",
        script: script.path,
        env: monitorEnv(args.checks),
        dependsOn: [script, ...channels, ...textfile],
        alsoWrites: [`${p.metrics}/monitor-checks.prom`],
      },
      { parent: this },
    );
    if (args.runbook !== undefined) {
      this.runbookFile = `${p.etc}/RUNBOOK.md`;
      new RemoteFile(
        `${name}-runbook`,
        { host, path: this.runbookFile, content: args.runbook, dependsOn: host.base },
        { parent: this },
      );
    }
    this.registerOutputs({
      alertEnvFile: this.alertEnvFile,
      webhookFile: this.webhookFile,
      runbookFile: this.runbookFile,
    });
  }

  private installAlertChannels(name: string, args: MonitorArgs): RemoteFile[] {
    const { host } = args;
    const out: RemoteFile[] = [];
    if (args.webhookUrl !== undefined && this.webhookFile !== undefined) {
      out.push(
        new RemoteFile(
          `${name}-webhook`,
          {
            host,
            path: this.webhookFile,
            content: pulumi.secret(pulumi.output(args.webhookUrl).apply((u) => `${u.trim()}\n`)),
            secret: true,
            dependsOn: host.base,
          },
          { parent: this },
        ),
      );
    }
    out.push(
      new RemoteFile(
        `${name}-alert-env`,
        {
          host,
          path: this.alertEnvFile,
          content: renderAlertEnv({
            email: args.email ?? [],
            webhookFile: this.webhookFile,
            webhookStyle: args.webhookStyle ?? "json",
            pingOnSuccess: args.pingOnSuccess ?? true,
            contacts: args.contacts ?? [],
          }),
          mode: "0600",
          dirMode: "0700",
          dependsOn: host.base,
        },
        { parent: this },
      ),
    );
    return out;
  }
}
