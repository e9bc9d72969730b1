import type { Cluster, Task } from "./input.js";
import { normal, seededRandom } from "./random.js";

/**
 * The reference workloads of the bench and the README: concurrency 4, regions of 200, 200 and 100 nodes,
 * start-up uniform in 3-8 minutes, 60 s ticks, workers that exit on an empty queue.
 */
export const REFERENCE_CLUSTER: Cluster = {
  concurrency: 4,
  intervalSeconds: 60,
  workersExitWhenQueueEmpty: true,
  regions: [
    { name: "a", nodes: 200, startupSeconds: [180, 480] },
    { name: "b", nodes: 200, startupSeconds: [180, 480] },
    { name: "c", nodes: 100, startupSeconds: [180, 480] },
  ],
};

export function uniformTrace(count: number, seconds: number): Task[] {
  return Array.from({ length: count }, () => ({ seconds, at: 0 }));
}

/** Log-normal task times: `median` seconds, shape `sigma`, capped at `cap` seconds. */
export function logNormalTrace(count: number, median: number, sigma: number, cap: number, seed = 7): Task[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => ({
    seconds: Math.min(cap, Math.max(1, Math.round(median * Math.exp(sigma * normal(random))))),
    at: 0,
  }));
}

export const REFERENCE_TRACES: ReadonlyArray<{ name: string; describe: string; tasks: () => Task[] }> = [
  { name: "a", describe: "10,000 x 10 min", tasks: () => uniformTrace(10_000, 600) },
  {
    name: "b",
    describe: "10,000 log-normal (median 9 min, sigma 0.5, cap 60 min)",
    tasks: () => logNormalTrace(10_000, 540, 0.5, 3600),
  },
  { name: "c", describe: "300 x 20 min", tasks: () => uniformTrace(300, 1200) },
];
