import type { PolicyFunction, PolicyInput } from "./types.js";
import { applyLimits } from "./step.js";

export interface PredictiveOptions {
  /**
   * A new worker is hired only if it is expected to stay busy at least this many times its start-up
   * (billed while it starts, useless until it runs). Higher: cheaper and slower.
   */
  paybackRatio: number;
  /** Used until the controller has measured them (and by callers that pass no estimates). */
  taskSeconds: number;
  startupSeconds: number;
}

export const DEFAULT_PAYBACK_RATIO = 8;

/** The reasoning of the predictive policy, step by step, for `workforce plan` and the tests. */
export interface PredictiveSizing {
  taskSeconds: number;
  startupSeconds: number;
  /** Slots busy now: min(running x concurrency, depth). */
  busySlots: number;
  /** Task-seconds left once a worker hired now has started (in-flight tasks count half done). */
  workAfterStartup: number;
  /** The most workers that each get paybackRatio x start-up of work. */
  payingWorkers: number;
  /** Waves of tasks those workers need, and the fewest workers that need no more waves. */
  waves: number;
  raw: number;
  target: number;
}

/**
 * Size the workforce so that each new worker pays back its start-up: with N workers sharing the work left
 * after a new one has started (W'), each is busy about W' / (N x concurrency); require that to be at least
 * paybackRatio x start-up, so N <= W' / (concurrency x paybackRatio x start-up). Then take the fewest
 * workers that finish in as many waves of tasks (more would start up for nothing), never more than the queue
 * can keep busy, and apply the shared limits: ramp, queue, maxWorkers, minWorkers.
 */
export function predictiveSizing(input: PolicyInput, options: PredictiveOptions): PredictiveSizing {
  const taskSeconds = Math.max(1, input.estimates?.taskSeconds ?? options.taskSeconds);
  const startupSeconds = Math.max(1, input.estimates?.startupSeconds ?? options.startupSeconds);
  const depth = Math.max(0, input.queueDepth);
  const busySlots = Math.min(input.running * input.concurrency, depth);
  const work = (depth - busySlots / 2) * taskSeconds;
  const workAfterStartup = Math.max(0, work - busySlots * startupSeconds);
  const payingWorkers = Math.floor(
    workAfterStartup / (input.concurrency * Math.max(0, options.paybackRatio) * startupSeconds || 1),
  );
  const queueWorkers = Math.ceil(depth / input.concurrency);
  const sized = Math.max(1, Math.min(payingWorkers, queueWorkers));
  const waves = Math.ceil(depth / (sized * input.concurrency));
  const raw = depth === 0 ? 0 : Math.ceil(depth / (Math.max(1, waves) * input.concurrency));
  return {
    taskSeconds,
    startupSeconds,
    busySlots,
    workAfterStartup,
    payingWorkers,
    waves,
    raw,
    target: applyLimits(raw, input),
  };
}

export function predictivePolicy(options: PredictiveOptions): PolicyFunction {
  return (input) => predictiveSizing(input, options).target;
}
