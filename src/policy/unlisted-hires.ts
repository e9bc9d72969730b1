/**
 * Hires a listing does not show yet, where the listing shows active jobs only (AzureML's `listing: index`).
 * A job this process hired and that ended before any listing showed it would never be seen: no exit, no
 * failed start, so a crash-looping template would never get the start backoff. So each hire is expected in
 * the listing; one absent from a listing that started after it was accepted is read on its own (one
 * request), which tells whether it ended (its exit) or the listing lags (the real index may show a new job
 * only after some seconds). A lagging one is read again only once its age has doubled, so it costs about
 * log2(window / first age) reads, never one a tick; past the window (the hire grace, after which the
 * controller no longer counts it either) it is no longer looked for. Pure: no clock, no I/O.
 */

/** A hire not shown by a listing yet. */
export interface UnlistedHire {
  /** When its submission was accepted (or its outcome became unknown): epoch ms. */
  acceptedAt: number;
  /** Not read before this (epoch ms). */
  readAfter: number;
  /** The last read found it active (the listing lags), not ended. */
  lagging?: boolean;
}

/** What a read of one hire found. */
export type UnlistedRead =
  /** Ended (Completed, Failed, Canceled): its exit is recorded; done. */
  | "finished"
  /** Not there (deleted, or an unknown submission that never committed): done. */
  | "gone"
  /** Between active and finished (Finalizing, CancelRequested): ends soon, read at the next listing. */
  | "leaving"
  /** Active: the listing has not caught up with it. */
  | "active"
  /** The read failed: tried at the next listing. */
  | "failed";

/** The least wait before a lagging hire is read again (a hire read milliseconds after its submit). */
export const MIN_REREAD_MS = 1_000;

export function unlistedHire(acceptedAt: number): UnlistedHire {
  return { acceptedAt, readAfter: acceptedAt };
}

/**
 * Whether to read `hire` after a listing that started at `listingStartedAt` and did not show it: the
 * listing could have shown it (it started after the acceptance; within the same millisecond counts, a
 * read too many costs less than a failed start missed) and the hire's next read is due.
 */
export function unlistedDue(hire: UnlistedHire, listingStartedAt: number, now: number): boolean {
  return hire.acceptedAt <= listingStartedAt && now >= hire.readAfter;
}

/** Past the window: no longer looked for (the controller stopped counting it too). */
export function unlistedExpired(hire: UnlistedHire, now: number, windowMs: number): boolean {
  return now - hire.acceptedAt >= windowMs;
}

/** After a read at `now`: the hire as it is to be kept, or undefined when it is no longer looked for. */
export function afterUnlistedRead(
  hire: UnlistedHire,
  found: UnlistedRead,
  now: number,
): UnlistedHire | undefined {
  switch (found) {
    case "finished":
    case "gone":
      return undefined;
    case "leaving":
    case "failed":
      return hire;
    case "active":
      // Read again once its age has doubled: a lag of seconds costs a read or two; a listing that never
      // shows it, log2(window / first age) reads in all.
      return {
        ...hire,
        readAfter: now + Math.max(MIN_REREAD_MS, now - hire.acceptedAt),
        lagging: true,
      };
  }
}
