import { redactText, type Logger } from "../../logging/logger.js";
import type { WorkerExit, WorkerExitOutcome } from "../types.js";
import type { FinishedJob, JobSummary, Listing } from "./listing.js";
import type { Retirer } from "./retire.js";

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
/** A job last seen waiting this long ago is forgotten (it left without being seen finished). */
const WAITING_FORGET_MS = 3600_000;
/** A cancel request is forgotten after this long (its job left without being seen finished). */
const CANCEL_FORGET_MS = 24 * 3600_000;
/** Clock skew allowed between the service's `createdAt` and our listings. */
const SKEW_MS = 60_000;
/**
 * Failed starts of the current streak kept listed (not retired), marked: enough for the longest backoff
 * (30 s doubling to 30 min takes 7), so that a restarted daemon or `status` finds the streak.
 */
const HELD_MAX = 10;

/** The tag a failed start is marked with: `{tagKey}.exit` = `failed_start@{ISO time}[@{ranSeconds}]`. */
export const exitTagKey = (tagKey: string): string => `${tagKey}.exit`;

export function exitTagValue(exit: WorkerExit): string {
  const ran = exit.ranSeconds !== undefined ? `@${Math.round(exit.ranSeconds * 10) / 10}` : "";
  return `${exit.outcome}@${new Date(exit.at).toISOString()}${ran}`;
}

function parseExitTag(
  value: unknown,
): { outcome: "failed_start"; at: number; ranSeconds?: number } | undefined {
  if (typeof value !== "string") return undefined;
  const [outcome, iso, ran] = value.split("@");
  const at = Date.parse(iso ?? "");
  const ranSeconds = Number(ran);
  if (outcome !== "failed_start" || !Number.isFinite(at)) return undefined;
  return { outcome, at, ...(ran !== undefined && Number.isFinite(ranSeconds) ? { ranSeconds } : {}) };
}

/** What an exit needs of a finished job, taken from its resource when it is first seen finished. */
export interface EndedJob {
  name: string;
  status: string;
  createdAt: number;
  /** `systemData.lastModifiedAt`, when later than its creation (the service's time of its last change). */
  modifiedAt?: number;
  /** `errorMessage` of its `services` entries, when the service set one. */
  error?: string;
  /** The exit a daemon recorded and marked on the job (`{tagKey}.exit`), kept listed for its streak. */
  marked?: { outcome: "failed_start"; at: number; ranSeconds?: number };
}

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

/** The fields of a finished job an exit needs (nothing else of the resource is kept). */
export function endedJob(job: JobSummary, resource: Record<string, unknown>, tagKey?: string): EndedJob {
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
  const tags = (resource.properties as { tags?: Record<string, unknown> } | undefined)?.tags;
  const marked =
    tagKey && tags && typeof tags === "object" ? parseExitTag(tags[exitTagKey(tagKey)]) : undefined;
  return {
    name: job.name,
    status: job.status ?? "",
    createdAt: job.createdAt,
    ...(marked ? { marked } : {}),
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
  /**
   * Only what a failed start needs, so that nothing is kept per long-running job: for a job seen waiting
   * (pending, unknown) and not yet Running, minus the last listing that showed it; for a job seen Running
   * for less than the grace, the first listing that did. A job not here that a listing before the last
   * one could have shown ran past the grace (or was Running when this process first looked).
   */
  private readonly seen = new Map<string, number>();
  private readonly cancels = new Map<string, number>();
  private history: WorkerExit[] = [];
  private committed = false;
  /** When the last whole listing started: a job created after it was never listed before. */
  private previousStart = 0;

  constructor(private readonly options: { startGraceMs: number; tagKey?: string }) {}

  /**
   * Called by the listing for each finished job it lists (`resource` parses its text on demand). Returns
   * what it read of a job not seen finished before (its resource was parsed for it), else undefined.
   */
  see(job: JobSummary, resource: () => Record<string, unknown>): EndedJob | undefined {
    if (!job.name) return undefined;
    if (this.recorded.has(job.name)) {
      this.recorded.set(job.name, Date.now());
      return undefined;
    }
    // The resource is parsed only for a job not seen finished before.
    if (this.fresh.has(job.name)) return undefined;
    const ended = endedJob(job, resource(), this.options.tagKey);
    this.fresh.set(job.name, ended);
    return ended;
  }

  /** Whether a whole listing was committed: the finished jobs of a later one ended while we watched. */
  get listed(): boolean {
    return this.committed;
  }

  /** This process submitted `name` at `at`: waiting (not seen Running) until a listing says more. */
  hired(name: string, at = Date.now()): void {
    if (!this.seen.has(name)) this.seen.set(name, -at);
  }

  /**
   * An active job read on its own at `at`, not listed (a hire the index does not show yet): noted as a
   * listing would note it, so that its end is told apart (a failed start, or a failure after it ran).
   */
  sawActive(job: JobSummary, at: number): void {
    const value = this.seen.get(job.name);
    if (!job.name || (value !== undefined && value > 0)) return;
    if (job.class === "running") this.seen.set(job.name, at);
    else if (value === undefined) this.seen.set(job.name, -at);
  }

  /** This process asked the service to cancel `name` (its Canceled end is a drain, not an operator's stop). */
  cancelRequested(name: string, at = Date.now()): void {
    if (!this.cancels.has(name)) this.cancels.set(name, at);
  }

  /** What this process saw of `job` before it finished. */
  private watchedOf(job: EndedJob): Watched {
    const value = this.seen.get(job.name);
    const cancelRequestedAt = this.cancels.get(job.name);
    const runningSince =
      value !== undefined
        ? value > 0
          ? value
          : undefined // seen waiting, never Running
        : job.createdAt > this.previousStart - SKEW_MS
          ? undefined // created since the last listing: never listed before
          : "before"; // Running past the grace, or when this process first looked
    return {
      ...(runningSince !== undefined ? { runningSince } : {}),
      ...(cancelRequestedAt !== undefined ? { cancelRequestedAt } : {}),
    };
  }

  /** After a whole listing that started at `startedAt`: the exits it found, oldest submission first. */
  commit(listing: Listing, startedAt: number): WorkerExit[] {
    const firstListing = !this.committed;
    this.committed = true;
    const found = [...this.fresh.values()].sort((a, b) => a.createdAt - b.createdAt);
    this.fresh.clear();
    const exits: WorkerExit[] = [];
    for (const job of found) {
      if (!firstListing) {
        exits.push(classifyJobExit(job, this.watchedOf(job), listing.at, this.options));
      } else if (job.marked) {
        // Marked by a daemon before this one: its streak goes on (the controller does not count it again,
        // it ended before this process started).
        const exit = classifyJobExit(job, undefined, job.marked.at, this.options);
        exits.push({
          ...exit,
          outcome: job.marked.outcome,
          at: job.marked.at,
          detail: exit.detail.replace(", never seen Running", ""),
          ...(job.marked.ranSeconds !== undefined ? { ranSeconds: job.marked.ranSeconds } : {}),
        });
      }
      this.seen.delete(job.name);
      this.cancels.delete(job.name);
      this.recorded.set(job.name, listing.at);
    }
    this.watch(listing, firstListing);
    this.previousStart = startedAt;
    // Finished jobs no listing since `startedAt` showed are retired: forget them.
    for (const [name, seen] of this.recorded) if (seen < startedAt) this.recorded.delete(name);
    for (const [name, at] of this.cancels) if (listing.at - at > CANCEL_FORGET_MS) this.cancels.delete(name);
    exits.sort((a, b) => a.at - b.at);
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

  /** Note the jobs waiting and those first seen Running; forget those Running past the grace. */
  private watch(listing: Listing, firstListing: boolean): void {
    for (const job of [...listing.pending, ...listing.unknown]) {
      const value = this.seen.get(job.name);
      if (job.name && (value === undefined || value < 0)) this.seen.set(job.name, -listing.at);
    }
    // Running when this process first looked: for how long is not known, and not kept.
    if (!firstListing) {
      for (const job of listing.running) {
        const value = this.seen.get(job.name);
        if (!job.name || (value !== undefined && value > 0)) continue;
        if (value !== undefined || job.createdAt > this.previousStart - SKEW_MS)
          this.seen.set(job.name, listing.at);
      }
    }
    for (const [name, value] of this.seen) {
      if (value > 0 ? listing.at - value > this.options.startGraceMs : listing.at + value > WAITING_FORGET_MS)
        this.seen.delete(name);
    }
  }

  /** The recent exits, oldest first. */
  exits(): WorkerExit[] {
    return this.history;
  }

  /**
   * Failed starts of the current streak (the newest exits back to the last worker that ran), at most
   * HELD_MAX: they stay listed, marked with their exit, instead of being retired; the streak's end
   * releases them.
   */
  held(): Set<string> {
    const names = new Set<string>();
    for (let i = this.history.length - 1; i >= 0 && names.size < HELD_MAX; i--) {
      const exit = this.history[i]!;
      if (exit.outcome === "failed_start") names.add(exit.workerId);
      else if (exit.outcome !== "unknown") break;
    }
    return names;
  }

  /** The exit recorded for `name`, if it is in the history. */
  exitOf(name: string): WorkerExit | undefined {
    for (let i = this.history.length - 1; i >= 0; i--)
      if (this.history[i]!.workerId === name) return this.history[i];
    return undefined;
  }
}

/** A failure at warn, with what the service said; other exits at debug (hundreds a tick at scale). */
export function logExit(log: Logger, exit: WorkerExit): void {
  const fields = {
    workerId: exit.workerId,
    outcome: exit.outcome,
    detail: exit.detail,
    ...(exit.ranSeconds !== undefined ? { ranSeconds: Math.round(exit.ranSeconds * 10) / 10 } : {}),
    ...(exit.lastOutput ? { lastOutput: exit.lastOutput } : {}),
  };
  if (exit.outcome === "failed_start")
    log.warn(fields, `worker failed to start (job ${exit.workerId}: ${exit.detail})`);
  else if (exit.outcome === "failed")
    log.warn(fields, `worker failed (job ${exit.workerId}: ${exit.detail})`);
  else log.debug(fields, `worker exited (${exit.outcome}, job ${exit.workerId}: ${exit.detail})`);
}

/**
 * Finished jobs leave the listing: the failed starts of the current streak stay listed, marked with their
 * exit (a restarted daemon and `status` find the streak there); every other finished job is retired.
 */
export function settleFinished(
  finished: readonly FinishedJob[],
  exits: JobExits,
  retirer: Retirer,
  tagKey: string,
): void {
  const held = exits.held();
  const markKey = exitTagKey(tagKey);
  retirer.mark(
    finished.flatMap((job) => {
      const exit = held.has(job.name) ? exits.exitOf(job.name) : undefined;
      const tags = (job.resource.properties as { tags?: Record<string, unknown> } | undefined)?.tags;
      return exit && tags?.[markKey] === undefined ? [{ job, key: markKey, value: exitTagValue(exit) }] : [];
    }),
  );
  retirer.retire(finished.filter((job) => !held.has(job.name)));
}
