import { describe, expect, it } from "vitest";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { azuremlEmulatorsPerTest } from "../support/azureml-emulators.js";
import { makeRegion } from "../emulators/azureml/fixtures.js";
import type { AzuremlRegionInput } from "../../src/regions/azureml/index.js";
import { markDeadline } from "../../src/azure/backoff.js";

// Throttling of the ml.azure.com calls (the index listing, the resume of paused workers) remembered in
// the region's back-off, as ARM's is: a long Retry-After neither holds the call until its deadline nor
// is forgotten at the next tick.
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuremlEmulatorsPerTest((started) => ({ arm, ml } = started));

const ws = (name: string) => arm.findWorkspace(name)!;
const upstream = (extra: Partial<AzuremlRegionInput> = {}): Partial<AzuremlRegionInput> => ({
  mlEndpoint: ml.url,
  ...extra,
});
/** A deadline as the controller makes them (withDeadline): retries know when it falls. */
function deadline(ms: number): AbortSignal {
  const signal = AbortSignal.timeout(ms);
  markDeadline(signal, Date.now() + ms);
  return signal;
}
/**
 * The deadline of a call in these tests: generous, so that a read slowed by a loaded machine (TLS
 * handshakes with both emulators) still answers, yet shorter than every long Retry-After below (30 s
 * and more), so that those are back-offs. "At once" is checked against half of it.
 */
const LONG = 20_000;
const indexPages = () => ml.requests.filter((r) => r.operation === "index.entities");
const resumes = () => ml.requests.filter((r) => r.operation === "execution.resume");

async function runningRegion(count: number, extra: Partial<AzuremlRegionInput> = {}) {
  const region = makeRegion(arm, "ws1", count, upstream(extra));
  expect((await region.hire(count)).hired).toBe(count);
  arm.step();
  return region;
}

describe("index listing throttled (429 with Retry-After)", () => {
  it("Retry-After 120 s: the read fails at once, and no index request goes before the back-off ends", async () => {
    const region = await runningRegion(3, { listing: "index" });
    expect(await region.observe({ signal: deadline(LONG) })).toMatchObject({ running: 3 });
    const before = indexPages().length;
    ml.addFault({ kind: "throttle", retryAfterSeconds: 120, operations: ["index.entities"], times: 1 });

    const started = Date.now();
    await expect(region.observe({ signal: deadline(LONG) })).rejects.toThrow(
      /^region ws1: .*index listings in back-off until .*HTTP 429, Retry-After 120 s/,
    );
    // Neither a wait until the deadline nor a retry before the back-off ends.
    expect(Date.now() - started).toBeLessThan(LONG / 2);
    expect(indexPages().length).toBe(before + 1);
    expect(region.backoffs?.()).toMatchObject([
      { call: "index-list", reason: "HTTP 429, Retry-After 120 s" },
    ]);
    const state = region.backoffs!()[0]!;
    // Counted from the throttled request (the answer came after it), not from a clock read later.
    expect(state.until - indexPages().at(-1)!.at).toBeGreaterThanOrEqual(119_000);

    // The next tick's read: nothing sent to ml.azure.com, and nothing to ARM for it either.
    const armReads = arm.requests.length;
    await expect(region.observe({ signal: deadline(LONG) })).rejects.toThrow(/index listings in back-off/);
    expect(indexPages().length).toBe(before + 1);
    expect(arm.requests.length).toBe(armReads);
  });

  it("without a deadline too (a CLI call): a Retry-After past a minute is a back-off, not a blocked call", async () => {
    const region = await runningRegion(1, { listing: "index" });
    ml.addFault({ kind: "throttle", retryAfterSeconds: 90, operations: ["index.entities"], times: 1 });
    const started = Date.now();
    await expect(region.observe()).rejects.toThrow(/index listings in back-off .*Retry-After 90 s/);
    // A blocked call would wait the 90 s (and hit this test's timeout first).
    expect(Date.now() - started).toBeLessThan(LONG / 2);
    expect(indexPages()).toHaveLength(1);
  }, 30_000);

  it("the back-off ends when Retry-After has passed: the region is read again", async () => {
    const region = await runningRegion(2, { listing: "index" });
    // Retry-After 5 s, longer than the read's 4 s deadline: a back-off, not a wait within the read.
    ml.addFault({ kind: "throttle", retryAfterSeconds: 5, operations: ["index.entities"], times: 1 });
    await expect(region.observe({ signal: deadline(4_000) })).rejects.toThrow(/index listings in back-off/);
    const throttledAt = indexPages()[0]!.at;
    await new Promise((resolve) => setTimeout(resolve, 5_100 - (Date.now() - throttledAt)));
    expect(await region.observe({ signal: deadline(LONG) })).toMatchObject({ running: 2 });
    expect(indexPages()).toHaveLength(2);
    expect(indexPages()[1]!.at - throttledAt).toBeGreaterThanOrEqual(4_950);
    expect(region.backoffs?.()).toEqual([]);
  });

  it("a 503 over capacity with a long Retry-After is remembered the same way", async () => {
    const region = await runningRegion(1, { listing: "index" });
    ml.addFault({ kind: "overCapacity", retryAfterSeconds: 45, operations: ["index.entities"], times: 1 });
    await expect(region.observe({ signal: deadline(LONG) })).rejects.toThrow(
      /index listings in back-off .*HTTP 503, Retry-After 45 s/,
    );
    await expect(region.observe({ signal: deadline(LONG) })).rejects.toThrow(/index listings in back-off/);
    expect(indexPages()).toHaveLength(1);
  });

  it("ARM's own back-off and the index's are apart: ARM throttling does not stop the index, nor the reverse", async () => {
    const region = await runningRegion(1, { listing: "index" });
    ml.addFault({ kind: "throttle", retryAfterSeconds: 60, operations: ["index.entities"], times: 1 });
    await expect(region.observe({ signal: deadline(LONG) })).rejects.toThrow(/index listings in back-off/);
    // Hires are ARM writes: they still go.
    expect((await region.hire(1, { signal: deadline(LONG) })).hired).toBe(1);
  });
});

describe("resume throttled (429, or 5xx with Retry-After)", () => {
  async function pausedRegion(count: number, extra: Partial<AzuremlRegionInput> = {}) {
    const region = await runningRegion(count, { submitConcurrency: 1, ...extra });
    for (const name of ws("ws1").jobs.keys()) ml.preempt(ws("ws1"), name);
    expect(await region.observe()).toMatchObject({ running: 0, pending: count });
    return region;
  }

  it("429 Retry-After 120 s: the sweep stops at once, says it is backed off, and the next sends nothing", async () => {
    const region = await pausedRegion(3);
    ml.addFault({ kind: "throttle", retryAfterSeconds: 120, operations: ["execution.resume"], times: 1 });
    const started = Date.now();
    const first = await region.resumePaused({ signal: deadline(LONG) });
    expect(Date.now() - started).toBeLessThan(LONG / 2);
    // Not resumed, not failed: held back until the service takes resumes again.
    expect(first).toMatchObject({ resumed: 0, cancelled: 0, refused: 0, failed: 0, backedOff: 3 });
    expect(first.errors).toEqual([]);
    expect(resumes()).toHaveLength(1);
    expect(region.backoffs?.()).toMatchObject([{ call: "resume", reason: "HTTP 429, Retry-After 120 s" }]);

    const second = await region.resumePaused({ signal: deadline(LONG) });
    expect(second).toMatchObject({ resumed: 0, failed: 0, backedOff: 3 });
    expect(resumes()).toHaveLength(1);
    // Hires (ARM writes) and the listing still go.
    expect(await region.observe()).toMatchObject({ pending: 3 });
  });

  it("a 500 with Retry-After (the backend's wrapped DatabaseOverCapacity) is remembered as a back-off", async () => {
    const region = await pausedRegion(2);
    ml.addFault({
      kind: "overCapacity",
      status: 500,
      retryAfterSeconds: 30,
      operations: ["execution.resume"],
      times: 1,
    });
    const result = await region.resumePaused({ signal: deadline(LONG) });
    expect(result).toMatchObject({ resumed: 0, failed: 0, backedOff: 2 });
    expect(region.backoffs?.()).toMatchObject([{ call: "resume", reason: "HTTP 500, Retry-After 30 s" }]);
    expect(resumes()).toHaveLength(1);
  });

  it("a short Retry-After is waited for within the sweep (upstream's retry), and every worker resumed", async () => {
    const region = await pausedRegion(2);
    ml.addFault({
      kind: "overCapacity",
      status: 500,
      retryAfterSeconds: 1,
      operations: ["execution.resume"],
      times: 1,
    });
    const result = await region.resumePaused({ signal: deadline(LONG) });
    expect(result).toMatchObject({ resumed: 2, failed: 0 });
    expect(resumes().map((r) => r.status)).toEqual([500, 200, 200]);
  });
});
