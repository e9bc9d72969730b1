import { defaultStartBackoff } from "../policy/start-backoff.js";
import type { TokenCredential } from "@azure/core-auth";
import type { Config } from "../config/load.js";
import type { Logger } from "../logging/logger.js";
import type { QueueProbe } from "../queue/types.js";
import type { Region } from "../regions/types.js";
import type { WorkforceMetrics } from "../metrics/registry.js";
import type { RegionContext } from "../regions/context.js";
import { createQueueProbe, parseQueueSpec } from "../queue/index.js";
import { createRegion } from "../regions/factory.js";
import { ConfigError } from "../config/load.js";
import { lazyDefaultCredential } from "../azure/credentials.js";
import { loadPolicy } from "./policy-loader.js";
import { Reconciler } from "./reconciler.js";
import { createDrainChannelFactory } from "./drain-channels.js";
import type { WriteFence } from "../regions/fence.js";

export interface WorkforceDeps {
  logger: Logger;
  metrics?: WorkforceMetrics;
  /** Azure credential for every Azure call; default DefaultAzureCredential, built on first use only. */
  credential?: TokenCredential;
  /** Extra CA certificates (PEM) for Azure endpoints (emulators, private clouds). */
  tlsCa?: string;
  /** Prebuilt regions / queue probe, instead of building them from the config. */
  regions?: Region[];
  queue?: QueueProbe;
  /** Force dry-run regardless of the config. */
  dryRun?: boolean;
  /** The daemon: start the scale-down window at the workforce found (see ReconcilerOptions). */
  windowFromFirstSight?: boolean;
  /** Leader election's fence: checked before every write to a region, its drain channel and ledger. */
  fence?: WriteFence;
}

/** The assembled pieces: what the daemon and the one-shot CLI commands work with. */
export interface Workforce {
  queue: QueueProbe;
  regions: Region[];
  reconciler: Reconciler;
  close(): Promise<void>;
}

export function buildQueueProbe(
  config: Config,
  credential: () => TokenCredential,
  tlsCa?: string,
): QueueProbe {
  if (!config.queue) {
    throw new ConfigError([{ where: "WORKFORCE_QUEUE", message: "required: the task queue to watch" }]);
  }
  let spec;
  try {
    spec = parseQueueSpec(config.queue, { connectionString: config.queueConnectionString });
  } catch (error) {
    throw new ConfigError([{ where: "WORKFORCE_QUEUE", message: (error as Error).message }]);
  }
  return createQueueProbe(spec, {
    connectionString: config.queueConnectionString,
    credential,
    serviceBus: {
      ...(config.queueAdminEndpoint ? { adminEndpoint: config.queueAdminEndpoint } : {}),
      ...(tlsCa ? { clientOptions: { tlsOptions: { ca: tlsCa } } } : {}),
    },
  });
}

/** Build queue probe, regions, policy and reconciler from a validated config. */
export async function buildWorkforce(config: Config, deps: WorkforceDeps): Promise<Workforce> {
  const credential = deps.credential ? () => deps.credential as TokenCredential : lazyDefaultCredential();
  const policy = await loadPolicy(config);
  const queue = deps.queue ?? buildQueueProbe(config, credential, deps.tlsCa);
  const createDrainChannel = createDrainChannelFactory(config, {
    logger: deps.logger,
    credential,
    tlsCa: deps.tlsCa,
    ...(deps.fence ? { fence: deps.fence } : {}),
  });
  const regions =
    deps.regions ??
    config.regions.map((regionConfig) => {
      const context: RegionContext = {
        logger: deps.logger.child({ region: regionConfig.name }),
        settings: config,
        credential,
        ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
        ...(createDrainChannel ? { createDrainChannel } : {}),
        ...(deps.fence ? { fence: deps.fence } : {}),
      };
      return createRegion(regionConfig, context);
    });
  const dryRun = deps.dryRun ?? config.dryRun;
  const reconciler = new Reconciler({
    queue,
    regions,
    policy,
    parameters: {
      concurrency: config.concurrency,
      maxWorkers: config.maxWorkers,
      minWorkers: config.minWorkers,
      rampFactor: config.rampFactor,
      scaleDownDelayMs: config.scaleDownDelaySeconds * 1000,
    },
    callTimeoutMs: config.callTimeoutSeconds * 1000,
    // Hiring many workers takes a while (ARM write limits); give actions a whole interval.
    actTimeoutMs: Math.max(config.callTimeoutSeconds, config.intervalSeconds) * 1000,
    readConcurrency: config.readConcurrency,
    staleTicks: config.staleTicks,
    hireGraceMs: config.hireGraceSeconds * 1000,
    dryRun,
    windowFromFirstSight: deps.windowFromFirstSight ?? false,
    logger: deps.logger,
    startBackoff: defaultStartBackoff(config.intervalSeconds),
    hints: { taskSeconds: config.taskSeconds, startupSeconds: config.startupSeconds },
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.fence ? { fence: deps.fence } : {}),
  });
  return {
    queue,
    regions,
    reconciler,
    close: async () => {
      await Promise.allSettled([queue.close?.(), ...regions.map((region) => region.close?.())]);
    },
  };
}
