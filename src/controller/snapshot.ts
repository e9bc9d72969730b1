import { classifyFailure, oneLine } from "./failures.js";
import pLimit from "p-limit";
import type { QueueProbe } from "../queue/types.js";
import type { BackoffState, Region, RegionObservation } from "../regions/types.js";
import type { InFlightHires } from "./in-flight.js";
import { redactText } from "../logging/logger.js";
import { withDeadline } from "./deadline.js";

export interface QueueReading {
  depth?: number;
  error?: string;
  /** The error will not heal by itself (a wrong key, a missing queue, a host that does not resolve). */
  permanent?: boolean;
  durationMs: number;
}

export interface RegionReading {
  name: string;
  /**
   * The observation the tick uses, with the hires still in flight counted as pending: fresh, or, while the
   * region cannot be read, the last good one (taken after that tick's own actions) plus every hire made
   * there since. Undefined when the region was never read: its workers are unknown.
   */
  observation?: RegionObservation;
  fresh: boolean;
  /** Ticks since the observation was read (0 when fresh). */
  ageTicks: number;
  /** Milliseconds since the observation was read (0 when fresh). */
  ageMs: number;
  /** Hires in flight counted in `observation.pending` (submitted, not listed yet). */
  inFlight: number;
  /** Kinds of call the region's service asked us to hold back, and until when. */
  backoff?: BackoffState[];
  error?: string;
  /** The error will not heal by itself (a wrong key, a missing workspace or cluster...). */
  permanent?: boolean;
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
  lastGood: Map<string, LastGood>;
  /** Hires in flight per region (updated in place: a fresh listing settles them). */
  inFlight?: InFlightHires;
  signal?: AbortSignal;
  now?: () => number;
  /** Told when each read starts and ends (the CLI says what it still waits for). */
  onCall?: (what: string, state: "start" | "end") => void;
}

export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return redactText(message);
}

/**
 * A failed read in one line: the SDK's message (its first line: no RequestId or Time), then whether it is
 * permanent and what to fix, and the host and network cause when the network is to blame.
 */
export function describeFailure(error: unknown): { error: string; permanent: boolean } {
  const kind = classifyFailure(error);
  const notes = [kind.network, kind.hint].filter(Boolean).join("; ");
  // The service's error code (x-ms-error-code) names the problem better than its prose.
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = oneLine(describeError(error));
  const coded =
    typeof code === "string" &&
    /^[A-Z][A-Za-z]+$/.test(code) &&
    code !== "DeadlineExceeded" &&
    !message.includes(code)
      ? `${code}: ${message}`
      : message;
  const text = `${kind.permanent ? "permanent: " : ""}${coded}${notes ? ` (${notes})` : ""}`;
  return { error: text, permanent: kind.permanent };
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
 * The observation with `inFlight` more pending workers: the four counts, plus the region's exit history
 * and expired drains (the start backoff and the drain metrics read them).
 */
function withInFlight(observation: RegionObservation, inFlight: number): RegionObservation {
  return {
    running: observation.running,
    pending: observation.pending + inFlight,
    draining: observation.draining,
    capacity: observation.capacity - inFlight,
    ...(observation.exits ? { exits: observation.exits } : {}),
    ...(observation.expiredDrains ? { expiredDrains: observation.expiredDrains } : {}),
  };
}

/**
 * Read the queue depth and every region at once (bounded concurrency, each call under a deadline). A
 * failed region read falls back to its last good observation, for as long as it keeps failing (the
 * decision tells how old it may be); `lastGood` is updated in place. Hires in flight count as pending.
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
    const what = `queue ${queue.description}`;
    options.onCall?.(what, "start");
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
      return { ...describeFailure(error), durationMs: now() - started };
    } finally {
      options.onCall?.(what, "end");
    }
  })();

  const regionReads = regions.map((region) =>
    limit(async (): Promise<RegionReading> => {
      const started = now();
      const what = `region ${region.name}`;
      options.onCall?.(what, "start");
      try {
        const observation = await withDeadline(
          `region ${region.name} observe`,
          options.callTimeoutMs,
          (signal) => region.observe({ signal }),
          options.signal,
        );
        const problem = observationProblem(observation);
        if (problem) throw new Error(`region ${region.name} observe: ${problem}`);
        const inFlight = options.inFlight?.reconcile(region.name, region.observedWorkers?.(), started) ?? 0;
        const stored = withInFlight(observation, 0);
        options.lastGood.set(region.name, { observation: stored, at: now(), ageTicks: 0 });
        return {
          name: region.name,
          observation: withInFlight(stored, inFlight),
          fresh: true,
          ageTicks: 0,
          ageMs: 0,
          inFlight,
          ...backoffOf(region),
          durationMs: now() - started,
        };
      } catch (error) {
        const previous = options.lastGood.get(region.name);
        const inFlight = options.inFlight?.count(region.name) ?? 0;
        const reading: RegionReading = {
          name: region.name,
          fresh: false,
          ageTicks: 0,
          ageMs: 0,
          inFlight: 0,
          ...backoffOf(region),
          ...describeFailure(error),
          durationMs: now() - started,
        };
        if (previous) {
          // Unknown is "as many as could be": the last count, plus every hire made there since.
          previous.ageTicks += 1;
          reading.observation = withInFlight(previous.observation, inFlight);
          reading.inFlight = inFlight;
          reading.ageTicks = previous.ageTicks;
          reading.ageMs = now() - previous.at;
        }
        return reading;
      } finally {
        options.onCall?.(what, "end");
      }
    }),
  );

  const [queueReading, regionReadings] = await Promise.all([queueRead, Promise.all(regionReads)]);
  return { at, queue: queueReading, regions: regionReadings };
}

function backoffOf(region: Region): { backoff?: BackoffState[] } {
  const states = region.backoffs?.() ?? [];
  return states.length > 0 ? { backoff: states } : {};
}
