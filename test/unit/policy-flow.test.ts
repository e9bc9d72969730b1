import { describe, expect, test } from "vitest";
import fc from "fast-check";
import {
  emptyFlow,
  enter,
  estimateFlow,
  leave,
  reconcile,
  removeNewest,
  type FlowState,
} from "../../src/policy/flow.js";

/** The flow bookkeeping under arbitrary sequences of what the daemon sees: counts are never lost or made up. */
const inside = (flow: FlowState) => flow.inside.reduce((sum, c) => sum + c.count, 0);
const exited = (flow: FlowState) => flow.exits.reduce((sum, e) => sum + e.count, 0);

type Step =
  | { kind: "enter"; count: number; unknown: boolean }
  | { kind: "leave"; count: number; record: boolean }
  | { kind: "remove"; count: number }
  | { kind: "reconcile"; observed: number; unknown: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("enter" as const),
    count: fc.integer({ min: -3, max: 30 }),
    unknown: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("leave" as const),
    count: fc.integer({ min: -3, max: 40 }),
    record: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("remove" as const), count: fc.integer({ min: -3, max: 40 }) }),
  fc.record({
    kind: fc.constant("reconcile" as const),
    observed: fc.integer({ min: 0, max: 60 }),
    unknown: fc.boolean(),
  }),
);

describe("flow bookkeeping (properties)", () => {
  test("the count inside follows the model, cohorts stay oldest first, exits stay within the window", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), fc.integer({ min: 1, max: 50 }), (steps, window) => {
        let flow = emptyFlow();
        let expected = 0;
        let now = 0;
        for (const s of steps) {
          now += 60;
          const before = flow;
          const knownBefore = flow.inside.filter((c) => !c.unknown).reduce((sum, c) => sum + c.count, 0);
          if (s.kind === "enter") {
            flow = enter(flow, now, s.count, s.unknown);
            expected += Math.max(0, s.count);
          } else if (s.kind === "leave") {
            flow = leave(flow, now, s.count, { record: s.record, window });
            const gone = Math.min(Math.max(0, s.count), expected);
            expected -= gone;
            if (!s.record) expect(flow.exits).toEqual(before.exits);
            else if (exited(before) + gone <= window && knownBefore === inside(before))
              expect(exited(flow)).toBe(exited(before) + gone);
          } else if (s.kind === "remove") {
            flow = removeNewest(flow, s.count);
            expected -= Math.min(Math.max(0, s.count), expected);
            expect(flow.exits).toEqual(before.exits);
          } else {
            flow = reconcile(flow, now, s.observed, window, s.unknown);
            expected = s.observed;
          }
          expect(inside(flow)).toBe(expected);
          expect(flow.inside.every((c) => c.count > 0)).toBe(true);
          for (let i = 1; i < flow.inside.length; i++)
            expect(flow.inside[i]!.at).toBeGreaterThanOrEqual(flow.inside[i - 1]!.at);
          expect(exited(flow)).toBeLessThanOrEqual(Math.max(window, exited(before)));
          expect(flow.exits.every((e) => e.count > 0 && e.seconds >= 0)).toBe(true);
        }
      }),
      { numRuns: 60 },
    );
  });

  test("the inputs are never changed (the controller keeps the previous state)", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 15 }), (steps) => {
        let flow = enter(enter(emptyFlow(), 0, 5), 30, 5);
        let now = 60;
        for (const s of steps) {
          const copy = structuredClone(flow);
          const next =
            s.kind === "enter"
              ? enter(flow, now, s.count, s.unknown)
              : s.kind === "leave"
                ? leave(flow, now, s.count, { record: s.record, window: 10 })
                : s.kind === "remove"
                  ? removeNewest(flow, s.count)
                  : reconcile(flow, now, s.observed, 10, s.unknown);
          expect(flow).toEqual(copy);
          flow = next;
          now += 60;
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe("flow bookkeeping (examples)", () => {
  test("items leave oldest first and each exit is its time inside, less the correction", () => {
    let flow = enter(emptyFlow(), 0, 3);
    flow = enter(flow, 100, 4);
    flow = leave(flow, 400, 5, { record: true, correction: 30, window: 100 });
    expect(flow.exits).toEqual([
      { seconds: 370, count: 3 },
      { seconds: 270, count: 2 },
    ]);
    expect(flow.inside).toEqual([{ at: 100, count: 2 }]);
  });

  test("an exit is never negative, even with a correction larger than the stay", () => {
    const flow = leave(enter(emptyFlow(), 100, 1), 110, 1, { record: true, correction: 60, window: 10 });
    expect(flow.exits).toEqual([{ seconds: 0, count: 1 }]);
  });

  test("cancels take the newest first: the oldest hires keep their age", () => {
    let flow = enter(emptyFlow(), 0, 3);
    flow = enter(flow, 60, 2);
    flow = enter(flow, 120, 2);
    expect(removeNewest(flow, 3).inside).toEqual([
      { at: 0, count: 3 },
      { at: 60, count: 1 },
    ]);
  });

  test("entries at the same time merge, unless one side was found on a first look", () => {
    const merged = enter(enter(emptyFlow(), 60, 2), 60, 3);
    expect(merged.inside).toEqual([{ at: 60, count: 5 }]);
    const found = enter(enter(emptyFlow(), 60, 2, true), 60, 3);
    expect(found.inside).toEqual([
      { at: 60, count: 2, unknown: true },
      { at: 60, count: 3 },
    ]);
    expect(enter(emptyFlow(), 60, 0)).toEqual(emptyFlow());
  });

  test("items found on a first look teach nothing when they leave", () => {
    const found = reconcile(emptyFlow(), 0, 4, 10, true);
    expect(found.inside).toEqual([{ at: 0, count: 4, unknown: true }]);
    const left = leave(found, 600, 4, { record: true, window: 10 });
    expect(left).toEqual(emptyFlow());
  });

  test("reconcile: missing items enter now, extra ones leave unrecorded, oldest first", () => {
    const flow = enter(enter(emptyFlow(), 0, 2), 60, 2);
    expect(reconcile(flow, 120, 4, 10)).toBe(flow);
    expect(reconcile(flow, 120, 6, 10).inside).toEqual([...flow.inside, { at: 120, count: 2 }]);
    const fewer = reconcile(flow, 120, 1, 10);
    expect(fewer).toEqual({ inside: [{ at: 60, count: 1 }], exits: [] });
  });

  test("the window keeps the newest exits, splitting the oldest entry", () => {
    let flow = leave(enter(emptyFlow(), 0, 4), 100, 4, { record: true, window: 6 });
    flow = leave(enter(flow, 100, 4), 300, 4, { record: true, window: 6 });
    expect(flow.exits).toEqual([
      { seconds: 100, count: 2 },
      { seconds: 200, count: 4 },
    ]);
  });
});

describe("flow median (Kaplan-Meier)", () => {
  const exitsOf = (...pairs: Array<[number, number]>): FlowState => ({
    inside: [],
    exits: pairs.map(([seconds, count]) => ({ seconds, count })),
  });

  test.each([
    // exits [seconds, count], hint, options, expected
    { exits: [[200, 3]], hint: 100, opts: {}, want: { seconds: 200, source: "measured", samples: 3 } },
    { exits: [[200, 2]], hint: 100, opts: {}, want: { seconds: 100, source: "hint", samples: 2 } },
    {
      exits: [[200, 2]],
      hint: 100,
      opts: { minSamples: 2 },
      want: { seconds: 200, source: "measured", samples: 2 },
    },
    // Below the hint: believed only with trustBelowHint exits.
    {
      exits: [[50, 10]],
      hint: 100,
      opts: { trustBelowHint: 11 },
      want: { seconds: 100, source: "hint", samples: 10 },
    },
    {
      exits: [[50, 10]],
      hint: 100,
      opts: { trustBelowHint: 10 },
      want: { seconds: 50, source: "measured", samples: 10 },
    },
    // At or above the hint, a median is believed without a whole wave.
    {
      exits: [[200, 3]],
      hint: 100,
      opts: { trustBelowHint: 10 },
      want: { seconds: 200, source: "measured", samples: 3 },
    },
    {
      exits: [[100, 3]],
      hint: 100,
      opts: { trustBelowHint: 10 },
      want: { seconds: 100, source: "measured", samples: 3 },
    },
    // Exits in any order (a window of several batches).
    {
      exits: [
        [30, 2],
        [10, 2],
        [20, 1],
      ],
      hint: 1,
      opts: {},
      want: { seconds: 20, source: "measured", samples: 5 },
    },
    // The median is the time at which half have left.
    {
      exits: [
        [10, 2],
        [20, 1],
        [30, 2],
      ],
      hint: 1,
      opts: {},
      want: { seconds: 20, source: "measured", samples: 5 },
    },
    {
      exits: [
        [10, 1],
        [20, 1],
        [30, 3],
      ],
      hint: 1,
      opts: {},
      want: { seconds: 30, source: "measured", samples: 5 },
    },
    { exits: [[100, 3]], hint: 100, opts: {}, want: { seconds: 100, source: "measured", samples: 3 } },
  ] as const)(
    "exits $exits, hint $hint, $opts: $want.source $want.seconds",
    ({ exits, hint, opts, want }) => {
      const flow = exitsOf(...(exits as unknown as Array<[number, number]>));
      expect(estimateFlow(flow, 1000, { hint, ...opts })).toEqual(want);
    },
  );

  test("items still inside: a tenth of them (at least 3) older than the hint raise it to their age", () => {
    // 3 inside for 900 s: at least 900.
    expect(estimateFlow(enter(emptyFlow(), 0, 3), 900, { hint: 600 })).toEqual({
      seconds: 900,
      source: "at-least",
      samples: 0,
    });
    // 2 inside: not enough at risk, the hint stands.
    expect(estimateFlow(enter(emptyFlow(), 0, 2), 900, { hint: 600 })).toMatchObject({ source: "hint" });
    // 3 slow ones among 40 are not a tenth: the hint stands (a slow batch moves it, a few stragglers do not).
    const stragglers = enter(enter(emptyFlow(), 0, 3), 800, 37);
    expect(estimateFlow(stragglers, 900, { hint: 600 })).toMatchObject({ seconds: 600, source: "hint" });
    // Exactly as old as the hint: still the hint.
    expect(estimateFlow(enter(emptyFlow(), 0, 3), 600, { hint: 600 })).toMatchObject({ source: "hint" });
    // Younger than the hint: the hint.
    expect(estimateFlow(enter(emptyFlow(), 0, 30), 500, { hint: 600 })).toMatchObject({
      seconds: 600,
      source: "hint",
    });
    // Found on a first look: their age is unknown, so they count for nothing.
    expect(estimateFlow(enter(emptyFlow(), 0, 30, true), 900, { hint: 600 })).toMatchObject({
      seconds: 600,
      source: "hint",
    });
  });

  test("an exit counts before the items censored at the same time", () => {
    // 2 exits at 100, 2 inside aged 100: half have left by 100, so the median is 100.
    const flow: FlowState = { inside: [{ at: 0, count: 2 }], exits: [{ seconds: 100, count: 2 }] };
    expect(estimateFlow(flow, 100, { hint: 1, minSamples: 2 })).toEqual({
      seconds: 100,
      source: "measured",
      samples: 2,
    });
  });

  test("property: identical stays at or above the hint are measured exactly", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 3, max: 500 }),
        fc.integer({ min: 1, max: 10_000 }),
        (seconds, count, hint) => {
          const estimate = estimateFlow(exitsOf([seconds, count]), 0, { hint });
          expect(estimate.samples).toBe(count);
          // With no items inside, a whole wave has left: the median is believed either way.
          expect(estimate).toMatchObject({ seconds, source: "measured" });
        },
      ),
    );
  });

  test("property: the median lies between the shortest and the longest stay", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 20 })), {
          minLength: 1,
          maxLength: 20,
        }),
        (pairs) => {
          const estimate = estimateFlow(exitsOf(...pairs), 0, { hint: 1, minSamples: 1, trustBelowHint: 0 });
          const times = pairs.map(([s]) => s);
          expect(estimate.source).toBe("measured");
          expect(estimate.seconds).toBeGreaterThanOrEqual(Math.min(...times));
          expect(estimate.seconds).toBeLessThanOrEqual(Math.max(...times));
        },
      ),
    );
  });
});
