import { stateStorageConnectionString, storageAccountName } from "../config/connection-strings.js";
import type { Config } from "../config/load.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { createMetrics, type WorkforceMetrics } from "../metrics/registry.js";
import { startMetricsServer, type MetricsServer } from "../metrics/server.js";
import { packageVersion } from "../cli/version.js";
import { runLoop } from "./loop.js";
import type { TickReport } from "./reconciler.js";
import { buildWorkforce, type Workforce, type WorkforceDeps } from "./workforce.js";
import { LeaseFence, startLeaderElection, type LeaderElection } from "./leader.js";
import { ignoreWorkerLeaveSignals } from "../process/stray-signals.js";

export interface DaemonOptions extends Partial<WorkforceDeps> {
  config: Config;
  /**
   * Install SIGTERM/SIGINT handlers that stop after the tick in flight, and log and ignore SIGUSR1/SIGUSR2
   * (the CLI does).
   */
  handleSignals?: boolean;
  /** Called after every tick. */
  onTick?: (report: TickReport) => void;
}

export interface Daemon {
  /** Port of /metrics, /healthz, /readyz. */
  metricsPort: number;
  workforce: Workforce;
  metrics: WorkforceMetrics;
  /** Stop after the tick in flight, close everything. Idempotent. */
  stop(): Promise<void>;
  /** Settles when the daemon has stopped. */
  done: Promise<void>;
}

/**
 * The daemon: metrics server, optional leader election, and the reconcile loop. Bad config has been
 * rejected before this (exit 2); from here on nothing a region or the queue says may crash the process.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config } = options;
  const logger: Logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = options.metrics ?? createMetrics();
  // From the very start: building the workforce and taking the lease may take a while (Storage slow to
  // answer), and a leave signal in that time would open the debugger (SIGUSR1) or kill the daemon (SIGUSR2).
  const stopIgnoringLeaveSignals = options.handleSignals
    ? ignoreWorkerLeaveSignals(
        logger,
        "the daemon has no use for it (SIGTERM or SIGINT stop it after the tick in flight; workers are drained by the daemon itself)",
      )
    : undefined;
  try {
    return await startDaemonParts(options, logger, metrics, stopIgnoringLeaveSignals);
  } catch (error) {
    stopIgnoringLeaveSignals?.();
    throw error;
  }
}

/** The daemon's parts, started in order (startDaemon has set up what must come first). */
async function startDaemonParts(
  options: DaemonOptions,
  logger: Logger,
  metrics: WorkforceMetrics,
  stopIgnoringLeaveSignals: (() => void) | undefined,
): Promise<Daemon> {
  const { config } = options;
  // Built before the regions, so that every write they make can check it; the election drives it.
  const fence = config.leaderElection ? new LeaseFence() : undefined;
  const workforce = await buildWorkforce(config, {
    ...options,
    logger,
    metrics,
    windowFromFirstSight: true,
    ...(fence ? { fence } : {}),
  });
  const intervalMs = config.intervalSeconds * 1000;
  const startedAt = Date.now();
  let lastSuccessAt: number | undefined;

  metrics.reconcileInterval.set(config.intervalSeconds);
  metrics.info.set(
    {
      version: packageVersion(),
      policy: config.policyModule ? "custom" : config.policy,
      queue: workforce.queue.description,
      // Not secret, and the first thing to check when the drain ledger or the lease misbehaves.
      storage_account: storageAccountName(stateStorageConnectionString(config)) ?? "",
    },
    1,
  );
  const server: MetricsServer = await startMetricsServer(
    metrics.registry,
    {
      lastSuccessAt: () => lastSuccessAt,
      intervalMs,
      startedAt,
      permanentProblems: () => workforce.reconciler.permanentProblems(),
    },
    { port: config.metricsPort, host: config.metricsHost },
  );

  let leader: LeaderElection | undefined;
  if (config.leaderElection) {
    leader = await startLeaderElection(config, {
      logger,
      metrics,
      leaseSeconds: config.leaderLeaseSeconds,
      ...(fence ? { fence } : {}),
    });
  } else {
    metrics.isLeader.set(1);
  }

  const stopController = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopController.signal.aborted) return;
    logger.info({ signal }, "stopping after the tick in flight");
    stopController.abort();
  };
  if (options.handleSignals) {
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }

  logger.info(
    {
      queue: workforce.queue.description,
      regions: workforce.regions.map((region) => ({ name: region.name, kind: region.kind })),
      intervalSeconds: config.intervalSeconds,
      policy: config.policyModule ? `module ${config.policyModule}` : config.policy,
      concurrency: config.concurrency,
      dryRun: config.dryRun,
      metricsPort: server.port,
    },
    "workforce autoscaler started",
  );

  const done = runLoop(workforce.reconciler, {
    intervalMs,
    jitter: config.jitter,
    logger,
    stop: stopController.signal,
    mayAct: leader ? () => leader.isLeader() : undefined,
    untilMayAct: leader ? (signal) => leader.whenLeader(signal) : undefined,
    onTick: (report) => {
      if (report.result === "ok" || report.result === "degraded") lastSuccessAt = Date.now();
      options.onTick?.(report);
    },
  })
    .catch((error: unknown) => logger.error({ err: error }, "reconcile loop stopped unexpectedly"))
    .finally(async () => {
      if (options.handleSignals) {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
      await leader?.stop();
      await workforce.close();
      await server.close();
      logger.info("workforce autoscaler stopped");
      // Last: until the process exits, SIGUSR1 must still not open the debugger (nor SIGUSR2 kill it).
      stopIgnoringLeaveSignals?.();
    });

  return {
    metricsPort: server.port,
    workforce,
    metrics,
    stop: async () => {
      stopController.abort();
      await done;
    },
    done,
  };
}
