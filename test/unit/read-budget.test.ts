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
