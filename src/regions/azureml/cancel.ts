import type { LimitFunction } from "p-limit";
import type { Logger } from "../../logging/logger.js";
import type { CancelOptions, CancelResult } from "../types.js";
import { mayHaveCommitted } from "./arm.js";
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
  options: CancelOptions = {},
): Promise<CancelResult> {
  const { signal, onSubmit, onOutcome } = options;
  const errors: Error[] = [];
  let cancelled = 0;
  /** Not sent: the caller's deadline came first (the next tick reads afresh and cancels again). */
  let skipped = 0;
  const gone = new Set<string>();
  await Promise.all(
    victims.map((job) =>
      context.writes(async () => {
        if (signal?.aborted) {
          skipped++;
          return;
        }
        onSubmit?.(job.name);
        try {
          await context.arm.cancel(job.name, signal);
          cancelled++;
          gone.add(job.name);
          onOutcome?.(job.name, "cancelled");
        } catch (error) {
          onOutcome?.(job.name, mayHaveCommitted(error) ? "unknown" : "refused");
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
  if (skipped > 0)
    errors.push(
      new Error(
        `region ${context.region}: ${what} stopped by the caller's deadline: ${skipped} of ${victims.length} not sent`,
      ),
    );
  if (cancelled > 0) context.logger.info({ cancelled, of: victims.length }, `${what}: done`);
  return { cancelled, errors };
}
