import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processExists, readProcStat } from "../process/procfs.js";

/**
 * Worker PID files, as ai4s-jobq writes them: `{JOBQ_PID_DIR}/{worker_id}.pid`, the PID as decimal text.
 *
 * A PID file can outlive its process, and the kernel reuses PIDs: signalling a stale PID could stop an
 * unrelated process. A file is trusted only when its process is alive and *started before the file was
 * last written* (a worker writes its PID file after it starts; a process that reused the PID started after
 * the worker died, so after the file was written). Start times come from /proc/PID/stat (boot-relative
 * clock ticks + the boot time from /proc/stat), compared with the file's mtime with a small tolerance for
 * clock granularity. The command line is not compared: wrappers (python -m, shells, conda run) make it
 * an unreliable identity, while the start time is exact.
 */

/** /proc's boot time has whole seconds and tick rounding: a process may look this much younger than it is. */
export const START_TIME_TOLERANCE_MS = 2_000;

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** One-letter state from /proc (R, S, D, Z, T...). */
  state: string;
  /** Wall-clock start time, epoch ms. */
  startedAtMs: number;
}

export type PidFileVerdict =
  | { status: "live"; pid: number }
  | { status: "invalid"; reason: string }
  | { status: "gone"; pid: number }
  | { status: "reused"; pid: number; reason: string }
  | { status: "not-permitted"; pid: number };

export interface PidFileState {
  path: string;
  workerId: string;
  /** File mtime, epoch ms. */
  writtenAtMs: number;
  verdict: PidFileVerdict;
}

let cachedClockTicks: number | undefined;
function clockTicksPerSecond(): number {
  if (cachedClockTicks === undefined) {
    try {
      cachedClockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      cachedClockTicks = 100;
    }
  }
  return cachedClockTicks;
}

let cachedBootTimeMs: number | undefined;
function bootTimeMs(): number | undefined {
  if (cachedBootTimeMs === undefined) {
    try {
      const match = /^btime\s+(\d+)/m.exec(readFileSync("/proc/stat", "utf8"));
      if (match) cachedBootTimeMs = Number(match[1]) * 1000;
    } catch {
      return undefined;
    }
  }
  return cachedBootTimeMs;
}

/** What /proc says about a process, or undefined when it does not exist (or there is no /proc). */
export function processInfo(pid: number): ProcessInfo | undefined {
  const stat = readProcStat(pid);
  const boot = bootTimeMs();
  const startTicks = Number(stat?.startTicks);
  if (!stat || boot === undefined || !Number.isFinite(startTicks)) return undefined;
  return {
    pid,
    state: stat.state,
    ppid: stat.ppid,
    startedAtMs: boot + (startTicks * 1000) / clockTicksPerSecond(),
  };
}

/** Whether /proc is there to check start times (Linux); elsewhere only liveness is checked. */
export function hasProcfs(): boolean {
  return processInfo(process.pid) !== undefined;
}

const exists = processExists;

/** Judge one PID file (see the module comment). */
export function judgePidFile(text: string, writtenAtMs: number): PidFileVerdict {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return { status: "invalid", reason: "not a decimal PID" };
  const pid = Number(trimmed);
  if (pid <= 1 || pid === process.pid) return { status: "invalid", reason: `PID ${pid} is never a worker` };
  const alive = exists(pid);
  if (alive === "no") return { status: "gone", pid };
  if (alive === "not-permitted") return { status: "not-permitted", pid };
  const info = processInfo(pid);
  if (info === undefined) {
    // No /proc (not Linux) or it vanished meanwhile: liveness is all we can check.
    return hasProcfs() ? { status: "gone", pid } : { status: "live", pid };
  }
  if (info.state === "Z" || info.state === "X") return { status: "gone", pid };
  if (info.startedAtMs > writtenAtMs + START_TIME_TOLERANCE_MS) {
    const late = Math.round((info.startedAtMs - writtenAtMs) / 1000);
    return {
      status: "reused",
      pid,
      reason: `process ${pid} started ${late} s after the PID file was written`,
    };
  }
  return { status: "live", pid };
}

/** Every `*.pid` file in the folder and what it is worth; a missing folder has none. */
export function scanPidDir(dir: string): PidFileState[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const states: PidFileState[] = [];
  for (const name of names.filter((entry) => entry.endsWith(".pid")).sort()) {
    const path = join(dir, name);
    try {
      const writtenAtMs = statSync(path).mtimeMs;
      const text = readFileSync(path, "utf8");
      states.push({
        path,
        workerId: name.slice(0, -4),
        writtenAtMs,
        verdict: judgePidFile(text, writtenAtMs),
      });
    } catch {
      // Removed while we looked: its worker has just left.
    }
  }
  return states;
}

/** True when `pid` is `ancestor` or runs below it (following parent PIDs through /proc). */
export function isSelfOrDescendant(pid: number, ancestor: number): boolean {
  let current: number | undefined = pid;
  for (let depth = 0; current !== undefined && current > 1 && depth < 64; depth += 1) {
    if (current === ancestor) return true;
    current = processInfo(current)?.ppid;
  }
  return false;
}

/**
 * The processes to signal: every live PID file, and nothing else. A worker is ready only once it has written
 * its PID file (ai4s-jobq installs its signal handlers first, then writes it): a wrapped child that has not
 * is still starting, and a signal would meet its default action (SIGUSR1 and SIGINT kill it). In wrap mode a
 * PID file for the child itself is dropped when another one runs below it (the real worker wrote its own,
 * and signalling the wrapper too would deliver the signal twice).
 */
export function chooseTargets(states: readonly PidFileState[], childPid?: number): number[] {
  const live = [
    ...new Set(states.flatMap((state) => (state.verdict.status === "live" ? [state.verdict.pid] : []))),
  ];
  if (childPid === undefined || !live.includes(childPid)) return live;
  const belowChild = live.filter((pid) => pid !== childPid && isSelfOrDescendant(pid, childPid));
  return belowChild.length > 0 ? live.filter((pid) => pid !== childPid) : live;
}

/**
 * Workers an agent of this node has already signalled, kept next to the PID files (the name does not end
 * in `.pid`, so scans and jobq's own glob ignore it). A second signal is a hard stop for ai4s-jobq workers
 * (and `workforce worker`): an agent restarted by a supervisor, or a second agent on the node, must neither
 * signal a leaving worker again nor take a control message meant for another node on its behalf.
 */
export const SIGNALLED_FILE = ".workforce-signalled.json";

interface SignalledRecord {
  pid: number;
  /** Identifies the process across PID reuse (absent without /proc). */
  startedAtMs?: number;
}

function readSignalled(dir: string): SignalledRecord[] {
  try {
    const parsed: unknown = JSON.parse(readFileSync(join(dir, SIGNALLED_FILE), "utf8"));
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (entry): entry is SignalledRecord =>
        typeof entry === "object" && entry !== null && Number.isInteger((entry as SignalledRecord).pid),
    );
  } catch {
    return [];
  }
}

/**
 * Whether the process a record names (a signalled worker, a lock's owner) still runs: the same PID with the
 * same start time (PIDs are reused), and not a zombie. Without /proc only the PID is checked.
 */
export function isSameLiveProcess(record: { pid: number; startedAtMs?: number }): boolean {
  if (processExists(record.pid) === "no") return false;
  if (record.startedAtMs === undefined) return true;
  const info = processInfo(record.pid);
  return (
    info !== undefined && info.state !== "Z" && info.state !== "X" && info.startedAtMs === record.startedAtMs
  );
}

/** Whether a PID belongs to a worker an agent of this node has already signalled (and that still runs). */
export function signalledBefore(dir: string): (pid: number) => boolean {
  const live = readSignalled(dir).filter(isSameLiveProcess);
  return (pid) => live.some((record) => record.pid === pid);
}

/** Remember that these workers were signalled; entries of processes that are gone are dropped. */
export function recordSignalled(dir: string, pids: readonly number[]): void {
  const records = readSignalled(dir).filter(isSameLiveProcess);
  for (const pid of pids) {
    const startedAtMs = processInfo(pid)?.startedAtMs;
    records.push(startedAtMs === undefined ? { pid } : { pid, startedAtMs });
  }
  const path = join(dir, SIGNALLED_FILE);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(records));
  renameSync(temporary, path);
}
