import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Logger } from "../logging/logger.js";
import type { ShellTaskKwargs } from "./tasks.js";

export interface ShellTaskResult {
  /** Exit code; null when the process was killed by a signal or could not start. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when `abort` fired and the task was stopped on purpose (its message goes back to the queue). */
  aborted: boolean;
  /** Why it could not start (bad cwd...). */
  startError?: Error;
}

export interface RunShellTaskOptions {
  taskId: string;
  logger: Logger;
  /** Aborting stops the task: SIGTERM to its process group, SIGKILL after killGraceMs. */
  abort?: AbortSignal;
  killGraceMs?: number;
}

/**
 * Run a shell task with `sh -c`, its kwargs' env and cwd, in its own process group: a Ctrl-C (SIGINT to the
 * worker's foreground group) must not kill a task the worker means to finish. Output lines go to the log.
 */
export function runShellTask(
  kwargs: ShellTaskKwargs,
  options: RunShellTaskOptions,
): Promise<ShellTaskResult> {
  const { taskId, logger } = options;
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", kwargs.cmd], {
      cwd: kwargs.cwd ?? undefined,
      // As upstream: the worker's environment, PYTHONUNBUFFERED unless the task sets it, the task's env, its id.
      env: { ...process.env, PYTHONUNBUFFERED: "1", ...(kwargs.env ?? {}), JOBQ_TASK_ID: taskId },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let aborted = false;
    /** The command's own process has ended ('close' waits for its output too, which it may have passed on). */
    let exited = false;
    let startError: Error | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const signalGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    const onAbort = () => {
      // A command that has already ended was not stopped by this: its exit status stands (a task that
      // succeeded is done, not put back to run again). What it left running in its group, holding its
      // output open, is stopped all the same.
      if (!exited) aborted = true;
      logger.warn({ taskId, pid: child.pid }, "stopping task (worker aborted)");
      signalGroup("SIGTERM");
      killTimer = setTimeout(() => signalGroup("SIGKILL"), options.killGraceMs ?? 10_000);
      killTimer.unref();
    };
    if (options.abort?.aborted) onAbort();
    else options.abort?.addEventListener("abort", onAbort, { once: true });

    for (const [stream, level] of [
      [child.stdout, "info"],
      [child.stderr, "warn"],
    ] as const) {
      createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) =>
        logger[level]({ taskId, stream: level === "info" ? "stdout" : "stderr" }, line),
      );
    }

    child.once("error", (error) => {
      startError = error;
    });
    child.once("exit", () => {
      exited = true;
    });
    child.once("close", (code, signal) => {
      options.abort?.removeEventListener("abort", onAbort);
      if (killTimer) clearTimeout(killTimer);
      resolve({ code, signal, aborted, ...(startError ? { startError } : {}) });
    });
  });
}
