import { linkSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isSameLiveProcess, processInfo } from "./pids.js";

/**
 * The node's signal lock: one agent at a time chooses workers, signals them and records them, so that two
 * agents of a node (or one restarted by a supervisor) never signal a worker twice. A file in the PID folder
 * (not `*.pid`, so jobq's glob and the agent's scans ignore it) names its owner by PID and start time. It is
 * created whole and atomically: written to a private file first, then hard-linked to its name, which fails
 * when the name exists (O_EXCL semantics, and no empty lock is ever seen). It is held for microseconds, never
 * across a broker call. A lock whose owner is gone (killed agent), or whose PID now names another process
 * (same start-time check as the PID files), is broken.
 */
export const SIGNAL_LOCK_FILE = ".workforce-signal.lock";

/** How long an agent waits for the lock before it gives up (and signals nothing). */
export const SIGNAL_LOCK_TIMEOUT_MS = 5_000;
const RETRY_MS = 10;

interface LockOwner {
  pid: number;
  startedAtMs?: number;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<LockOwner>;
    if (!Number.isInteger(parsed.pid)) return undefined;
    return parsed.startedAtMs === undefined
      ? { pid: parsed.pid! }
      : { pid: parsed.pid!, startedAtMs: Number(parsed.startedAtMs) };
  } catch {
    return undefined;
  }
}

function sameOwner(a: LockOwner | undefined, b: LockOwner | undefined): boolean {
  return a !== undefined && b !== undefined && a.pid === b.pid && a.startedAtMs === b.startedAtMs;
}

/**
 * A lock is always written whole, so one that names no owner was damaged (disk full, edited): it is broken
 * once it is older than this, so that it does not block the node for ever.
 */
export const UNREADABLE_LOCK_MS = 30_000;

function unreadableForLong(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > UNREADABLE_LOCK_MS;
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export type LockAttempt = { kind: "held"; release: () => void } | { kind: "busy"; reason: string };

/**
 * Breaks a stale lock without ever removing a live one: the lock is renamed to a private name first (only
 * one breaker gets it) and only then judged; a live lock taken by mistake (another agent re-took it
 * meanwhile) is put back with a hard link, which never overwrites a newer lock.
 */
function breakStale(path: string, stale: LockOwner | undefined, logger?: StaleLogger): void {
  const aside = `${path}.${process.pid}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return; // Someone else broke it, or its owner released it.
  }
  const taken = readOwner(aside);
  if (taken !== undefined && !sameOwner(taken, stale) && isSameLiveProcess(taken)) {
    try {
      linkSync(aside, path);
    } catch {
      // A third agent took the lock meanwhile; the owner we displaced sees that it no longer holds it.
    }
  } else {
    logger?.(
      { lockFile: path, ownerPid: stale?.pid },
      stale ? "broke a stale signal lock (its agent is gone)" : "broke an unreadable signal lock",
    );
  }
  try {
    unlinkSync(aside);
  } catch {
    // Already gone.
  }
}

type StaleLogger = (fields: Record<string, unknown>, message: string) => void;

/** Takes the node's signal lock, waiting up to `timeoutMs`; synchronous (held for microseconds). */
export function takeSignalLock(
  dir: string,
  options: { timeoutMs?: number; onStale?: StaleLogger } = {},
): LockAttempt {
  const path = join(dir, SIGNAL_LOCK_FILE);
  const startedAtMs = processInfo(process.pid)?.startedAtMs;
  const me: LockOwner = startedAtMs === undefined ? { pid: process.pid } : { pid: process.pid, startedAtMs };
  const mine = `${path}.${process.pid}.new`;
  try {
    writeFileSync(mine, JSON.stringify(me));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    return { kind: "busy", reason: `cannot write the signal lock in ${dir} (${code})` };
  }
  const deadline = Date.now() + (options.timeoutMs ?? SIGNAL_LOCK_TIMEOUT_MS);
  let owner: LockOwner | undefined;
  try {
    for (;;) {
      try {
        linkSync(mine, path);
        return {
          kind: "held",
          release: () => {
            // Only our own lock is removed (a broken one may have been re-taken by another agent).
            if (sameOwner(readOwner(path), me)) unlinkSync(path);
          },
        };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "EEXIST")
          return { kind: "busy", reason: `cannot take the signal lock ${path} (${code})` };
      }
      owner = readOwner(path);
      if (owner !== undefined ? !isSameLiveProcess(owner) : unreadableForLong(path)) {
        breakStale(path, owner, options.onStale);
        continue;
      }
      if (Date.now() >= deadline) break;
      sleepSync(RETRY_MS);
    }
  } finally {
    try {
      unlinkSync(mine);
    } catch {
      // Already gone.
    }
  }
  return {
    kind: "busy",
    reason:
      owner === undefined
        ? `${path} is held and names no owner`
        : `${path} is held by process ${owner.pid} (another agent of this node)`,
  };
}

/** Whether `dir`'s signal lock still names this process (checked right before signalling). */
export function stillHeld(dir: string): boolean {
  const owner = readOwner(join(dir, SIGNAL_LOCK_FILE));
  return owner?.pid === process.pid;
}
