import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import type { Logger } from "../logging/logger.js";
import { chooseTargets, isSelfOrDescendant, scanPidDir } from "./pids.js";
import { deliver, recordUnderLock } from "./signal-once.js";

/**
 * Signals the agent passes on to its wrapped worker at once (SIGINT from a terminal reaches both through the
 * process group). SIGHUP is passed on rather than ignored: a wrapper must not decide for its worker whether a
 * hang-up means "reload" or "stop", and dying of it (the default) would leave the worker unsupervised.
 */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGHUP"];

/**
 * ai4s-jobq's leave signals (SIGUSR1: finish the task and leave; SIGUSR2: put it back and leave). Without a
 * handler SIGUSR2 kills the agent and orphans its worker, and SIGUSR1 opens Node's debugger port. They are
 * passed on once the worker is ready (its PID file exists): before that, the signal's default action would
 * kill it, and a worker that got the signal through the process group (a cancel) leaves without one.
 */
export const LEAVE_SIGNALS: readonly NodeJS.Signals[] = ["SIGUSR1", "SIGUSR2"];

/** While a leave signal waits for the worker to be ready, look for its PID file this often. */
const HELD_SIGNAL_POLL_MS = 200;

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

  /** The ready processes of our worker: those of its live PID files that are the child or run below it. */
  const readyWorkers = (): number[] => {
    const childPid = child.pid;
    if (childPid === undefined) return [];
    return chooseTargets(scanPidDir(options.pidDir), childPid).filter((pid) =>
      isSelfOrDescendant(pid, childPid),
    );
  };
  /** Whether the child, or a process below it, has written a PID file that names it (it is ready). */
  const hasOwnPidFile = (): boolean => readyWorkers().length > 0;

  // Leave signals received and not yet passed on, in order; each is delivered once, to the processes a
  // control message would signal (the real worker rather than a wrapper above it: never both).
  const held: NodeJS.Signals[] = [];
  let heldPoll: NodeJS.Timeout | undefined;
  const passOnHeld = () => {
    // A worker that left meanwhile (it got the signal through the process group) is not signalled.
    const targets = running && held.length > 0 ? readyWorkers() : [];
    if (running && held.length > 0 && targets.length === 0) {
      heldPoll ??= setInterval(passOnHeld, HELD_SIGNAL_POLL_MS).unref();
      return;
    }
    clearInterval(heldPoll);
    heldPoll = undefined;
    if (!running) held.length = 0;
    for (const signal of held.splice(0)) {
      const reached = targets.filter((pid) =>
        deliver(pid, signal, options.logger, "could not pass the signal on"),
      );
      options.logger.info({ signal, pids: reached }, "passing signal on to the worker");
      // So that another agent of the node takes no control message for a worker that is leaving.
      recordUnderLock(options.pidDir, reached, options.logger);
    }
  };
  for (const signal of LEAVE_SIGNALS) {
    const handler = () => {
      if (!running) return;
      held.push(signal);
      if (readyWorkers().length === 0)
        options.logger.info(
          { signal, pid: child.pid, pidDir: options.pidDir },
          "the worker has written no PID file yet: the signal is passed on once it does",
        );
      passOnHeld();
    };
    process.on(signal, handler);
    handlers.push([signal, handler]);
  }

  const grace = options.pidFileGraceMs;
  const graceTimer = setTimeout(() => {
    if (!running || child.pid === undefined) return;
    if (hasOwnPidFile()) {
      options.logger.debug({ pidDir: options.pidDir, pid: child.pid }, "the worker wrote its own PID file");
      return;
    }
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
      passOnHeld();
    } catch (error) {
      options.logger.warn({ err: error, path }, "could not write the worker's PID file");
    }
  }, grace ?? NO_PID_FILE_WARNING_MS);
  graceTimer.unref();

  function dispose(): void {
    clearTimeout(graceTimer);
    clearInterval(heldPoll);
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
