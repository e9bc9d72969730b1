import { parseCount, UsageError } from "../usage.js";
import type { Command } from "commander";

function positive(value: string, what: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < 0)
    throw new UsageError(`${what} must be a number >= 0; given ${JSON.stringify(value)}`);
  return parsed;
}

function port(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || parsed > 65535)
    throw new UsageError(
      `--metrics-port must be a port from 1 to 65535 (or 0 for any free port); given ${JSON.stringify(value)}`,
    );
  return parsed;
}

/** `workforce demo` (what `npm start` runs): the daemon for real on this machine, no Azure account. */
export function register(program: Command): void {
  program
    .command("demo")
    .description(
      "Run the daemon on its embedded default: Azurite + a demo workload + a local region of worker processes",
    )
    .option("--tasks <n>", "tasks to push", "200")
    .option("--task-seconds <min-max>", "each task sleeps a random time in this range", "2-6")
    .option("--concurrency <n>", "tasks one worker runs at once", "2")
    .option("--capacity <n>", "workers the local region may run at once", "12")
    .option("--interval <seconds>", "time between ticks", "5")
    .option("--metrics-port <port>", "port of /metrics, /healthz, /readyz", "9464")
    .option("--worker-idle <seconds>", "a worker waits this long on an empty queue before leaving", "30")
    .option("--startup-delay <seconds>", "simulated node start-up of each worker", "2")
    .option("--exit-when-done", "stop once the queue is empty and every worker has left")
    .action(async (options: Record<string, string | boolean | undefined>) => {
      // Every option is checked before anything starts (Azurite, the workload, workers).
      const { createLogger } = await import("../../logging/logger.js");
      const { startDemo } = await import("../../demo/demo.js");
      const { ignoreWorkerLeaveSignals } = await import("../../process/stray-signals.js");
      const [min, max] = String(options.taskSeconds)
        .split("-")
        .map((part) => positive(part, "--task-seconds"));
      if (min !== undefined && max !== undefined && min > max)
        throw new UsageError(`--task-seconds: the minimum (${min}) is above the maximum (${max})`);
      const concurrency = parseCount(String(options.concurrency), "--concurrency");
      if (concurrency < 1) throw new UsageError("--concurrency must be >= 1");
      const capacity = parseCount(String(options.capacity), "--capacity");
      if (capacity < 1) throw new UsageError("--capacity must be >= 1");
      const intervalSeconds = positive(String(options.interval), "--interval");
      if (intervalSeconds <= 0) throw new UsageError("--interval must be a number of seconds > 0");
      const logger = createLogger({ level: process.env.WORKFORCE_LOG_LEVEL ?? "info" });
      // From the start: Azurite and the workload take a while to come up.
      const stopIgnoring = ignoreWorkerLeaveSignals(
        logger,
        "the demo has no use for it (Ctrl-C or SIGTERM stop it; its daemon drains the workers itself)",
      );
      try {
        const demo = await startDemo({
          tasks: parseCount(String(options.tasks), "--tasks"),
          taskSecondsMin: min ?? 2,
          taskSecondsMax: max ?? min ?? 6,
          concurrency,
          capacity,
          intervalSeconds,
          metricsPort: port(String(options.metricsPort)),
          workerIdleSeconds: positive(String(options.workerIdle), "--worker-idle"),
          startupDelaySeconds: positive(String(options.startupDelay), "--startup-delay"),
          exitWhenDone: Boolean(options.exitWhenDone),
          logger,
        });
        const onSignal = () => void demo.stop();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        await demo.done;
      } finally {
        stopIgnoring();
      }
    });
}
