import type { TokenCredential } from "@azure/core-auth";
import type { HttpClient, Pipeline, PipelineRequest, PipelineResponse } from "@azure/core-rest-pipeline";
import type { Logger } from "../../logging/logger.js";
import { redactText } from "../../logging/logger.js";
import { INLINE_WAIT_MS, statusOf, withRetry } from "../../azure/retry.js";
import { BackoffError, type Backoff, type BackoffState } from "../../azure/backoff.js";
import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import type { WorkspaceRef } from "./names.js";
import type { ArmWorkspace } from "./arm.js";
import type { AzuremlRegionConfig } from "./config.js";
import type { JobTemplate } from "./template.js";
import { ConfigError } from "../../config/errors.js";
import type { WriteFence } from "../fence.js";

/**
 * The AzureML front end on ml.azure.com (what Studio and upstream ai4s-jobq call): the execution API
 * (resume a paused job) and the index API (list jobs filtered by status on the server). Neither is part of
 * ARM nor documented or versioned; see docs/azureml.md. Every call goes through the project's one retry
 * policy (429, 5xx, HTML 503 pages, resets and timeouts retried, Retry-After honoured) with a token for
 * `https://ml.azure.com/.default` from the region's credential. Throttling is remembered in the region's
 * back-off (src/azure/backoff.ts) as `index-list` and `resume`, apart from ARM's reads and writes: a 429,
 * or a 5xx with Retry-After (upstream retries those on resume), holds that kind of call until the time
 * has passed, across ticks; a wait longer than a second is never taken inside a call. The HTTP pipeline is loaded on first use
 * (dynamic import), as for ARM: a region that never calls ml.azure.com loads nothing for it. A resume
 * is a write: the leader lease's fence is checked right before each of its attempts, as for ARM's writes.
 */

/** The public front end; tests point a region's `mlEndpoint` at the emulator on 127.0.0.1. */
export const PUBLIC_ML_ENDPOINT = "https://ml.azure.com";
/** The token audience of the AzureML front end (the same in every public-cloud region). */
export const ML_SCOPE = "https://ml.azure.com/.default";

export interface MlApiOptions extends WorkspaceRef {
  region: string;
  endpoint: string;
  /** The workspace's Azure region (`eastus`), part of every ml.azure.com path. */
  location: () => Promise<string>;
  credential: TokenCredential;
  tlsCa?: string;
  retries: number;
  attemptTimeoutMs: number;
  writeLimiter: WriteRateLimiter;
  /** The region's remembered throttling (shared with its ARM calls, under kinds of its own). */
  backoff: Backoff;
  logger: Logger;
  /** Checked right before every resume request (each attempt): a fenced replica sends none. */
  fence?: WriteFence;
}

/** The two kinds of ml.azure.com call, as the back-off names them. */
export type MlCall = "index-list" | "resume";

/** A 4xx answer of the front end: not retried; the body says why (e.g. "exceeded max job execution time"). */
export class MlApiRefusal extends Error {
  readonly code = "MlApiRefusal";
  constructor(
    readonly statusCode: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${statusCode}: ${redactText(body.slice(0, 300)) || "(no body)"}`);
    this.name = "MlApiRefusal";
  }
}

/** A 2xx answer that is not what the call expects (HTML, no `value` array, ...): not retried. */
export class MlApiBadAnswer extends Error {
  readonly code = "MlApiBadAnswer";
  constructor(message: string) {
    super(message);
    this.name = "MlApiBadAnswer";
  }
}

export class MlApi {
  readonly counts = { reads: 0, writes: 0 };
  private transport:
    | Promise<{ rest: typeof import("@azure/core-rest-pipeline"); pipeline: Pipeline; client: HttpClient }>
    | undefined;

  /** The requests that are writes behind the fence, with the name a refusal gives them. */
  private readonly fencedWrites = new WeakMap<PipelineRequest, string>();

  constructor(private readonly options: MlApiOptions) {}

  /**
   * The back-off of `call` if it is longer than a call would wait for (a second): then the caller skips
   * the call (and what goes with it) instead of sending it. A shorter one is waited out by the call.
   */
  backedOff(call: MlCall): BackoffState | undefined {
    if (this.options.backoff.remainingMs(call) <= INLINE_WAIT_MS) return undefined;
    return this.options.backoff.active().find((state) => state.call === call);
  }

  /** Throws the BackoffError of `call` when backedOff(call). */
  checkBackoff(call: MlCall): void {
    const state = this.backedOff(call);
    if (state) throw new BackoffError(call, state.until, state.reason);
  }

  private async build() {
    const rest = await import("@azure/core-rest-pipeline");
    const pipeline = rest.createPipelineFromOptions({
      // Retries live in withRetry; the pipeline's own would multiply them.
      retryOptions: { maxRetries: 0 },
      userAgentOptions: { userAgentPrefix: "workforce-autoscaler" },
      ...(this.options.tlsCa && new URL(this.options.endpoint).origin !== PUBLIC_ML_ENDPOINT
        ? { tlsOptions: { ca: this.options.tlsCa } }
        : {}),
    });
    pipeline.addPolicy(
      rest.bearerTokenAuthenticationPolicy({ credential: this.options.credential, scopes: ML_SCOPE }),
    );
    // The fence is checked after the token is there, right before the request goes: fetching a token
    // (AAD, the node's identity endpoint, with their retries) can take longer than the lease has left.
    pipeline.addPolicy(
      {
        name: "writeFence",
        sendRequest: (request, next) => {
          const write = this.fencedWrites.get(request);
          if (write !== undefined) {
            this.options.fence?.check(write);
            this.counts.writes++;
          }
          return next(request);
        },
      },
      { afterPolicies: [rest.bearerTokenAuthenticationPolicyName] },
    );
    return { rest, pipeline, client: rest.createDefaultHttpClient() };
  }

  /** `{endpoint}/api/{location}/{service}/v1.0/subscriptions/.../workspaces/{ws}` */
  private async workspaceUrl(service: "execution" | "index"): Promise<string> {
    const { subscriptionId, resourceGroup, workspace } = this.options;
    const location = await this.options.location();
    const base = new URL(this.options.endpoint).origin;
    return (
      `${base}/api/${encodeURIComponent(location)}/${service}/v1.0/subscriptions/${subscriptionId}` +
      `/resourceGroups/${resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${workspace}`
    );
  }

  /** One POST under the retry policy; 429 and 5xx throw a RestError (retried), 4xx an MlApiRefusal. */
  private post(
    call: MlCall,
    what: string,
    url: () => Promise<string>,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<PipelineResponse> {
    return withRetry(
      async (attemptSignal) => {
        this.transport ??= this.build();
        const { rest, pipeline, client } = await this.transport;
        const request = rest.createPipelineRequest({
          url: await url(),
          method: "POST",
          body: body === undefined ? "" : JSON.stringify(body),
          abortSignal: attemptSignal,
        });
        request.headers.set("Content-Type", "application/json");
        // A resume is checked against the fence (and counted) by the pipeline's writeFence policy, after
        // the wait for a write token and the bearer token. Reads (the index listing) are not fenced.
        if (call === "resume") this.fencedWrites.set(request, `ml.azure.com ${what}`);
        else this.counts.reads++;
        const response = await pipeline.sendRequest(client, request);
        const status = response.status;
        if (status >= 200 && status < 300) return response;
        const text = response.bodyAsText ?? "";
        if (status === 408 || status === 429 || status >= 500) {
          // The front door's HTML 503 page is named, not quoted: it is a page of markup.
          const shown = /^\s*</.test(text) ? "an HTML error page" : redactText(text.slice(0, 200));
          throw new rest.RestError(`${what}: HTTP ${status}: ${shown}`, { statusCode: status, response });
        }
        throw new MlApiRefusal(status, text, what);
      },
      {
        ...(call === "resume"
          ? { beforeAttempt: (outer?: AbortSignal) => this.options.writeLimiter.acquire(outer) }
          : {}),
        retries: this.options.retries,
        attemptTimeoutMs: this.options.attemptTimeoutMs,
        backoff: { gate: this.options.backoff, call, anyServerError: true },
        ...(signal ? { signal } : {}),
        onRetry: ({ error, attempt, delayMs }) =>
          this.options.logger.debug(
            { call: what, attempt, delayMs, status: statusOf(error) },
            "retrying ml.azure.com call",
          ),
      },
    );
  }

  /** Resume a Paused job (execution API). Resolves on 2xx; throws MlApiRefusal on a 4xx. */
  async resume(experiment: string, job: string, signal?: AbortSignal): Promise<void> {
    await this.post(
      "resume",
      `resume ${job}`,
      async () =>
        `${await this.workspaceUrl("execution")}/experiments/${encodeURIComponent(experiment)}/runId/${encodeURIComponent(job)}/resume`,
      undefined,
      signal,
    );
  }

  /** One page of the index API's entities search. */
  async searchEntities(body: unknown, signal?: AbortSignal): Promise<unknown> {
    const response = await this.post(
      "index-list",
      "index entities",
      async () => `${await this.workspaceUrl("index")}/entities`,
      body,
      signal,
    );
    const text = response.bodyAsText ?? "";
    try {
      return JSON.parse(text) as unknown;
    } catch {
      const type = response.headers.get("content-type") ?? "no content type";
      throw new MlApiBadAnswer(
        `region ${this.options.region}: index entities: expected a JSON answer; given a ${type} answer: ${JSON.stringify(text.slice(0, 80))}`,
      );
    }
  }
}

/** A region's MlApi: the workspace location read once from ARM unless configured (a failed read is retried). */
export function regionMlApi(
  config: AzuremlRegionConfig,
  deps: {
    arm: ArmWorkspace;
    credential: TokenCredential;
    tlsCa?: string;
    writeLimiter: WriteRateLimiter;
    logger: Logger;
    fence?: WriteFence;
  },
): MlApi {
  let location: Promise<string> | undefined;
  return new MlApi({
    subscriptionId: config.subscriptionId,
    resourceGroup: config.resourceGroup,
    workspace: config.workspace,
    region: config.name,
    endpoint: config.mlEndpoint,
    location: () => {
      if (config.location) return Promise.resolve(config.location);
      location ??= deps.arm.getWorkspaceLocation().catch((error: unknown) => {
        location = undefined;
        throw error;
      });
      return location;
    },
    credential: deps.credential,
    ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
    retries: config.retries,
    attemptTimeoutMs: config.requestTimeoutSeconds * 1000,
    // Resumes are writes of the workforce, rationed with its ARM writes (upstream's "MFE write pressure").
    writeLimiter: deps.writeLimiter,
    // One memory of the region's throttling, so status, metrics and the tick log show it all.
    backoff: deps.arm.backoff,
    logger: deps.logger,
    // Resumes go behind the leader lease, as the region's ARM writes do.
    ...(deps.fence ? { fence: deps.fence } : {}),
  });
}

const loopback = (url: string) => ["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname);

/** The emulator credential's dummy token never goes to a real ml.azure.com. */
export function mlOffLimits(config: AzuremlRegionConfig): boolean {
  return config.credential?.type === "emulator" && !loopback(config.mlEndpoint);
}

/** Config errors of the ml.azure.com options, named by field (`where` is `regions[NAME]`). */
export function checkMlConfig(config: AzuremlRegionConfig, template: JobTemplate, where: string): void {
  if (config.listing === "index" && template.properties.displayName !== undefined) {
    throw new ConfigError([
      {
        where: `${where}.template.display_name`,
        message:
          "the index listing knows a job by its display name (as upstream): leave display_name out of the template, or use listing: arm",
      },
    ]);
  }
  if (mlOffLimits(config) && config.listing === "index") {
    throw new ConfigError([
      {
        where: `${where}.credential.type`,
        message: `"emulator" sends a dummy token and is only for emulators on 127.0.0.1; mlEndpoint is ${config.mlEndpoint} (point mlEndpoint at the emulator, or use listing: arm)`,
      },
    ]);
  }
}
