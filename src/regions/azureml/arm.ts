import type { TokenCredential } from "@azure/core-auth";
import {
  AzureMachineLearningWorkspaces,
  getContinuationToken,
  type JobBase,
} from "@azure/arm-machinelearning";
import type { Logger } from "../../logging/logger.js";
import { armScope, PUBLIC_ARM_ENDPOINT } from "../../azure/credentials.js";
import { withRetry, statusOf } from "../../azure/retry.js";
import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import type { WorkspaceRef } from "./names.js";

/** One job as the region needs it. */
export interface JobSummary {
  name: string;
  status: string | undefined;
  createdAt: number;
  experiment: string | undefined;
  isArchived: boolean;
  /** The resource as listed, to send back when retiring it (absent for jobs listed by the index API). */
  resource?: JobBase;
}

export interface ComputeSummary {
  maxNodeCount: number;
  targetNodeCount: number;
  currentNodeCount: number;
}

export interface ListQuery {
  listViewType: "ActiveOnly" | "ArchivedOnly" | "All";
  tag?: string;
  jobType?: string;
}

/** Counts of ARM requests (attempts, retries included), for the bench and the flat-cost test. */
export interface ArmCallCounts {
  reads: number;
  writes: number;
}

export interface ArmWorkspaceOptions extends WorkspaceRef {
  /** The region's name, for errors about bad answers. */
  region?: string;
  endpoint: string;
  credential: TokenCredential;
  tlsCa?: string;
  retries: number;
  attemptTimeoutMs: number;
  writeLimiter: WriteRateLimiter;
  logger: Logger;
}

/**
 * The ARM calls of one workspace, each under the one retry policy (src/azure/retry.ts), with the caller's
 * signal, and writes through the subscription's rate limiter. The SDK client is built on first use.
 */
export class ArmWorkspace {
  readonly counts: ArmCallCounts = { reads: 0, writes: 0 };
  private client: AzureMachineLearningWorkspaces | undefined;

  constructor(private readonly options: ArmWorkspaceOptions) {}

  private sdk(): AzureMachineLearningWorkspaces {
    this.client ??= new AzureMachineLearningWorkspaces(this.options.credential, this.options.subscriptionId, {
      endpoint: this.options.endpoint,
      credentialScopes: [armScope(this.options.endpoint)],
      // Retries live in withRetry (one policy, Retry-After honoured); the SDK's own would multiply them.
      retryOptions: { maxRetries: 0 },
      userAgentOptions: { userAgentPrefix: "workforce-autoscaler" },
      // The extra CA is for emulators and private clouds; public ARM keeps Node's own roots. (Adding the
      // ~140 public roots to it instead costs a parse of all of them on every new TLS connection.)
      ...(this.options.tlsCa && new URL(this.options.endpoint).origin !== PUBLIC_ARM_ENDPOINT
        ? { tlsOptions: { ca: this.options.tlsCa } }
        : {}),
    });
    return this.client;
  }

  private call<T>(
    kind: "read" | "write" | "background-write",
    what: string,
    run: (signal: AbortSignal) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    return withRetry(
      async (attemptSignal) => {
        // Background writes only use spare budget: half the burst stays for hires and cancels.
        if (
          kind === "background-write" &&
          !this.options.writeLimiter.tryAcquire(this.options.writeLimiter.burst / 2)
        ) {
          throw new WriteBudgetBusy();
        }
        if (kind === "read") this.counts.reads++;
        else this.counts.writes++;
        return run(attemptSignal);
      },
      {
        // The wait for a write token is outside the attempt's deadline: with many regions on one
        // subscription it can be longer than a request may take, and is not a hanging call.
        ...(kind === "write"
          ? { beforeAttempt: (outer?: AbortSignal) => this.options.writeLimiter.acquire(outer) }
          : {}),
        retries: this.options.retries,
        attemptTimeoutMs: this.options.attemptTimeoutMs,
        ...(signal ? { signal } : {}),
        onRetry: ({ error, attempt, delayMs }) =>
          this.options.logger.debug(
            {
              call: what,
              attempt,
              delayMs,
              status: statusOf(error),
              code: (error as { code?: unknown }).code,
            },
            "retrying ARM call",
          ),
      },
    );
  }

  /** One page of the job list; `token` is the previous page's nextLink. */
  async listJobsPage(
    query: ListQuery,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ jobs: JobSummary[]; next?: string }> {
    const { resourceGroup, workspace } = this.options;
    const page = await this.call(
      "read",
      "jobs.list",
      async (attemptSignal) => {
        // The SDK reads a page without `value` (or a 200 that is not JSON) as an empty page: we would see
        // no workers and hire again. Check the answer as it came.
        let answer: unknown;
        const pages = this.sdk()
          .jobs.list(resourceGroup, workspace, {
            ...query,
            abortSignal: attemptSignal,
            onResponse: (raw) => void (answer = raw.parsedBody ?? describeBody(raw)),
          })
          .byPage(token ? { continuationToken: token } : undefined);
        const result = await pages.next();
        const value = (answer as { value?: unknown } | undefined)?.value;
        if (!Array.isArray(value)) {
          throw new BadAnswerError(this.where("jobs.list", "value", "an array of jobs", answer));
        }
        return result.done ? [] : result.value;
      },
      signal,
    );
    const next = getContinuationToken(page);
    return { jobs: page.map(summarize), ...(next ? { next } : {}) };
  }

  /** `region R: jobs.list: expected ... at FIELD; given ...`: bad answers name the region and the field. */
  private where(call: string, field: string, expected: string, given: unknown): string {
    const region = this.options.region ? `region ${this.options.region}: ` : "";
    const text = typeof given === "string" ? given : JSON.stringify(given);
    return `${region}${call}: expected ${expected} at ${field}; given ${text === undefined ? "nothing" : text.slice(0, 200)}`;
  }

  /** The workspace's Azure region (`location`), for the ml.azure.com paths. */
  async getWorkspaceLocation(signal?: AbortSignal): Promise<string> {
    const { resourceGroup, workspace } = this.options;
    const resource = await this.call(
      "read",
      "workspaces.get",
      (attemptSignal) => this.sdk().workspaces.get(resourceGroup, workspace, { abortSignal: attemptSignal }),
      signal,
    );
    if (typeof resource?.location !== "string" || resource.location === "") {
      throw new BadAnswerError(
        this.where("workspaces.get", "location", "an Azure region", resource?.location),
      );
    }
    return resource.location.toLowerCase().replace(/\s+/g, "");
  }

  async getCompute(name: string, signal?: AbortSignal): Promise<ComputeSummary> {
    const { resourceGroup, workspace } = this.options;
    const resource = await this.call(
      "read",
      "computes.get",
      (attemptSignal) =>
        this.sdk().computeOperations.get(resourceGroup, workspace, name, { abortSignal: attemptSignal }),
      signal,
    );
    // AmlCompute keeps its numbers one level down: properties.properties.
    const outer = resource?.properties as { computeType?: unknown; properties?: unknown } | undefined;
    const inner = outer?.properties as Record<string, unknown> | undefined;
    const scale = inner?.scaleSettings as { maxNodeCount?: unknown } | undefined;
    const num = (value: unknown, field: string): number => {
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        const kind = outer?.computeType !== undefined ? ` (computeType ${String(outer.computeType)})` : "";
        throw new BadAnswerError(
          this.where(
            `compute ${name}${kind}`,
            `properties.properties.${field}`,
            "a number >= 0 (an AmlCompute cluster)",
            value,
          ),
        );
      }
      return value;
    };
    return {
      maxNodeCount: num(scale?.maxNodeCount, "scaleSettings.maxNodeCount"),
      // Absent on a cluster that never scaled: no nodes asked for.
      targetNodeCount: num(inner?.targetNodeCount ?? 0, "targetNodeCount"),
      currentNodeCount: num(inner?.currentNodeCount ?? 0, "currentNodeCount"),
    };
  }

  /**
   * PUT a job. `background`: only with spare write budget, else WriteBudgetBusy at once. `onAttempt` is
   * told of each request sent (a JobPropertyImmutable on the first one is not our own retry's echo).
   */
  async putJob(
    name: string,
    body: JobBase,
    options: { signal?: AbortSignal; background?: boolean; onAttempt?: () => void } = {},
  ): Promise<void> {
    const { resourceGroup, workspace } = this.options;
    await this.call(
      options.background ? "background-write" : "write",
      "jobs.createOrUpdate",
      (attemptSignal) => {
        options.onAttempt?.();
        return this.sdk().jobs.createOrUpdate(resourceGroup, workspace, name, body, {
          abortSignal: attemptSignal,
        });
      },
      options.signal,
    );
  }

  /**
   * Start a cancel; the long-running operation is not awaited (the job shows CancelRequested at once).
   * The SDK's beginCancel also GETs the operation's Location once: once the POST was accepted, a failure of
   * that poll is not a failed cancel (retrying it would POST again and report an error for a done cancel).
   */
  async beginCancel(name: string, signal?: AbortSignal): Promise<void> {
    const { resourceGroup, workspace } = this.options;
    await this.call(
      "write",
      "jobs.cancel",
      async (attemptSignal) => {
        let accepted = false;
        try {
          await this.sdk().jobs.beginCancel(resourceGroup, workspace, name, {
            abortSignal: attemptSignal,
            onResponse: (raw) => {
              if (raw.request.method === "POST" && raw.status >= 200 && raw.status < 300) accepted = true;
            },
          });
        } catch (error) {
          if (!accepted) throw error;
          this.options.logger.debug(
            { job: name, status: statusOf(error) },
            "cancel accepted; its first status poll failed (not retried)",
          );
        }
      },
      signal,
    );
  }

  async putEnvironmentVersion(
    name: string,
    version: string,
    image: string,
    description: string | undefined,
    signal?: AbortSignal,
  ): Promise<string> {
    const { resourceGroup, workspace } = this.options;
    const result = await this.call(
      "write",
      "environmentVersions.createOrUpdate",
      (attemptSignal) =>
        this.sdk().environmentVersions.createOrUpdate(
          resourceGroup,
          workspace,
          name,
          version,
          { properties: { image, ...(description ? { description } : {}) } },
          { abortSignal: attemptSignal },
        ),
      signal,
    );
    return result.id ?? "";
  }
}

/** An ARM answer without a field the region needs: not retried (the same answer would come back). */
export class BadAnswerError extends Error {
  readonly code = "BadArmAnswer";
  constructor(message: string) {
    super(message);
    this.name = "BadAnswerError";
  }
}

/** What a 2xx answer that did not parse as JSON was, for the error. */
function describeBody(raw: {
  headers: { get(name: string): string | undefined };
  bodyAsText?: string | null;
}): string {
  const type = raw.headers.get("content-type") ?? "no content type";
  return `a ${type} answer: ${JSON.stringify((raw.bodyAsText ?? "").slice(0, 80))}`;
}

/** No spare write budget for a background write now; it is tried again on a later tick. */
export class WriteBudgetBusy extends Error {
  readonly code = "WriteBudgetBusy";
  constructor() {
    super("no spare ARM write budget now (hires and cancels go first)");
    this.name = "WriteBudgetBusy";
  }
}

function summarize(resource: JobBase): JobSummary {
  const created = resource.systemData?.createdAt;
  return {
    name: resource.name ?? "",
    status: resource.properties?.status,
    createdAt: created instanceof Date ? created.getTime() : created ? Date.parse(String(created)) : 0,
    experiment: resource.properties?.experimentName,
    isArchived: resource.properties?.isArchived === true,
    resource,
  };
}

/** The inner code AzureML gives a second create of an existing job (our own transport retry's echo). */
export function isJobPropertyImmutable(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown; response?: { bodyAsText?: unknown } } | undefined;
  const texts = [e?.code, e?.message, e?.response?.bodyAsText];
  return texts.some((text) => typeof text === "string" && text.includes("JobPropertyImmutable"));
}
