import pRetry from "p-retry";

/**
 * One retry policy for every Azure call (ARM reads and writes): 429, 5xx, network errors and per-attempt
 * timeouts are retried; the server's `x-ms-retry-after-ms` or `Retry-After` wins over our own backoff.
 * The SDK's built-in retries are turned off (see arm-client.ts) so that this is the only place.
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
}

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
  } = options;
  return pRetry(
    async () => {
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal!.reason);
      if (signal?.aborted) throw signal.reason;
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
      // The wait happens here (not in p-retry's backoff) because it depends on the answer's headers.
      shouldRetry: async ({ error, attemptNumber }) => {
        if (signal?.aborted || !isRetryable(error)) return false;
        const delayMs = Math.min(retryDelayMs(error, attemptNumber, random), maxDelayMs);
        onRetry?.({ error, attempt: attemptNumber, delayMs });
        await abortableDelay(delayMs, signal);
        return true;
      },
    },
  );
}
