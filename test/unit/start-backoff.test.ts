import { describe, expect, test } from "vitest";
import { Registry } from "prom-client";
import { defaultStartBackoff, describeBackoff, startBackoff } from "../../src/policy/start-backoff.js";
import { ExitTracker } from "../../src/controller/exits.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics, initRegionSeries } from "../../src/metrics/registry.js";
import type { WorkerExit } from "../../src/regions/types.js";
import type { Snapshot } from "../../src/controller/snapshot.js";

const parameters = { initialMs: 60_000, maxMs: 30 * 60_000 };
const failed = (at: number): WorkerExit => ({
  workerId: `w${at}`,
  outcome: "failed_start",
  at,
  detail: "exit code 7",
});

describe("start backoff (cluster-autoscaler's node-group backoff, for failed worker starts)", () => {
  test("doubles with each failed start in a row, up to the maximum", () => {
    expect(startBackoff([failed(0)], 0, parameters)?.until).toBe(60_000);
    expect(startBackoff([failed(0), failed(100_000)], 100_000, parameters)?.until).toBe(220_000);
    const many = Array.from({ length: 10 }, (_, i) => failed(i));
    expect(startBackoff(many, 9, parameters)?.until).toBe(9 + 30 * 60_000);
    expect(startBackoff(many, 9, parameters)?.failures).toBe(10);
  });

  test("ends when it expires, and a worker that ran resets the streak", () => {
    expect(startBackoff([failed(0)], 60_000, parameters)).toBeUndefined();
    const ran: WorkerExit = { workerId: "ok", outcome: "succeeded", at: 50, detail: "exit code 0" };
    expect(startBackoff([failed(0), failed(10), ran, failed(100)], 100, parameters)?.failures).toBe(1);
    // An exit nobody watched says nothing either way.
    const unknown: WorkerExit = { workerId: "u", outcome: "unknown", at: 20, detail: "?" };
    expect(startBackoff([failed(0), unknown, failed(30)], 30, parameters)?.failures).toBe(2);
  });
});

describe("start backoff: defaults, order and what it says", () => {
  test("starts at twice the interval (at least 30 s) and doubles up to 30 minutes", () => {
    expect(defaultStartBackoff(5)).toEqual({ initialMs: 30_000, maxMs: 30 * 60_000 });
    expect(defaultStartBackoff(30)).toEqual({ initialMs: 60_000, maxMs: 30 * 60_000 });
    expect(defaultStartBackoff(600)).toEqual({ initialMs: 1_200_000, maxMs: 30 * 60_000 });
  });

  test("reads the history in time order, whatever order the region gives it in", () => {
    const ran: WorkerExit = { workerId: "ok", outcome: "succeeded", at: 50, detail: "exit code 0" };
    // Newest first (as a listing may give them): the success at 50 ends the streak of 0 and 10.
    const backoff = startBackoff([failed(100), ran, failed(10), failed(0)], 100, parameters);
    expect(backoff?.failures).toBe(1);
    expect(backoff?.cause.workerId).toBe("w100");
    // A streak that a success ended is no backoff at all.
    expect(startBackoff([ran, failed(10)].reverse(), 20, parameters)).toBeUndefined();
    expect(startBackoff([], 0, parameters)).toBeUndefined();
  });

  test("one line: how many, the last cause with how long it ran and its last output line, and the wait", () => {
    const cause: WorkerExit = {
      ...failed(1_000),
      ranSeconds: 2.25,
      lastOutput: "starting\nImportError: no module named jobq",
    };
    const backoff = startBackoff([failed(0), cause], 1_000, parameters)!;
    expect(describeBackoff(backoff, 1_000 + 30_500)).toBe(
      '2 failed start(s) in a row (last: exit code 7 after 2.3 s; last output: "ImportError: no module named jobq"); no hires for 90 s',
    );
    expect(describeBackoff({ ...backoff, cause: failed(1_000) }, 1_000)).toBe(
      "2 failed start(s) in a row (last: exit code 7); no hires for 120 s",
    );
  });
});

describe("the exit tracker", () => {
  test("counts each exit and each expired drain once, and observes drain latency", async () => {
    const metrics = createMetrics({ registry: new Registry(), processMetrics: false });
    initRegionSeries(metrics, "east");
    const tracker = new ExitTracker(parameters, 0);
    const logger = createLogger({ level: "silent" });
    const drained: WorkerExit = {
      workerId: "d",
      outcome: "drained",
      at: 5_000,
      detail: "exit code 0",
      drainSeconds: 42,
    };
    const snapshot = (exits: WorkerExit[]): Snapshot => ({
      at: 0,
      queue: { depth: 1, durationMs: 0 },
      regions: [
        {
          name: "east",
          fresh: true,
          ageTicks: 0,
          ageMs: 0,
          durationMs: 0,
          inFlight: 0,
          observation: {
            running: 1,
            pending: 0,
            draining: 0,
            capacity: 1,
            exits,
            expiredDrains: [{ id: "entry-1", count: 2, at: 4_000 }],
          },
        },
      ],
    });
    for (let tick = 0; tick < 3; tick++) {
      const shot = snapshot([drained, failed(6_000)]);
      tracker.record(shot, tracker.backoffs(shot, 7_000), 7_000, logger, metrics);
    }
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^workforce_worker_exits_total\{region="east",outcome="drained"\} 1$/m);
    expect(text).toMatch(/^workforce_worker_exits_total\{region="east",outcome="failed_start"\} 1$/m);
    expect(text).toMatch(/^workforce_drains_expired_total\{region="east"\} 2$/m);
    expect(text).toMatch(/^workforce_drain_duration_seconds_bucket\{le="60",region="east"\} 1$/m);
    expect(text).toMatch(/^workforce_region_start_backoff\{region="east"\} 1$/m);
  });
});
