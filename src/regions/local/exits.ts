import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { redactText } from "../../logging/logger.js";
import type { WorkerExit, WorkerExitOutcome } from "../types.js";
import type { WorkerRecord } from "./records.js";

/** Exits kept on disk: enough for the start backoff and `status`, bounded whatever the crash rate. */
const KEPT_EXITS = 50;
const TAIL_BYTES = 2048;
const TAIL_LINES = 5;

/** How a process ended, as its `exit` event said; undefined when nobody watched (a restarted daemon). */
export interface ProcessEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** The last lines of a worker's log (stdout + stderr), secrets redacted. */
export function logTail(path: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer
      .toString("utf8")
      .split("\n")
      .map((line) => line.trimEnd())
      .filter(Boolean);
    const tail = lines.slice(-TAIL_LINES).join("\n");
    return tail ? redactText(tail) : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Classify a worker that is gone. A worker that was asked to leave is drained (or stopped); one that
 * exits 0 succeeded; one that failed before it was ever seen running (its PID file, written when it starts
 * taking tasks) failed to start: a bad command, a missing option, a broken image.
 */
export function classifyExit(record: WorkerRecord, end: ProcessEnd | undefined, now: number): WorkerExit {
  const startedAt = record.startedAt ? Date.parse(record.startedAt) : undefined;
  const at = end?.at ?? now;
  const detail = !end
    ? "exit status unknown (the process ended while no daemon watched it)"
    : end.signal
      ? `signal ${end.signal}`
      : `exit code ${end.code}`;
  const failed = end !== undefined && (end.signal !== null || end.code !== 0);
  let outcome: WorkerExitOutcome;
  if (record.stopRequestedAt) outcome = "stopped";
  else if (record.drainRequestedAt || record.cancelRequestedAt) outcome = "drained";
  else if (!end) outcome = "unknown";
  else if (!failed) outcome = "succeeded";
  else outcome = record.runningSeenAt ? "failed" : "failed_start";
  const asked = record.drainRequestedAt ?? record.cancelRequestedAt;
  return {
    workerId: record.id,
    outcome,
    at,
    detail,
    ...(startedAt !== undefined ? { ranSeconds: Math.max(0, (at - startedAt) / 1000) } : {}),
    ...(outcome === "drained" && asked ? { drainSeconds: Math.max(0, (at - Date.parse(asked)) / 1000) } : {}),
  };
}

/** The bounded exit history of a region, in one JSON file written atomically. */
export class ExitHistory {
  constructor(private readonly path: string) {}

  /** Read afresh each time: `workforce status` in another process may have added exits. */
  async list(): Promise<WorkerExit[]> {
    try {
      const parsed = JSON.parse(await readFile(this.path, "utf8")) as unknown;
      return Array.isArray(parsed) ? (parsed as WorkerExit[]) : [];
    } catch {
      return [];
    }
  }

  async add(exits: WorkerExit[]): Promise<void> {
    if (exits.length === 0) return;
    const next = [...(await this.list()), ...exits].slice(-KEPT_EXITS);
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(next));
    await rename(tmp, this.path);
  }
}
