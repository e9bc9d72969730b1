import { describe as group, expect, test } from "vitest";
import { builtinPolicy } from "../../../src/controller/policy-loader.js";
import { simulate, type SimulatedTick } from "../../../src/simulate/run.js";
import {
  logNormalTrace,
  REFERENCE_CLUSTER,
  REFERENCE_TRACES,
  uniformTrace,
} from "../../../src/simulate/reference.js";
import type { Cluster, Task } from "../../../src/simulate/input.js";

/**
 * Every tick of every simulated run keeps the daemon's promises, whatever the policy: never more than
 * rampFactor x (running + 1) for the built-in policies, never above the cap or the queue, hires only up to
 * the target, drains only of surplus workers, and no task is ever interrupted.
 */
const clusters: Record<string, Cluster> = {
  reference: REFERENCE_CLUSTER,
  "workers wait on an empty queue": { ...REFERENCE_CLUSTER, workersExitWhenQueueEmpty: false },
  "one small slow region": {
    concurrency: 2,
    intervalSeconds: 30,
    workersExitWhenQueueEmpty: true,
    regions: [{ name: "only", nodes: 12, startupSeconds: [60, 1800] }],
  },
};
const arrivals = (): Task[] =>
  Array.from({ length: 600 }, (_, i) => ({ seconds: 120 + ((i * 37) % 900), at: Math.floor(i / 50) * 1200 }));
const reference: Record<string, () => Task[]> = Object.fromEntries(
  REFERENCE_TRACES.map((trace) => [`(${trace.name}) ${trace.describe}`, trace.tasks]),
);
const small: Record<string, () => Task[]> = {
  "a few short tasks": () => uniformTrace(7, 30),
  "waves of arrivals": arrivals,
  "heavy tail": () => logNormalTrace(400, 300, 1.2, 7200, 3),
};
const settings = [
  { maxWorkers: 50000, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 300_000 },
  { maxWorkers: 37, minWorkers: 2, rampFactor: 2, scaleDownDelayMs: 0 },
];

/** The promises a tick broke (an empty list when it kept them all). */
function brokenPromises(
  tick: SimulatedTick,
  cluster: Cluster,
  parameters: (typeof settings)[number],
): string[] {
  const { plan } = tick;
  const broken: string[] = [];
  const check = (kept: boolean, promise: string) => {
    if (!kept) broken.push(promise);
  };
  const ramp = Math.floor(parameters.rampFactor * (tick.running + 1));
  const floor = Math.min(parameters.minWorkers, parameters.maxWorkers);
  check(plan.desired <= Math.max(ramp, floor), "desired <= rampFactor x (running + 1)");
  check(plan.desired <= parameters.maxWorkers, "desired <= maxWorkers");
  check(plan.desired <= (tick.queueDepth === 0 ? 0 : Math.max(tick.queueDepth, floor)), "desired <= queue");
  // Hires fill the gap to what the policy wants, no more; the active workers stay under the cap.
  const active = tick.running + tick.pending;
  check(tick.hired <= Math.max(0, plan.desired - active), "hires <= desired - active");
  check(
    active - tick.cancelled + tick.hired <= Math.max(active, parameters.maxWorkers),
    "active <= maxWorkers",
  );
  // Only surplus workers are drained: never one the queue can keep busy.
  const busy = Math.ceil(tick.queueDepth / cluster.concurrency);
  check(tick.drained <= Math.max(0, tick.running - Math.max(plan.target, busy)), "drains only surplus");
  check(tick.cancelled <= tick.pending, "cancels only pending workers");
  return broken;
}

const describe = (tick: SimulatedTick) =>
  JSON.stringify({ ...tick, plan: { ...tick.plan, regions: tick.plan.regions }, estimates: undefined });

group("invariants on every tick of every simulated run", () => {
  for (const [clusterName, cluster] of Object.entries(clusters)) {
    for (const policy of ["step", "proportional", "predictive"] as const) {
      test(`${policy} on the ${clusterName} cluster`, () => {
        const traces = clusterName === "reference" ? { ...reference, ...small } : small;
        for (const [traceName, trace] of Object.entries(traces)) {
          const tasks = trace();
          for (const parameters of settings) {
            for (const seed of [1, 2]) {
              let ticks = 0;
              const violations: string[] = [];
              const result = simulate(cluster, tasks, {
                policy: builtinPolicy(policy),
                parameters,
                hints: { taskSeconds: 600, startupSeconds: 300 },
                seed,
                onTick: (tick) => {
                  ticks++;
                  const broken = brokenPromises(tick, cluster, parameters);
                  if (broken.length > 0)
                    violations.push(`${broken.join(", ")} at ${tick.at} s: ${describe(tick)}`);
                },
              });
              const run = `${traceName}, ${JSON.stringify(parameters)}, seed ${seed}`;
              expect(violations, run).toEqual([]);
              expect(ticks, run).toBeGreaterThan(0);
              expect(result.tasksInterrupted, run).toBe(0);
              expect(result.tasksFinished, run).toBe(tasks.length);
            }
          }
        }
      });
    }
  }
});
