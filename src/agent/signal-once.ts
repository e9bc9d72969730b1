import type { Logger } from "../logging/logger.js";
import { SIGNAL_LOCK_TIMEOUT_MS, stillHeld, takeSignalLock } from "./lock.js";
import { chooseTargets, recordSignalled, scanPidDir, signalledBefore } from "./pids.js";

/** Live workers of this node not yet asked to leave (a second signal would be a hard stop). */
export function workersToStop(pidDir: string, childPid?: number, states = scanPidDir(pidDir)): number[] {
  const asked = signalledBefore(pidDir);
  return chooseTargets(states, childPid).filter((pid) => !asked(pid));
}

export interface SignalOnceOptions {
  pidDir: string;
  /** Chosen before the message was completed. */
  targets: readonly number[];
  signal: NodeJS.Signals;
  logger: Logger;
  /** The wrapped child (wrap mode). */
  childPid?: number;
  /** Tests only: runs between the last look at the PID files and the signals (widens the window). */
  afterLook?: () => void;
  /** How long to wait for another agent of the node to finish signalling (default 5 s). */
  lockTimeoutMs?: number;
}

export type SignalOnceResult =
  | { kind: "signalled"; pids: number[] }
  /** The node's signal lock could not be had: nothing was signalled. */
  | { kind: "busy"; reason: string };

/** Sends `signal` to `pid`; a failure (the process is gone, not ours) is logged with `failure`. */
export function deliver(
  pid: number,
  signal: NodeJS.Signals,
  logger: Logger,
  failure = "could not signal worker",
): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    logger.warn({ pid, signal, code: (error as NodeJS.ErrnoException).code }, failure);
    return false;
  }
}

/**
 * Records workers signalled outside a control message (a signal the wrap-mode agent passed on), under the
 * node's signal lock: two agents rewriting the record at once would lose one's entries.
 */
export function recordUnderLock(pidDir: string, pids: readonly number[], logger: Logger): void {
  const lock = takeSignalLock(pidDir);
  try {
    if (lock.kind === "busy") throw new Error(lock.reason);
    const asked = signalledBefore(pidDir);
    recordSignalled(
      pidDir,
      pids.filter((pid) => !asked(pid)),
    );
  } catch (error) {
    logger.warn({ err: error, pidDir }, "could not record the signalled worker");
  } finally {
    if (lock.kind === "held") lock.release();
  }
}

/**
 * Signals those of `targets` still live and not yet signalled by an agent of this node, and records them:
 * one critical section across the node's agents (see lock.ts), so that a worker is never signalled twice.
 */
export function signalOnce(options: SignalOnceOptions): SignalOnceResult {
  const { pidDir, targets, signal, logger } = options;
  const lock = takeSignalLock(pidDir, {
    timeoutMs: options.lockTimeoutMs ?? SIGNAL_LOCK_TIMEOUT_MS,
    onStale: (fields, message) => logger.warn(fields, message),
  });
  if (lock.kind === "busy") return lock;
  try {
    // Chosen before the message was completed: by the time the broker answered, another agent of
    // the node may have signalled some of them (a second signal is a hard stop), or they may be gone.
    const still = new Set(workersToStop(pidDir, options.childPid));
    options.afterLook?.();
    const skipped = targets.filter((pid) => !still.has(pid));
    if (skipped.length > 0)
      logger.info({ pids: skipped }, "not signalled: already asked to leave, or gone, meanwhile");
    // Our lock was broken as stale (this agent looked dead, e.g. stopped for long): another agent may act.
    if (!stillHeld(pidDir))
      return { kind: "busy", reason: "the node's signal lock was taken from this agent" };
    const signalled = targets.filter((pid) => still.has(pid) && deliver(pid, signal, logger));
    try {
      recordSignalled(pidDir, signalled);
    } catch (error) {
      logger.warn({ err: error, pidDir }, "could not record the signalled workers");
    }
    return { kind: "signalled", pids: signalled };
  } finally {
    lock.release();
  }
}
