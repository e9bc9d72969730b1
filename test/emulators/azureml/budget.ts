/**
 * ARM's request budget, per subscription: a token bucket for reads (about 250 in a burst, then 25 a
 * second) and one for writes (about 200, then 10 a second). Every answer says what is left in
 * `x-ms-ratelimit-remaining-subscription-reads` / `-writes` (and the `-global-` variants); a request over
 * the budget is a 429 with `Retry-After` in seconds.
 */
export interface BucketRate {
  burst: number;
  perSecond: number;
}

export interface BudgetOptions {
  reads: BucketRate;
  writes: BucketRate;
}

export const ARM_BUDGET: BudgetOptions = {
  reads: { burst: 250, perSecond: 25 },
  writes: { burst: 200, perSecond: 10 },
};

class Bucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: BucketRate,
    private readonly now: () => number,
  ) {
    this.tokens = rate.burst;
    this.last = now();
  }
  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.last) / 1000) * this.rate.perSecond);
    this.last = now;
  }
  /** Take one token: undefined when granted, else the seconds until one is back. */
  take(): number | undefined {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return undefined;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate.perSecond));
  }
  get remaining(): number {
    this.refill();
    return Math.floor(this.tokens);
  }
}

export interface BudgetAnswer {
  /** Seconds to wait when the request is over budget. */
  retryAfterSeconds?: number;
  headers: Record<string, string>;
}

export class SubscriptionBudgets {
  private readonly buckets = new Map<string, { reads: Bucket; writes: Bucket }>();
  constructor(
    private readonly options: BudgetOptions,
    private readonly now: () => number = Date.now,
  ) {}

  charge(subscription: string, read: boolean): BudgetAnswer {
    const key = subscription.toLowerCase();
    let pair = this.buckets.get(key);
    if (!pair) {
      pair = {
        reads: new Bucket(this.options.reads, this.now),
        writes: new Bucket(this.options.writes, this.now),
      };
      this.buckets.set(key, pair);
    }
    const bucket = read ? pair.reads : pair.writes;
    const wait = bucket.take();
    const kind = read ? "reads" : "writes";
    const left = String(bucket.remaining);
    return {
      ...(wait !== undefined ? { retryAfterSeconds: wait } : {}),
      headers: {
        [`x-ms-ratelimit-remaining-subscription-${kind}`]: left,
        [`x-ms-ratelimit-remaining-subscription-global-${kind}`]: left,
      },
    };
  }
}
