import { ConfigError } from "../../config/errors.js";
import { Command, Option } from "commander";
import { defaultPidDir } from "../../queue/pid-file.js";

/** Exit code of a worker stopped by a second signal or SIGUSR2: its tasks were interrupted and put back. */
export const EXIT_ABORTED = 130;

function number(name: string, min: number, integer: boolean) {
  return (value: string): number => {
    const parsed = Number(value);
    if (
      value.trim() === "" ||
      !Number.isFinite(parsed) ||
      parsed < min ||
      (integer && !Number.isInteger(parsed))
    ) {
      throw new ConfigError([
        { where: name, message: `expected ${integer ? "an integer" : "a number"} >= ${min}, got "${value}"` },
      ]);
    }
    return parsed;
  };
}

export function register(program: Command): void {
  program
    .command("worker")
    .description(
      "Run ai4s-jobq shell tasks from a Storage queue (a compatible worker). Exits 0 when the queue is empty " +
        "(after --idle-timeout) or after SIGINT/SIGTERM once the tasks in hand are done.",
    )
    .argument(
      "[queue]",
      "queue spec (default WORKFORCE_QUEUE): ACCOUNT/QUEUE, a queue URL, or a bare name with a connection string",
    )
    .addOption(
      new Option("-n, --concurrency <n>", "tasks run at once")
        .env("WORKFORCE_CONCURRENCY")
        .default(1)
        .argParser(number("--concurrency", 1, true)),
    )
    .addOption(
      new Option(
        "--visibility-timeout <seconds>",
        "message visibility timeout; the heartbeat extends it every half",
      )
        .default(600)
        .argParser(number("--visibility-timeout", 2, false)),
    )
    .addOption(
      new Option(
        "--idle-timeout <seconds>",
        "exit once the queue has been empty this long (0: at the first empty receive)",
      )
        .default(0)
        .argParser(number("--idle-timeout", 0, false)),
    )
    .addOption(
      new Option("--worker-id <id>", "names the PID file {JOBQ_PID_DIR}/{id}.pid (default HOST-PID)").env(
        "WORKFORCE_WORKER_ID",
      ),
    )
    .action(
      async (
        queueArg: string | undefined,
        opts: { concurrency: number; visibilityTimeout: number; idleTimeout: number; workerId?: string },
      ) => {
        const { createLogger } = await import("../../logging/logger.js");
        const { lazyDefaultCredential } = await import("../../azure/credentials.js");
        const { storageQueueFromCli } = await import("../context.js");
        const { defaultWorkerId, runWorker } = await import("../../queue/worker.js");
        const { spec, connectionString } = storageQueueFromCli(queueArg, "workforce worker");
        const logger = createLogger({ level: process.env.WORKFORCE_LOG_LEVEL || "info" });
        const stop = new AbortController();
        const abort = new AbortController();
        // First SIGINT/SIGTERM/SIGUSR1: finish the tasks in hand, take no new one. A second one, or SIGUSR2
        // (upstream's graceful-downscale): stop the tasks and put their messages back.
        const onStop = (signal: NodeJS.Signals) => {
          if (stop.signal.aborted) {
            logger.warn({ signal }, "second signal: stopping tasks and putting them back");
            abort.abort();
          } else {
            logger.info({ signal }, "finishing the tasks in hand, then leaving");
            stop.abort();
          }
        };
        const onAbort = (signal: NodeJS.Signals) => {
          logger.warn({ signal }, "stopping tasks and putting them back");
          stop.abort();
          abort.abort();
        };
        const stopSignals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGUSR1"];
        for (const signal of stopSignals) process.on(signal, onStop);
        process.on("SIGUSR2", onAbort);
        try {
          const summary = await runWorker({
            spec,
            connectionString,
            credential: lazyDefaultCredential(),
            concurrency: opts.concurrency,
            visibilityTimeoutSeconds: opts.visibilityTimeout,
            idleTimeoutSeconds: opts.idleTimeout,
            workerId: opts.workerId ?? defaultWorkerId(),
            pidDir: process.env.JOBQ_PID_DIR || defaultPidDir(spec),
            logger,
            stop: stop.signal,
            abort: abort.signal,
          });
          process.exitCode = summary.reason === "aborted" ? EXIT_ABORTED : 0;
        } finally {
          for (const signal of stopSignals) process.off(signal, onStop);
          process.off("SIGUSR2", onAbort);
        }
      },
    );
}
