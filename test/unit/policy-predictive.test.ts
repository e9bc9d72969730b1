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
