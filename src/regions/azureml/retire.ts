import pLimit from "p-limit";
import type { Logger } from "../../logging/logger.js";
import { WriteBudgetBusy, type ArmWorkspace } from "./arm.js";
import { regionError } from "./errors.js";
import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import type { FinishedJob } from "./listing.js";

/**
 * Retiring our finished jobs so the ActiveOnly listing stays as short as the active ones: archive them
 * (`isArchived: true`) or untag them (our tag key renamed `{tagKey}.done`). A job is updated by a PUT of
 * the whole job, and the service refuses any change but description, tags, displayName, properties and
 * isArchived: so the body is the job exactly as read, raw JSON, with only that one field changed.
 */
export interface RetireOptions {
  mode: "archive" | "untag" | "keep";
  batch: number;
  tagKey: string;
  experiment: string;
  region: string;
  arm: ArmWorkspace;
  /** The subscription's ARM read budget (the GET before an unmark takes spare room only). */
  readLimiter?: WriteRateLimiter;
  logger: Logger;
}

/** The body that retires `job`: its resource as read, one mutable field changed. */
export function retireBody(
  job: FinishedJob,
  mode: "archive" | "untag",
  tagKey: string,
  experiment: string,
): Record<string, unknown> {
  const resource = job.resource;
  const properties = { ...(resource.properties as Record<string, unknown>) };
  if (mode === "archive") {
    properties.isArchived = true;
  } else {
    const tags = { ...((properties.tags as Record<string, string> | undefined) ?? {}) };
    delete tags[tagKey];
    tags[`${tagKey}.done`] = experiment;
    properties.tags = tags;
  }
  return { ...resource, properties };
}

/** The body that marks `job` with a tag (a failed start kept listed for its streak: exits.ts). */
export function markBody(job: FinishedJob, key: string, value: string): Record<string, unknown> {
  const resource = job.resource;
  const properties = { ...(resource.properties as Record<string, unknown>) };
  properties.tags = { ...((properties.tags as Record<string, string> | undefined) ?? {}), [key]: value };
  return { ...resource, properties };
}

/** The body that takes the tag `key` off a job (the job as read, without it); undefined if it has none. */
export function unmarkBody(
  resource: Record<string, unknown>,
  key: string,
): Record<string, unknown> | undefined {
  const properties = { ...(resource.properties as Record<string, unknown> | undefined) };
  const tags = { ...((properties.tags as Record<string, string> | undefined) ?? {}) };
  if (!Object.prototype.hasOwnProperty.call(tags, key)) return undefined;
  delete tags[key];
  properties.tags = tags;
  return { ...resource, properties };
}

const statusOf = (error: unknown): unknown => (error as { statusCode?: unknown } | null)?.statusCode;

export class Retirer {
  // Retiring has its own small lane, so it never queues ahead of a hire.
  private readonly slots = pLimit(2);
  private readonly running = new Set<Promise<void>>();
  /** Names being retired now, so a slow retire is not started twice. */
  private readonly names = new Set<string>();

  constructor(private readonly options: RetireOptions) {}

  /** Retire finished jobs in the background: the tick does not wait for these writes. */
  retire(finished: FinishedJob[]): void {
    const { mode, batch, tagKey, experiment } = this.options;
    if (mode === "keep") return;
    for (const job of finished.filter((job) => job.name && !this.names.has(job.name)).slice(0, batch))
      this.put(job.name, "retire", () =>
        this.options.arm.putJob(job.name, retireBody(job, mode, tagKey, experiment), { background: true }),
      );
  }

  /**
   * Mark finished jobs with a tag instead of retiring them (they stay listed), in the background;
   * `onMarked` hears of each one the service took.
   */
  mark(
    jobs: Array<{ job: FinishedJob; key: string; value: string }>,
    onMarked?: (name: string) => void,
  ): void {
    for (const { job, key, value } of jobs)
      if (job.name && !this.names.has(job.name))
        this.put(job.name, "mark", async () => {
          await this.options.arm.putJob(job.name, markBody(job, key, value), { background: true });
          onMarked?.(job.name);
        });
  }

  /**
   * Take the tag `key` off a finished job, in the background: one GET of the job as it is now (from the
   * read budget, only if it has room at once), then one PUT of it without the tag. `onGone` hears when the
   * job carries the tag no more (taken off, never there, or the job deleted).
   */
  unmark(name: string, key: string, onGone: (name: string) => void): void {
    const { arm, readLimiter } = this.options;
    if (!name || this.names.has(name)) return;
    this.put(name, "unmark", async () => {
      if (readLimiter && !readLimiter.tryAcquire(readLimiter.capacity / 2)) return; // next tick
      let resource: unknown;
      try {
        resource = await arm.getJob(name);
      } catch (error) {
        if (statusOf(error) === 404) return onGone(name);
        throw error;
      }
      const body =
        resource && typeof resource === "object"
          ? unmarkBody(resource as Record<string, unknown>, key)
          : undefined;
      if (body) await arm.putJob(name, body, { background: true });
      onGone(name);
    });
  }

  private put(name: string, what: "retire" | "mark" | "unmark", write: () => Promise<void>): void {
    const { logger, region } = this.options;
    this.names.add(name);
    const task = this.slots(write)
      .catch((error: unknown) => {
        if (error instanceof WriteBudgetBusy) return; // tried again next tick
        logger.warn(
          { err: regionError(region, `${what} finished job ${name}`, error) },
          what === "retire"
            ? "could not retire a finished job; it stays in the listing"
            : what === "mark"
              ? "could not mark a failed start on its job; a restarted daemon will not see it"
              : "could not take the mark off a failed start whose streak ended; tried again next tick",
        );
      })
      .finally(() => {
        this.names.delete(name);
        this.running.delete(task);
      });
    this.running.add(task);
  }

  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
