import { afterEach, beforeEach, describe, expect, it } from "vitest";
import pLimit from "p-limit";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { makeRegion, seededJobProperties, SUBSCRIPTION } from "../emulators/azureml/fixtures.js";
import { WriteLimiterPool } from "../../src/azure/rate-limiter.js";
import { ARM_BUDGET } from "../emulators/azureml/budget.js";
import { markDeadline } from "../../src/azure/backoff.js";
import type { AzuremlRegion } from "../../src/regions/azureml/index.js";

// ARM's answers say how much of the subscription's budget is left (x-ms-ratelimit-remaining-subscription-
// reads / -writes). A daemon whose own count is higher (it just restarted with a full bucket, or an
// operator's `workforce status` with the same identity spent reads) slows down to what ARM says instead of
// burning through into 429s. The emulator keeps a read budget of ARM's shape, scaled down so that the
// test is short (100 in a burst, then 10 a second; ARM's is 250 and 25); the daemon's bucket is the same.
const READS = { burst: 100, perSecond: 10 };
let arm: ArmEmulator;

beforeEach(async () => {
  arm = await startArmEmulator({ stepMs: 0, budget: { reads: READS, writes: ARM_BUDGET.writes } });
});
afterEach(async () => {
  await arm.close();
});

const REGIONS = 20;
/** 150 active jobs each: two list pages, plus the cluster read: 3 reads a region, 60 a round. */
function regions(readLimiters: WriteLimiterPool): AzuremlRegion[] {
  return Array.from({ length: REGIONS }, (_, i) => {
    const name = `ws${i}`;
    const region = makeRegion(
      arm,
      name,
      200,
      // A region may wait up to 8 s for its reads' budget (requestTimeoutSeconds).
      { requestTimeoutSeconds: 8, retireFinished: "keep" },
      new WriteLimiterPool(),
      readLimiters,
    );
    const workspace = arm.findWorkspace(name)!;
    for (let j = 0; j < 150; j++)
      workspace.createJob(
        `exp-${name}-${String(j).padStart(8, "0")}`,
        seededJobProperties(workspace, `exp-${name}`, true),
      );
    return region;
  });
}

/** Every region read, four at a time (the daemon's WORKFORCE_READ_CONCURRENCY), each with a deadline. */
async function readAll(all: AzuremlRegion[]) {
  const limit = pLimit(4);
  return Promise.allSettled(
    all.map((region) =>
      limit(() => {
        const signal = AbortSignal.timeout(20_000);
        markDeadline(signal, Date.now() + 20_000);
        return region.observe({ signal });
      }),
    ),
  );
}

const throttled = () => arm.requests.filter((r) => r.status === 429).length;

describe("ARM's remaining-budget headers", () => {
  it("a budget spent by another client: the reads slow down to ARM's count, every region is read, (almost) no 429", async () => {
    const all = regions(new WriteLimiterPool(READS));
    // Another client of the same principal leaves 5 of the 100 reads; our own bucket is still full. The
    // 60 reads then take (60 - 5) / 10 = 5.5 s of budget.
    arm.spendBudget(SUBSCRIPTION, "reads", 95);
    const results = await readAll(all);
    const failed = results.filter((r) => r.status === "rejected");
    expect(failed.map((r) => String((r as PromiseRejectedResult).reason).slice(0, 200))).toEqual([]);
    for (const result of results) {
      const seen = (result as PromiseFulfilledResult<{ running: number; pending: number }>).value;
      expect(seen.running + seen.pending).toBe(150);
    }
    // Blind only until the first answers: at most the first round of requests is over the budget.
    if (process.env.BUDGET_DEBUG) console.log(`429s: ${throttled()}`);
    expect(throttled()).toBeLessThanOrEqual(2);
    expect(arm.requests.filter((r) => r.method === "GET").length).toBeLessThanOrEqual(REGIONS * 3 + 2);
  }, 60_000);

  it("alone on the subscription (ARM's count and ours agree), nothing changes: every region read at once, no 429", async () => {
    const pool = new WriteLimiterPool(READS);
    const all = regions(pool);
    const results = await readAll(all);
    expect(results.every((r) => r.status === "fulfilled")).toBe(true);
    expect(throttled()).toBe(0);
    // 60 reads of the 100 burst: the bucket still holds the rest (and what refilled), as ARM says.
    expect(pool.get(`${arm.url}|${SUBSCRIPTION}`).available).toBeGreaterThanOrEqual(38);
  }, 60_000);
});
