import type { Logger } from "../logging/logger.js";
import type { Reconciler, TickReport } from "./reconciler.js";
import { sleep } from "./deadline.js";

export interface LoopOptions {
  intervalMs: number;
  /** Fraction of the interval to spread ticks by (0.1 = +/-10%), so replicas and regions do not beat. */
  jitter: number;
  logger: Logger;
  /** Aborting stops the loop after the tick in flight. */
  stop: AbortSignal;
  /** Called after each tick (tests, readiness). */
  onTick?: (report: TickReport) => void;
  /** When false the replica is not the leader: skip ticks. */
  mayAct?: () => boolean;
  /** Resolves when mayAct() may have become true: a standby that takes over ticks at once. */
  untilMayAct?: (signal: AbortSignal) => Promise<void>;
  random?: () => number;
}

export function jittered(intervalMs: number, jitter: number, random: () => number = Math.random): number {
  return Math.max(0, intervalMs * (1 + jitter * (2 * random() - 1)));
}

/**
 * Tick, sleep (interval +/- jitter), repeat until `stop` aborts. The tick in flight always finishes:
 * stopping mid-way could leave a hire half-submitted and unlogged.
 */
export async function runLoop(reconciler: Reconciler, options: LoopOptions): Promise<void> {
  while (!options.stop.aborted) {
    if (options.mayAct?.() ?? true) {
      try {
        const report = await reconciler.tick();
        options.onTick?.(report);
      } catch (error) {
        // tick() reports its own failures; this is a bug's last line of defence: log it and keep ticking.
        options.logger.error({ err: error }, "tick failed unexpectedly");
      }
    } else {
      options.logger.debug("not the leader: skipping tick");
      if (options.untilMayAct) {
        await options.untilMayAct(options.stop);
        continue;
      }
    }
    await sleep(jittered(options.intervalMs, options.jitter, options.random), options.stop);
  }
}
