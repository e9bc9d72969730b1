import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { abortableDelay } from "./retry.js";

/**
 * Token bucket for ARM writes. ARM allows about 200 writes in a burst and 10 per second per principal and
 * region; submits from every region of one subscription share one bucket, so a big hire spread over many
 * workspaces does not run into a 429 storm.
 */
export interface WriteRateLimiterOptions {
  /** Bucket size (default 200). */
  burst?: number;
  /** Refill per second (default 10). */
  perSecond?: number;
  /** Clock in ms (tests and the bench may pass their own). */
  now?: () => number;
}

export class WriteRateLimiter {
  readonly burst: number;
  readonly perSecond: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;

  constructor(options: WriteRateLimiterOptions = {}) {
    this.burst = options.burst ?? 200;
    this.perSecond = options.perSecond ?? 10;
    if (!(this.burst >= 1)) throw new Error(`write rate limiter: burst must be >= 1; given ${this.burst}`);
    if (!(this.perSecond > 0))
      throw new Error(`write rate limiter: perSecond must be > 0; given ${this.perSecond}`);
    this.now = options.now ?? Date.now;
    this.tokens = this.burst;
    this.last = this.now();
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }

  private waiting = 0;

  /**
   * Take a token only if one is free now and `reserve` tokens stay in the bucket, and nobody is waiting:
   * for background writes (retiring finished jobs) that must never delay a hire.
   */
  tryAcquire(reserve = 0): boolean {
    if (this.waiting > 0) return false;
    this.refill();
    if (this.tokens - 1 < reserve) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * Take `count` tokens if they can all be had within `maxWaitMs` (waiting for them, in turn behind other
   * waiters), else take none and resolve false at once: a read of several pages either gets the budget for
   * all of them or does not start (a partial read is worth nothing).
   */
  async reserve(count: number, maxWaitMs: number, signal?: AbortSignal): Promise<boolean> {
    const times = this.reserveAt(count, maxWaitMs);
    if (!times) return false;
    const waitMs = times[times.length - 1]! - this.now();
    if (waitMs > 0) await abortableDelay(Math.ceil(waitMs), signal);
    return true;
  }

  /**
   * Like `reserve`, without waiting: the time (ms, this limiter's clock) at which each of the `count`
   * tokens is there, or undefined (nothing taken) when the last would come later than `maxWaitMs`. A
   * listing sends page k at its token's time, so its first pages need not wait for the last one's token.
   */
  reserveAt(count: number, maxWaitMs: number): number[] | undefined {
    this.refill();
    const now = this.now();
    if (((count - this.tokens) / this.perSecond) * 1000 > maxWaitMs) return undefined;
    const times: number[] = [];
    for (let k = 1; k <= count; k++)
      times.push(now + Math.max(0, ((k - this.tokens) / this.perSecond) * 1000));
    // Spoken for now (the bucket may go below zero); each is usable at its time.
    this.tokens -= count;
    return times;
  }

  /** Tokens promised to claims and not taken yet. */
  private claimed = 0;

  /**
   * Promise `count` tokens to a caller that will take them one by one (`takeClaimed`), if the bucket can
   * give all of them, beyond what earlier claims hold, within `maxWaitMs`; else promise nothing. Each take
   * then queues in turn with everyone else, so the first read of every listing goes before the last
   * reads of the others. Release what was not taken (`release`).
   */
  claim(count: number, maxWaitMs: number): boolean {
    this.refill();
    if (((this.claimed + count - this.tokens) / this.perSecond) * 1000 > maxWaitMs) return false;
    this.claimed += count;
    return true;
  }

  /** Take one claimed token (waiting for it in turn). */
  takeClaimed(signal?: AbortSignal): Promise<void> {
    this.claimed = Math.max(0, this.claimed - 1);
    return this.acquire(signal);
  }

  release(count: number): void {
    this.claimed = Math.max(0, this.claimed - count);
  }

  /** Requests of this budget sent and not answered yet (see `sending`). */
  private unanswered = 0;
  /** The most the service has said was left, plus the request it answered: its bucket is at least this. */
  private seenCapacity: number | undefined;

  /**
   * How many tokens the bucket can really hold: its burst, or less when the service's answers show its
   * own budget is smaller (a background write keeps half of this for hires and cancels).
   */
  get capacity(): number {
    return Math.min(this.burst, this.seenCapacity ?? this.burst);
  }

  /**
   * A request of this budget goes out: call the function returned with what the service said is left of
   * the budget when it answers (ARM's `x-ms-ratelimit-remaining-subscription-reads` / `-writes`), or
   * with undefined if it did not say. The bucket never holds more than that, less the requests still out
   * (they may not have been counted yet): a budget spent by another client of the same identity, or
   * before a restart, slows this one down instead of running it into 429s. It is only ever lowered: the
   * bucket's own count is the ceiling, and it refills at its own rate from there.
   */
  sending(): (remaining: number | undefined) => void {
    this.unanswered++;
    let answered = false;
    return (remaining) => {
      if (answered) return;
      answered = true;
      this.unanswered--;
      if (remaining === undefined || !Number.isFinite(remaining) || remaining < 0) return;
      this.refill();
      this.tokens = Math.min(this.tokens, remaining - this.unanswered);
      this.seenCapacity = Math.max(this.seenCapacity ?? 0, remaining + 1);
    };
  }

  /** Tokens in the bucket now (negative while reservations are waiting). */
  get available(): number {
    this.refill();
    return this.tokens;
  }

  /**
   * Take one token, waiting for it if needed. Rejects with the signal's reason if aborted meanwhile.
   * Waiters are served in order by giving each, when it asks, the time its token will be there (the
   * bucket goes below zero): one timer per waiter to an absolute time, not a chain of timers each waiting
   * for the one before (under a busy event loop every late timer in such a chain added its delay).
   */
  async acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.refill();
    this.tokens -= 1;
    if (this.tokens >= 0) return;
    const due = this.now() + Math.ceil((-this.tokens / this.perSecond) * 1000);
    this.waiting++;
    try {
      // One timer in practice; again only if this limiter's clock (a test's) says it is not time yet.
      while (this.now() < due) await abortableDelay(Math.max(1, due - this.now()), signal);
    } catch (error) {
      // Not taken after all: the token goes back (later waiters keep their times, a little early).
      this.tokens += 1;
      throw error;
    } finally {
      this.waiting--;
    }
  }
}

/**
 * What ARM says is left of the subscription's budget of `kind` in an answer's headers: the lower of
 * `x-ms-ratelimit-remaining-subscription-{kind}` and its `-global-` variant, or undefined when neither is
 * there (or is not a count).
 */
export function remainingBudget(
  headers: { get(name: string): string | undefined },
  kind: "reads" | "writes",
): number | undefined {
  const counts = [
    headers.get(`x-ms-ratelimit-remaining-subscription-${kind}`),
    headers.get(`x-ms-ratelimit-remaining-subscription-global-${kind}`),
  ]
    .filter((text): text is string => typeof text === "string" && /^\d+$/.test(text.trim()))
    .map(Number);
  return counts.length ? Math.min(...counts) : undefined;
}

/**
 * An HTTP pipeline policy that tells the subscription's buckets what every ARM answer says is left
 * (`WriteRateLimiter.sending`): GETs are reads, everything else writes, as ARM counts them. At the
 * pipeline, so every request of a workspace passes it, whichever call sent it.
 */
export function remainingBudgetPolicy(budgets: {
  reads?: WriteRateLimiter;
  writes?: WriteRateLimiter;
}): PipelinePolicy {
  return {
    name: "workforceRemainingBudget",
    async sendRequest(request, next) {
      const kind = request.method === "GET" || request.method === "HEAD" ? "reads" : "writes";
      const answered = budgets[kind]?.sending();
      let response: Awaited<ReturnType<typeof next>> | undefined;
      try {
        response = await next(request);
        return response;
      } finally {
        answered?.(response && remainingBudget(response.headers, kind));
      }
    },
  };
}

/** One limiter per key (subscription + ARM endpoint). Pass one pool to every region of a process. */
export class WriteLimiterPool {
  private readonly limiters = new Map<string, WriteRateLimiter>();
  constructor(private readonly options: WriteRateLimiterOptions = {}) {}

  get(key: string): WriteRateLimiter {
    let limiter = this.limiters.get(key);
    if (!limiter) {
      limiter = new WriteRateLimiter(this.options);
      this.limiters.set(key, limiter);
    }
    return limiter;
  }
}

/**
 * The process's pool: ARM's limit is per principal, and the daemon has one principal, so regions built
 * separately by the region factory must still share it. Tests and the bench pass their own pool.
 */
export const processWriteLimiters = new WriteLimiterPool();

/** ARM's read budget: about 250 reads in a burst, then 25 a second, per subscription and principal. */
export const ARM_READ_BUDGET: WriteRateLimiterOptions = { burst: 250, perSecond: 25 };

/** The process's read limiters (one per subscription + endpoint), like the write limiters above. */
export const processReadLimiters = new WriteLimiterPool(ARM_READ_BUDGET);
