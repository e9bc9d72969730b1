import { readFileSync } from "node:fs";
import { processExists, readProcStat } from "../../process/procfs.js";

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
    return processExists(pid) === "no" ? undefined : { startTime: "unknown", zombie: false };
  }
  const stat = readProcStat(pid);
  if (!stat) return undefined;
  return { startTime: stat.startTicks, zombie: stat.state === "Z" || stat.state === "X" };
}

/** True only when `pid` is alive and is still the process that had `startTime`. */
export function isSameProcess(pid: number, startTime: string): boolean {
  const identity = readProcessIdentity(pid);
  return identity !== undefined && !identity.zombie && identity.startTime === startTime;
}
