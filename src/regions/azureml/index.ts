import pLimit from "p-limit";
import type {
  CallOptions,
  CancelOptions,
  CancelResult,
  DrainResult,
  HireOptions,
  HireResult,
  Region,
  RegionObservation,
  ResumeResult,
  WorkerNames,
} from "../types.js";
import type { RegionContext } from "../context.js";
import type { DrainChannel } from "../../backchannel/types.js";
import { regionCredential } from "../../azure/credentials.js";
import {
  processReadLimiters,
  processWriteLimiters,
  type WriteLimiterPool,
} from "../../azure/rate-limiter.js";
import type { AzuremlRegionConfig } from "./config.js";
import { ArmWorkspace, BadAnswerError, type ArmCallCounts } from "./arm.js";
import { freeWorkers, readCluster } from "./capacity.js";
import { cancelJobs, pendingVictims, runningVictims } from "./cancel.js";
import { regionError } from "./errors.js";
import { environmentOf, hireWorkers } from "./hire.js";
import type { Listing } from "./listing.js";
import { createRegionListing, type ListingSource } from "./region-listing.js";
import { parseRegionConfig } from "./setup.js";
import { mlOffLimits, regionMlApi } from "./ml-api.js";
import { resumePaused } from "./resume.js";
import { Retirer } from "./retire.js";
import { JobExits, settleFinished } from "./exits.js";
import { StreakMarks } from "./streak-marks.js";
import { nodesPerWorker } from "./template.js";

export { azuremlRegionSchema, type AzuremlRegionConfig, type AzuremlRegionInput } from "./config.js";
export type { ArmCallCounts } from "./arm.js";
export type { Listing, JobSummary } from "./listing.js";

export type { HireProgress } from "../types.js";
export type AzuremlHireOptions = HireOptions;

/** An AzureML region; beyond `Region`, it tells how many ARM calls it made (bench, tests). */
export interface AzuremlRegion extends Region {
  readonly kind: "azureml";
  hire(count: number, options?: AzuremlHireOptions): Promise<HireResult>;
  cancelRunning(count: number, options?: CancelOptions): Promise<CancelResult>;
  /** ARM requests made so far (attempts, retries included). */
  readonly calls: Readonly<ArmCallCounts>;
  /** ml.azure.com requests made so far (index pages, resumes). */
  readonly mlCalls: Readonly<ArmCallCounts>;
  resumePaused(options?: CallOptions): Promise<ResumeResult>;
  /** Resolves when the finished jobs being retired in the background are done. */
  settled(): Promise<void>;
}

export interface AzuremlDeps {
  /** Write limiters shared per subscription (default: the process's pool). */
  writeLimiters?: WriteLimiterPool;
  /** Read limiters shared per subscription (default: the process's pool, ARM's read budget). */
  readLimiters?: WriteLimiterPool;
  /**
   * How the region lists its workers (default: the ARM job list, listing.ts). Another listing (the AzureML
   * index API) plugs in here: it returns the same `Listing`.
   */
  listing?: ListingSource;
}

/** A listing this young stands in for a fresh one in cancelPending / drain / cancelRunning. */
const LISTING_REUSE_MS = 30_000;

export function createAzuremlRegion(
  config: AzuremlRegionConfig,
  ctx: RegionContext,
  deps: AzuremlDeps = {},
): AzuremlRegion {
  const ref = {
    subscriptionId: config.subscriptionId,
    resourceGroup: config.resourceGroup,
    workspace: config.workspace,
  };
  const { compute, template } = parseRegionConfig(config);
  const tagKey = config.tagKey ?? `workforce.${config.experiment}`;
  const log = ctx.logger;
  const budgetKey = `${config.armEndpoint}|${config.subscriptionId.toLowerCase()}`;
  const writeLimiter = (deps.writeLimiters ?? processWriteLimiters).get(budgetKey);
  const readLimiter = (deps.readLimiters ?? processReadLimiters).get(budgetKey);
  // One credential for ARM and ml.azure.com (two scopes, one identity and token cache).
  const credential = regionCredential(config.credential, () => ctx.credential());
  const arm = new ArmWorkspace({
    ...ref,
    region: config.name,
    endpoint: config.armEndpoint,
    credential,
    ...(ctx.tlsCa ? { tlsCa: ctx.tlsCa } : {}),
    retries: config.retries,
    attemptTimeoutMs: config.requestTimeoutSeconds * 1000,
    writeLimiter,
    readLimiter,
    logger: log,
    ...(ctx.fence ? { fence: ctx.fence } : {}),
  });
  const ml = regionMlApi(config, {
    arm,
    credential,
    ...(ctx.tlsCa ? { tlsCa: ctx.tlsCa } : {}),
    writeLimiter,
    logger: log,
    ...(ctx.fence ? { fence: ctx.fence } : {}),
  });
  const resumeOn = config.resumePaused && config.resumeBatch > 0 && !mlOffLimits(config);
  if (config.resumePaused && mlOffLimits(config)) {
    log.warn(
      `region ${config.name}: paused workers are not resumed: the "emulator" credential is only for emulators on 127.0.0.1 and mlEndpoint is ${config.mlEndpoint} (set mlEndpoint to the ml.azure.com emulator, or resumePaused: false)`,
    );
  }
  const channel: DrainChannel | undefined =
    config.backChannel && ctx.createDrainChannel
      ? ctx.createDrainChannel(config.name, config.backChannel)
      : undefined;
  const writes = pLimit(config.submitConcurrency);
  const retirer = new Retirer({
    mode: config.retireFinished,
    batch: config.retireBatch,
    tagKey,
    experiment: config.experiment,
    region: config.name,
    arm,
    readLimiter,
    logger: log,
  });
  const perWorker = nodesPerWorker(template);
  // A job that fails before it has been seen Running this long failed to start (exits.ts).
  const exitTracker = new JobExits({
    startGraceMs: Math.max(60_000, 2 * ctx.settings.intervalSeconds * 1000),
    tagKey,
  });
  // Where finished jobs are not retired, the streak's marks are taken off when it ends (streak-marks.ts).
  const marks =
    config.retireFinished === "keep" || config.listing === "index"
      ? new StreakMarks({ tagKey, retirer })
      : undefined;
  let listing: Listing | undefined;
  /** The tick's observation (cancels take their jobs out of it), for the resume sweep at its end. */
  let observed: Listing | undefined;
  /** Names of the jobs the last observe listed: a submission it names is no longer in flight. */
  let listedNames: WorkerNames = new Set<string>();
  const ensureEnvironment = environmentOf(template, ref, arm);

  const { list, hired } = createRegionListing({
    config,
    arm,
    ml,
    readLimiter,
    tagKey,
    nodesPerWorker: perWorker,
    exits: exitTracker,
    ...(marks ? { marks } : {}),
    logger: log,
    lastPages: () => listing?.pages ?? 1,
    hireWindowMs: ctx.settings.hireGraceSeconds * 1000,
    ...(deps.listing ? { listing: deps.listing } : {}),
  });

  /** The tick's listing if young enough, else a new one (a CLI lay-off without a tick before it). */
  async function currentListing(signal?: AbortSignal): Promise<Listing> {
    if (listing && Date.now() - listing.at < LISTING_REUSE_MS) return listing;
    listing = await list(0, signal);
    return listing;
  }

  async function observeOnce(signal?: AbortSignal): Promise<RegionObservation> {
    // An index listing in back-off is a failed read that costs nothing: not even the cluster's ARM read.
    if (config.listing === "index" && !deps.listing) ml.checkBackoff("index-list");
    // The list and the cluster are independent: read them at once (the cluster's read is budgeted with the
    // list, and goes when its token is there; if the listing got no budget, not at all).
    let besideReady: Promise<void> | undefined;
    const jobsRead = list(1, signal, (ready) => (besideReady = ready));
    const [jobs, cluster] = await Promise.all([
      jobsRead,
      (besideReady ?? jobsRead.then(() => undefined))
        .then(() => arm.getJson("computes.get", arm.computeUrl(compute.name), signal))
        .then((resource) =>
          readCluster(
            resource,
            (field, expected, given, type) =>
              new BadAnswerError(
                arm.where(
                  `compute ${compute.name}${type ? ` (computeType ${type})` : ""}`,
                  field,
                  expected,
                  given,
                ),
              ),
          ),
        ),
    ]);
    listing = jobs;
    observed = jobs;
    const exits = exitTracker.exits();
    // Recorded exits too: a job that finished before any listing saw it is no longer in flight.
    const exitNames = exits.length > 0 ? new Set(exits.map((exit) => exit.workerId)) : undefined;
    const names = jobs.names;
    listedNames = { has: (name) => names.has(name) || exitNames?.has(name) === true };
    const runningNames = jobs.running.map((job) => job.name);
    const draining = channel
      ? Math.min(await channel.inFlight(runningNames, { ...(signal ? { signal } : {}) }), runningNames.length)
      : 0;
    if (marks) marks.settle(exitTracker.held(), (name) => exitTracker.exitOf(name));
    else settleFinished(jobs.finished, exitTracker, retirer, tagKey);
    return {
      running: runningNames.length - draining,
      pending: jobs.pending.length + jobs.unknown.length,
      draining,
      capacity: freeWorkers(cluster, jobs.waitingNodes, perWorker),
      ...(exits.length > 0 ? { exits } : {}),
      ...(channel?.expiredDrains ? { expiredDrains: channel.expiredDrains() } : {}),
    };
  }

  /** Cancels this process asked for: the job's Canceled end is then a drain, not an operator's stop. */
  const noteCancels = (options: CancelOptions): CancelOptions => ({
    ...options,
    onOutcome: (name, outcome) => {
      if (outcome !== "refused") exitTracker.cancelRequested(name);
      options.onOutcome?.(name, outcome);
    },
  });

  const cancelContext = () => ({
    arm,
    writes,
    region: config.name,
    logger: log,
    ...(listing ? { listing } : {}),
  });

  const region: AzuremlRegion = {
    name: config.name,
    kind: "azureml",
    weight: config.weight,
    canDrain: channel !== undefined,
    ...(config.maxWorkers !== undefined ? { maxWorkers: config.maxWorkers } : {}),
    get calls() {
      return arm.counts;
    },
    get mlCalls() {
      return ml.counts;
    },
    backoffs: () => arm.backoff.active(),
    observedWorkers: () => listedNames,

    async observe(options: CallOptions = {}): Promise<RegionObservation> {
      try {
        return await observeOnce(options.signal);
      } catch (error) {
        const named = error instanceof Error && error.message.startsWith(`region ${config.name}:`);
        if (options.signal?.aborted || named) throw error;
        throw regionError(config.name, "observe", error);
      }
    },

    async hire(count: number, options: AzuremlHireOptions = {}): Promise<HireResult> {
      if (count <= 0) return { hired: 0, errors: [] };
      let envId: string | undefined;
      try {
        envId = await ensureEnvironment(options.signal);
      } catch (error) {
        return {
          hired: 0,
          errors: [
            regionError(config.name, `create environment for image ${template.inlineImage?.image}`, error),
          ],
        };
      }
      const result = await hireWorkers(
        { arm, writes, template, experiment: config.experiment, region: config.name, logger: log },
        {
          experiment: config.experiment,
          computeId: compute.id,
          tagKey,
          ...(envId ? { environmentId: envId } : {}),
        },
        count,
        {
          ...options,
          // A job that may exist is looked for until a listing shows it (under the index, one that ended
          // before the index showed it is read through ARM: its exit, a failed start, is not missed).
          onOutcome: (name, outcome) => {
            if (outcome !== "refused") hired(name);
            options.onOutcome?.(name, outcome);
          },
        },
      );
      // The new jobs are not in the listing kept: the next cancel or drain reads afresh.
      listing = undefined;
      return result;
    },

    async cancelPending(count: number, options: CancelOptions = {}): Promise<CancelResult> {
      if (count <= 0) return { cancelled: 0, errors: [] };
      // From the tick's listing, not a new one: a job that started in the seconds since may be cancelled
      // as it starts (it has done no work yet); a re-list per cancel doubled a shrink tick.
      const current = await currentListing(options.signal);
      return cancelJobs(
        pendingVictims(current, count),
        "cancel pending job",
        cancelContext(),
        noteCancels(options),
      );
    },

    async drain(count: number, options: CallOptions = {}): Promise<DrainResult> {
      if (count <= 0) return { drained: 0, errors: [] };
      if (!channel) {
        return {
          drained: 0,
          errors: [
            new Error(
              `region ${config.name}: cannot drain ${count} running workers: the region has no back channel configured (set backChannel to a Service Bus topic its workers listen on)`,
            ),
          ],
        };
      }
      const { running } = await currentListing(options.signal);
      return channel.requestDrain(
        count,
        running.map((job) => job.name),
        options,
      );
    },

    async cancelRunning(count: number, options: CancelOptions = {}): Promise<CancelResult> {
      if (count <= 0) return { cancelled: 0, errors: [] };
      const current = await currentListing(options.signal);
      return cancelJobs(
        runningVictims(current, count),
        "cancel running job",
        cancelContext(),
        noteCancels(options),
      );
    },

    async resumePaused(options: CallOptions = {}): Promise<ResumeResult> {
      const none: ResumeResult = { resumed: 0, cancelled: 0, refused: 0, failed: 0, errors: [] };
      if (!resumeOn) return none;
      let source: Listing;
      try {
        // The tick's observation, less what this tick cancelled (a Paused worker cancelled as surplus).
        source =
          observed && Date.now() - observed.at < LISTING_REUSE_MS
            ? observed
            : await currentListing(options.signal);
      } catch (error) {
        return { ...none, errors: [regionError(config.name, "list paused workers", error)] };
      }
      const paused = source.pending.filter((job) => job.status === "Paused");
      const result = await resumePaused(paused, {
        api: ml,
        region: config.name,
        experiment: config.experiment,
        batch: config.resumeBatch,
        slots: writes,
        cancel: (name, signal) => {
          exitTracker.cancelRequested(name);
          return arm.cancel(name, signal);
        },
        logger: log,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      // Resumed or cancelled jobs are Paused no more: the next sweep must not try them from this listing.
      if (result.resumed > 0 || result.cancelled > 0) observed = listing = undefined;
      return result;
    },

    async settled(): Promise<void> {
      await retirer.settled();
    },

    async close(): Promise<void> {
      await region.settled();
      await channel?.close?.();
    },
  };
  return region;
}
