import { describe, expect, it } from "vitest";
import { WriteRateLimiter, ARM_READ_BUDGET } from "../../src/azure/rate-limiter.js";

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
