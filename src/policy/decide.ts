import type { RegionObservation } from "../regions/types.js";
import type { PolicyEstimates, PolicyFunction } from "./types.js";
import { stabilizeTarget, type TargetSample } from "./stabilize.js";
import { spreadHires } from "./spread.js";
import { planShrink } from "./shrink.js";

/** A region as the decision sees it: its latest usable observation and whether it was read this tick. */
export interface RegionView {
  name: string;
  /** Undefined when the region has never been read successfully. */
  observation?: RegionObservation;
  /**
   * Read this tick. A region that could not be read counts in the totals with as many workers as it may
   * have (its last reading plus the hires made there since) but gets no actions, and counts as having
   * none when deciding what is surplus.
   */
  fresh: boolean;
  /** Ticks since the observation was read (0 when fresh). */
  ageTicks?: number;
  weight?: number;
  maxWorkers?: number;
  /** False when the region cannot drain running workers (no back channel). */
  canDrain?: boolean;
}

export interface DecideParameters {
  concurrency: number;
  maxWorkers: number;
  minWorkers: number;
  rampFactor: number;
  scaleDownDelayMs: number;
}

export interface DecideInput {
  /** Undefined when the queue could not be read: then the tick holds. */
  queueDepth: number | undefined;
  regions: readonly RegionView[];
  policy: PolicyFunction;
  parameters: DecideParameters;
  /** Targets of earlier ticks (scale-down stabilization window). */
  history: readonly TargetSample[];
  now: number;
  /** Learned task and start-up times, handed to the policy (see estimate.ts). */
  estimates?: PolicyEstimates;
  /**
   * How many ticks a region's last reading may stand in for a failed read while hiring elsewhere
   * (WORKFORCE_STALE_TICKS). Past it, or for a region never read, nobody is hired (default: no limit).
   */
  staleTicks?: number;
}

export interface RegionPlan {
  region: string;
  hire: number;
  cancel: number;
  drain: number;
}

export interface Totals {
  running: number;
  pending: number;
  draining: number;
  capacity: number;
}

export interface Plan {
  /** Set when the tick takes no action, with the reason (e.g. the queue could not be read). */
  hold?: string;
  /** Set when the tick hires nobody, with the reason (a region whose workers are unknown). */
  hireHold?: string;
  queueDepth?: number;
  /** What the policy asks for now. */
  desired: number;
  /** What the workforce may shrink to (the highest desire within the stabilization window). */
  target: number;
  totals: Totals;
  /** New workers over all regions (spread may place fewer when capacity is short). */
  hire: number;
  /** Running workers beyond max(target, workers the queue can keep busy). */
  surplus: number;
  /** ceil(depth / concurrency): workers the queue can keep busy. */
  busyWorkers: number;
  regions: RegionPlan[];
}

export interface Decision {
  plan: Plan;
  history: TargetSample[];
}

/** A policy that answers something other than a non-negative number. */
export class PolicyError extends Error {
  readonly code = "PolicyError";
  constructor(message: string) {
    super(message);
    this.name = "PolicyError";
  }
}

function sumTotals(regions: readonly RegionView[]): Totals {
  const totals: Totals = { running: 0, pending: 0, draining: 0, capacity: 0 };
  for (const { observation } of regions) {
    if (!observation) continue;
    totals.running += observation.running;
    totals.pending += observation.pending;
    totals.draining += observation.draining;
    totals.capacity += Math.max(0, observation.capacity);
  }
  return totals;
}

function emptyRegionPlans(regions: readonly RegionView[]): RegionPlan[] {
  return regions.map((region) => ({ region: region.name, hire: 0, cancel: 0, drain: 0 }));
}

/**
 * Why nobody may be hired: a region whose workers are unknown (never read), or known only from a reading
 * older than `staleTicks` ticks. Undefined when every region's count can be trusted.
 */
function unknownRegions(regions: readonly RegionView[], staleTicks: number): string | undefined {
  const never = regions.filter((region) => !region.observation).map((region) => region.name);
  if (never.length > 0)
    return `region(s) ${never.join(", ")} never read: their workers are unknown, so nobody is hired`;
  const old = regions.filter((region) => !region.fresh && (region.ageTicks ?? 0) > staleTicks);
  if (old.length > 0) {
    const names = old.map((region) => `${region.name} (${region.ageTicks} ticks)`).join(", ");
    return `region(s) ${names} unreadable for more than ${staleTicks} ticks: nobody is hired until they answer`;
  }
  return undefined;
}

/** Room for new workers: the region's free capacity, within its own maxWorkers. */
function roomFor(region: RegionView): number {
  const observation = region.observation;
  if (!observation) return 0;
  const active = observation.running + observation.pending + observation.draining;
  const ceiling = region.maxWorkers === undefined ? Infinity : region.maxWorkers - active;
  return Math.min(observation.capacity, ceiling);
}

/**
 * One tick's decision, from a snapshot to a plan. Pure: same input, same plan. Hires follow the policy's
 * current answer at once; shrinking follows the stabilized target, cancelling pending workers before it
 * drains running ones, and draining only surplus workers.
 */
export function decide(input: DecideInput): Decision {
  const totals = sumTotals(input.regions);
  const base = { totals, regions: emptyRegionPlans(input.regions), hire: 0, surplus: 0, busyWorkers: 0 };

  if (input.queueDepth === undefined) {
    // A failed queue read is not an empty queue.
    return {
      plan: { ...base, hold: "queue depth unknown: holding (no hire, no shrink)", desired: 0, target: 0 },
      history: [...input.history],
    };
  }

  const { parameters } = input;
  const answer = input.policy({
    queueDepth: input.queueDepth,
    concurrency: parameters.concurrency,
    running: totals.running,
    pending: totals.pending,
    maxWorkers: parameters.maxWorkers,
    minWorkers: parameters.minWorkers,
    rampFactor: parameters.rampFactor,
    ...(input.estimates ? { estimates: input.estimates } : {}),
  });
  if (typeof answer !== "number" || !Number.isFinite(answer) || answer < 0) {
    throw new PolicyError(`policy returned ${String(answer)}; expected a finite number >= 0`);
  }
  // maxWorkers is a safety cap that holds for custom policies too.
  const desired = Math.min(Math.floor(answer), parameters.maxWorkers);
  const stabilized = stabilizeTarget(input.history, input.now, desired, parameters.scaleDownDelayMs);
  const target = stabilized.target;

  const active = totals.running + totals.pending;
  const hireHold = unknownRegions(input.regions, input.staleTicks ?? Infinity);
  // The cap bounds every worker that exists, draining ones too (they still run).
  const room = parameters.maxWorkers - active - totals.draining;
  const hire = hireHold ? 0 : Math.max(0, Math.min(desired - active, room));
  const placed = spreadHires(
    hire,
    input.regions.map((region) => ({
      name: region.name,
      capacity: roomFor(region),
      weight: region.weight ?? 1,
      // A region without an observation has no room (roomFor), fresh or not.
      healthy: region.fresh,
    })),
  );

  const shrink = planShrink({
    target,
    queueDepth: input.queueDepth,
    concurrency: parameters.concurrency,
    // A region not read this tick may have fewer workers than it last had: as few as none. Counting them
    // as surplus could drain workers elsewhere that the queue still needs.
    regions: input.regions.map((region) => ({
      name: region.name,
      running: region.fresh ? (region.observation?.running ?? 0) : 0,
      pending: region.fresh ? (region.observation?.pending ?? 0) : 0,
      actionable: region.fresh,
      drainable: region.canDrain !== false,
    })),
  });

  const regions = input.regions.map((region) => ({
    region: region.name,
    hire: placed[region.name] ?? 0,
    cancel: shrink.cancel[region.name] ?? 0,
    drain: shrink.drain[region.name] ?? 0,
  }));

  return {
    plan: {
      queueDepth: input.queueDepth,
      ...(hireHold ? { hireHold } : {}),
      desired,
      target,
      totals,
      hire,
      surplus: shrink.surplus,
      busyWorkers: shrink.busyWorkers,
      regions,
    },
    history: stabilized.history,
  };
}
