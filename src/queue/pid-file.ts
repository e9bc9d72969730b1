import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { QueueSpec } from "./spec.js";

/**
 * Worker PID files, as ai4s-jobq writes them: `{JOBQ_PID_DIR}/{worker_id}.pid` holding the PID as decimal
 * text with no newline. The node-side agent and the local region find workers through them.
 */

/** Upstream's default folder: ~/.cache/jobq/{queue full name}. */
export function defaultPidDir(spec: QueueSpec): string {
  const account = spec.kind === "storage" ? spec.account : spec.fullyQualifiedNamespace?.split(".")[0];
  return join(homedir(), ".cache", "jobq", ...(account ? [account] : []), spec.queueName);
}

export function pidFilePath(pidDir: string, workerId: string): string {
  return join(pidDir, `${workerId}.pid`);
}

/** True when a process with this PID exists (signal 0 delivers nothing). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The PID in a PID file, or undefined when the file is missing or does not hold a number. */
export async function readPidFile(path: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : undefined;
}

/**
 * Write this process's PID file (atomically: readers never see half a file). Refuses when another live
 * process holds the same worker id, as upstream does.
 */
export async function writePidFile(pidDir: string, workerId: string, pid = process.pid): Promise<string> {
  await mkdir(pidDir, { recursive: true });
  const path = pidFilePath(pidDir, workerId);
  const existing = await readPidFile(path);
  if (existing !== undefined && existing !== pid && isAlive(existing)) {
    throw new Error(`worker id "${workerId}" is already in use by PID ${existing} (${path})`);
  }
  const tmp = `${path}.${pid}.tmp`;
  await writeFile(tmp, String(pid));
  await rename(tmp, path);
  return path;
}

/** Remove the PID file if it is still ours. */
export async function removePidFile(path: string, pid = process.pid): Promise<void> {
  if ((await readPidFile(path)) === pid) await rm(path, { force: true });
}
