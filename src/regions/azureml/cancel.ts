import type { LimitFunction } from "p-limit";
import type { Logger } from "../../logging/logger.js";
import type { CancelResult } from "../types.js";
import type { ArmWorkspace } from "./arm.js";
import { pushError, regionError } from "./errors.js";
import type { JobSummary, Listing } from "./listing.js";
import { cancelRank } from "./states.js";

/**
 * Cancelling workers by name from the tick's listing: one POST each (202), not polled, no new listing.
 * A cancelled job leaves the listing kept for the rest of the tick (it shows CancelRequested: leaving).
 */

/** Pending jobs to cancel first: upstream's order (Paused, Queued, ...), oldest first within a status. */
export function pendingVictims(listing: Listing, count: number): JobSummary[] {
  return listing.pending
    .filter((job) => Number.isFinite(cancelRank(job.status)))
    .sort((a, b) => cancelRank(a.status) - cancelRank(b.status) || a.createdAt - b.createdAt)
    .slice(0, count);
}

/** An operator's explicit order: newest first (least work lost so far); NotResponding before Running. */
export function runningVictims(listing: Listing, count: number): JobSummary[] {
  return [...listing.running]
    .sort(
      (a, b) =>
        Number(b.status === "NotResponding") - Number(a.status === "NotResponding") ||
        b.createdAt - a.createdAt,
    )
    .slice(0, count);
}

export async function cancelJobs(
  victims: JobSummary[],
  what: string,
  context: { arm: ArmWorkspace; writes: LimitFunction; region: string; logger: Logger; listing?: Listing },
  signal?: AbortSignal,
): Promise<CancelResult> {
  const errors: Error[] = [];
  let cancelled = 0;
  const gone = new Set<string>();
  await Promise.all(
    victims.map((job) =>
      context.writes(async () => {
        try {
          await context.arm.cancel(job.name, signal);
          cancelled++;
          gone.add(job.name);
        } catch (error) {
          pushError(errors, regionError(context.region, `${what} ${job.name}`, error));
        }
      }),
    ),
  );
  const { listing } = context;
  if (listing && gone.size > 0) {
    listing.pending = listing.pending.filter((job) => !gone.has(job.name));
    listing.running = listing.running.filter((job) => !gone.has(job.name));
  }
  if (cancelled > 0) context.logger.info({ cancelled, of: victims.length }, `${what}: done`);
  return { cancelled, errors };
}
