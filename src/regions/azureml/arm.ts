import type { Readable } from "node:stream";
import type { TokenCredential } from "@azure/core-auth";
import type { HttpClient, Pipeline, PipelineResponse } from "@azure/core-rest-pipeline";
import type { Logger } from "../../logging/logger.js";
import { armScope, PUBLIC_ARM_ENDPOINT } from "../../azure/credentials.js";
import { withRetry, statusOf } from "../../azure/retry.js";
import { remainingBudgetPolicy, type WriteRateLimiter } from "../../azure/rate-limiter.js";
import { Backoff, BackoffError } from "../../azure/backoff.js";
import { workspaceId, type WorkspaceRef } from "./names.js";
import type { WriteFence } from "../fence.js";

/**
 * The ARM calls of one AzureML workspace, as raw JSON through @azure/core-rest-pipeline (the Azure SDK's
 * HTTP pipeline: bearer token, TLS, user agent), each under the one retry policy (src/azure/retry.ts),
 * with the caller's signal, and writes through the subscription's rate limiter.
 *
 * Not through @azure/arm-machinelearning's models: its serializer drops the fields of job outputs it does
 * not know (the service's `outputs.default {uri, mode}` leaves as `{jobOutputType}`) and its deserializer
 * fills in defaults, so a job read and PUT back is a changed job and refused (JobPropertyImmutable); and
 * the model layer was most of a tick's CPU. The pipeline is loaded on first use (dynamic import): a CLI
 * command that calls no region loads no Azure SDK.
 */

export const API_VERSION = "2022-10-01";

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
  /** The subscription's read budget: told what ARM says is left after each read (x-ms-ratelimit-*). */
  readLimiter?: WriteRateLimiter;
  logger: Logger;
  /** Checked right before every write request (each attempt): a fenced replica sends none. */
  fence?: WriteFence;
}

type Json = Record<string, unknown>;
type Kind = "read" | "write" | "background-write";

interface Transport {
  pipeline: Pipeline;
  client: HttpClient;
  send(
    method: string,
    url: string,
    body: string | undefined,
    signal: AbortSignal,
    stream?: boolean,
    beforeSend?: BeforeSend,
  ): Promise<PipelineResponse>;
}

/** Run by the pipeline for a write, after its token is there and right before the request goes. */
type BeforeSend = () => void;

/** A body read as it arrives (a job list page): one per attempt, so a retried attempt starts afresh. */
export interface BodySink<T> {
  write(chunk: Buffer | string): void;
  /** The body is complete; the result of the read. */
  end(contentType: string | undefined): T;
}

/** A 200's body is streamed to the sink; any other answer is read whole, as by `send`. */
const STREAMED = new Set([200]);

/**
 * One HTTP client (and so one keep-alive agent per CA) for every workspace of the process: 84 regions on
 * one ARM endpoint share their TLS connections instead of opening 84 agents with a TLS context each. The
 * agent is cached by the identity of the request's TLS settings, so those are one object per CA.
 */
let sharedClient: HttpClient | undefined;
const tlsByCa = new Map<string, { ca: string }>();
function tlsSettings(ca: string): { ca: string } {
  let settings = tlsByCa.get(ca);
  if (!settings) tlsByCa.set(ca, (settings = { ca }));
  return settings;
}

export class ArmWorkspace {
  readonly counts: ArmCallCounts = { reads: 0, writes: 0 };
  /** Throttling this workspace's ARM answers asked for, per kind of call, remembered across ticks. */
  readonly backoff = new Backoff();
  private transport: Promise<Transport> | undefined;

  constructor(private readonly options: ArmWorkspaceOptions) {}

  /** `.../workspaces/{ws}` on this endpoint. */
  get base(): string {
    return `${new URL(this.options.endpoint).origin}${workspaceId(this.options)}`;
  }

  private async build(): Promise<Transport> {
    const rest = await import("@azure/core-rest-pipeline");
    const { endpoint, tlsCa, credential } = this.options;
    // Only the policies these calls need: the default pipeline's retry (ours is withRetry, one policy with
    // Retry-After), tracing and SDK logging (we log ourselves), form-data and multipart (JSON only) cost
    // a few promises and a URL sanitizing per request, paid on every list page.
    const pipeline = rest.createEmptyPipeline();
    // The extra CA is for emulators and private clouds; public ARM keeps Node's own roots.
    if (tlsCa && new URL(endpoint).origin !== PUBLIC_ARM_ENDPOINT)
      pipeline.addPolicy(rest.tlsPolicy(tlsSettings(tlsCa)));
    // HTTPS_PROXY / NO_PROXY, as the SDK clients honour them.
    pipeline.addPolicy(rest.proxyPolicy());
    pipeline.addPolicy(rest.decompressResponsePolicy());
    pipeline.addPolicy(rest.userAgentPolicy({ userAgentPrefix: "workforce-autoscaler" }));
    pipeline.addPolicy(rest.setClientRequestIdPolicy());
    pipeline.addPolicy(rest.redirectPolicy(), { afterPhase: "Retry" });
    pipeline.addPolicy(rest.bearerTokenAuthenticationPolicy({ credential, scopes: armScope(endpoint) }));
    // A write's fence is checked after its token is there: fetching one (AAD, the node's identity
    // endpoint, with their retries) can take longer than the lease has left.
    const beforeSends = new WeakMap<object, BeforeSend>();
    pipeline.addPolicy(
      {
        name: "writeFence",
        sendRequest: (request, next) => {
          beforeSends.get(request)?.();
          return next(request);
        },
      },
      { afterPolicies: [rest.bearerTokenAuthenticationPolicyName] },
    );
    // ARM's answers say what is left of the subscription's budgets: the buckets never count more.
    pipeline.addPolicy(
      remainingBudgetPolicy({ reads: this.options.readLimiter, writes: this.options.writeLimiter }),
    );
    const client = (sharedClient ??= rest.createDefaultHttpClient());
    return {
      pipeline,
      client,
      send: (method, url, body, signal, stream, beforeSend) => {
        const request = rest.createPipelineRequest({
          url,
          method: method as "GET",
          abortSignal: signal,
          ...(stream ? { streamResponseStatusCodes: STREAMED } : {}),
          headers: rest.createHttpHeaders({
            accept: "application/json",
            ...(body !== undefined ? { "content-type": "application/json" } : {}),
          }),
          ...(body !== undefined ? { body } : {}),
        });
        if (beforeSend) beforeSends.set(request, beforeSend);
        return pipeline.sendRequest(client, request);
      },
    };
  }

  /** One HTTP call; a non-2xx answer is a RestError with the status, ARM's error code and the response. */
  private async send(
    method: string,
    url: string,
    body: unknown,
    signal: AbortSignal,
    beforeSend?: BeforeSend,
  ): Promise<{ status: number; json: unknown; response: PipelineResponse }> {
    this.transport ??= this.build();
    const transport = await this.transport;
    const response = await transport.send(
      method,
      url,
      body === undefined ? undefined : JSON.stringify(body),
      signal,
      false,
      beforeSend,
    );
    return this.answer(response);
  }

  private async answer(
    response: PipelineResponse,
  ): Promise<{ status: number; json: unknown; response: PipelineResponse }> {
    const text = response.bodyAsText ?? "";
    let json: unknown;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
    }
    if (response.status < 200 || response.status >= 300) {
      const { RestError } = await import("@azure/core-rest-pipeline");
      const error = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code = typeof error?.code === "string" ? error.code : undefined;
      const message =
        typeof error?.message === "string" ? error.message : text.slice(0, 200) || `HTTP ${response.status}`;
      throw new RestError(message, {
        statusCode: response.status,
        ...(code ? { code } : {}),
        request: response.request,
        response: { ...response, bodyAsText: text } as never,
      });
    }
    if (text && json === undefined) {
      const type = response.headers.get("content-type") ?? "no content type";
      json = new NotJson(`a ${type} answer: ${JSON.stringify(text.slice(0, 80))}`);
    }
    return { status: response.status, json, response };
  }

  private call<T>(
    kind: Kind,
    what: string,
    run: (signal: AbortSignal, beforeSend: BeforeSend | undefined) => Promise<T>,
    signal?: AbortSignal,
    onRetry?: (error: unknown) => void,
  ): Promise<T> {
    const limiter = this.options.writeLimiter;
    return withRetry(
      async (attemptSignal) => {
        // Background writes only use spare budget: half the burst stays for hires and cancels.
        if (kind === "background-write" && !limiter.tryAcquire(limiter.capacity / 2))
          throw new WriteBudgetBusy();
        if (kind === "read") {
          this.counts.reads++;
          return run(attemptSignal, undefined);
        }
        // After the waits for a write token and for the bearer token, right before the request goes:
        // the moment that counts.
        return run(attemptSignal, () => {
          this.options.fence?.check(`ARM ${what}`);
          this.counts.writes++;
        });
      },
      {
        // The wait for a write token is outside the attempt's deadline: with many regions on one
        // subscription it can be longer than a request may take, and is not a hanging call.
        ...(kind === "write" ? { beforeAttempt: (outer?: AbortSignal) => limiter.acquire(outer) } : {}),
        retries: this.options.retries,
        attemptTimeoutMs: this.options.attemptTimeoutMs,
        backoff: { gate: this.backoff, call: kind === "read" ? "read" : "write" },
        ...(signal ? { signal } : {}),
        onRetry: ({ error, attempt, delayMs }) => {
          onRetry?.(error);
          this.options.logger.debug(
            {
              call: what,
              attempt,
              delayMs,
              status: statusOf(error),
              code: (error as { code?: unknown }).code,
            },
            "retrying ARM call",
          );
        },
      },
    );
  }

  /** `region R: CALL: expected ... at FIELD; given ...`: bad answers name the region and the field. */
  where(call: string, field: string, expected: string, given: unknown): string {
    const region = this.options.region ? `region ${this.options.region}: ` : "";
    const text =
      given instanceof NotJson
        ? given.description
        : typeof given === "string"
          ? given
          : JSON.stringify(given);
    return `${region}${call}: expected ${expected} at ${field}; given ${text === undefined ? "nothing" : text.slice(0, 200)}`;
  }

  /** A GET of JSON (a list page or a resource). */
  async getJson(what: string, url: string, signal?: AbortSignal): Promise<unknown> {
    return this.call(
      "read",
      what,
      async (attemptSignal) => (await this.send("GET", url, undefined, attemptSignal)).json,
      signal,
    );
  }

  /**
   * A GET whose 200 body goes to a sink as it arrives, never held whole (a job list page: the region
   * keeps six fields of each job). Any other answer is handled as by `getJson`: an error, or (another
   * 2xx) its text given to the sink at once.
   */
  async getStreamed<T>(what: string, url: string, sink: () => BodySink<T>, signal?: AbortSignal): Promise<T> {
    return this.call(
      "read",
      what,
      async (attemptSignal) => {
        this.transport ??= this.build();
        const transport = await this.transport;
        const response = await transport.send("GET", url, undefined, attemptSignal, true);
        const stream = response.readableStreamBody as Readable | undefined;
        const reader = sink();
        if (!stream) {
          await this.answer(response);
          reader.write(response.bodyAsText ?? "");
        } else {
          // 'data' events, not `for await`: one promise per chunk less, 14 chunks a page.
          await new Promise<void>((resolve, reject) => {
            stream.on("data", (chunk: Buffer | string) => {
              try {
                reader.write(chunk);
              } catch (error) {
                stream.destroy();
                reject(error as Error);
              }
            });
            stream.on("end", resolve);
            stream.on("error", reject);
          });
        }
        return reader.end(response.headers.get("content-type"));
      },
      signal,
    );
  }

  /** One job's resource, as ARM has it now (a GET from the read budget's caller). */
  getJob(name: string, signal?: AbortSignal): Promise<unknown> {
    return this.getJson("jobs.get", this.jobUrl(name), signal);
  }

  private jobUrl(name: string, action = ""): string {
    return `${this.base}/jobs/${encodeURIComponent(name)}${action}?api-version=${API_VERSION}`;
  }

  /** The first page of the job list; later pages are the `nextLink` given, fetched as is. */
  jobsUrl(query: Record<string, string>): string {
    const url = new URL(`${this.base}/jobs`);
    url.searchParams.set("api-version", API_VERSION);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    return url.toString();
  }

  /** The workspace's Azure region (`location`), for the ml.azure.com paths. */
  async getWorkspaceLocation(signal?: AbortSignal): Promise<string> {
    const answer = await this.getJson("workspaces.get", `${this.base}?api-version=${API_VERSION}`, signal);
    const location = (answer as { location?: unknown } | undefined)?.location;
    if (typeof location !== "string" || location === "")
      throw new BadAnswerError(this.where("workspaces.get", "location", "an Azure region", location));
    return location.toLowerCase().replace(/\s+/g, "");
  }

  computeUrl(name: string): string {
    return `${this.base}/computes/${encodeURIComponent(name)}?api-version=${API_VERSION}`;
  }

  /**
   * PUT a job body as given (raw JSON, nothing added or dropped). `background`: only with spare write
   * budget, else WriteBudgetBusy at once. `onAttempt` is told of each request sent (a JobPropertyImmutable
   * on the first one is not our own retry's echo), and `onRetry` of each failed attempt that is retried.
   */
  async putJob(
    name: string,
    body: Json,
    options: {
      signal?: AbortSignal;
      background?: boolean;
      onAttempt?: () => void;
      onRetry?: (error: unknown) => void;
    } = {},
  ): Promise<void> {
    const url = this.jobUrl(name);
    await this.call(
      options.background ? "background-write" : "write",
      "jobs.createOrUpdate",
      async (attemptSignal, beforeSend) => {
        await this.send("PUT", url, body, attemptSignal, () => {
          beforeSend?.();
          options.onAttempt?.();
        });
      },
      options.signal,
      options.onRetry,
    );
  }

  /**
   * Ask for a cancel: one POST, answered 202 (or 200 for a job already cancelled). The operation it
   * starts is not polled: the job shows CancelRequested at once, and the next listing sees the rest.
   */
  async cancel(name: string, signal?: AbortSignal): Promise<void> {
    const url = this.jobUrl(name, "/cancel");
    await this.call(
      "write",
      "jobs.cancel",
      (attemptSignal, beforeSend) =>
        this.send("POST", url, undefined, attemptSignal, beforeSend).then(() => undefined),
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
    const url = `${this.base}/environments/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}?api-version=${API_VERSION}`;
    const body = { properties: { image, ...(description ? { description } : {}) } };
    const answer = await this.call(
      "write",
      "environmentVersions.createOrUpdate",
      async (attemptSignal, beforeSend) =>
        (await this.send("PUT", url, body, attemptSignal, beforeSend)).json,
      signal,
    );
    const id = (answer as { id?: unknown } | undefined)?.id;
    return typeof id === "string" ? id : "";
  }
}

/** A 2xx answer that did not parse as JSON (a proxy's HTML page), kept to say what came. */
export class NotJson {
  constructor(readonly description: string) {}
}

/** An ARM answer without a field the region needs: not retried (the same answer would come back). */
export class BadAnswerError extends Error {
  readonly code = "BadArmAnswer";
  constructor(message: string) {
    super(message);
    this.name = "BadAnswerError";
  }
}

/** No spare write budget for a background write now; it is tried again on a later tick. */
export class WriteBudgetBusy extends Error {
  readonly code = "WriteBudgetBusy";
  constructor() {
    super("no spare ARM write budget now (hires and cancels go first)");
    this.name = "WriteBudgetBusy";
  }
}

/** The inner code AzureML gives a PUT that changes an immutable field (or a second create of a job). */
export function isJobPropertyImmutable(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown; response?: { bodyAsText?: unknown } } | undefined;
  const texts = [e?.code, e?.message, e?.response?.bodyAsText];
  return texts.some((text) => typeof text === "string" && text.includes("JobPropertyImmutable"));
}

/**
 * Whether a failed write attempt may still have been carried out: anything but a definite refusal (a 4xx
 * other than 408, which includes 429) or a request that was never sent (back-off, no write budget). A
 * timeout, a reset, a 5xx or an abort while the request was out leave the outcome unknown.
 */
export function mayHaveCommitted(error: unknown): boolean {
  if (error instanceof BackoffError || error instanceof WriteBudgetBusy) return false;
  const status = statusOf(error);
  return !(status !== undefined && status >= 400 && status < 500 && status !== 408);
}
