import { readFileSync } from "node:fs";

/** The fields of /proc/PID/stat that we use. */
export interface ProcStat {
  /** R, S, D, Z (zombie), X (dead)... */
  state: string;
  ppid: number;
  /** Start time in clock ticks since boot (field 22): with the PID, it names a process uniquely. */
  startTicks: string;
}

/** /proc/PID/stat, or undefined when the process does not exist or there is no /proc (not Linux). */
export function readProcStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [state, ppid, startTicks] = [fields[0], fields[1], fields[19]];
  if (state === undefined || ppid === undefined || startTicks === undefined) return undefined;
  return { state, ppid: Number(ppid), startTicks };
}

/** Whether a process with this PID exists, by signal 0 (EPERM: it exists but is not ours). */
export function processExists(pid: number): "yes" | "no" | "not-permitted" {
  try {
    process.kill(pid, 0);
    return "yes";
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM" ? "not-permitted" : "no";
  }
}
