import { describe, expect, test } from "vitest";
import { Reconciler } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics } from "../../src/metrics/registry.js";
import { stepPolicy } from "../../src/policy/step.js";
import { formatStatus } from "../../src/cli/commands/status.js";
import { MemoryQueue, MemoryRegion } from "../support/memory-region.js";

/** The daemon learns from its own ticks, exports what it learned, and `status` shows it. */
function setup() {
  const queue = new MemoryQueue();
  const a = new MemoryRegion("a", 1000);
  const metrics = createMetrics({ processMetrics: false });
  let now = 1_000_000;
  const reconciler = new Reconciler({
    queue,
    regions: [a],
    policy: stepPolicy,
    parameters: {
      concurrency: 1,
      maxWorkers: 50000,
      minWorkers: 0,
      rampFactor: 10,
      scaleDownDelayMs: 300_000,
    },
    callTimeoutMs: 1000,
    actTimeoutMs: 1000,
    readConcurrency: 2,
    staleTicks: 2,
    dryRun: false,
    logger: createLogger({ level: "silent" }),
    metrics,
    now: () => now,
    hints: { taskSeconds: 900, startupSeconds: 240 },
  });
  const advance = (seconds: number) => (now += seconds * 1000);
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
    return metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
  };
  return { queue, a, reconciler, advance, value };
}

describe("the daemon's estimates", () => {
  test("cold start: the hints, exported and shown as hints", async () => {
    const { queue, reconciler, value } = setup();
    queue.depthValue = 100;
    const report = await reconciler.tick();
    expect(await value("workforce_estimated_task_seconds")).toBe(900);
    expect(await value("workforce_estimated_startup_seconds", { region: "a" })).toBe(240);
    expect(formatStatus(report)).toContain("estimates: task 900 s (hint); start-up a 240 s (hint)");
  });

  test("start-up and task time measured from what the ticks saw", async () => {
    const { queue, a, reconciler, advance, value } = setup();
    queue.depthValue = 100;
    await reconciler.tick(); // hires 10 (ramp from nothing)
    expect(a.pending).toBe(10);
    advance(60);
    await reconciler.tick(); // still pending
    advance(60);
    a.start(); // came up between 60 and 120 s after the hire
    const seen = await reconciler.tick();
    // Seen running 120 s after the hire, so started about 90 s after it (half a tick earlier).
    expect(await value("workforce_estimated_startup_seconds", { region: "a" })).toBe(90);
    expect(seen.estimates.startup.a).toMatchObject({ seconds: 90, source: "measured", samples: 10 });

    // Hold the workforce at 10 (no more hires), and let 10 tasks finish every 600 s.
    a.capacityLimit = a.running + a.pending;
    for (let elapsed = 60; elapsed <= 1800; elapsed += 60) {
      advance(60);
      if (elapsed % 600 === 0) queue.depthValue -= 10;
      await reconciler.tick();
    }
    expect(await value("workforce_estimated_task_seconds")).toBe(600);
    const status = formatStatus(await reconciler.preview());
    expect(status).toMatch(
      /estimates: task 600 s \(measured, \d+ samples\); start-up a 90 s \(measured, 10 samples\)/,
    );
  });
});
