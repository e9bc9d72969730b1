import pRetry, { AbortError } from "p-retry";
import { BackoffError, deadlineOf, type Backoff, type CallKind } from "./backoff.js";

/**
 * One retry policy for every Azure call (ARM, ml.azure.com): 429, 5xx, network errors and per-attempt
 * timeouts are retried; the server's `x-ms-retry-after-ms` or `Retry-After` wins over our own backoff.
 * The SDK's built-in retries are turned off (see arm-client.ts) so that this is the only place.
 *
 * With `backoff`, a 429 or 503 that says how long to wait is remembered for the region and kind of call
 * (src/azure/backoff.ts): every later call waits for it, and a call whose deadline comes first gives up at
 * once with a BackoffError instead of sending, or of sleeping until its deadline.
 */

/** Codes the Node HTTP client puts on a RestError when no response came back. */
const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "REQUEST_SEND_ERROR",
]);

export interface RetryOptions {
  /** Caller's deadline: when it fires, no more attempts. */
  signal?: AbortSignal;
  /** Retries after the first attempt (upstream: 4 attempts in all). */
  retries?: number;
  /** Deadline of one attempt; a hanging call is abandoned and retried. */
  attemptTimeoutMs?: number;
  /** Ceiling on one wait, whatever the server asks (default 60 s). */
  maxDelayMs?: number;
  /**
   * Run before each attempt, outside its deadline, with the caller's signal: waiting for a write token is
   * not a hanging call and must not be abandoned as one.
   */
  beforeAttempt?: (signal?: AbortSignal) => Promise<void>;
  /** Called before each wait (for logs). */
  onRetry?: (info: { error: unknown; attempt: number; delayMs: number }) => void;
  /** Random source for jitter (tests pass a fixed one). */
  random?: () => number;
  /**
   * The region's remembered throttling, and which kind of call this is. A 429 or 503 with Retry-After is
   * remembered; with `anyServerError`, any 5xx with Retry-After too (the AzureML front end wraps its
   * backend's "over capacity, retry in 1 s" in a 500).
   */
  backoff?: { gate: Backoff; call: CallKind; anyServerError?: boolean };
  /**
   * With `backoff`: the longest wait for the back-off taken within a call (default 1 s), and only if it
   * ends before the caller's deadline. A longer one makes the call give up at once: a throttled region
   * must not hold the tick of the others.
   */
  inlineWaitMs?: number;
}

/** The default `inlineWaitMs`: a back-off shorter than this is waited out within a call. */
export const INLINE_WAIT_MS = 1_000;

interface HeaderBag {
  get(name: string): string | undefined;
}

function headersOf(error: unknown): HeaderBag | undefined {
  const response = (error as { response?: { headers?: unknown } } | undefined)?.response;
  const headers = response?.headers as HeaderBag | Record<string, string> | undefined;
  if (!headers) return undefined;
  if (typeof (headers as HeaderBag).get === "function") return headers as HeaderBag;
  const plain = headers as Record<string, string>;
  return { get: (name) => plain[name] ?? plain[name.toLowerCase()] };
}

export function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** Time the server asked us to wait, in ms, if it said so. */
export function serverRetryAfterMs(error: unknown, now: () => number = Date.now): number | undefined {
  const headers = headersOf(error);
  if (!headers) return undefined;
  const ms = headers.get("x-ms-retry-after-ms");
  if (ms !== undefined && ms !== null && ms !== "" && Number.isFinite(Number(ms)))
    return Math.max(0, Number(ms));
  const after = headers.get("retry-after");
  if (after === undefined || after === null || after === "") return undefined;
  if (Number.isFinite(Number(after))) return Math.max(0, Number(after) * 1000);
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now());
}

/**
 * Wait before retry `attempt` (1-based): the server's word, else min(2^attempt, 30) s + up to 1 s jitter
 * (upstream's rule). Exception: the first retry after a network error with no answer at all waits only up
 * to 250 ms, because the usual cause is a kept-alive connection the server had already closed.
 */
export function retryDelayMs(error: unknown, attempt: number, random: () => number = Math.random): number {
  const server = serverRetryAfterMs(error);
  if (server !== undefined) return server;
  if (attempt === 1 && statusOf(error) === undefined && isNetworkError(error)) return random() * 250;
  return Math.min(2 ** attempt, 30) * 1000 + random() * 1000;
}

function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && NETWORK_CODES.has(code);
}

/**
 * Whether a failed answer goes into the back-off memory: a 429 or 503 that says how long to wait (with
 * `anyServerError`, any 5xx that says so).
 */
function remembers(error: unknown, anyServerError: boolean): boolean {
  const status = statusOf(error);
  if (status === undefined || serverRetryAfterMs(error) === undefined) return false;
  return status === 429 || status === 503 || (anyServerError && status >= 500);
}

/** Marks an attempt abandoned by its own deadline (not the caller's). */
export class AttemptTimeoutError extends Error {
  readonly code = "AttemptTimeout";
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = "AttemptTimeoutError";
  }
}

export function isRetryable(error: unknown): boolean {
  if (error instanceof AttemptTimeoutError) return true;
  const status = statusOf(error);
  if (status !== undefined) return status === 408 || status === 429 || status >= 500;
  return isNetworkError(error);
}

/** Wait `ms`; reject with the signal's reason when it aborts first. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Run `call` with retries. `call` gets the signal of its attempt (the caller's deadline plus the attempt's
 * own timeout) and must pass it to the SDK.
 */
export async function withRetry<T>(
  call: (signal: AbortSignal) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const {
    signal,
    retries = 3,
    attemptTimeoutMs,
    maxDelayMs = 60_000,
    onRetry,
    beforeAttempt,
    random = Math.random,
    backoff,
    inlineWaitMs = INLINE_WAIT_MS,
  } = options;
  /** Wait `ms` if the caller's deadline (or, without one, maxDelayMs) allows; else a BackoffError now. */
  const waitOrGiveUp = async (ms: number): Promise<void> => {
    const deadline = deadlineOf(signal);
    const fits = deadline === undefined ? ms <= maxDelayMs : ms <= inlineWaitMs && Date.now() + ms < deadline;
    if (!fits && backoff) {
      const state = backoff.gate.active().find((s) => s.call === backoff.call);
      throw new BackoffError(backoff.call, state?.until ?? Date.now() + ms, state?.reason ?? "throttled");
    }
    await abortableDelay(Math.min(ms, maxDelayMs), signal);
  };
  return pRetry(
    async (attemptNumber) => {
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal!.reason);
      if (signal?.aborted) throw signal.reason;
      // A new call waits for the region's back-off; a retry has just waited for its own answer's.
      if (backoff && attemptNumber === 1) {
        const quiet = backoff.gate.remainingMs(backoff.call);
        if (quiet > 0) {
          try {
            await waitOrGiveUp(quiet);
          } catch (error) {
            // Not sent: p-retry's AbortError ends the retries with this error as it is.
            throw error instanceof BackoffError ? new AbortError(error) : error;
          }
        }
      }
      await beforeAttempt?.(signal);
      signal?.addEventListener("abort", onAbort, { once: true });
      const timer =
        attemptTimeoutMs === undefined
          ? undefined
          : setTimeout(() => controller.abort(new AttemptTimeoutError(attemptTimeoutMs)), attemptTimeoutMs);
      try {
        return await call(controller.signal);
      } catch (error) {
        // The SDK reports any abort as its own AbortError: say which deadline it was.
        if (
          controller.signal.aborted &&
          !signal?.aborted &&
          controller.signal.reason instanceof AttemptTimeoutError
        ) {
          throw controller.signal.reason;
        }
        throw error;
      } finally {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      }
    },
    {
      retries,
      minTimeout: 0,
      maxTimeout: 0,
      ...(signal ? { signal } : {}),
      // Every throttled answer is remembered, the last attempt's too.
      onFailedAttempt: ({ error }) => {
        if (backoff && remembers(error, backoff.anyServerError === true)) {
          const asked = serverRetryAfterMs(error)!;
          const seconds = Math.round(asked / 100) / 10;
          backoff.gate.note(backoff.call, asked, `HTTP ${statusOf(error)}, Retry-After ${seconds} s`);
        }
      },
      // The wait happens here (not in p-retry's backoff) because it depends on the answer's headers.
      shouldRetry: async ({ error, attemptNumber }) => {
        if (signal?.aborted || !isRetryable(error)) return false;
        const wantedMs = retryDelayMs(error, attemptNumber, random);
        const delayMs = Math.min(wantedMs, maxDelayMs);
        onRetry?.({ error, attempt: attemptNumber, delayMs });
        if (backoff && remembers(error, backoff.anyServerError === true)) await waitOrGiveUp(wantedMs);
        else if (backoff) {
          // Our own backoff (no Retry-After to remember): waited if it ends before the deadline, else
          // the call ends now with this answer's error (not a back-off: nothing asked for one).
          const deadline = deadlineOf(signal);
          if (deadline !== undefined && Date.now() + delayMs >= deadline) return false;
          await abortableDelay(delayMs, signal);
        } else await abortableDelay(delayMs, signal);
        return true;
      },
    },
  );
}
