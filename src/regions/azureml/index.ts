import pLimit from "p-limit";
import type { JobBase } from "@azure/arm-machinelearning";
import type {
  CallOptions,
  CancelResult,
  DrainResult,
  HireOptions,
  HireResult,
  Region,
  RegionObservation,
} from "../types.js";
import type { RegionContext } from "../context.js";
import type { DrainChannel } from "../../backchannel/types.js";
import { ConfigError } from "../../config/load.js";
import { regionCredential } from "../../azure/credentials.js";
import { processWriteLimiters, type WriteLimiterPool } from "../../azure/rate-limiter.js";
import { redactText } from "../../logging/logger.js";
import { statusOf } from "../../azure/retry.js";
import type { AzuremlRegionConfig } from "./config.js";
import {
  ArmWorkspace,
  WriteBudgetBusy,
  isJobPropertyImmutable,
  type ArmCallCounts,
  type JobSummary,
  type ListQuery,
} from "./arm.js";
import { newJobName, resolveCompute, workspaceId } from "./names.js";
import { cancelRank, classifyStatus } from "./states.js";
import {
  buildJobBody,
  loadJobTemplate,
  TemplateError,
  type JobContext,
  type JobTemplate,
} from "./template.js";

export { azuremlRegionSchema, type AzuremlRegionConfig, type AzuremlRegionInput } from "./config.js";
export type { ArmCallCounts } from "./arm.js";

export type { HireProgress } from "../types.js";
export type AzuremlHireOptions = HireOptions;

/** An AzureML region; beyond `Region`, it tells how many ARM calls it made (bench, tests). */
export interface AzuremlRegion extends Region {
  readonly kind: "azureml";
  hire(count: number, options?: AzuremlHireOptions): Promise<HireResult>;
  cancelRunning(count: number, options?: CallOptions): Promise<CancelResult>;
  /** ARM requests made so far (attempts, retries included). */
  readonly calls: Readonly<ArmCallCounts>;
  /** Resolves when the finished jobs being retired in the background are done. */
  settled(): Promise<void>;
}

export interface AzuremlDeps {
  /** Write limiters shared per subscription (default: the process's pool). */
  writeLimiters?: WriteLimiterPool;
}

/** The last listing, reused by cancel and drain in the same tick instead of listing again. */
interface Listing {
  at: number;
  running: JobSummary[];
  pending: JobSummary[];
}

/** A listing this young stands in for a fresh one in cancelPending / drain / cancelRunning. */
const LISTING_REUSE_MS = 30_000;
/** Distinct errors kept per call (a storm of the same 429 is one error). */
const MAX_ERRORS = 5;

/** What an operator should check, for answers that retrying will not fix. */
const HINTS: Record<number, string> = {
  401: " (the token was refused: check the region's credential and tenant; not retried)",
  403: " (the identity lacks a role on the workspace or compute: see Roles in the AzureML region docs; not retried)",
  404: " (check subscriptionId, resourceGroup, workspace and compute; not retried)",
};

function regionError(region: string, what: string, error: unknown): Error {
  const message = redactText(error instanceof Error ? error.message : String(error));
  const status = (error as { statusCode?: unknown })?.statusCode;
  const code = (error as { code?: unknown })?.code;
  const detail = [status !== undefined ? `HTTP ${status}` : "", typeof code === "string" ? code : ""]
    .filter(Boolean)
    .join(" ");
  const wrapped = new Error(
    `region ${region}: ${what}: ${detail ? `${detail}: ` : ""}${message}${HINTS[Number(status)] ?? ""}`,
    { cause: error },
  );
  if (typeof code === "string") (wrapped as Error & { code?: string }).code = code;
  return wrapped;
}

function pushError(errors: Error[], error: Error): void {
  if (errors.length < MAX_ERRORS && !errors.some((known) => known.message === error.message))
    errors.push(error);
}

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
  const where = `regions[${config.name}]`;
  let compute: { name: string; id: string };
  let template: JobTemplate;
  try {
    compute = resolveCompute(config.compute, ref);
  } catch (error) {
    throw new ConfigError([
      { where: `${where}.compute`, message: (error as Error).message.replace(/^compute: /, "") },
    ]);
  }
  try {
    template = loadJobTemplate(config.template, config.environmentName ?? `${config.experiment}-image`);
  } catch (error) {
    if (error instanceof TemplateError)
      throw new ConfigError([
        { where: `${where}.template.${error.field}`, message: error.message.replace(/^template \S+: /, "") },
      ]);
    throw error;
  }
  if (
    config.credential?.type === "emulator" &&
    !["127.0.0.1", "localhost", "[::1]"].includes(new URL(config.armEndpoint).hostname)
  ) {
    throw new ConfigError([
      {
        where: `${where}.credential.type`,
        message: `"emulator" sends a dummy token and is only for an ARM emulator on 127.0.0.1; armEndpoint is ${config.armEndpoint}`,
      },
    ]);
  }
  const tagKey = config.tagKey ?? `workforce.${config.experiment}`;
  const log = ctx.logger;
  const arm = new ArmWorkspace({
    ...ref,
    region: config.name,
    endpoint: config.armEndpoint,
    credential: regionCredential(config.credential, () => ctx.credential()),
    ...(ctx.tlsCa ? { tlsCa: ctx.tlsCa } : {}),
    retries: config.retries,
    attemptTimeoutMs: config.requestTimeoutSeconds * 1000,
    writeLimiter: (deps.writeLimiters ?? processWriteLimiters).get(
      `${config.armEndpoint}|${config.subscriptionId.toLowerCase()}`,
    ),
    logger: log,
  });
  const channel: DrainChannel | undefined =
    config.backChannel && ctx.createDrainChannel
      ? ctx.createDrainChannel(config.name, config.backChannel)
      : undefined;
  const writes = pLimit(config.submitConcurrency);
  // Retiring finished jobs has its own small lane, so it never queues ahead of a hire.
  const retireSlots = pLimit(2);
  const retiring = new Set<Promise<void>>();
  /** Names being retired now, so a slow retire is not started twice. */
  const retiringNames = new Set<string>();
  let listing: Listing | undefined;
  let environmentId: Promise<string> | undefined;

  const query: ListQuery = {
    // ActiveOnly = not archived; with our tag key, finished jobs leave the list once retired.
    listViewType: "ActiveOnly",
    tag: tagKey,
    jobType: "Command",
  };

  async function listWorkforce(signal?: AbortSignal): Promise<JobSummary[]> {
    // By name: a job created or retired while we page may shift the pages and show up twice.
    const jobs = new Map<string, JobSummary>();
    let token: string | undefined;
    for (let page = 0; page < config.maxListPages; page++) {
      const result = await arm.listJobsPage(query, token, signal);
      for (const job of result.jobs) jobs.set(job.name || `(no name ${jobs.size})`, job);
      token = result.next;
      if (!token) return [...jobs.values()].filter((job) => job.experiment === config.experiment);
    }
    throw new Error(
      `job list longer than maxListPages (${config.maxListPages}) pages: finished jobs are not being retired?`,
    );
  }

  function retireBody(job: JobSummary): JobBase {
    const properties = { ...job.resource.properties } as JobBase["properties"] & {
      tags?: Record<string, string>;
    };
    if (config.retireFinished === "archive") {
      properties.isArchived = true;
    } else {
      const tags = { ...(properties.tags ?? {}) };
      delete tags[tagKey];
      tags[`${tagKey}.done`] = config.experiment;
      properties.tags = tags;
    }
    return { properties };
  }

  /** Retire finished jobs in the background: the tick does not wait for these writes. */
  function retire(finished: JobSummary[]): void {
    if (config.retireFinished === "keep") return;
    const batch = finished.filter((job) => !retiringNames.has(job.name)).slice(0, config.retireBatch);
    for (const job of batch) {
      retiringNames.add(job.name);
      const task = retireSlots(() => arm.putJob(job.name, retireBody(job), { background: true }))
        .catch((error: unknown) => {
          if (error instanceof WriteBudgetBusy) return; // tried again next tick
          log.warn(
            { err: regionError(config.name, `retire finished job ${job.name}`, error) },
            "could not retire a finished job; it stays in the listing",
          );
        })
        .finally(() => {
          retiringNames.delete(job.name);
          retiring.delete(task);
        });
      retiring.add(task);
    }
  }

  async function ensureEnvironment(signal?: AbortSignal): Promise<string | undefined> {
    if (template.environmentRef) {
      return `${workspaceId(ref)}/environments/${template.environmentRef.name}/versions/${template.environmentRef.version}`;
    }
    const image = template.inlineImage;
    if (!image) return undefined;
    // PUT of the same name + version + image is idempotent: it creates the version or reuses it.
    environmentId ??= arm
      .putEnvironmentVersion(image.name, image.version, image.image, image.description, signal)
      .then((id) => id || `${workspaceId(ref)}/environments/${image.name}/versions/${image.version}`);
    try {
      return await environmentId;
    } catch (error) {
      environmentId = undefined;
      throw error;
    }
  }

  async function currentListing(signal?: AbortSignal): Promise<Listing> {
    if (listing && Date.now() - listing.at < LISTING_REUSE_MS) return listing;
    const jobs = await listWorkforce(signal);
    listing = split(jobs);
    return listing;
  }

  function split(jobs: JobSummary[]): Listing & { finished: JobSummary[]; unknown: number } {
    const running: JobSummary[] = [];
    const pending: JobSummary[] = [];
    const finished: JobSummary[] = [];
    let unknown = 0;
    for (const job of jobs) {
      const known = job.name ? classifyStatus(job.status) : "unknown";
      if (known === "unknown" && job.status !== "Unknown") warnOddJob(job);
      switch (known) {
        case "running":
          running.push(job);
          break;
        case "pending":
          pending.push(job);
          break;
        case "unknown":
          unknown++;
          break;
        case "finished":
          finished.push(job);
          break;
        case "leaving":
          break;
      }
    }
    return { at: Date.now(), running, pending, finished, unknown };
  }

  /** Odd jobs already reported (once each: a tick every 30 s would repeat it all day). */
  const reported = new Set<string>();
  /** A job without a name or with a status this code does not know counts as pending and is never cancelled. */
  function warnOddJob(job: JobSummary): void {
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

  async function cancelJobs(
    victims: JobSummary[],
    what: string,
    signal?: AbortSignal,
  ): Promise<CancelResult> {
    const errors: Error[] = [];
    let cancelled = 0;
    await Promise.all(
      victims.map((job) =>
        writes(async () => {
          try {
            await arm.beginCancel(job.name, signal);
            cancelled++;
            // It leaves the listing we reuse: CancelRequested counts as leaving.
            if (listing) {
              listing.pending = listing.pending.filter((other) => other.name !== job.name);
              listing.running = listing.running.filter((other) => other.name !== job.name);
            }
          } catch (error) {
            pushError(errors, regionError(config.name, `${what} ${job.name}`, error));
          }
        }),
      ),
    );
    if (cancelled > 0) log.info({ cancelled, of: victims.length }, `${what}: done`);
    return { cancelled, errors };
  }

  /** Names tried per worker: a clash with a job we did not create gets a fresh name, a few times at most. */
  const NAME_TRIES = 3;

  /** Submit one worker; resolves once it exists (created by this call or by its own retried request). */
  async function submitOne(context: JobContext, signal?: AbortSignal): Promise<void> {
    for (let tryNo = 1; ; tryNo++) {
      const name = newJobName(config.experiment);
      let attempts = 0;
      try {
        await arm.putJob(name, buildJobBody(template, context) as unknown as JobBase, {
          ...(signal ? { signal } : {}),
          onAttempt: () => attempts++,
        });
        return;
      } catch (error) {
        if (!isJobPropertyImmutable(error)) throw regionError(config.name, `submit job ${name}`, error);
        if (attempts > 1) {
          // Our fresh name already exists after a retry: an earlier attempt created it. Success, counted once.
          log.debug({ job: name }, "job already created by a retried request; counted as hired");
          return;
        }
        // On the first request: the name belongs to a job we never submitted. Not ours; try another name.
        if (tryNo >= NAME_TRIES) throw regionError(config.name, `submit job ${name}`, error);
        log.warn(
          { job: name },
          `region ${config.name}: job name ${name} is taken by another job; trying a new name`,
        );
      }
    }
  }

  async function observeOnce(signal?: AbortSignal): Promise<RegionObservation> {
    // The list and the cluster are independent: read them at once.
    const [jobs, cluster] = await Promise.all([listWorkforce(signal), arm.getCompute(compute.name, signal)]);
    const snapshot = split(jobs);
    listing = snapshot;
    const runningNames = snapshot.running.map((job) => job.name);
    const draining = channel
      ? Math.min(await channel.inFlight(runningNames, { ...(signal ? { signal } : {}) }), runningNames.length)
      : 0;
    const pending = snapshot.pending.length + snapshot.unknown;
    retire(snapshot.finished);
    return {
      running: runningNames.length - draining,
      pending,
      draining,
      capacity: cluster.maxNodeCount - cluster.targetNodeCount - pending,
      ...(channel?.expiredDrains ? { expiredDrains: channel.expiredDrains() } : {}),
    };
  }

  const region: AzuremlRegion = {
    name: config.name,
    kind: "azureml",
    weight: config.weight,
    canDrain: channel !== undefined,
    ...(config.maxWorkers !== undefined ? { maxWorkers: config.maxWorkers } : {}),
    get calls() {
      return arm.counts;
    },

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
      const { signal, onProgress } = options;
      const errors: Error[] = [];
      if (count <= 0) return { hired: 0, errors };
      let envId: string | undefined;
      try {
        envId = await ensureEnvironment(signal);
      } catch (error) {
        return {
          hired: 0,
          errors: [
            regionError(config.name, `create environment for image ${template.inlineImage?.image}`, error),
          ],
        };
      }
      let hired = 0;
      let failed = 0;
      /** Not tried: the caller's deadline came first (the next tick sees the gap and hires again). */
      let skipped = 0;
      /** A refusal every other submit would get too (401, 403, a 400 on the template): stop sending. */
      let refusal: number | undefined;
      let refused = 0;
      let lastLog = Date.now();
      const context: JobContext = {
        experiment: config.experiment,
        computeId: compute.id,
        tagKey,
        ...(envId ? { environmentId: envId } : {}),
      };
      await Promise.all(
        Array.from({ length: count }, () =>
          writes(async () => {
            if (signal?.aborted) {
              skipped++;
              return;
            }
            if (refusal !== undefined) {
              refused++;
              return;
            }
            try {
              await submitOne(context, signal);
              hired++;
            } catch (error) {
              failed++;
              pushError(errors, error as Error);
              const status = statusOf((error as Error).cause ?? error);
              if (status !== undefined && status >= 400 && status < 500 && ![408, 409, 429].includes(status))
                refusal = status;
            }
            onProgress?.({ done: hired, failed, total: count });
            if (count >= 50 && Date.now() - lastLog > 10_000) {
              lastLog = Date.now();
              log.info({ hired, failed, total: count }, "hiring in progress");
            }
          }),
        ),
      );
      if (skipped > 0) {
        const reason = signal?.reason instanceof Error ? signal.reason.message : String(signal?.reason);
        errors.push(
          new Error(
            `region ${config.name}: hire stopped by the caller's deadline (${redactText(reason)}): ${skipped} of ${count} workers not submitted`,
          ),
        );
      }
      if (refused > 0) {
        errors.push(
          new Error(
            `region ${config.name}: hire stopped after an HTTP ${refusal} refusal that every submit would get: ${refused} of ${count} workers not submitted`,
          ),
        );
      }
      log.info({ hired, failed, skipped, refused, requested: count }, "hire done");
      listing = undefined;
      return { hired, errors };
    },

    async cancelPending(count: number, options: CallOptions = {}): Promise<CancelResult> {
      if (count <= 0) return { cancelled: 0, errors: [] };
      // A fresh list, not the tick's: a job that started running since must not be cancelled as pending.
      listing = undefined;
      const { pending } = await currentListing(options.signal);
      const victims = pending
        .filter((job) => Number.isFinite(cancelRank(job.status)))
        .sort((a, b) => cancelRank(a.status) - cancelRank(b.status) || a.createdAt - b.createdAt)
        .slice(0, count);
      return cancelJobs(victims, "cancel pending job", options.signal);
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

    async cancelRunning(count: number, options: CallOptions = {}): Promise<CancelResult> {
      if (count <= 0) return { cancelled: 0, errors: [] };
      // An operator's explicit order: newest first (least work lost so far); NotResponding before Running.
      const { running } = await currentListing(options.signal);
      const victims = [...running]
        .sort(
          (a, b) =>
            Number(b.status === "NotResponding") - Number(a.status === "NotResponding") ||
            b.createdAt - a.createdAt,
        )
        .slice(0, count);
      return cancelJobs(victims, "cancel running job", options.signal);
    },

    async settled(): Promise<void> {
      while (retiring.size > 0) await Promise.allSettled([...retiring]);
    },

    async close(): Promise<void> {
      await region.settled();
      await channel?.close?.();
    },
  };
  return region;
}
