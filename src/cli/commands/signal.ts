import { ConfigError } from "../../config/errors.js";
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { CONTROL_OPERATIONS, isControlOperation } from "../../backchannel/message.js";

interface SignalCliOptions {
  region: string;
  operation?: string;
  count: string;
  ttl?: string;
  caFile?: string;
}

function wholeNumber(text: string, where: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min)
    throw new ConfigError([{ where, message: `expected a whole number >= ${min}; given "${text}"` }]);
  return value;
}

export function register(program: Command): void {
  program
    .command("signal")
    .description(
      "Send raw control messages to a region's back channel: each one makes one node finish its task and leave. " +
        "No ledger entry is written (the daemon's `lay-off` is the bookkept way).",
    )
    .requiredOption("--region <name>", "region whose backChannel to use (required)")
    .addOption(
      new Option("--operation <op>", "operation (default: the drainOperation setting)").choices([
        ...CONTROL_OPERATIONS,
      ]),
    )
    .option("--count <n>", "messages to send", "1")
    .option("--ttl <seconds>", "time-to-live of each message (default: the controlMessageTtlSeconds setting)")
    .option("--ca-file <path>", "extra CA certificate (PEM) for the administration endpoint")
    .action(async (opts: SignalCliOptions) => {
      const { loadConfig } = await import("../../config/load.js");
      const { createLogger } = await import("../../logging/logger.js");
      const { backChannelSchema } = await import("../../backchannel/config.js");
      const { namespaceOf } = await import("../../backchannel/clients.js");
      const { lazyDefaultCredential } = await import("../../azure/credentials.js");
      const { createControlSender } = await import("../../backchannel/sender.js");
      const config = loadConfig();
      const region = config.regions.find((candidate) => candidate.name === opts.region);
      if (!region) {
        throw new ConfigError([
          {
            where: "--region",
            message: `no region named "${opts.region}"; configured: ${config.regions.map((r) => r.name).join(", ") || "none"}`,
          },
        ]);
      }
      const rawBackChannel = (region as { backChannel?: unknown }).backChannel;
      if (rawBackChannel === undefined) {
        throw new ConfigError([
          {
            where: `regions[${opts.region}].backChannel`,
            message: "this region has no back channel configured",
          },
        ]);
      }
      const parsed = backChannelSchema.safeParse(rawBackChannel);
      if (!parsed.success) {
        throw new ConfigError(
          parsed.error.issues.map((issue) => ({
            where: `regions[${opts.region}].backChannel.${issue.path.join(".")}`,
            message: issue.message,
          })),
        );
      }
      const backChannel = parsed.data;
      const operation = opts.operation ?? config.drainOperation;
      if (!isControlOperation(operation))
        throw new ConfigError([{ where: "--operation", message: `unknown operation "${operation}"` }]);
      const count = wholeNumber(opts.count, "--count", 1);
      const ttlSeconds =
        opts.ttl === undefined ? config.controlMessageTtlSeconds : wholeNumber(opts.ttl, "--ttl", 1);
      const logger = createLogger({ level: config.logLevel, destination: process.stderr as never }).child({
        region: region.name,
      });
      const tlsCa = opts.caFile ? readFileSync(opts.caFile, "utf8") : undefined;
      const sender = createControlSender({
        target: {
          ...(backChannel.connectionString ? { connectionString: backChannel.connectionString } : {}),
          ...(backChannel.fullyQualifiedNamespace
            ? { fullyQualifiedNamespace: backChannel.fullyQualifiedNamespace }
            : {}),
          ...(backChannel.adminEndpoint ? { adminEndpoint: backChannel.adminEndpoint } : {}),
          topic: backChannel.topic,
          subscription: backChannel.subscription,
          autoCreate: backChannel.autoCreate,
        },
        ttlSeconds,
        logger,
        labels: { region: region.name, sentBy: "workforce signal" },
        clientDeps: { credential: lazyDefaultCredential(), ...(tlsCa ? { tlsCa } : {}) },
      });
      const deadline = AbortSignal.timeout(config.callTimeoutSeconds * 1000 * 2);
      try {
        const result = await sender.send(operation, count, { signal: deadline });
        process.stdout.write(
          `${JSON.stringify({ region: region.name, namespace: namespaceOf(backChannel), topic: backChannel.topic, operation, requested: count, sent: result.sent })}\n`,
        );
        if (result.errors.length > 0) throw result.errors[0];
      } finally {
        await sender.close();
      }
    });
}
