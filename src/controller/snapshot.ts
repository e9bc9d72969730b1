import { classifyFailure, oneLine } from "./failures.js";
import pLimit from "p-limit";
import type { QueueProbe } from "../queue/types.js";
import type { Region, RegionObservation } from "../regions/types.js";
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
  /** The observation the tick uses: fresh, or the last good one while it is young enough. */
  observation?: RegionObservation;
  fresh: boolean;
  /** Ticks since the observation was read (0 when fresh). */
  ageTicks: number;
  /** Milliseconds since the observation was read (0 when fresh). */
  ageMs: number;
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
  /** How many ticks a last good observation may stand in for a failed read. */
  staleTicks: number;
  lastGood: Map<string, LastGood>;
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

function isValidObservation(value: RegionObservation): boolean {
  return (["running", "pending", "draining", "capacity"] as const).every(
    (key) => typeof value?.[key] === "number" && Number.isFinite(value[key]),
  );
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
    const what = `queue ${queue.description}`;
    options.onCall?.(what, "start");
    try {
      const depth = await withDeadline(
        `queue ${queue.description}`,
        options.callTimeoutMs,
        (signal) => queue.depth({ signal }),
        options.signal,
      );
      if (!Number.isFinite(depth) || depth < 0)
        throw new Error(`queue depth must be a number >= 0; got ${depth}`);
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
        if (!isValidObservation(observation)) {
          throw new Error(
            `observation must have numeric running, pending, draining and capacity; got ${JSON.stringify(observation)}`,
          );
        }
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
          ...describeFailure(error),
          durationMs: now() - started,
        };
        if (previous && previous.ageTicks < options.staleTicks) {
          previous.ageTicks += 1;
          reading.observation = previous.observation;
          reading.ageTicks = previous.ageTicks;
          reading.ageMs = now() - previous.at;
        } else if (previous) {
          // Too old to trust: the region counts as unknown until it answers again.
          options.lastGood.delete(region.name);
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
