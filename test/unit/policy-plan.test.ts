import { describe, expect, test } from "vitest";
import {
  decide,
  planShrink,
  spreadHires,
  stabilizeTarget,
  stepPolicy,
  PolicyError,
  type DecideInput,
  type RegionView,
} from "../../src/policy/index.js";

const sum = (values: Record<string, number>) => Object.values(values).reduce((a, b) => a + b, 0);

describe("spreading hires over regions", () => {
  const regions = (capacities: number[]) => capacities.map((capacity, i) => ({ name: `r${i}`, capacity }));

  test.each([
    // total, capacities, expected
    [10, [100, 0, 5], [5, 0, 5]],
    [5, [10, 10], [3, 2]], // upstream's lay-off spread gave [2, 2] and lost one
    [7, [10, 10, 10], [3, 2, 2]],
    [100, [-3, 40, 30, 1000], [0, 36, 30, 34]],
    [50, [10, 5], [10, 5]], // not enough room: everything that fits
    [0, [10, 10], [0, 0]],
    [7, [10, 10, 10, 10, 10], [2, 2, 1, 1, 1]], // ties go to the region listed first
    [3, [10, 10, 10, 10], [1, 1, 1, 0]],
    [9, [2, 10, 10], [2, 4, 3]], // a full region's share goes to the others, first listed first
    [4, [1.9, 2.5], [1, 2]], // fractional room rounds down
  ])("%i over %j -> %j", (total, capacities, expected) => {
    const result = spreadHires(total, regions(capacities));
    expect(capacities.map((_, i) => result[`r${i}`])).toEqual(expected);
  });

  test("delivers the whole amount whenever capacity allows, never above a region's capacity", () => {
    for (const total of [1, 2, 5, 17, 99, 500]) {
      for (const capacities of [
        [10, 10],
        [1, 1, 1, 100],
        [0, 3, 7],
        [250, 250, 1],
      ]) {
        const result = spreadHires(total, regions(capacities));
        const room = capacities.reduce((a, c) => a + Math.max(0, c), 0);
        expect(sum(result)).toBe(Math.min(total, room));
        capacities.forEach((capacity, i) =>
          expect(result[`r${i}`]).toBeLessThanOrEqual(Math.max(0, capacity)),
        );
      }
    }
  });

  test("weights skew the shares", () => {
    const result = spreadHires(40, [
      { name: "big", capacity: 100, weight: 3 },
      { name: "small", capacity: 100, weight: 1 },
    ]);
    expect(result).toEqual({ big: 30, small: 10 });
  });

  test("unhealthy regions get nothing", () => {
    const result = spreadHires(10, [
      { name: "ok", capacity: 100 },
      { name: "down", capacity: 100, healthy: false },
    ]);
    expect(result).toEqual({ ok: 10, down: 0 });
  });
});

describe("shrink plan", () => {
  test("cancels pending workers above the target, regions with most pending first", () => {
    const plan = planShrink({
      target: 10,
      queueDepth: 100,
      concurrency: 10,
      regions: [
        { name: "a", running: 5, pending: 2 },
        { name: "b", running: 0, pending: 8 },
      ],
    });
    // 15 active, target 10: cancel 5 pending, from b (8) down to a's level first.
    expect(plan.cancel).toEqual({ b: 5 });
    expect(plan.drain).toEqual({});
  });

  test("never drains a worker the queue can still keep busy", () => {
    // The target says 2, but 40 tasks at concurrency 4 keep 10 workers busy.
    const plan = planShrink({
      target: 2,
      queueDepth: 40,
      concurrency: 4,
      regions: [{ name: "a", running: 12, pending: 0 }],
    });
    expect(plan.busyWorkers).toBe(10);
    expect(plan.surplus).toBe(2);
    expect(plan.drain).toEqual({ a: 2 });
  });

  test("draining workers are neither capacity nor surplus", () => {
    const plan = planShrink({
      target: 0,
      queueDepth: 0,
      concurrency: 1,
      regions: [{ name: "a", running: 3, pending: 0 }],
    });
    expect(plan.drain).toEqual({ a: 3 });
  });

  test("cancels pending before draining running, and only drains what is still surplus", () => {
    const plan = planShrink({
      target: 4,
      queueDepth: 4,
      concurrency: 1,
      regions: [
        { name: "a", running: 6, pending: 3 },
        { name: "b", running: 2, pending: 1 },
      ],
    });
    expect(sum(plan.cancel)).toBe(4);
    expect(plan.surplus).toBe(4);
    expect(sum(plan.drain)).toBe(4);
    expect(plan.drain.a).toBe(4); // most running first
  });

  test("stale regions are not acted on", () => {
    const plan = planShrink({
      target: 0,
      queueDepth: 0,
      concurrency: 1,
      regions: [
        { name: "stale", running: 5, pending: 5, actionable: false },
        { name: "fresh", running: 1, pending: 1 },
      ],
    });
    expect(plan.cancel).toEqual({ fresh: 1 });
    expect(plan.drain).toEqual({ fresh: 1 });
  });
});

describe("scale-down stabilization", () => {
  test("grows at once, shrinks only to the highest target of the window", () => {
    let history = stabilizeTarget([], 0, 10, 300_000).history;
    const grown = stabilizeTarget(history, 60_000, 40, 300_000);
    expect(grown.target).toBe(40);
    history = grown.history;
    const dip = stabilizeTarget(history, 120_000, 5, 300_000);
    expect(dip.target).toBe(40);
    const later = stabilizeTarget(dip.history, 60_000 + 300_000, 5, 300_000);
    expect(later.target).toBe(5);
  });
});

describe("decide", () => {
  const parameters = {
    concurrency: 4,
    maxWorkers: 50000,
    minWorkers: 0,
    rampFactor: 10,
    scaleDownDelayMs: 0,
  };
  const view = (
    name: string,
    running: number,
    pending: number,
    capacity: number,
    fresh = true,
  ): RegionView => ({
    name,
    fresh,
    observation: { running, pending, draining: 0, capacity },
  });
  const input = (overrides: Partial<DecideInput>): DecideInput => ({
    queueDepth: 0,
    regions: [],
    policy: stepPolicy,
    parameters,
    history: [],
    now: 1_000_000,
    ...overrides,
  });

  test("a failed queue read holds: nothing hired, nothing shrunk", () => {
    const { plan } = decide(input({ queueDepth: undefined, regions: [view("a", 5, 5, 10)] }));
    expect(plan.hold).toMatch(/queue depth unknown/);
    expect(plan.regions).toEqual([{ region: "a", hire: 0, cancel: 0, drain: 0 }]);
  });

  test("the seed example hires 10 from nothing, spread over regions by capacity", () => {
    const { plan } = decide(input({ queueDepth: 1600, regions: [view("a", 0, 0, 3), view("b", 0, 0, 100)] }));
    expect(plan.desired).toBe(10);
    expect(plan.regions.map((r) => r.hire)).toEqual([3, 7]);
  });

  test("pending workers count against the target: no more hires while hired ones wait", () => {
    const { plan } = decide(input({ queueDepth: 1600, regions: [view("a", 0, 10, 100)] }));
    expect(plan.hire).toBe(0);
  });

  test("a stale region keeps its workers in the totals but gets no hires", () => {
    const { plan } = decide(
      input({ queueDepth: 1600, regions: [view("a", 3, 0, 100, false), view("b", 0, 0, 100)] }),
    );
    expect(plan.desired).toBe(40);
    expect(plan.regions).toEqual([
      { region: "a", hire: 0, cancel: 0, drain: 0 },
      { region: "b", hire: 37, cancel: 0, drain: 0 },
    ]);
  });

  test("stabilization keeps workers through a dip, then lets them go", () => {
    const p = { ...parameters, scaleDownDelayMs: 300_000 };
    const first = decide(
      input({ parameters: p, queueDepth: 1600, regions: [view("a", 10, 0, 100)], now: 0 }),
    );
    expect(first.plan.target).toBe(50);
    const dip = decide(
      input({
        parameters: p,
        queueDepth: 0,
        regions: [view("a", 10, 0, 100)],
        history: first.history,
        now: 60_000,
      }),
    );
    expect(dip.plan.desired).toBe(0);
    expect(dip.plan.regions[0]?.drain).toBe(0);
    const after = decide(
      input({
        parameters: p,
        queueDepth: 0,
        regions: [view("a", 10, 0, 100)],
        history: dip.history,
        now: 400_000,
      }),
    );
    expect(after.plan.regions[0]?.drain).toBe(10);
  });

  test.each([
    ["NaN", Number.NaN],
    ["-1", -1],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["5", "5"],
    ["undefined", undefined],
  ])("a policy that answers %s is an error naming the answer, not a plan", (shown, answer) => {
    const policy = () => answer as number;
    expect(() => decide(input({ queueDepth: 5, policy }))).toThrow(PolicyError);
    expect(() => decide(input({ queueDepth: 5, policy }))).toThrow(
      expect.objectContaining({
        name: "PolicyError",
        code: "PolicyError",
        message: `policy returned ${shown}; expected a finite number >= 0`,
      }),
    );
  });

  test("maxWorkers caps a custom policy too", () => {
    const { plan } = decide(
      input({
        queueDepth: 5,
        policy: () => 1_000_000,
        parameters: { ...parameters, maxWorkers: 7 },
        regions: [view("a", 0, 0, 100)],
      }),
    );
    expect(plan.desired).toBe(7);
  });
});

describe("regions that cannot drain", () => {
  test("a region without a back channel gets no drains; its surplus is not moved elsewhere", () => {
    const plan = planShrink({
      target: 0,
      queueDepth: 0,
      concurrency: 1,
      regions: [
        { name: "no-channel", running: 4, pending: 0, drainable: false },
        { name: "with-channel", running: 2, pending: 0 },
      ],
    });
    expect(plan.drain).toEqual({ "with-channel": 2 });
  });
});

describe("shrinking: ties and large counts", () => {
  test("equal regions: the one listed first is cut first", () => {
    const plan = planShrink({
      target: 3,
      queueDepth: 0,
      concurrency: 1,
      regions: [
        { name: "a", running: 0, pending: 2 },
        { name: "b", running: 0, pending: 2 },
      ],
    });
    expect(plan.cancel).toEqual({ a: 1 });
  });

  test("cuts of billions of workers are planned level by level, not one by one", () => {
    const plan = planShrink({
      target: 0,
      queueDepth: 0,
      concurrency: 1,
      regions: [
        { name: "a", running: 3_000_000_000, pending: 0 },
        { name: "b", running: 1_000_000_000, pending: 0 },
      ],
    });
    expect(plan.drain).toEqual({ a: 3_000_000_000, b: 1_000_000_000 });
  });

  test("a negative queue depth keeps no worker busy", () => {
    const plan = planShrink({
      target: 0,
      queueDepth: -4,
      concurrency: 2,
      regions: [{ name: "a", running: 3, pending: 0 }],
    });
    expect(plan).toMatchObject({ busyWorkers: 0, surplus: 3, drain: { a: 3 } });
  });
});
