import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import type { Logger } from "../../logging/logger.js";
import {
  afterUnlistedRead,
  unlistedDue,
  unlistedExpired,
  unlistedHire,
  type UnlistedHire,
  type UnlistedRead,
} from "../../policy/unlisted-hires.js";
import type { ArmWorkspace } from "./arm.js";
import type { JobSummary, Listing } from "./listing.js";
import { classifyStatus } from "./states.js";

/**
 * Exits under `listing: index`. The index is asked for active jobs only, so a finished job is never
 * listed: it vanishes. A job that a listing showed and the next one does not is read through ARM (one
 * GET, from the subscription's read budget) to learn how it ended; at most `batch` a tick, the rest on the
 * next ones. A job gone from ARM too (deleted) is dropped.
 *
 * A job this process hired is expected in the index: one that a listing after its hire does not show
 * either ended before the index showed it (a failed start, the costly case) or is not indexed yet (the
 * index's lag). It is read the same way, in the same batch and budget; when still active per ARM it is
 * read again only as src/policy/unlisted-hires.ts says (once its age has doubled, until `hireWindowMs`).
 * Such a read never makes it a worker of the listing: the controller's hire accounting keeps counting it.
 */
export class VanishedJobs {
  private active = new Set<string>();
  private readonly waiting = new Set<string>();
  /** Hires of this process no listing has shown yet. */
  private readonly hires = new Map<string, UnlistedHire>();
  private first = true;

  constructor(
    private readonly options: {
      arm: ArmWorkspace;
      readLimiter: WriteRateLimiter;
      maxBudgetWaitMs: number;
      batch: number;
      /** How long a hire is expected in the index (the controller's hire grace). */
      hireWindowMs: number;
      region: string;
      logger: Logger;
      onFinished: (job: JobSummary, resource: Record<string, unknown>) => void;
      /** A hire read through ARM while the index does not show it: active there (what a listing would note). */
      onActive?: (job: JobSummary, at: number) => void;
    },
  ) {}

  /** This process submitted `name` and it was accepted (or its outcome is unknown) at `at`. */
  hired(name: string, at = Date.now()): void {
    if (!this.active.has(name) && !this.hires.has(name)) this.hires.set(name, unlistedHire(at));
  }

  /**
   * After an index listing that started at `startedAt`: read the jobs that left it and the hires it does
   * not show (their finished resources go to `onFinished`).
   */
  async read(listing: Listing, startedAt: number, signal?: AbortSignal): Promise<void> {
    const now = new Set<string>();
    for (const job of [...listing.running, ...listing.pending, ...listing.unknown])
      if (job.name) now.add(job.name);
    for (const name of this.active) if (!now.has(name)) this.waiting.add(name);
    for (const name of now) {
      this.waiting.delete(name);
      this.hires.delete(name); // listed: from now on it vanishes like any other
    }
    this.active = now;
    if (this.first) {
      // Our first look: nothing vanished yet.
      this.first = false;
      return;
    }
    const at = Date.now();
    this.forgetExpired(at);
    const vanished = [...this.waiting].slice(0, this.options.batch);
    const due = [...this.hires]
      .filter(([, hire]) => unlistedDue(hire, startedAt, at))
      .slice(0, this.options.batch - vanished.length)
      .map(([name]) => name);
    const names = [...vanished, ...due];
    if (names.length === 0) return;
    const { readLimiter, maxBudgetWaitMs } = this.options;
    if (!(await readLimiter.reserve(names.length, maxBudgetWaitMs, signal))) return; // next tick
    await Promise.all([
      ...vanished.map(async (name) => {
        const found = await this.readOne(name, signal);
        // Finalizing or CancelRequested (not in the index's statuses): asked again next tick.
        if (found === "finished" || found === "gone") this.waiting.delete(name);
      }),
      ...due.map(async (name) => {
        const found = await this.readOne(name, signal, true);
        const hire = this.hires.get(name);
        if (!hire) return;
        const next = afterUnlistedRead(hire, found, Date.now());
        if (next) this.hires.set(name, next);
        else this.hires.delete(name);
      }),
    ]);
  }

  /** Hires past the window: no longer looked for; one the index still lags behind is said once. */
  private forgetExpired(at: number): void {
    for (const [name, hire] of this.hires) {
      if (!unlistedExpired(hire, at, this.options.hireWindowMs)) continue;
      this.hires.delete(name);
      if (hire.lagging)
        this.options.logger.warn(
          { job: name },
          `region ${this.options.region}: job ${name}, hired ${Math.round((at - hire.acceptedAt) / 1000)} s ago and active through ARM, is still not in the index listing; it is no longer counted as a worker (the index lags or misses it)`,
        );
    }
  }

  /** One GET of the job through ARM: what it found. */
  private async readOne(name: string, signal: AbortSignal | undefined, hire = false): Promise<UnlistedRead> {
    const { arm } = this.options;
    try {
      const resource = (await arm.getJob(name, signal)) as Record<string, unknown>;
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
      switch (summary.class) {
        case "finished":
          this.options.onFinished(summary, resource);
          return "finished";
        case "leaving":
          return "leaving";
        default:
          if (hire) this.options.onActive?.(summary, Date.now());
          return "active";
      }
    } catch (error) {
      if ((error as { statusCode?: unknown })?.statusCode === 404) return "gone";
      this.options.logger.debug(
        { job: name, err: error },
        hire
          ? "could not read a job hired and not in the index listing yet; tried again next tick"
          : "could not read a job that left the index listing; tried again next tick",
      );
      return "failed";
    }
  }
}
