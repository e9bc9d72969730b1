import type { WorkerExit } from "../regions/types.js";

/**
 * Backoff of a region whose workers keep failing to start (as cluster-autoscaler backs off a node group
 * whose scale-ups fail): after n failed starts in a row, no hires there until the last one plus
 * min(max, initial x 2^(n-1)). A worker that ran (any other outcome than failed_start or unknown) ends the
 * streak. Pure: computed from the region's exit history, so a restarted daemon or `workforce status`
 * reaches the same answer.
 */
export interface StartBackoffParameters {
  initialMs: number;
  maxMs: number;
}

export interface StartBackoff {
  /** Epoch ms until which the region gets no hires. */
  until: number;
  /** Failed starts in a row. */
  failures: number;
  /** The last failed start: what to fix. */
  cause: WorkerExit;
}

/** The default: twice the interval (at least 30 s), doubling up to 30 minutes. */
export function defaultStartBackoff(intervalSeconds: number): StartBackoffParameters {
  return { initialMs: Math.max(30_000, 2 * intervalSeconds * 1000), maxMs: 30 * 60_000 };
}

export function startBackoff(
  exits: readonly WorkerExit[],
  now: number,
  parameters: StartBackoffParameters,
): StartBackoff | undefined {
  let failures = 0;
  let cause: WorkerExit | undefined;
  for (const exit of [...exits].sort((a, b) => a.at - b.at)) {
    if (exit.outcome === "failed_start") {
      failures++;
      cause = exit;
    } else if (exit.outcome !== "unknown") {
      failures = 0;
      cause = undefined;
    }
  }
  if (!cause || failures === 0) return undefined;
  const delay = Math.min(parameters.maxMs, parameters.initialMs * 2 ** Math.min(failures - 1, 30));
  const until = cause.at + delay;
  return until > now ? { until, failures, cause } : undefined;
}

/** One line for logs and `status`: how long, why, and what the worker said. */
export function describeBackoff(backoff: StartBackoff, now: number): string {
  const seconds = Math.ceil((backoff.until - now) / 1000);
  const output = backoff.cause.lastOutput
    ? `; last output: ${JSON.stringify(backoff.cause.lastOutput.split("\n").slice(-1)[0]!.slice(0, 120))}`
    : "";
  return (
    `${backoff.failures} failed start(s) in a row (last: ${backoff.cause.detail}` +
    `${backoff.cause.ranSeconds !== undefined ? ` after ${backoff.cause.ranSeconds.toFixed(1)} s` : ""}${output}); ` +
    `no hires for ${seconds} s`
  );
}
