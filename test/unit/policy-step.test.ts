import { describe, expect, test } from "vitest";
import { proportionalPolicy, stepPolicy, stepSize, type PolicyInput } from "../../src/policy/index.js";

const base: PolicyInput = {
  queueDepth: 0,
  concurrency: 1,
  running: 0,
  pending: 0,
  maxWorkers: 50000,
  minWorkers: 0,
  rampFactor: 10,
};

describe("step policy (ai4s-jobq's determine_number_of_workers)", () => {
  test.each([
    // [case, input overrides, expected target]
    ["empty queue wants nobody", { queueDepth: 0, running: 7 }, 0],
    ["seed: 1600 tasks, concurrency 4, nothing running -> ramp 10", { queueDepth: 1600, concurrency: 4 }, 10],
    [
      "seed: 1600 tasks, concurrency 4, 3 running -> ramp 40",
      { queueDepth: 1600, concurrency: 4, running: 3 },
      40,
    ],
    [
      "seed: 1600 tasks, concurrency 4, 10 running -> step 50",
      { queueDepth: 1600, concurrency: 4, running: 10 },
      50,
    ],
    ["one task wants one worker", { queueDepth: 1 }, 1],
    ["r = 10 is still step 1", { queueDepth: 10, running: 100 }, 1],
    ["r = 11 is step 5", { queueDepth: 11, running: 100 }, 5],
    ["r = 21 is step 15", { queueDepth: 21, running: 100 }, 15],
    ["r = 101 is step 50", { queueDepth: 101, running: 100 }, 50],
    ["r = 1001 is step 400", { queueDepth: 1001, running: 100 }, 400],
    ["r = 10001 is step 1000", { queueDepth: 10001, running: 1000 }, 1000],
    ["the ramp counts running workers only, not pending", { queueDepth: 5000, pending: 300 }, 10],
    ["capped by maxWorkers", { queueDepth: 100000, running: 5000, maxWorkers: 300 }, 300],
    ["capped by the queue", { queueDepth: 3, concurrency: 1, running: 10 }, 1],
    ["minWorkers floors a non-empty queue", { queueDepth: 3, minWorkers: 4 }, 4],
    ["minWorkers does not apply to an empty queue", { queueDepth: 0, minWorkers: 4 }, 0],
    ["minWorkers never exceeds maxWorkers", { queueDepth: 3, minWorkers: 9, maxWorkers: 2 }, 2],
    ["a smaller ramp factor slows growth", { queueDepth: 100000, running: 4, rampFactor: 2 }, 10],
  ] as const)("%s", (_case, overrides, expected) => {
    expect(stepPolicy({ ...base, ...overrides })).toBe(expected);
  });

  test("the target never exceeds the ramp, the queue or the cap, whatever the input", () => {
    for (const queueDepth of [0, 1, 7, 99, 1000, 123456]) {
      for (const running of [0, 1, 5, 80, 4000]) {
        for (const concurrency of [1, 4, 16]) {
          const input = { ...base, queueDepth, running, concurrency, maxWorkers: 3000 };
          const target = stepPolicy(input);
          expect(target).toBeLessThanOrEqual(10 * (running + 1));
          expect(target).toBeLessThanOrEqual(queueDepth);
          expect(target).toBeLessThanOrEqual(3000);
          expect(target).toBeLessThanOrEqual(stepSize(Math.floor(queueDepth / concurrency)));
        }
      }
    }
  });
});

describe("proportional policy", () => {
  test.each([
    ["one worker per `concurrency` tasks, rounded up", { queueDepth: 9, concurrency: 4, running: 10 }, 3],
    ["the same ramp", { queueDepth: 1600, concurrency: 4 }, 10],
    ["the same maxWorkers cap", { queueDepth: 1600, concurrency: 1, running: 1000, maxWorkers: 70 }, 70],
    ["empty queue", { queueDepth: 0, running: 3 }, 0],
  ] as const)("%s", (_case, overrides, expected) => {
    expect(proportionalPolicy({ ...base, ...overrides })).toBe(expected);
  });
});
