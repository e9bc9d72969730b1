import { parseCount } from "../usage.js";
import type { Command } from "commander";

function positive(value: string, what: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new Error(`${what} must be a number >= 0; given ${JSON.stringify(value)}`);
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
      const { createLogger } = await import("../../logging/logger.js");
      const { startDemo } = await import("../../demo/demo.js");
      const [min, max] = String(options.taskSeconds)
        .split("-")
        .map((part) => positive(part, "--task-seconds"));
      const logger = createLogger({ level: process.env.WORKFORCE_LOG_LEVEL ?? "info" });
      const demo = await startDemo({
        tasks: parseCount(String(options.tasks), "--tasks"),
        taskSecondsMin: min ?? 2,
        taskSecondsMax: max ?? min ?? 6,
        concurrency: Math.max(1, parseCount(String(options.concurrency), "--concurrency")),
        capacity: parseCount(String(options.capacity), "--capacity"),
        intervalSeconds: positive(String(options.interval), "--interval") || 5,
        metricsPort: parseCount(String(options.metricsPort), "--metrics-port"),
        workerIdleSeconds: positive(String(options.workerIdle), "--worker-idle"),
        startupDelaySeconds: positive(String(options.startupDelay), "--startup-delay"),
        exitWhenDone: Boolean(options.exitWhenDone),
        logger,
      });
      const onSignal = () => void demo.stop();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      await demo.done;
    });
}
