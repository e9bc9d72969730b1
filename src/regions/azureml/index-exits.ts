import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import type { Logger } from "../../logging/logger.js";
import type { ArmWorkspace } from "./arm.js";
import type { JobSummary, Listing } from "./listing.js";
import { classifyStatus } from "./states.js";

/**
 * Exits under `listing: index`. The index is asked for active jobs only, so a finished job is never
 * listed: it vanishes. A job that a listing showed and the next one does not is read through ARM (one
 * GET, from the subscription's read budget) to learn how it ended; at most `batch` a tick, the rest on the
 * next ones. A job gone from ARM too (deleted) is dropped.
 */
export class VanishedJobs {
  private active = new Set<string>();
  private readonly waiting = new Set<string>();
  private first = true;

  constructor(
    private readonly options: {
      arm: ArmWorkspace;
      readLimiter: WriteRateLimiter;
      maxBudgetWaitMs: number;
      batch: number;
      logger: Logger;
      onFinished: (job: JobSummary, resource: Record<string, unknown>) => void;
    },
  ) {}

  /** After an index listing: read the jobs that left it (their finished resources go to `onFinished`). */
  async read(listing: Listing, signal?: AbortSignal): Promise<void> {
    const now = new Set<string>();
    for (const job of [...listing.running, ...listing.pending, ...listing.unknown])
      if (job.name) now.add(job.name);
    for (const name of this.active) if (!now.has(name)) this.waiting.add(name);
    for (const name of now) this.waiting.delete(name);
    this.active = now;
    if (this.first) {
      // Our first look: nothing vanished yet.
      this.first = false;
      return;
    }
    const names = [...this.waiting].slice(0, this.options.batch);
    if (names.length === 0) return;
    const { arm, readLimiter, maxBudgetWaitMs } = this.options;
    if (!(await readLimiter.reserve(names.length, maxBudgetWaitMs, signal))) return; // next tick
    await Promise.all(
      names.map(async (name) => {
        const url = new URL(arm.jobsUrl({}));
        url.pathname += `/${encodeURIComponent(name)}`;
        try {
          const resource = (await arm.getJson("jobs.get", url.toString(), signal)) as Record<string, unknown>;
          const status = (resource?.properties as { status?: unknown } | undefined)?.status;
          const created = Date.parse(
            String((resource?.systemData as { createdAt?: unknown } | undefined)?.createdAt ?? ""),
          );
          const summary: JobSummary = {
            name,
            status: typeof status === "string" ? status : undefined,
            createdAt: Number.isFinite(created) ? created : 0,
            nodes: 1,
            class: classifyStatus(typeof status === "string" ? status : undefined),
          };
          // Finalizing or CancelRequested (not in the index's statuses): asked again next tick.
          if (summary.class !== "finished") return;
          this.options.onFinished(summary, resource);
          this.waiting.delete(name);
        } catch (error) {
          if ((error as { statusCode?: unknown })?.statusCode === 404) this.waiting.delete(name);
          else
            this.options.logger.debug(
              { job: name, err: error },
              "could not read a job that left the index listing; tried again next tick",
            );
        }
      }),
    );
  }
}
