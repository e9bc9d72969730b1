import type { Region, RegionObservation } from "../regions/types.js";
import type { Logger } from "../logging/logger.js";
import { spreadHires } from "../policy/spread.js";
import { planShrink } from "../policy/shrink.js";

/**
 * Operator actions, the scriptable counterpart of upstream's Python Workforce (hire, lay_off, scale_to,
 * state). The controller never calls these; they act at once on what the operator asked.
 */

export interface RegionState extends RegionObservation {
  region: string;
}

export interface OperationOptions {
  signal?: AbortSignal;
  logger?: Logger;
}

/** Every region's observation, read in parallel. A failed read rejects with the region's name. */
export async function workforceState(
  regions: readonly Region[],
  options: OperationOptions = {},
): Promise<RegionState[]> {
  return Promise.all(
    regions.map(async (region) => {
      try {
        return { region: region.name, ...(await region.observe({ signal: options.signal })) };
      } catch (error) {
        throw new Error(`region ${region.name}: observe failed: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }),
  );
}

export interface LayOffResult {
  cancelled: number;
  drained: number;
  /** Running workers stopped at once (only with cancelRunning). */
  cancelledRunning: number;
  errors: Error[];
}

/**
 * Lay off `count` workers in one region: pending ones first (they hold no task), then running ones by
 * draining (they finish their task and leave). `cancelRunning` stops running workers at once instead,
 * losing their tasks in hand: the explicit, logged exception.
 */
export async function layOff(
  region: Region,
  count: number,
  options: OperationOptions & { cancelRunning?: boolean } = {},
): Promise<LayOffResult> {
  const result: LayOffResult = { cancelled: 0, drained: 0, cancelledRunning: 0, errors: [] };
  if (count <= 0) return result;
  const cancel = await region.cancelPending(count, { signal: options.signal });
  result.cancelled = cancel.cancelled;
  result.errors.push(...cancel.errors);
  const rest = count - cancel.cancelled;
  if (rest <= 0) return result;
  if (options.cancelRunning) {
    if (!region.cancelRunning)
      throw new Error(`region ${region.name} (${region.kind}) cannot cancel running workers`);
    options.logger?.warn(
      { region: region.name, count: rest },
      "cancelling RUNNING workers: their tasks in hand are interrupted",
    );
    const stopped = await region.cancelRunning(rest, { signal: options.signal });
    result.cancelledRunning = stopped.cancelled;
    result.errors.push(...stopped.errors);
  } else {
    const drain = await region.drain(rest, { signal: options.signal });
    result.drained = drain.drained;
    result.errors.push(...drain.errors);
  }
  return result;
}

export interface ScaleToResult {
  before: RegionState[];
  hired: Record<string, number>;
  cancelled: Record<string, number>;
  drained: Record<string, number>;
  errors: Error[];
}

/**
 * Bring the active workforce (running + pending) to `target`: hire the difference spread by capacity and
 * weight; with `withLayoffs`, also shrink, cancelling pending workers before draining running ones.
 */
export async function scaleTo(
  regions: readonly Region[],
  target: number,
  options: OperationOptions & { withLayoffs?: boolean } = {},
): Promise<ScaleToResult> {
  const before = await workforceState(regions, options);
  const active = before.reduce((sum, state) => sum + state.running + state.pending, 0);
  const result: ScaleToResult = { before, hired: {}, cancelled: {}, drained: {}, errors: [] };
  const byName = new Map(regions.map((region) => [region.name, region]));

  if (target > active) {
    const spread = spreadHires(
      target - active,
      regions.map((region, index) => ({
        name: region.name,
        capacity: before[index]?.capacity ?? 0,
        weight: region.weight,
      })),
    );
    await Promise.all(
      Object.entries(spread).map(async ([name, count]) => {
        if (count <= 0) return;
        const outcome = await byName.get(name)!.hire(count, { signal: options.signal });
        result.hired[name] = outcome.hired;
        result.errors.push(...outcome.errors);
      }),
    );
  } else if (target < active && options.withLayoffs) {
    // The operator's target is the floor: no queue-based protection here, it is an explicit order.
    const shrink = planShrink({
      target,
      queueDepth: 0,
      concurrency: 1,
      regions: before.map((state) => ({ name: state.region, ...state })),
    });
    await Promise.all(
      regions.map(async (region) => {
        const cancelCount = shrink.cancel[region.name] ?? 0;
        const drainCount = shrink.drain[region.name] ?? 0;
        if (cancelCount > 0) {
          const outcome = await region.cancelPending(cancelCount, { signal: options.signal });
          result.cancelled[region.name] = outcome.cancelled;
          result.errors.push(...outcome.errors);
        }
        if (drainCount > 0) {
          const outcome = await region.drain(drainCount, { signal: options.signal });
          result.drained[region.name] = outcome.drained;
          result.errors.push(...outcome.errors);
        }
      }),
    );
  }
  return result;
}
