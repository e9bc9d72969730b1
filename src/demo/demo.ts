import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as storageQueueTypes from "@azure/storage-queue";
import { lazySdk } from "../azure/lazy-sdk.js";

const storageQueue = lazySdk<typeof storageQueueTypes>("@azure/storage-queue");
import { loadConfig, type Config } from "../config/load.js";
import type { Logger } from "../logging/logger.js";
import { startDaemon, type Daemon } from "../controller/daemon.js";
import type { TickReport } from "../controller/reconciler.js";
import { pushTasks } from "../queue/push.js";
import { parseQueueSpec, type StorageQueueSpec } from "../queue/spec.js";
import { startAzurite, type AzuriteInstance } from "./azurite.js";
import { LocalRegion } from "../regions/local/index.js";
import { workforceWorkerCommand } from "../regions/local/command.js";

export interface DemoOptions {
  /** Tasks pushed at the start. */
  tasks: number;
  /** Each task sleeps a random time in [min, max] seconds. */
  taskSecondsMin: number;
  taskSecondsMax: number;
  /** Tasks one worker runs at once. */
  concurrency: number;
  /** Workers the local region may run at once. */
  capacity: number;
  intervalSeconds: number;
  metricsPort: number;
  /** Seconds a worker waits on an empty queue before leaving on its own. */
  workerIdleSeconds: number;
  /** Simulated node start-up. */
  startupDelaySeconds: number;
  /** Stop by itself once the queue is empty and no worker is left. */
  exitWhenDone: boolean;
  logger: Logger;
  /** Environment to read further WORKFORCE_* settings from (they override the demo's). */
  env?: NodeJS.ProcessEnv;
}

export interface DemoHandle {
  daemon: Daemon;
  azurite: AzuriteInstance;
  config: Config;
  /** Resolves when the demo has stopped (Ctrl-C, stop(), or done with exitWhenDone). */
  done: Promise<void>;
  stop(): Promise<void>;
}

const QUEUE_NAME = "demo-tasks";

/** The daemon's environment in the demo: its own defaults; any WORKFORCE_* variable the user set wins. */
function demoEnv(
  options: DemoOptions,
  queueUrl: string,
  connectionString: string,
  stateDir: string,
): NodeJS.ProcessEnv {
  const env = options.env ?? process.env;
  const azurite = { connectionString };
  return {
    WORKFORCE_INTERVAL_SECONDS: String(options.intervalSeconds),
    WORKFORCE_SCALE_DOWN_DELAY_SECONDS: String(Math.max(2 * options.intervalSeconds, 10)),
    // A call may last at most one interval.
    WORKFORCE_CALL_TIMEOUT_SECONDS: String(Math.min(10, options.intervalSeconds)),
    WORKFORCE_METRICS_PORT: String(options.metricsPort),
    WORKFORCE_METRICS_HOST: "127.0.0.1",
    WORKFORCE_CONCURRENCY: String(options.concurrency),
    ...Object.fromEntries(
      Object.entries(env).filter(([key]) => key.startsWith("WORKFORCE_") && key !== "WORKFORCE_CONFIG"),
    ),
    WORKFORCE_QUEUE: queueUrl,
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_REGIONS: JSON.stringify([
      {
        kind: "local",
        name: "local",
        capacity: options.capacity,
        maxWorkers: options.capacity,
        stateDir,
        startupDelaySeconds: options.startupDelaySeconds,
        command: workforceWorkerCommand(options.workerIdleSeconds),
        env: { WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString, WORKFORCE_LOG_LEVEL: "warn" },
      },
    ]),
  };
}

/** The metrics port, checked before Azurite starts; the message names what set it. */
async function checkPortFree(options: DemoOptions): Promise<void> {
  const env = options.env ?? process.env;
  const fromEnv = env.WORKFORCE_METRICS_PORT;
  const port = fromEnv ? Number(fromEnv) : options.metricsPort;
  if (port === 0) return;
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
  } catch (error) {
    const setting = fromEnv ? `WORKFORCE_METRICS_PORT=${fromEnv}` : `--metrics-port ${port}`;
    throw new Error(
      `${setting}: cannot listen on 127.0.0.1:${port} (${(error as NodeJS.ErrnoException).code ?? error}); ` +
        `pick a free port with ${fromEnv ? "WORKFORCE_METRICS_PORT" : "--metrics-port"}, or 0 for any free port`,
      { cause: error },
    );
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * The embedded default: Azurite on 127.0.0.1, a queue with a demo workload, and the real daemon
 * autoscaling a local region of `workforce worker` processes. No Azure account, no traffic off loopback.
 */
export async function startDemo(options: DemoOptions): Promise<DemoHandle> {
  // Before anything starts: the settings the daemon will get, and the metrics port.
  loadConfig({
    env: demoEnv(
      options,
      "http://127.0.0.1:1/devstoreaccount1/demo-tasks",
      "UseDevelopmentStorage=true",
      "/tmp/unused",
    ),
  });
  await checkPortFree(options);
  const azurite = await startAzurite();
  const stateDir = mkdtempSync(join(tmpdir(), "workforce-demo-"));
  try {
    return await runDemo(options, azurite, stateDir);
  } catch (error) {
    // A demo that fails to start (e.g. its metrics port is taken) must not leave Azurite running.
    await azurite.stop();
    rmSync(stateDir, { recursive: true, force: true });
    throw error;
  }
}

async function runDemo(
  options: DemoOptions,
  azurite: AzuriteInstance,
  stateDir: string,
): Promise<DemoHandle> {
  const log = options.logger;
  const queueUrl = `${azurite.queueEndpoint}/${QUEUE_NAME}`;
  log.info({ queue: queueUrl, stateDir }, "demo: Azurite started");

  const spec = parseQueueSpec(queueUrl) as StorageQueueSpec;
  await new (storageQueue().QueueClient)(azurite.connectionString, QUEUE_NAME).createIfNotExists();
  const spanSeconds = Math.max(0, options.taskSecondsMax - options.taskSecondsMin);
  const commands = Array.from({ length: options.tasks }, (_, index) => {
    const seconds = (options.taskSecondsMin + Math.random() * spanSeconds).toFixed(1);
    return `sleep ${seconds} && echo "demo task ${index} done after ${seconds}s"`;
  });
  await pushTasks({ spec, connectionString: azurite.connectionString, commands, logger: log });
  log.info({ tasks: options.tasks }, "demo: workload pushed");

  const config = loadConfig({ env: demoEnv(options, queueUrl, azurite.connectionString, stateDir) });

  const stopRequested = new AbortController();
  const onTick = (report: TickReport) => {
    if (!options.exitWhenDone) return;
    const { totals } = report.plan;
    const idle = totals.running + totals.pending + totals.draining === 0;
    if (report.snapshot.queue.depth === 0 && idle) {
      log.info("demo: the queue is empty and every worker has left");
      stopRequested.abort();
    }
  };
  const daemon = await startDaemon({ config, logger: log, onTick });
  log.info(
    { metrics: `http://127.0.0.1:${daemon.metricsPort}/metrics` },
    "demo: daemon running (Ctrl-C to stop)",
  );

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // Say what the wait is for: a tick in flight, then workers finishing, then Azurite.
      log.info("demo: stopping: waiting for the tick in flight to finish");
      await daemon.stop();
      for (const region of daemon.workforce.regions) {
        if (!(region instanceof LocalRegion)) continue;
        const workers = (await region.workers()).length;
        if (workers > 0)
          log.info(
            { region: region.name, workers },
            `demo: stopping: waiting for ${workers} worker(s) of region ${region.name} to leave (SIGTERM, SIGKILL after 5 s)`,
          );
        await region.stopAll(5_000);
      }
      log.info("demo: stopping: waiting for Azurite to stop");
      await azurite.stop();
      rmSync(stateDir, { recursive: true, force: true });
      log.info("demo: stopped; no worker or Azurite process left behind");
    })());
  stopRequested.signal.addEventListener("abort", () => void stop(), { once: true });
  const done = (async () => {
    await daemon.done;
    await stop();
  })();
  return { daemon, azurite, config, done, stop };
}
