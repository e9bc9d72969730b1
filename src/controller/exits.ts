import type { Logger } from "../logging/logger.js";
import type { WorkforceMetrics } from "../metrics/registry.js";
import {
  describeBackoff,
  startBackoff,
  type StartBackoff,
  type StartBackoffParameters,
} from "../policy/start-backoff.js";
import type { Snapshot } from "./snapshot.js";

/** A region that gets no hires for now, and why. */
export interface RegionBackoff {
  region: string;
  until: number;
  failures: number;
  /** One line: failed starts, the last one's exit and output, how long. */
  reason: string;
}

/**
 * Reads the regions' exit histories each tick: counts the exits not seen before, observes drain
 * latencies, and says which regions back off after failed starts (warning when one starts to or its
 * streak grows). Exits from before this process started are history, not news: they count toward the
 * backoff but not toward the counters.
 */
export class ExitTracker {
  private readonly seenUntil = new Map<string, number>();
  private readonly warnedFailures = new Map<string, number>();
  private readonly countedExpired = new Set<string>();

  constructor(
    private readonly parameters: StartBackoffParameters,
    private readonly startedAt: number,
  ) {}

  /** Backoffs in force now (pure: `status` and `preview` use it without committing anything). */
  backoffs(snapshot: Snapshot, now: number): Map<string, StartBackoff> {
    const result = new Map<string, StartBackoff>();
    for (const reading of snapshot.regions) {
      const backoff = startBackoff(reading.observation?.exits ?? [], now, this.parameters);
      if (backoff) result.set(reading.name, backoff);
    }
    return result;
  }

  describe(backoffs: Map<string, StartBackoff>, now: number): RegionBackoff[] {
    return [...backoffs].map(([region, backoff]) => ({
      region,
      until: backoff.until,
      failures: backoff.failures,
      reason: describeBackoff(backoff, now),
    }));
  }

  /** Count new exits and warn about new backoffs. Only the daemon's committed ticks call this. */
  record(
    snapshot: Snapshot,
    backoffs: Map<string, StartBackoff>,
    now: number,
    logger: Logger,
    metrics?: WorkforceMetrics,
  ): void {
    for (const reading of snapshot.regions) {
      const region = reading.name;
      if (!reading.fresh) continue;
      const since = this.seenUntil.get(region) ?? this.startedAt;
      let latest = since;
      for (const exit of reading.observation?.exits ?? []) {
        if (exit.at <= since) continue;
        latest = Math.max(latest, exit.at);
        metrics?.workerExits.inc({ region, outcome: exit.outcome });
        if (exit.drainSeconds !== undefined) metrics?.drainDuration.observe({ region }, exit.drainSeconds);
      }
      this.seenUntil.set(region, latest);
      for (const drain of reading.observation?.expiredDrains ?? []) {
        const key = `${region}/${drain.id}`;
        if (this.countedExpired.has(key)) continue;
        this.countedExpired.add(key);
        metrics?.drainsExpired.inc({ region }, drain.count);
        logger.warn(
          { region, drainId: drain.id, count: drain.count, expiredAt: new Date(drain.at).toISOString() },
          `region ${region}: ${drain.count} drain request(s) reached the drain timeout with no worker leaving`,
        );
      }
      const backoff = backoffs.get(region);
      metrics?.regionStartBackoff.set({ region }, backoff ? 1 : 0);
      if (!backoff) {
        this.warnedFailures.delete(region);
        continue;
      }
      if ((this.warnedFailures.get(region) ?? 0) < backoff.failures) {
        this.warnedFailures.set(region, backoff.failures);
        logger.warn(
          {
            region,
            failures: backoff.failures,
            until: new Date(backoff.until).toISOString(),
            cause: backoff.cause,
          },
          `region ${region}: workers fail to start, backing off: ${describeBackoff(backoff, now)}`,
        );
      }
    }
  }
}
