import { describe, expect, test } from "vitest";
import { emptyFlow, enter, estimateFlow, leave, type FlowState } from "../../src/policy/flow.js";
import { currentEstimates, emptyEstimator, observeTick, recordActions } from "../../src/policy/estimate.js";

/** The estimators on synthetic observations: counts only, as the daemon sees them. */
const WINDOW = 1000;
const hints = { taskSeconds: 600, startupSeconds: 300 };

/** Items entering at `at` and leaving after `durations`, observed every `tick` seconds until `until`. */
function observedFlow(
  entries: Array<{ at: number; durations: number[] }>,
  tick: number,
  until: number,
): FlowState {
  let flow = emptyFlow();
  const exits = entries.flatMap(({ at, durations }) => durations.map((d) => at + d));
  let lastTick = 0;
  for (let now = 0; now <= until; now += tick) {
    for (const { at, durations } of entries)
      if (at > lastTick - tick && at <= now && at > now - tick) flow = enter(flow, at, durations.length);
    const left = exits.filter((time) => time > now - tick && time <= now).length;
    if (left > 0) flow = leave(flow, now, left, { record: true, window: WINDOW });
    lastTick = now;
  }
  return flow;
}

describe("flow estimator (first in, first out; Kaplan-Meier median)", () => {
  test("cold start: nothing observed gives the hint", () => {
    expect(estimateFlow(emptyFlow(), 0, { hint: 300 })).toEqual({ seconds: 300, source: "hint", samples: 0 });
  });

  test("regular items: the median is their time", () => {
    const flow = observedFlow(
      [0, 60, 120].map((at) => ({ at, durations: Array(20).fill(600) })),
      60,
      1200,
    );
    expect(estimateFlow(flow, 1200, { hint: 100 })).toMatchObject({
      seconds: 600,
      source: "measured",
      samples: 60,
    });
  });

  test("outliers do not move it: two of forty items that take ten times as long", () => {
    const durations = [...Array(38).fill(300), 3000, 3000];
    const flow = observedFlow([{ at: 0, durations }], 60, 3600);
    expect(estimateFlow(flow, 3600, { hint: 100 }).seconds).toBe(300);
  });

  test("a stuck item (never leaves) does not move it either", () => {
    const flow = observedFlow([{ at: 0, durations: [...Array(29).fill(240), 1e9] }], 60, 7200);
    expect(estimateFlow(flow, 7200, { hint: 100 })).toMatchObject({ seconds: 240, source: "measured" });
  });

  test("one stuck item alone does not make everything look slow", () => {
    let flow = enter(emptyFlow(), 0, 1); // stuck since 0
    flow = enter(flow, 3000, 20); // a fresh batch, a minute old at 3060
    expect(estimateFlow(flow, 3060, { hint: 600 })).toMatchObject({ seconds: 600, source: "hint" });
  });

  test("items still inside count: long tasks with no exit yet push the estimate above the hint", () => {
    // 40 tasks of 20 minutes, 15 minutes in: none has finished, so they take at least ~15 minutes.
    const flow = observedFlow([{ at: 0, durations: Array(40).fill(1200) }], 60, 900);
    const estimate = estimateFlow(flow, 900, { hint: 600 });
    expect(estimate).toMatchObject({ seconds: 900, source: "at-least", samples: 0 });
  });

  test("the first to leave are the quick ones: an early median below the hint waits for a whole wave", () => {
    // Forty tasks start every minute for ten minutes, each batch taking 1 to 10 minutes (median ~5.5).
    const durations = Array.from({ length: 40 }, (_, i) => 60 + Math.floor((i * 540) / 39));
    const entries = Array.from({ length: 10 }, (_, minute) => ({ at: minute * 60, durations }));
    // Five minutes in, the quick ones of every batch have left and are matched to the oldest batches.
    const early = observedFlow(entries, 60, 300);
    expect(estimateFlow(early, 300, { hint: 600 })).toMatchObject({ seconds: 600, source: "hint" });
    const late = observedFlow(entries, 60, 1500);
    const estimate = estimateFlow(late, 1500, { hint: 600 });
    expect(estimate.source).toBe("measured");
    expect(estimate.seconds).toBeGreaterThanOrEqual(300);
    expect(estimate.seconds).toBeLessThanOrEqual(360);
  });

  test("the window follows a new batch", () => {
    let flow = observedFlow([{ at: 0, durations: Array(WINDOW).fill(600) }], 60, 700);
    expect(estimateFlow(flow, 700, { hint: 1 }).seconds).toBe(600);
    for (let i = 1; i <= 3; i++) {
      flow = enter(flow, 700 * i, WINDOW);
      flow = leave(flow, 700 * i + 120, WINDOW, { record: true, window: WINDOW });
    }
    expect(estimateFlow(flow, 3000, { hint: 1 }).seconds).toBe(120);
  });
});

describe("workload estimator (what the controller feeds from ticks)", () => {
  test("cold start: the hints, for every region", () => {
    const estimates = currentEstimates(emptyEstimator(), 0, hints, { a: 10, b: 0 });
    expect(estimates.taskSeconds).toBe(600);
    expect(estimates.startupSeconds).toBe(300);
    expect(estimates.startup.a).toMatchObject({ source: "hint" });
  });

  test("start-up per region from pending counts: hired, then seen running", () => {
    // Region a: 20 workers hired at 0, half running at 180, all at 240. Region b: hired at 0, running at 600.
    let state = recordActions(emptyEstimator(), 0, [
      { region: "a", hired: 20, cancelled: 0 },
      { region: "b", hired: 20, cancelled: 0 },
    ]);
    const pendingAt: Record<number, [number, number]> = {
      60: [20, 20],
      120: [20, 20],
      180: [10, 20],
      240: [0, 20],
    };
    for (let at = 60; at <= 660; at += 60) {
      const [a, b] = pendingAt[at] ?? [0, at >= 600 ? 0 : 20];
      state = observeTick(state, {
        at,
        queueDepth: 0,
        concurrency: 1,
        regions: [
          { name: "a", fresh: true, observation: { running: 20 - a, pending: a, draining: 0, capacity: 0 } },
          { name: "b", fresh: true, observation: { running: 20 - b, pending: b, draining: 0, capacity: 0 } },
        ],
      });
    }
    const estimates = currentEstimates(state, 660, hints, { a: 30, b: 10 });
    // Seen running at 180: started in (120, 180], so 150 s; the correction takes half a tick off.
    expect(estimates.startup.a).toMatchObject({ seconds: 150, source: "measured", samples: 20 });
    expect(estimates.startup.b).toMatchObject({ seconds: 570, source: "measured" });
    // The next hire's start-up weighs regions by their room: (150 x 30 + 570 x 10) / 40.
    expect(estimates.startupSeconds).toBeCloseTo((150 * 30 + 570 * 10) / 40, 6);
  });

  test("a restarted daemon learns nothing from workers it found: their hire and start times are unknown", () => {
    const seen = (at: number, pending: number, running: number, queueDepth: number) => ({
      at,
      queueDepth,
      concurrency: 1,
      regions: [{ name: "a", fresh: true, observation: { running, pending, draining: 0, capacity: 0 } }],
    });
    // First look: 20 pending (hired by the old process long ago) and 30 running, 100 tasks.
    let state = observeTick(emptyEstimator(), seen(0, 20, 30, 100));
    // A minute later the 20 have started and 30 tasks (those in flight before the restart) have finished.
    state = observeTick(state, seen(60, 0, 50, 70));
    const estimates = currentEstimates(state, 60, hints);
    expect(estimates.startup.a).toMatchObject({ seconds: 300, source: "hint", samples: 0 });
    expect(estimates.task).toMatchObject({ seconds: 600, source: "hint", samples: 0 });
  });

  test("cancelled workers leave the start-up flow without a sample", () => {
    let state = recordActions(emptyEstimator(), 0, [{ region: "a", hired: 10, cancelled: 0 }]);
    state = recordActions(state, 60, [{ region: "a", hired: 0, cancelled: 10 }]);
    state = observeTick(state, {
      at: 120,
      queueDepth: 0,
      concurrency: 1,
      regions: [
        { name: "a", fresh: true, observation: { running: 0, pending: 0, draining: 0, capacity: 0 } },
      ],
    });
    expect(currentEstimates(state, 120, hints).startup.a).toMatchObject({ source: "hint", samples: 0 });
  });

  test("task time from depth and busy workers: 40 workers, tasks of 10 minutes", () => {
    let state = emptyEstimator();
    // 400 tasks, 40 workers of concurrency 1 running from 0: every 600 s, 40 tasks finish.
    for (let at = 0; at <= 3600; at += 60) {
      const depth = 400 - 40 * Math.floor(at / 600);
      state = observeTick(state, {
        at,
        queueDepth: depth,
        concurrency: 1,
        regions: [
          { name: "a", fresh: true, observation: { running: 40, pending: 0, draining: 0, capacity: 0 } },
        ],
      });
    }
    expect(currentEstimates(state, 3600, hints).task).toMatchObject({ seconds: 600, source: "measured" });
  });

  test("a stale region is not read for start-ups, and an unread queue changes nothing", () => {
    let state = recordActions(emptyEstimator(), 0, [{ region: "a", hired: 5, cancelled: 0 }]);
    state = observeTick(state, {
      at: 60,
      queueDepth: undefined,
      concurrency: 1,
      regions: [
        { name: "a", fresh: false, observation: { running: 0, pending: 0, draining: 0, capacity: 0 } },
      ],
    });
    expect(state.startup.a!.inside).toEqual([{ at: 0, count: 5 }]);
    expect(state.lastDepth).toBeUndefined();
  });
});
