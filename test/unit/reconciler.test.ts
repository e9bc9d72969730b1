import { describe, expect, test } from "vitest";
import { Reconciler, type ReconcilerOptions } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics } from "../../src/metrics/registry.js";
import { stepPolicy } from "../../src/policy/step.js";
import { MemoryQueue, MemoryRegion } from "../support/memory-region.js";
import { logLines } from "../support/log-lines.js";

function logCapture() {
  const { lines, destination } = logLines();
  return { lines, logger: createLogger({ level: "debug", destination }) };
}

function reconciler(regions: MemoryRegion[], queue: MemoryQueue, overrides: Partial<ReconcilerOptions> = {}) {
  const { lines, logger } = logCapture();
  const metrics = createMetrics({ processMetrics: false });
  const instance = new Reconciler({
    queue,
    regions,
    policy: stepPolicy,
    parameters: { concurrency: 1, maxWorkers: 50000, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 0 },
    callTimeoutMs: 200,
    actTimeoutMs: 200,
    readConcurrency: 4,
    staleTicks: 2,
    dryRun: false,
    logger,
    metrics,
    ...overrides,
  });
  return { instance, lines, metrics };
}

async function metricValue(
  metrics: ReturnType<typeof createMetrics>,
  name: string,
  labels: Record<string, string> = {},
) {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value;
}

describe("reconciler", () => {
  test("hires the ramp from nothing and logs one summary line per tick", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 500;
    const a = new MemoryRegion("a");
    const { instance, lines, metrics } = reconciler([a], queue);
    const report = await instance.tick();
    expect(report.result).toBe("ok");
    expect(a.pending).toBe(10);
    const ticks = lines.filter((line) => line.msg === "tick");
    expect(ticks).toHaveLength(1);
    expect(ticks[0]).toMatchObject({ want: 10, have: 0, hired: 10, queueDepth: 500 });
    expect(await metricValue(metrics, "workforce_hired_total", { region: "a" })).toBe(10);
    expect(await metricValue(metrics, "workforce_target_workers")).toBe(10);
  });

  test("a failed queue read is not an empty queue: nothing is hired or shrunk", async () => {
    const queue = new MemoryQueue();
    queue.fail = new Error("connection reset");
    const a = new MemoryRegion("a");
    a.running = 5;
    a.pending = 5;
    const { instance, metrics } = reconciler([a], queue);
    const report = await instance.tick();
    expect(report.result).toBe("held");
    expect(a.calls.filter((call) => call.operation !== "observe")).toEqual([]);
    expect(await metricValue(metrics, "workforce_queue_read_errors_total", { permanent: "false" })).toBe(1);
  });

  test("a hanging region does not hold the others, and gets nothing while stale", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 1000;
    const slow = new MemoryRegion("slow");
    const ok = new MemoryRegion("ok");
    const { instance } = reconciler([slow, ok], queue);
    await instance.tick(); // both healthy: 10 hired, spread 5/5
    slow.start();
    ok.start();
    await instance.tick(); // both read with 5 running each; 40 more hired, 20 each
    slow.hang.observe = true;
    queue.depthValue = 5000; // the policy now wants 10 x (10 + 1) = 110
    const started = Date.now();
    const report = await instance.tick();
    expect(report.result).toBe("degraded");
    const slowReading = report.snapshot.regions.find((r) => r.name === "slow");
    expect(slowReading?.fresh).toBe(false);
    // The tick gave up on slow at its call deadline (a hang never answers: without the deadline the tick
    // would never end). The wall-clock bound is only a backstop, loose enough for a loaded machine.
    expect(slowReading?.error).toMatch(/region slow observe did not answer within 200 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
    // Its last good reading stands in, plus the hires made there since (the tick's own 20).
    expect(slowReading?.observation).toMatchObject({ running: 5, pending: 20 });
    expect(report.plan.regions.find((r) => r.region === "slow")?.hire).toBe(0);
    // The others fill up to the target counting all of slow's workers: 110 - (10 running + 40 pending).
    expect(report.plan.regions.find((r) => r.region === "ok")?.hire).toBe(60);
  });

  test("a failing region keeps counting for as long as it fails; past staleTicks nobody is hired", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 1000;
    const a = new MemoryRegion("a");
    a.running = 3;
    const b = new MemoryRegion("b");
    b.running = 3;
    const { instance, lines } = reconciler([a, b], queue, { staleTicks: 2 });
    await instance.tick(); // 6 running: the policy wants 50, 44 hired (22 each)
    a.fail.observe = new Error("503 Service Unavailable");
    const seen = [];
    for (let i = 0; i < 4; i++) {
      queue.depthValue += 1000; // more work keeps arriving
      b.start();
      const report = await instance.tick();
      const reading = report.snapshot.regions[0]!;
      seen.push({
        age: reading.ageTicks,
        active: (reading.observation?.running ?? 0) + (reading.observation?.pending ?? 0),
        hired: report.plan.hire,
      });
    }
    // a counts its 3 running + its 22 hires for as long as it fails; b hires while a's reading is at most
    // 2 ticks old, then nobody is hired.
    expect(seen.map((s) => [s.age, s.active])).toEqual([
      [1, 25],
      [2, 25],
      [3, 25],
      [4, 25],
    ]);
    expect(seen[0]!.hired).toBeGreaterThan(0);
    expect(seen.slice(2).map((s) => s.hired)).toEqual([0, 0]);
    expect(lines.filter((line) => line.msg === "tick").at(-1)).toMatchObject({
      hireHold: expect.stringContaining("unreadable for more than 2 ticks"),
    });
  });

  test("a region never read: its workers are unknown, so nobody is hired", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 1000;
    const a = new MemoryRegion("a");
    a.fail.observe = new Error("403 AuthorizationFailed");
    const b = new MemoryRegion("b");
    const { instance } = reconciler([a, b], queue);
    const report = await instance.tick();
    expect(report.plan.hire).toBe(0);
    expect(report.plan.hireHold).toMatch(/never read/);
    expect(b.calls.filter((call) => call.operation === "hire")).toEqual([]);
  });

  test("an unreadable region's workers do not make others surplus: it may have none left", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 10;
    const a = new MemoryRegion("a");
    a.running = 10;
    const b = new MemoryRegion("b");
    b.running = 10;
    const { instance } = reconciler([a, b], queue, { staleTicks: 5 });
    await instance.tick(); // 20 running for 10 tasks: 10 surplus, drained 5 + 5
    a.finishDraining();
    b.finishDraining();
    a.fail.observe = new Error("timeout");
    queue.depthValue = 5;
    // a's 5 may have all left: b's 5 are what the queue may still need (5 tasks).
    const report = await instance.tick();
    expect(report.plan.surplus).toBe(0);
    expect(b.draining).toBe(0);
  });

  test("the cap counts draining workers too", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 1000;
    const a = new MemoryRegion("a");
    a.running = 5;
    a.draining = 20;
    const { instance } = reconciler([a], queue, {
      parameters: { concurrency: 1, maxWorkers: 30, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 0 },
    });
    const report = await instance.tick();
    expect(report.plan.hire).toBe(5);
  });

  test("a failing hire in one region does not stop another region's hire", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 1000;
    const broken = new MemoryRegion("broken");
    broken.fail.hire = new Error("429 Too Many Requests");
    const ok = new MemoryRegion("ok");
    const { instance, metrics } = reconciler([broken, ok], queue);
    const report = await instance.tick();
    expect(ok.pending).toBe(5);
    expect(report.outcomes.find((o) => o.region === "broken")?.errors[0]?.operation).toBe("hire");
    expect(
      await metricValue(metrics, "workforce_region_errors_total", {
        region: "broken",
        operation: "hire",
        permanent: "false",
      }),
    ).toBe(1);
  });

  test("dry-run plans but acts on nothing", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 1000;
    const a = new MemoryRegion("a");
    const { instance, metrics } = reconciler([a], queue, { dryRun: true });
    const report = await instance.tick();
    expect(report.plan.hire).toBe(10);
    expect(a.pending).toBe(0);
    expect(await metricValue(metrics, "workforce_dry_run")).toBe(1);
  });

  test("shrinks by cancelling pending first, then drains only surplus, and never asks twice", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 3;
    const a = new MemoryRegion("a");
    a.running = 6;
    a.pending = 2;
    const { instance } = reconciler([a], queue);
    const first = await instance.tick();
    // Target for 3 tasks is 1, but 3 tasks keep 3 workers busy: cancel 2 pending, drain 6 - 3 = 3.
    expect(first.outcomes[0]).toMatchObject({ cancelled: 2, drained: 3 });
    const second = await instance.tick();
    expect(second.outcomes[0]).toMatchObject({ cancelled: 0, drained: 0 });
    expect(a.draining).toBe(3);
  });

  test("a drain cut off at the act deadline counts as maybe sent: in the tick line, and as draining while the region is unreadable", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 0;
    const a = new MemoryRegion("a");
    a.running = 10;
    // The drain requests go out, then the answer never comes (a broker that does not acknowledge).
    a.drain = async (count) => {
      a.calls.push({ operation: "drain", count });
      a.running -= count;
      a.draining += count;
      return new Promise(() => undefined);
    };
    const b = new MemoryRegion("b", 1000);
    const { instance, lines, metrics } = reconciler([a, b], queue);
    const first = await instance.tick();
    expect(first.plan.regions.find((r) => r.region === "a")?.drain).toBe(10);
    expect(first.outcomes.find((o) => o.region === "a")).toMatchObject({ drained: 0, drainUnknown: 10 });
    expect(lines.filter((line) => line.msg === "tick").at(-1)).toMatchObject({
      drained: 0,
      drainUnknown: 10,
    });
    expect(await metricValue(metrics, "workforce_drain_unknown_total", { region: "a" })).toBe(10);
    // Work arrives and a cannot be read: its last reading counts the 10 as leaving, not as running, so the
    // ramp is 10 x (0 + 1), not 10 x (10 + 1).
    a.fail.observe = new Error("503 Service Unavailable");
    queue.depthValue = 5000;
    const second = await instance.tick();
    expect(second.snapshot.regions.find((r) => r.name === "a")?.observation).toMatchObject({
      running: 0,
      draining: 10,
    });
    expect(second.plan.target).toBe(10);
    expect(b.pending).toBe(10);
  });

  test("preview (status) acts on nothing and keeps no stabilization state", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 1000;
    const a = new MemoryRegion("a");
    a.running = 50;
    const { instance } = reconciler([a], queue, {
      parameters: {
        concurrency: 1,
        maxWorkers: 50000,
        minWorkers: 0,
        rampFactor: 10,
        scaleDownDelayMs: 600_000,
      },
    });
    await instance.preview();
    queue.depthValue = 0;
    const report = await instance.tick();
    // Had preview recorded its target of 400, stabilization would keep all 50 workers.
    expect(report.plan.target).toBe(0);
    expect(a.draining).toBe(50);
  });
});

describe("a restarted daemon", () => {
  const slowShrink = {
    concurrency: 1,
    maxWorkers: 50000,
    minWorkers: 0,
    rampFactor: 10,
    scaleDownDelayMs: 300_000,
  };

  test("starts its scale-down window at the workforce it finds: no shrink the old process would not have made", async () => {
    let now = 1_000_000;
    const queue = new MemoryQueue(); // empty: the policy wants nobody
    const a = new MemoryRegion("a");
    a.running = 20;
    const { instance } = reconciler([a], queue, {
      parameters: slowShrink,
      windowFromFirstSight: true,
      now: () => now,
    });
    const first = await instance.tick();
    expect(first.plan.target).toBe(20);
    expect(a.draining).toBe(0);
    now += 301_000; // one window later
    await instance.tick();
    expect(a.draining).toBe(20);
  });

  test("one-shot runs do not hold the window (they would never shrink)", async () => {
    const queue = new MemoryQueue();
    const a = new MemoryRegion("a");
    a.running = 20;
    const { instance } = reconciler([a], queue, { parameters: slowShrink });
    await instance.tick();
    expect(a.draining).toBe(20);
  });
});

describe("loop", () => {
  test("keeps ticking after a tick throws, and stops after the tick in flight", async () => {
    const { runLoop } = await import("../../src/controller/loop.js");
    const { lines, logger } = logCapture();
    let calls = 0;
    const stop = new AbortController();
    const fake = {
      tick: async () => {
        calls++;
        if (calls === 1) throw new Error("bug in a region adapter");
        if (calls === 3) stop.abort();
        return {} as never;
      },
    };
    await runLoop(fake as never, { intervalMs: 1, jitter: 0, logger, stop: stop.signal });
    expect(calls).toBe(3);
    expect(lines.some((line) => line.msg === "tick failed unexpectedly")).toBe(true);
  });

  test("jitter spreads the interval within +/- the fraction", async () => {
    const { jittered } = await import("../../src/controller/loop.js");
    expect(jittered(60_000, 0.1, () => 0)).toBe(54_000);
    expect(jittered(60_000, 0.1, () => 1)).toBe(66_000);
    expect(jittered(60_000, 0, () => 0.3)).toBe(60_000);
  });
});
