import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import type { Logger } from "../logging/logger.js";
import { isSelfOrDescendant, scanPidDir } from "./pids.js";

/** Signals the agent passes on to its wrapped worker (SIGINT from a terminal reaches both through the process group). */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGHUP"];

/** Without --pid-file-grace, warn once when the worker has written no PID file after this long. */
const NO_PID_FILE_WARNING_MS = 60_000;

export interface WrappedWorker {
  readonly child: ChildProcess;
  /** The child's PID while it runs. */
  readonly pid: number | undefined;
  /** Resolves with the exit code to report: the child's, or 128 + signal number when a signal ended it. */
  readonly exited: Promise<number>;
  readonly running: boolean;
  /** Stop forwarding signals and remove the PID file we wrote. */
  dispose(): void;
}

export interface WrapOptions {
  argv: string[];
  pidDir: string;
  workerId: string;
  logger: Logger;
  /**
   * For a command that writes no PID file: write one for the child if, after this long, no live PID file is
   * the child or runs below it. Undefined (the default): never; the worker is ready when it writes its own.
   */
  pidFileGraceMs?: number;
  env?: NodeJS.ProcessEnv;
}

export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal ? constants.signals[signal] : undefined;
  return number === undefined ? 1 : 128 + number;
}

function writePidFileAtomically(path: string, pid: number): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, String(pid));
  renameSync(temporary, path);
}

/**
 * Start the worker as a child (argv, no shell) with JOBQ_PID_DIR set, so that a jobq worker writes its PID
 * file where the agent looks. If the child writes none, the agent writes `{workerId}.pid` for it.
 */
export function startWrappedWorker(options: WrapOptions): WrappedWorker {
  const [command, ...args] = options.argv;
  if (!command) throw new Error("wrap mode: no worker command given after --");
  mkdirSync(options.pidDir, { recursive: true });
  const child = spawn(command, args, {
    stdio: "inherit",
    env: { ...(options.env ?? process.env), JOBQ_PID_DIR: options.pidDir },
  });
  let running = true;
  let ownPidFile: string | undefined;
  const exited = new Promise<number>((resolve) => {
    child.once("error", (error) => {
      running = false;
      options.logger.error({ err: error, command }, "could not start the worker");
      resolve(127);
    });
    child.once("exit", (code, signal) => {
      running = false;
      resolve(exitCodeOf(code, signal));
    });
  });

  const forward = (signal: NodeJS.Signals) => {
    if (!running) return;
    options.logger.info({ signal, pid: child.pid }, "passing signal on to the worker");
    child.kill(signal);
  };
  const handlers = FORWARDED_SIGNALS.map((signal) => {
    const handler = () => forward(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  // SIGINT is not passed on: a terminal's Ctrl-C already reaches the worker through the process group, and a
  // second one could turn its graceful stop into an abrupt one. The agent stays to report the exit code.
  const onInterrupt = () => {
    if (running)
      options.logger.info({ pid: child.pid }, "SIGINT: waiting for the worker (send SIGTERM to stop it)");
  };
  process.on("SIGINT", onInterrupt);
  handlers.push(["SIGINT", onInterrupt]);

  /** Whether the child, or a process below it, has written a PID file that names it (it is ready). */
  const hasOwnPidFile = (): boolean =>
    child.pid !== undefined &&
    scanPidDir(options.pidDir).some(
      (state) => state.verdict.status === "live" && isSelfOrDescendant(state.verdict.pid, child.pid!),
    );

  const grace = options.pidFileGraceMs;
  const graceTimer = setTimeout(() => {
    if (!running || child.pid === undefined || hasOwnPidFile()) return;
    if (grace === undefined) {
      options.logger.warn(
        { pidDir: options.pidDir, pid: child.pid },
        "the worker has written no PID file yet: no control message is taken until it does " +
          "(for a command that writes none, give --pid-file-grace)",
      );
      return;
    }
    const path = join(options.pidDir, `${options.workerId}.pid`);
    try {
      writePidFileAtomically(path, child.pid);
      ownPidFile = path;
      options.logger.debug({ path, pid: child.pid }, "wrote the worker's PID file");
    } catch (error) {
      options.logger.warn({ err: error, path }, "could not write the worker's PID file");
    }
  }, grace ?? NO_PID_FILE_WARNING_MS);
  graceTimer.unref();

  function dispose(): void {
    clearTimeout(graceTimer);
    for (const [signal, handler] of handlers) process.off(signal, handler);
    if (ownPidFile) {
      try {
        if (readFileSync(ownPidFile, "utf8").trim() === String(child.pid))
          rmSync(ownPidFile, { force: true });
      } catch {
        // Already gone.
      }
      ownPidFile = undefined;
    }
  }

  return {
    child,
    get pid() {
      return running ? child.pid : undefined;
    },
    exited,
    get running() {
      return running;
    },
    dispose,
  };
}
