import pLimit from "p-limit";
import type { Logger } from "../../logging/logger.js";
import { WriteBudgetBusy, type ArmWorkspace } from "./arm.js";
import { regionError } from "./errors.js";
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
      this.put(job, retireBody(job, mode, tagKey, experiment), "retire");
  }

  /** Mark finished jobs with a tag instead of retiring them (they stay listed), in the background. */
  mark(jobs: Array<{ job: FinishedJob; key: string; value: string }>): void {
    if (this.options.mode === "keep") return;
    for (const { job, key, value } of jobs)
      if (job.name && !this.names.has(job.name)) this.put(job, markBody(job, key, value), "mark");
  }

  private put(job: FinishedJob, body: Record<string, unknown>, what: "retire" | "mark"): void {
    const { arm, logger, region } = this.options;
    this.names.add(job.name);
    const task = this.slots(() => arm.putJob(job.name, body, { background: true }))
      .catch((error: unknown) => {
        if (error instanceof WriteBudgetBusy) return; // tried again next tick
        logger.warn(
          { err: regionError(region, `${what} finished job ${job.name}`, error) },
          what === "retire"
            ? "could not retire a finished job; it stays in the listing"
            : "could not mark a failed start on its job; a restarted daemon will not see it",
        );
      })
      .finally(() => {
        this.names.delete(job.name);
        this.running.delete(task);
      });
    this.running.add(task);
  }

  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
