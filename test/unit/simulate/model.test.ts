import { describe, expect, test } from "vitest";
import { World } from "../../../src/simulate/model.js";
import { simulate } from "../../../src/simulate/run.js";
import type { Cluster, Task } from "../../../src/simulate/input.js";
import type { PolicyFunction } from "../../../src/policy/types.js";

/** Tiny worlds with answers worked out by hand: the model's rules, one by one. */
const cluster = (
  overrides: Partial<Cluster> = {},
  startup: [number, number] = [60, 60],
  nodes = 10,
): Cluster => ({
  concurrency: 1,
  intervalSeconds: 60,
  workersExitWhenQueueEmpty: true,
  regions: [{ name: "r", nodes, startupSeconds: startup }],
  ...overrides,
});
const tasks = (...seconds: number[]): Task[] => seconds.map((s) => ({ seconds: s, at: 0 }));
/** A policy that always wants `n` workers while there is work. */
const exactly =
  (n: number): PolicyFunction =>
  ({ queueDepth }) =>
    queueDepth > 0 ? n : 0;
const parameters = { maxWorkers: 1000, minWorkers: 0, rampFactor: 1000, scaleDownDelayMs: 0 };
const hints = { taskSeconds: 600, startupSeconds: 300 };

describe("the simulated world, rule by rule (through simulate)", () => {
  test.each([
    // name, cluster, trace, workers wanted, makespan s, node-seconds, mean wait s
    ["one worker, one task: start-up then the task", cluster(), tasks(120), 1, 180, 180, 60],
    ["concurrency 1 runs tasks one after the other", cluster(), tasks(120, 120), 1, 300, 300, 120],
    ["concurrency 2 runs them side by side", cluster({ concurrency: 2 }), tasks(120, 120), 1, 180, 180, 60],
    ["two workers share the queue", cluster(), tasks(120, 120, 120, 120), 2, 300, 600, 120],
    [
      "start-up is drawn from [low, high] (here fixed at 200 s)",
      cluster({}, [200, 200]),
      tasks(100),
      1,
      300,
      300,
      200,
    ],
  ] as const)("%s", (_name, world, trace, workers, makespan, nodeSeconds, meanWait) => {
    const result = simulate(world, [...trace], { policy: exactly(workers), parameters, hints });
    expect(result.makespanSeconds).toBe(makespan);
    expect(result.nodeHours * 3600).toBeCloseTo(nodeSeconds, 6);
    expect(result.meanWaitSeconds).toBeCloseTo(meanWait, 6);
    expect(result.tasksFinished).toBe(trace.length);
    expect(result.tasksInterrupted).toBe(0);
    expect(result.maxActive).toBe(workers);
  });

  test("a task enqueued later (`at`) waits for it, and the depth counts only what is enqueued", () => {
    const depths: number[] = [];
    const result = simulate(
      cluster(),
      [
        { seconds: 60, at: 0 },
        { seconds: 60, at: 150 },
      ],
      {
        policy: exactly(1),
        parameters,
        hints,
        onTick: (tick) => depths.push(tick.queueDepth),
      },
    );
    // Worker 1: hired 0, runs 60-120 and exits (queue empty). The second task arrives at 150; a new worker
    // is hired at the 180 s tick, starts at 240, finishes at 300.
    expect(depths.slice(0, 4)).toEqual([1, 1, 0, 1]);
    expect(result.makespanSeconds).toBe(300);
    expect(result.meanWaitSeconds).toBe((60 + 90) / 2);
    expect(result.hires).toBe(2);
  });

  test("workers that wait on an empty queue take a late task at once, and are billed while they wait", () => {
    const result = simulate(
      cluster({ workersExitWhenQueueEmpty: false }),
      [
        { seconds: 60, at: 0 },
        { seconds: 60, at: 150 },
      ],
      {
        policy: exactly(1),
        parameters: { ...parameters, scaleDownDelayMs: 300_000 },
        hints,
      },
    );
    // One worker: node at 0, starts 60, task 60-120, idles, takes the late task 150-210. The policy last
    // wanted it at the 180 s tick; 300 s later (480) the window lets the target fall to 0, the idle worker
    // is surplus, is drained and ends at once.
    expect(result.makespanSeconds).toBe(210);
    expect(result.hires).toBe(1);
    expect(result.drains).toBe(1);
    expect(result.nodeHours * 3600).toBe(480);
  });
});

describe("the simulated world, rule by rule (the model alone)", () => {
  const world = (nodes: number, trace: Task[], overrides: Partial<Cluster> = {}) =>
    new World(cluster(overrides, [60, 60], nodes), trace, () => 0.5);

  test("a hired worker waits for a free node; it gets the node its predecessor gives back", () => {
    const w = world(1, tasks(100, 100));
    w.hire("r", 2);
    expect(w.observe()[0]!.observation).toEqual({ running: 0, pending: 2, draining: 0, capacity: -1 });
    w.advanceTo(60);
    // The first has started and took a task; the second still waits for the node.
    expect(w.observe()[0]!.observation).toEqual({ running: 1, pending: 1, draining: 0, capacity: -1 });
    w.advanceTo(1000);
    // First: node 0-260 (60 s start-up, two tasks of 100 s; the queue empties). Second: node from 260,
    // starts at 320, finds nothing and leaves.
    expect(w.totals.nodeSeconds).toBe(260 + 60);
    expect(w.finished).toBe(true);
  });

  test("cancelling a worker that has no node costs nothing; the last hired is cancelled first", () => {
    const w = world(1, tasks(100));
    w.hire("r", 2);
    expect(w.cancelPending("r", 1)).toBe(1);
    w.advanceTo(1000);
    expect(w.totals.nodeSeconds).toBe(160);
    expect(w.totals.cancels).toBe(1);
  });

  test("cancelling a starting worker bills its node until then; running workers are never cancelled", () => {
    const w = world(5, tasks(600, 600));
    w.hire("r", 1);
    w.advanceTo(60); // running
    w.hire("r", 1);
    w.advanceTo(90);
    expect(w.cancelPending("r", 5)).toBe(1); // only the pending one
    w.advanceTo(10_000);
    expect(w.totals.nodeSeconds).toBe(30 + (60 + 1200));
    expect(w.totals.tasksFinished).toBe(2);
    expect(w.totals.tasksInterrupted).toBe(0);
  });

  test("a drained worker finishes the task in hand and takes no more", () => {
    const w = world(5, tasks(100, 100, 100), { concurrency: 1 });
    w.hire("r", 1);
    w.advanceTo(90);
    expect(w.drain("r", 1)).toBe(1);
    expect(w.observe()[0]!.observation).toMatchObject({ running: 0, draining: 1 });
    expect(w.queueDepth()).toBe(3); // one in flight, two waiting
    w.advanceTo(500);
    expect(w.totals.tasksFinished).toBe(1);
    expect(w.queueDepth()).toBe(2);
    expect(w.observe()[0]!.observation).toMatchObject({ running: 0, draining: 0, pending: 0 });
    expect(w.totals.nodeSeconds).toBe(160);
  });

  test("queue depth is waiting + in flight; a worker ends when its last slot has", () => {
    const w = world(5, tasks(100, 300, 50), { concurrency: 2 });
    w.hire("r", 1);
    w.advanceTo(60);
    expect(w.queueDepth()).toBe(3);
    w.advanceTo(160); // 100 s task done, the 50 s one taken
    expect(w.queueDepth()).toBe(2);
    w.advanceTo(210); // 50 s done, one slot exits (queue empty); the other still runs
    expect(w.queueDepth()).toBe(1);
    expect(w.observe()[0]!.observation.running).toBe(1);
    w.advanceTo(360);
    expect(w.finished).toBe(true);
    expect(w.totals.nodeSeconds).toBe(360);
  });
});
