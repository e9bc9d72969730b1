import type { PolicyInput } from "./types.js";

/** Upstream ai4s-jobq's step table, on r = floor(queue / concurrency). */
export function stepSize(tasksPerWorker: number): number {
  if (tasksPerWorker > 10000) return 1000;
  if (tasksPerWorker > 1000) return 400;
  if (tasksPerWorker > 100) return 50;
  if (tasksPerWorker > 20) return 15;
  if (tasksPerWorker > 10) return 5;
  return 1;
}

/** Never more than rampFactor x (running + 1): growth follows workers that actually run. */
export function rampLimit(input: Pick<PolicyInput, "running" | "rampFactor">): number {
  return Math.floor(input.rampFactor * (input.running + 1));
}

/** Caps shared by the built-in policies: ramp, queue, maxWorkers; then the minWorkers floor. An empty queue wants nobody. */
export function applyLimits(raw: number, input: PolicyInput): number {
  if (input.queueDepth <= 0) return 0;
  const capped = Math.min(raw, rampLimit(input), input.queueDepth, input.maxWorkers);
  const floored = Math.max(capped, Math.min(input.minWorkers, input.maxWorkers));
  return Math.max(0, Math.floor(floored));
}

/** ai4s-jobq's determine_number_of_workers, plus a minWorkers floor. */
export function stepPolicy(input: PolicyInput): number {
  return applyLimits(stepSize(Math.floor(input.queueDepth / input.concurrency)), input);
}

/** One worker per `concurrency` tasks, with the same ramp and caps. */
export function proportionalPolicy(input: PolicyInput): number {
  return applyLimits(Math.ceil(input.queueDepth / input.concurrency), input);
}
