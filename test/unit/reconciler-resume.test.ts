import { describe, expect, test } from "vitest";
import { Reconciler } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics } from "../../src/metrics/registry.js";
import { stepPolicy } from "../../src/policy/step.js";
import type { CallOptions, ResumeResult } from "../../src/regions/types.js";
import { MemoryQueue, MemoryRegion } from "../support/memory-region.js";
import { logLines } from "../support/log-lines.js";

/** A memory region whose workers can be paused; the sweep resumes them (or fails, on demand). */
class PausingRegion extends MemoryRegion {
  paused = 0;
  resumeError?: Error;
  async resumePaused(_options?: CallOptions): Promise<ResumeResult> {
    this.calls.push({ operation: "resume", count: this.paused });
    if (this.resumeError)
      return { resumed: 0, cancelled: 0, refused: 0, failed: this.paused, errors: [this.resumeError] };
    const resumed = this.paused;
    this.paused = 0;
    return { resumed, cancelled: 0, refused: 0, failed: 0, errors: [] };
  }
}

function setup(region: PausingRegion, queue: MemoryQueue, dryRun = false) {
  const { lines, destination } = logLines();
  const metrics = createMetrics({ processMetrics: false });
  const reconciler = new Reconciler({
    queue,
    regions: [region],
    policy: stepPolicy,
    parameters: { concurrency: 1, maxWorkers: 50000, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 0 },
    callTimeoutMs: 200,
    actTimeoutMs: 200,
    readConcurrency: 4,
    staleTicks: 2,
    dryRun,
    logger: createLogger({ level: "info", destination }),
    metrics,
  });
  const resumedTotal = async (outcome: string) =>
    (await metrics.resumed.get()).values.find((v) => v.labels.outcome === outcome)?.value;
  return { reconciler, lines, metrics, resumedTotal };
}

describe("the resume sweep in a tick", () => {
  test("runs after cancel and hire, is counted by outcome and in the tick line", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 500;
    const region = new PausingRegion("a");
    region.paused = 3;
    const { reconciler, lines, resumedTotal } = setup(region, queue);
    const report = await reconciler.tick();
    expect(region.calls.map((c) => c.operation)).toEqual(["observe", "hire", "resume"]);
    expect(report.outcomes[0]!.resume).toEqual({ resumed: 3, cancelled: 0, refused: 0, failed: 0 });
    expect(await resumedTotal("resumed")).toBe(3);
    expect(await resumedTotal("cancelled")).toBe(0); // every outcome exists from the start
    expect(lines.find((line) => line.msg === "tick")).toMatchObject({
      resumed: 3,
      resume: { resumed: 3, cancelled: 0, refused: 0, failed: 0 },
    });
  });

  test("runs in a held tick (queue unreadable), which hires and cancels nothing", async () => {
    const queue = new MemoryQueue();
    queue.fail = new Error("connection reset");
    const region = new PausingRegion("a");
    region.paused = 2;
    const { reconciler } = setup(region, queue);
    const report = await reconciler.tick();
    expect(report.result).toBe("held");
    expect(region.calls.map((c) => c.operation)).toEqual(["observe", "resume"]);
    expect(report.outcomes[0]!.resume?.resumed).toBe(2);
  });

  test("does not run in dry-run", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 5;
    const region = new PausingRegion("a");
    region.paused = 2;
    const { reconciler, lines } = setup(region, queue, true);
    await reconciler.tick();
    expect(region.calls.map((c) => c.operation)).toEqual(["observe"]);
    expect(lines.find((line) => line.msg === "tick")).toMatchObject({ resumed: 0 });
  });

  test("a failed sweep degrades the tick and is counted as a resume error of the region", async () => {
    const queue = new MemoryQueue();
    queue.depthValue = 0;
    const region = new PausingRegion("a");
    region.paused = 1;
    region.resumeError = new Error("region a: resume a-1: HTTP 503: an HTML error page");
    const { reconciler, metrics, resumedTotal } = setup(region, queue);
    const report = await reconciler.tick();
    expect(report.result).toBe("degraded");
    expect(report.outcomes[0]!.errors).toEqual([
      {
        operation: "resume",
        message: "region a: resume a-1: HTTP 503: an HTML error page",
        reason: "error",
        permanent: false,
      },
    ]);
    const errors = (await metrics.regionErrors.get()).values.find(
      (v) => v.labels.operation === "resume" && v.labels.permanent === "false",
    );
    expect(errors?.value).toBe(1);
    expect(await resumedTotal("failed")).toBe(1);
  });
});
