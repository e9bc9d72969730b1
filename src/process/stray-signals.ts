import type { Logger } from "../logging/logger.js";

/**
 * ai4s-jobq's leave signals (SIGUSR1 "do-not-accept-new-tasks", SIGUSR2 "graceful-downscale"): operators of a
 * node of workers send them by habit, sometimes to every process of the node.
 */
export const WORKER_LEAVE_SIGNALS: readonly NodeJS.Signals[] = ["SIGUSR1", "SIGUSR2"];

/**
 * For a long-running command that has no use for the workers' leave signals: log each and ignore it.
 * Without a listener, SIGUSR1 makes Node open its inspector (127.0.0.1:9229), through which any local process
 * can run code as this one, and SIGUSR2 kills the process. The first of each signal is logged at warn with
 * `hint` (what the operator probably wanted instead); repeats at debug, so a script that sends them to every
 * process does not flood the log. Returns a function that removes the listeners.
 */
export function ignoreWorkerLeaveSignals(logger: Logger, hint: string): () => void {
  const received = new Map<NodeJS.Signals, number>();
  const handlers = WORKER_LEAVE_SIGNALS.map((signal) => {
    const handler = () => {
      const count = (received.get(signal) ?? 0) + 1;
      received.set(signal, count);
      const fields = { signal, pid: process.pid, count };
      const message = `${signal} received and ignored: ${hint}`;
      if (count === 1) logger.warn(fields, message);
      else logger.debug(fields, message);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}
