import { describe, expect, it } from "vitest";
import { WriteRateLimiter, ARM_READ_BUDGET, remainingBudget } from "../../src/azure/rate-limiter.js";

describe("read budget: a listing gets all its reads or none", () => {
  it("grants a reservation within the wait it may take, else takes nothing", async () => {
    let now = 0;
    const bucket = new WriteRateLimiter({ burst: 10, perSecond: 5, now: () => now });
    expect(await bucket.reserve(6, 0)).toBe(true);
    // 4 left: 6 more would take 0.4 s.
    expect(await bucket.reserve(6, 100)).toBe(false);
    expect(bucket.available).toBe(4);
    now += 400;
    expect(await bucket.reserve(6, 0)).toBe(true);
    expect(bucket.available).toBe(0);
  });

  it("is ARM's read budget by default: 250 in a burst, then 25 a second", () => {
    expect(ARM_READ_BUDGET).toEqual({ burst: 250, perSecond: 25 });
  });
});

describe("read budget claims: all or nothing, taken in turn", () => {
  it("promises a listing its reads only if the bucket can give them beyond earlier claims", () => {
    let now = 0;
    const bucket = new WriteRateLimiter({ burst: 10, perSecond: 5, now: () => now });
    expect(bucket.claim(6, 0)).toBe(true);
    // 6 are promised: 6 more would need 0.4 s.
    expect(bucket.claim(6, 100)).toBe(false);
    expect(bucket.claim(6, 1000)).toBe(true);
    bucket.release(6);
    expect(bucket.claim(4, 0)).toBe(true);
    now += 0;
  });
});

describe("ARM's remaining count (x-ms-ratelimit-remaining-subscription-*)", () => {
  const headers = (values: Record<string, string>) => ({ get: (name: string) => values[name] });

  it("reads the lower of the subscription and global counts, and ignores what is not a count", () => {
    expect(
      remainingBudget(
        headers({
          "x-ms-ratelimit-remaining-subscription-reads": "11999",
          "x-ms-ratelimit-remaining-subscription-global-reads": "249",
        }),
        "reads",
      ),
    ).toBe(249);
    expect(remainingBudget(headers({ "x-ms-ratelimit-remaining-subscription-writes": "7" }), "writes")).toBe(
      7,
    );
    expect(remainingBudget(headers({ "x-ms-ratelimit-remaining-subscription-writes": "7" }), "reads")).toBe(
      undefined,
    );
    expect(remainingBudget(headers({ "x-ms-ratelimit-remaining-subscription-reads": "-1" }), "reads")).toBe(
      undefined,
    );
  });

  it("lowers the bucket to what ARM says is left, less the requests still out, and never raises it", () => {
    let now = 0;
    const bucket = new WriteRateLimiter({ burst: 100, perSecond: 10, now: () => now });
    const first = bucket.sending();
    const second = bucket.sending();
    // ARM counted the first one: 20 left; the second is still out and may not be counted yet.
    first(20);
    expect(bucket.available).toBe(19);
    second(undefined); // no header: nothing learnt
    expect(bucket.available).toBe(19);
    // A count above ours changes nothing: ours is the ceiling.
    bucket.sending()(90);
    expect(bucket.available).toBe(19);
    // From there it refills at its own rate.
    now += 1_000;
    expect(bucket.available).toBe(29);
    // A second answer to the same request is not counted twice.
    const third = bucket.sending();
    third(5);
    third(0);
    expect(bucket.available).toBe(5);
  });
});
