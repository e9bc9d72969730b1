import { readFileSync } from "node:fs";

/**
 * Who a PID is: its start time (field 22 of /proc/PID/stat, clock ticks since boot). A PID can be reused
 * once its process is gone; the pair (pid, start time) cannot, so it is what we record and compare before
 * ever signalling a process.
 */
export interface ProcessIdentity {
  startTime: string;
  /** Exited but not reaped yet: as good as gone. */
  zombie: boolean;
}

const HAS_PROC = (() => {
  try {
    readFileSync("/proc/self/stat", "utf8");
    return true;
  } catch {
    return false;
  }
})();

export function readProcessIdentity(pid: number): ProcessIdentity | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (!HAS_PROC) {
    // Without /proc (not Linux) fall back to "a process with this PID exists".
    try {
      process.kill(pid, 0);
      return { startTime: "unknown", zombie: false };
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EPERM"
        ? { startTime: "unknown", zombie: false }
        : undefined;
    }
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const startTime = fields[19];
  if (state === undefined || startTime === undefined) return undefined;
  return { startTime, zombie: state === "Z" || state === "X" };
}

/** True only when `pid` is alive and is still the process that had `startTime`. */
export function isSameProcess(pid: number, startTime: string): boolean {
  const identity = readProcessIdentity(pid);
  return identity !== undefined && !identity.zombie && identity.startTime === startTime;
}
