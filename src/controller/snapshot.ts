import pLimit from "p-limit";
import type { QueueProbe } from "../queue/types.js";
import type { Region, RegionObservation } from "../regions/types.js";
import { redactText } from "../logging/logger.js";
import { withDeadline } from "./deadline.js";

export interface QueueReading {
  depth?: number;
  error?: string;
  durationMs: number;
}

export interface RegionReading {
  name: string;
  /** The observation the tick uses: fresh, or the last good one while it is young enough. */
  observation?: RegionObservation;
  fresh: boolean;
  /** Ticks since the observation was read (0 when fresh). */
  ageTicks: number;
  /** Milliseconds since the observation was read (0 when fresh). */
  ageMs: number;
  error?: string;
  durationMs: number;
}

export interface Snapshot {
  at: number;
  queue: QueueReading;
  regions: RegionReading[];
}

/** The last good observation of a region, kept across ticks by the reconciler. */
export interface LastGood {
  observation: RegionObservation;
  at: number;
  ageTicks: number;
}

export interface SnapshotOptions {
  callTimeoutMs: number;
  readConcurrency: number;
  /** How many ticks a last good observation may stand in for a failed read. */
  staleTicks: number;
  lastGood: Map<string, LastGood>;
  signal?: AbortSignal;
  now?: () => number;
}

export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return redactText(message);
}

const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const shown = (value: unknown) => (typeof value === "number" ? String(value) : JSON.stringify(value));

/**
 * What is wrong with an observation, or undefined: counts of workers are whole numbers >= 0, capacity a
 * whole number (negative when over-committed). A bad answer is a failed read, never a reading: a running
 * count of -1 would shrink the fleet.
 */
function observationProblem(value: unknown): string | undefined {
  const fields = (value ?? {}) as Record<string, unknown>;
  for (const key of ["running", "pending", "draining"] as const) {
    if (!isCount(fields[key])) return `${key} must be a whole number >= 0; got ${shown(fields[key])}`;
  }
  if (!Number.isSafeInteger(fields.capacity))
    return `capacity must be a whole number; got ${shown(fields.capacity)}`;
  return undefined;
}

/**
 * Read the queue depth and every region at once (bounded concurrency, each call under a deadline). A
 * failed region read falls back to its last good observation for at most `staleTicks` ticks; `lastGood`
 * is updated in place.
 */
export async function takeSnapshot(
  queue: QueueProbe,
  regions: readonly Region[],
  options: SnapshotOptions,
): Promise<Snapshot> {
  const now = options.now ?? Date.now;
  const at = now();
  const limit = pLimit(options.readConcurrency);

  const queueRead = (async (): Promise<QueueReading> => {
    const started = now();
    try {
      const depth = await withDeadline(
        `queue ${queue.description}`,
        options.callTimeoutMs,
        (signal) => queue.depth({ signal }),
        options.signal,
      );
      if (!isCount(depth)) throw new Error(`queue depth must be a whole number >= 0; got ${String(depth)}`);
      return { depth, durationMs: now() - started };
    } catch (error) {
      return { error: describeError(error), durationMs: now() - started };
    }
  })();

  const regionReads = regions.map((region) =>
    limit(async (): Promise<RegionReading> => {
      const started = now();
      try {
        const observation = await withDeadline(
          `region ${region.name} observe`,
          options.callTimeoutMs,
          (signal) => region.observe({ signal }),
          options.signal,
        );
        const problem = observationProblem(observation);
        if (problem) throw new Error(`region ${region.name} observe: ${problem}`);
        options.lastGood.set(region.name, { observation, at: now(), ageTicks: 0 });
        return {
          name: region.name,
          observation,
          fresh: true,
          ageTicks: 0,
          ageMs: 0,
          durationMs: now() - started,
        };
      } catch (error) {
        const previous = options.lastGood.get(region.name);
        const reading: RegionReading = {
          name: region.name,
          fresh: false,
          ageTicks: 0,
          ageMs: 0,
          error: describeError(error),
          durationMs: now() - started,
        };
        if (previous && previous.ageTicks < options.staleTicks) {
          previous.ageTicks += 1;
          reading.observation = previous.observation;
          reading.ageTicks = previous.ageTicks;
          reading.ageMs = now() - previous.at;
        } else {
          // Too old to trust (or never read): the region counts as unknown until it answers again.
          options.lastGood.delete(region.name);
        }
        return reading;
      }
    }),
  );

  const [queueReading, regionReadings] = await Promise.all([queueRead, Promise.all(regionReads)]);
  return { at, queue: queueReading, regions: regionReadings };
}
