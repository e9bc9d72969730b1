import { describe, expect, test } from "vitest";
import { predictivePolicy, predictiveSizing } from "../../src/policy/predictive.js";
import { rampLimit } from "../../src/policy/step.js";
import type { PolicyInput } from "../../src/policy/types.js";

const options = { paybackRatio: 8, taskSeconds: 600, startupSeconds: 300 };
const input = (overrides: Partial<PolicyInput>): PolicyInput => ({
  queueDepth: 300,
  concurrency: 4,
  running: 0,
  pending: 0,
  maxWorkers: 50000,
  minWorkers: 0,
  rampFactor: 10,
  ...overrides,
});

describe("predictive policy", () => {
  test("300 tasks of 20 minutes, 5.5 min start-up: three waves of 25 workers, not five of 15 (step) or one of 75", () => {
    const sizing = predictiveSizing(
      input({ running: 10, estimates: { taskSeconds: 1200, startupSeconds: 330 } }),
      options,
    );
    // 40 slots busy: (300 - 20) x 1200 s of work, minus what they do during a start-up: 322,800 s.
    expect(sizing.workAfterStartup).toBe(322_800);
    // Each worker must get 8 x 330 s of work on each of its 4 slots: 30 workers pay back.
    expect(sizing.payingWorkers).toBe(30);
    // 30 workers take ceil(300 / 120) = 3 waves; 25 workers take as many.
    expect(sizing.waves).toBe(3);
    expect(sizing.target).toBe(25);
  });

  test("without estimates (workforce plan, a cold start) it sizes with the hints", () => {
    const sizing = predictiveSizing(input({ running: 10 }), options);
    expect(sizing).toMatchObject({ taskSeconds: 600, startupSeconds: 300 });
  });

  test("a long start-up or short tasks buy fewer workers; the knob trades time for cost", () => {
    const wanted = (startupSeconds: number, taskSeconds: number, paybackRatio = 8) =>
      predictivePolicy({ ...options, paybackRatio })(
        input({ queueDepth: 10_000, running: 1000, estimates: { taskSeconds, startupSeconds } }),
      );
    expect(wanted(60, 600)).toBeGreaterThan(wanted(600, 600));
    expect(wanted(300, 1200)).toBeGreaterThan(wanted(300, 300));
    expect(wanted(300, 600, 2)).toBeGreaterThan(wanted(300, 600, 8));
    expect(wanted(300, 600, 8)).toBeGreaterThan(wanted(300, 600, 32));
    // 0: every worker the queue can keep busy, as proportional.
    expect(wanted(300, 600, 0)).toBe(2500);
  });

  test("keeps the invariants: ramp, queue, cap, floor; nothing for an empty queue", () => {
    const policy = predictivePolicy(options);
    for (const queueDepth of [0, 1, 7, 300, 10_000, 250_000])
      for (const running of [0, 3, 40, 1000])
        for (const maxWorkers of [0, 5, 50000])
          for (const minWorkers of [0, 2])
            for (const [taskSeconds, startupSeconds] of <[number, number][]>[
              [1, 1],
              [600, 300],
              [36_000, 10],
              [60, 3600],
            ]) {
              const state = input({
                queueDepth,
                running,
                maxWorkers,
                minWorkers,
                estimates: { taskSeconds, startupSeconds },
              });
              const target = policy(state);
              const where = JSON.stringify(state);
              expect(Number.isInteger(target), where).toBe(true);
              if (queueDepth === 0) {
                expect(target, where).toBe(0);
                continue;
              }
              expect(target, where).toBeLessThanOrEqual(
                Math.max(rampLimit(state), Math.min(minWorkers, maxWorkers)),
              );
              expect(target, where).toBeLessThanOrEqual(maxWorkers);
              expect(target, where).toBeLessThanOrEqual(
                Math.max(Math.ceil(queueDepth / 4), Math.min(minWorkers, maxWorkers)),
              );
              expect(target, where).toBeGreaterThanOrEqual(Math.min(1, maxWorkers, rampLimit(state)));
              expect(target, where).toBeGreaterThanOrEqual(Math.min(minWorkers, maxWorkers));
            }
  });
});

describe("predictive sizing, step by step", () => {
  test("tasks in flight count half done, and busy slots are capped by the queue", () => {
    // 100 tasks, 40 slots busy: (100 - 20) x 600 s of work, less 40 x 300 s done during a start-up.
    expect(predictiveSizing(input({ queueDepth: 100, running: 10 }), options)).toMatchObject({
      busySlots: 40,
      workAfterStartup: 36_000,
      payingWorkers: 3, // 36,000 / (4 x 8 x 300)
      waves: 9, // ceil(100 / 12)
      raw: 3, // ceil(100 / (9 x 4))
    });
    // 20 tasks and 40 slots: only 20 are busy.
    expect(predictiveSizing(input({ queueDepth: 20, running: 10 }), options).busySlots).toBe(20);
  });

  test.each([
    // What is measured can be nonsense (a clock step, no samples): never divide by zero or go negative.
    { name: "zero task time", estimates: { taskSeconds: 0, startupSeconds: 300 }, want: { taskSeconds: 1 } },
    {
      name: "zero start-up",
      estimates: { taskSeconds: 600, startupSeconds: 0 },
      want: { startupSeconds: 1 },
    },
    {
      name: "negative times",
      estimates: { taskSeconds: -5, startupSeconds: -5 },
      want: { taskSeconds: 1, startupSeconds: 1 },
    },
  ])("$name: clamped to a second", ({ estimates, want }) => {
    const sizing = predictiveSizing(input({ estimates }), options);
    expect(sizing).toMatchObject(want);
    expect(Number.isInteger(sizing.target)).toBe(true);
    expect(sizing.target).toBeGreaterThan(0);
  });

  test("more busy work than a start-up's worth is never negative work", () => {
    // 40 tasks all in flight, each finishing within the start-up: nothing left for a new worker.
    const sizing = predictiveSizing(
      input({ queueDepth: 40, running: 10, estimates: { taskSeconds: 100, startupSeconds: 300 } }),
      options,
    );
    expect(sizing.workAfterStartup).toBe(0);
    expect(sizing.payingWorkers).toBe(0);
    // Still one worker's worth of waves: the queue is not empty.
    expect(sizing.raw).toBe(1);
  });

  test("a negative queue depth (a bad reading) is an empty queue; a negative payback ratio is 0", () => {
    expect(predictiveSizing(input({ queueDepth: -10 }), options)).toMatchObject({
      busySlots: 0,
      raw: 0,
      target: 0,
    });
    const big = input({ queueDepth: 10_000, running: 1000 });
    expect(predictivePolicy({ ...options, paybackRatio: -3 })(big)).toBe(
      predictivePolicy({ ...options, paybackRatio: 0 })(big),
    );
  });

  test("one task and a long start-up: one worker, not none", () => {
    expect(
      predictiveSizing(
        input({ queueDepth: 1, estimates: { taskSeconds: 10, startupSeconds: 3600 } }),
        options,
      ),
    ).toMatchObject({ payingWorkers: 0, waves: 1, raw: 1, target: 1 });
  });
});
