import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** What the region remembers about one worker; one JSON file per worker, so a restarted daemon finds it. */
export interface WorkerRecord {
  id: string;
  /** ISO times. */
  hiredAt: string;
  /** When its process starts (hiredAt + startupDelaySeconds). */
  startAt: string;
  /** Set once the process is started. */
  pid?: number;
  /** /proc/PID/stat start time of that process: a reused PID never matches. */
  processStartTime?: string;
  startedAt?: string;
  /** First seen running (its PID file present): it had started work, so a failure is not a failed start. */
  runningSeenAt?: string;
  /** The drain signal (or control message) was sent: finish the task in hand and leave. */
  drainRequestedAt?: string;
  /** Cancelled before it started work (the drain signal makes an idle worker exit at once). */
  cancelRequestedAt?: string;
  /** Stopped on an operator's explicit request (SIGTERM, then SIGKILL). */
  stopRequestedAt?: string;
}

export class RecordStore {
  constructor(private readonly dir: string) {}

  private path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  async list(): Promise<WorkerRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const records: WorkerRecord[] = [];
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      try {
        const record = JSON.parse(await readFile(join(this.dir, name), "utf8")) as WorkerRecord;
        if (typeof record.id === "string" && typeof record.hiredAt === "string") records.push(record);
      } catch {
        // Removed meanwhile, or not ours: skip.
      }
    }
    return records.sort((a, b) => a.hiredAt.localeCompare(b.hiredAt) || a.id.localeCompare(b.id));
  }

  /** Atomic: write a temporary file, then rename over the record. */
  async write(record: WorkerRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `${this.path(record.id)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(record, null, 2));
    await rename(tmp, this.path(record.id));
  }

  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }
}
