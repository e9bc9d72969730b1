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

describe("step table boundaries (r = floor(queue / concurrency); a step starts just above each edge)", () => {
  test.each([
    [0, 1],
    [10, 1],
    [11, 5],
    [20, 5],
    [21, 15],
    [100, 15],
    [101, 50],
    [1000, 50],
    [1001, 400],
    [10000, 400],
    [10001, 1000],
    [10 ** 9, 1000],
  ])("stepSize(%i) = %i", (tasksPerWorker, expected) => {
    expect(stepSize(tasksPerWorker)).toBe(expected);
  });

  test.each([
    // [queue, concurrency, expected]: r is floored before the table is read, so 83 tasks at 4 is r = 20.
    [83, 4, 5],
    [84, 4, 15],
    [403, 4, 15],
    [404, 4, 50],
    [4003, 4, 50],
    [4004, 4, 400],
    [40003, 4, 400],
    [40004, 4, 1000],
  ])(
    "stepPolicy with %i tasks at concurrency %i (no ramp limit) wants %i",
    (queueDepth, concurrency, expected) => {
      expect(stepPolicy({ ...base, queueDepth, concurrency, running: 10000 })).toBe(expected);
    },
  );

  test.each([
    // The ramp is floor(rampFactor x (running + 1)), exactly at and around its edge.
    [{ running: 4, rampFactor: 2 }, 10],
    [{ running: 4, rampFactor: 2.5 }, 12],
    [{ running: 0, rampFactor: 0.5 }, 0],
    [{ running: 1, rampFactor: 0.5 }, 1],
  ] as const)("the ramp with %o allows %i", (overrides, expected) => {
    expect(stepPolicy({ ...base, queueDepth: 100000, ...overrides })).toBe(expected);
    expect(proportionalPolicy({ ...base, queueDepth: 100000, ...overrides })).toBe(expected);
  });

  test.each([
    // A fractional floor or cap never yields a fractional target.
    [{ queueDepth: 3, minWorkers: 2.5 }, 2],
    [{ queueDepth: 100000, running: 10000, maxWorkers: 7.9 }, 7],
    [{ queueDepth: -5, running: 10 }, 0],
    [{ queueDepth: 1, minWorkers: 3, maxWorkers: 0 }, 0],
  ] as const)("limits with %o give %i", (overrides, expected) => {
    expect(stepPolicy({ ...base, ...overrides })).toBe(expected);
  });
});
