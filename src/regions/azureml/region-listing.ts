import type { Logger } from "../../logging/logger.js";
import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import type { AzuremlRegionConfig } from "./config.js";
import type { ArmWorkspace } from "./arm.js";
import type { MlApi } from "./ml-api.js";
import {
  JobCache,
  ListTooLong,
  listWorkforce,
  ReadBudgetHold,
  type JobSummary,
  type Listing,
  type ListingOptions,
} from "./listing.js";
import { listIndexed } from "./index-listing.js";
import { VanishedJobs } from "./index-exits.js";
import { exitTagKey, logExit, type JobExits } from "./exits.js";
import type { StreakMarks } from "./streak-marks.js";

/**
 * Pages of the restart's list of marked jobs under `listing: index` (one is enough for a streak); the
 * reader asks for the next page before it counts this one, so 3 reads at most.
 */
const MARKED_MAX_PAGES = 2;

/** A listing other than ARM's or the index's (tests, bench): returns the same `Listing`. */
export type ListingSource = (
  options: ListingOptions,
  expectedPages: number,
  signal?: AbortSignal,
) => Promise<Listing>;

export interface RegionListingParts {
  config: AzuremlRegionConfig;
  arm: ArmWorkspace;
  ml: MlApi;
  readLimiter: WriteRateLimiter;
  tagKey: string;
  nodesPerWorker: number;
  exits: JobExits;
  /** The streak's marks, where finished jobs are not retired (keep, index): told of every finished job. */
  marks?: StreakMarks;
  logger: Logger;
  /** Pages of the last listing: how many to fetch at once next time. */
  lastPages: () => number;
  /** How long a hire is expected in a listing that shows active jobs only (the controller's hire grace). */
  hireWindowMs: number;
  listing?: ListingSource;
}

export interface RegionListing {
  /**
   * A whole listing of the region's workers, the exits of the finished jobs it found recorded. `onBeside`
   * hears when the budget of the `extraReads` is there (the cluster read waits for it).
   */
  list(extraReads: number, signal?: AbortSignal, onBeside?: (ready: Promise<void>) => void): Promise<Listing>;
  /** This process submitted `name` (accepted, or its outcome unknown): its end is looked for. */
  hired(name: string): void;
  readonly options: ListingOptions;
}

/**
 * How a region lists its workers: the ARM job list (listing.ts) or the AzureML index API (index-listing.ts),
 * with odd jobs reported once and every finished job's exit recorded once.
 */
export function createRegionListing(parts: RegionListingParts): RegionListing {
  const { config, arm, ml, readLimiter, tagKey, nodesPerWorker: perWorker, exits: exitTracker } = parts;
  const log = parts.logger;
  const source = parts.listing;
  const marks = parts.marks;
  /** A finished job listed (or read after it left the index): its exit is recorded once, its mark kept. */
  const seeFinished = (job: JobSummary, resource: () => Record<string, unknown>): void => {
    const listed = exitTracker.listed;
    const ended = exitTracker.see(job, resource);
    marks?.see(job, ended, listed, resource);
  };
  /** Odd jobs already reported (once each: a tick every 30 s would repeat it all day). */
  const reported = new Set<string>();
  /** A job without a name or with a status this code does not know counts as pending and is never cancelled. */
  function warnOddJob(job: { name: string; status: unknown }): void {
    const what = !job.name
      ? "a listed job has no name"
      : job.status === undefined || job.status === ""
        ? `job ${job.name} has no properties.status`
        : `job ${job.name} has an unknown properties.status ${JSON.stringify(job.status)}`;
    const key = job.name ? `status=${String(job.status)}` : "name";
    if (reported.has(key)) return;
    reported.add(key);
    log.warn(
      { job: job.name || undefined },
      `region ${config.name}: ${what}; counted as pending, never cancelled`,
    );
  }

  const listingOptions: ListingOptions = {
    arm,
    experiment: config.experiment,
    tagKey,
    maxListPages: config.maxListPages,
    readLimiter,
    // A wait for read budget may be as long as one request may take; longer, and the region is held.
    maxBudgetWaitMs: config.requestTimeoutSeconds * 1000,
    keepFinished: config.retireFinished === "keep" ? 0 : config.retireBatch,
    cache: new JobCache(),
    onOddJob: warnOddJob,
    onFinished: seeFinished,
  };
  /** `listing: index`: pages from ml.azure.com; only the reads beside it (the cluster) are ARM's budget. */
  async function listByIndex(
    extraReads: number,
    signal?: AbortSignal,
    onBeside?: (ready: Promise<void>) => void,
  ): Promise<Listing> {
    ml.checkBackoff("index-list");
    const { readLimiter, maxBudgetWaitMs } = listingOptions;
    if (extraReads > 0) {
      const granted = readLimiter.reserve(extraReads, maxBudgetWaitMs, signal);
      onBeside?.(
        granted.then((ok) => {
          if (!ok) throw new ReadBudgetHold(config.name, extraReads, maxBudgetWaitMs);
        }),
      );
      if (!(await granted)) throw new ReadBudgetHold(config.name, extraReads, maxBudgetWaitMs);
    }
    return listIndexed(ml, {
      region: config.name,
      experiment: config.experiment,
      maxPages: config.maxListPages,
      nodesPerWorker: perWorker,
      onOddJob: warnOddJob,
      ...(signal ? { signal } : {}),
    });
  }
  const listOnce = (
    extraReads: number,
    signal?: AbortSignal,
    onBeside?: (ready: Promise<void>) => void,
  ): Promise<Listing> =>
    source
      ? source(listingOptions, parts.lastPages(), signal)
      : config.listing === "index"
        ? listByIndex(extraReads, signal, onBeside)
        : listWorkforce(listingOptions, config.name, parts.lastPages(), extraReads, signal, onBeside);
  // The index lists no finished job: those that leave it are read through ARM (index-exits.ts).
  const vanished =
    config.listing === "index" && !source
      ? new VanishedJobs({
          arm,
          readLimiter: listingOptions.readLimiter,
          maxBudgetWaitMs: listingOptions.maxBudgetWaitMs,
          batch: Math.max(1, config.retireBatch),
          hireWindowMs: parts.hireWindowMs,
          region: config.name,
          logger: log,
          onFinished: (job, resource) => seeFinished(job, () => resource),
          onActive: (job, at) => exitTracker.sawActive(job, at),
        })
      : undefined;
  /**
   * `listing: index`, first listing: the index never lists a finished job, so the marked failed starts of
   * the current streak are listed through ARM, the list filtered by the mark's tag key: one read (a streak
   * has at most 10 marked jobs). More pages than MARKED_MAX_PAGES means the service ignored `tag=` (the
   * tags are checked here too) and lists every job of ours, which the index mode never archives: the
   * streak is then not looked for (said once), rather than reading them all at every start.
   */
  async function listMarked(signal?: AbortSignal): Promise<void> {
    try {
      await listWorkforce(
        {
          ...listingOptions,
          listTag: exitTagKey(tagKey),
          maxListPages: Math.min(MARKED_MAX_PAGES, config.maxListPages),
          keepFinished: 0,
          cache: new JobCache(),
          onOddJob: () => undefined,
        },
        config.name,
        1,
        0,
        signal,
      );
    } catch (error) {
      if (!(error instanceof ListTooLong)) throw error;
      log.warn(
        `region ${config.name}: the jobs list filtered by tag ${exitTagKey(tagKey)} is longer than ${MARKED_MAX_PAGES} pages (the service seems to ignore tag=): the failed-start streak of a previous process is not looked for`,
      );
    }
  }
  async function list(
    extraReads: number,
    signal?: AbortSignal,
    onBeside?: (ready: Promise<void>) => void,
  ): Promise<Listing> {
    const startedAt = Date.now();
    const jobs = await listOnce(extraReads, signal, onBeside);
    await vanished?.read(jobs, startedAt, signal);
    if (vanished && !exitTracker.listed) await listMarked(signal);
    for (const exit of exitTracker.commit(jobs, startedAt)) logExit(log, exit);
    return jobs;
  }
  function hired(name: string): void {
    const at = Date.now();
    exitTracker.hired(name, at);
    vanished?.hired(name, at);
  }
  return { list, hired, options: listingOptions };
}
