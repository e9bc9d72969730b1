import { redactText } from "../../logging/logger.js";
import type { WorkerExit, WorkerExitOutcome } from "../types.js";
import type { JobSummary, Listing } from "./listing.js";

/**
 * Worker exits of an AzureML region, from the ARM job list. A job resource (api-version 2022-10-01)
 * carries `properties.status`, `systemData.createdAt` and `systemData.lastModifiedAt`, and `services`
 * entries that may carry an `errorMessage`; it has no start time, no end time, no exit code and no error
 * of its own. So what a job did is learnt by watching: the first listing that shows it Running is its
 * start (late by up to one listing interval), the first listing that shows it finished is its end
 * (late by as much). Finished jobs stay listed until retired, so each is seen, recorded once (by name),
 * then forgotten when no listing shows it any more. See docs/azureml.md, "Worker exits".
 */

/** Exits kept for the start backoff and `status`: the newest, at least these many. */
const KEPT_EXITS = 50;
/** And every exit recorded this recently (a tick that finds hundreds of finished jobs counts them all). */
const KEPT_RECENT_MS = 10 * 60_000;
/** The most ever kept, whatever the rate. */
const KEPT_MAX = 10_000;
/** A job not seen Running for this long is forgotten (it left without being seen finished). */
const RUNNING_FORGET_MS = 24 * 3600_000;

/** What an exit needs of a finished job, taken from its resource when it is first seen finished. */
export interface EndedJob {
  name: string;
  status: string;
  createdAt: number;
  /** `systemData.lastModifiedAt`, when later than its creation (the service's time of its last change). */
  modifiedAt?: number;
  /** `errorMessage` of its `services` entries, when the service set one. */
  error?: string;
}

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

/** The fields of a finished job an exit needs (nothing else of the resource is kept). */
export function endedJob(job: JobSummary, resource: Record<string, unknown>): EndedJob {
  const modified = Date.parse(
    str((resource.systemData as Record<string, unknown> | undefined)?.lastModifiedAt) ?? "",
  );
  const services = (resource.properties as { services?: unknown } | undefined)?.services;
  const errors =
    services && typeof services === "object"
      ? Object.values(services as Record<string, unknown>)
          .map((service) => str((service as { errorMessage?: unknown } | null)?.errorMessage)?.trim())
          .filter((message): message is string => Boolean(message))
      : [];
  return {
    name: job.name,
    status: job.status ?? "",
    createdAt: job.createdAt,
    ...(Number.isFinite(modified) && modified > job.createdAt ? { modifiedAt: modified } : {}),
    ...(errors.length > 0 ? { error: [...new Set(errors)].join("\n").slice(0, 2000) } : {}),
  };
}

/** What this process saw of a job before it finished. */
export interface Watched {
  /** First listing that showed it Running (epoch ms); "before" when it was Running in our first listing. */
  runningSince?: number | "before";
  /** When this process asked the service to cancel it. */
  cancelRequestedAt?: number;
}

/**
 * How a finished job ended, as a worker exit.
 * - Completed: `succeeded` (a drained worker completes too: the back channel does not say which job took
 *   a drain request).
 * - Canceled: `drained` when this process cancelled it, else `stopped` (an operator, or a process before).
 * - Failed: `failed_start` when no listing saw it Running or it had been seen Running for less than
 *   `startGraceMs` (a bad command, option or image fails within seconds); `failed` when it had run
 *   longer, or was already Running when this process first looked.
 */
export function classifyJobExit(
  job: EndedJob,
  watched: Watched | undefined,
  seenAt: number,
  options: { startGraceMs: number },
): WorkerExit {
  const since = watched?.runningSince;
  const ranMs = typeof since === "number" ? Math.max(0, seenAt - since) : undefined;
  let outcome: WorkerExitOutcome;
  if (job.status === "Completed") outcome = "succeeded";
  else if (job.status === "Canceled")
    outcome = watched?.cancelRequestedAt !== undefined ? "drained" : "stopped";
  else if (since === "before") outcome = "failed";
  else outcome = ranMs === undefined || ranMs < options.startGraceMs ? "failed_start" : "failed";
  const end = job.modifiedAt ?? seenAt;
  const life =
    job.createdAt > 0
      ? ` ${Math.max(0, Math.round((end - job.createdAt) / 1000))} s after it was submitted`
      : "";
  const running = since === undefined ? ", never seen Running" : "";
  return {
    workerId: job.name,
    outcome,
    at: seenAt,
    detail: `${job.status}${life}${running}`,
    ...(ranMs !== undefined ? { ranSeconds: ranMs / 1000 } : {}),
    ...(outcome === "drained" && watched?.cancelRequestedAt !== undefined
      ? { drainSeconds: Math.max(0, (seenAt - watched.cancelRequestedAt) / 1000) }
      : {}),
    ...(job.error ? { lastOutput: redactText(job.error) } : {}),
  };
}

/**
 * The region's exit history, kept in memory. Listings call `see` for every finished job they list (cheap
 * for one already recorded); `commit` after a whole listing records the new ones, notes which jobs are
 * Running, and forgets finished jobs no longer listed. A restarted daemon starts with an empty history,
 * and the jobs its first listing finds finished are marked seen without an exit: a previous process
 * counted them (or none watched them end), and what they did is not known.
 */
export class JobExits {
  /** Finished jobs recorded, by name: when a listing last showed each. */
  private readonly recorded = new Map<string, number>();
  /** Finished jobs seen, not yet recorded (a listing that failed half-way leaves some here). */
  private readonly fresh = new Map<string, EndedJob>();
  private readonly watched = new Map<string, Watched & { lastRunningAt?: number }>();
  private history: WorkerExit[] = [];
  private committed = false;

  constructor(private readonly options: { startGraceMs: number }) {}

  /** Called by the listing for each finished job it lists. */
  see(job: JobSummary, resource: Record<string, unknown>): void {
    if (!job.name) return;
    if (this.recorded.has(job.name)) {
      this.recorded.set(job.name, Date.now());
      return;
    }
    if (!this.fresh.has(job.name)) this.fresh.set(job.name, endedJob(job, resource));
  }

  /** This process asked the service to cancel `name` (its Canceled end is a drain, not an operator's stop). */
  cancelRequested(name: string, at = Date.now()): void {
    const entry = this.watched.get(name) ?? {};
    entry.cancelRequestedAt ??= at;
    this.watched.set(name, entry);
  }

  /** After a whole listing that started at `startedAt`: the exits it found, oldest submission first. */
  commit(listing: Listing, startedAt: number): WorkerExit[] {
    const firstListing = !this.committed;
    this.committed = true;
    for (const job of listing.running) {
      if (!job.name) continue;
      const entry = this.watched.get(job.name) ?? {};
      entry.runningSince ??= firstListing ? "before" : listing.at;
      entry.lastRunningAt = listing.at;
      this.watched.set(job.name, entry);
    }
    const found = [...this.fresh.values()].sort((a, b) => a.createdAt - b.createdAt);
    this.fresh.clear();
    const exits: WorkerExit[] = [];
    for (const job of found) {
      if (!firstListing)
        exits.push(classifyJobExit(job, this.watched.get(job.name), listing.at, this.options));
      this.watched.delete(job.name);
      this.recorded.set(job.name, listing.at);
    }
    // Finished jobs no listing since `startedAt` showed are retired: forget them.
    for (const [name, seen] of this.recorded) if (seen < startedAt) this.recorded.delete(name);
    for (const [name, entry] of this.watched) {
      const last = entry.lastRunningAt ?? entry.cancelRequestedAt ?? 0;
      if (listing.at - last > RUNNING_FORGET_MS) this.watched.delete(name);
    }
    if (exits.length > 0) {
      const history = [...this.history, ...exits];
      const recent = history.findIndex((exit) => exit.at >= listing.at - KEPT_RECENT_MS);
      const keepFrom = Math.min(
        recent === -1 ? history.length : recent,
        Math.max(0, history.length - KEPT_EXITS),
      );
      this.history = history.slice(Math.max(keepFrom, history.length - KEPT_MAX));
    }
    return exits;
  }

  /** The recent exits, oldest first. */
  exits(): WorkerExit[] {
    return this.history;
  }
}
