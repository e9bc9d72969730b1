/**
 * The drain ledger of one region: which drain requests are still in flight, so that the next tick does not
 * ask again for workers that are already finishing their task, and a restarted daemon does not either.
 *
 * Pure arithmetic, no I/O. A control message reaches *some* node, not a chosen worker, and nothing comes
 * back; all we can observe is which workers are running. So:
 *
 * - `base` is the set of workers that were running at the last drain request, and each entry is a batch of
 *   requests: when, until when it counts (the drain timeout), and how many are still outstanding.
 * - A worker of `base` that is no longer running has left. Every departure fulfils one outstanding request,
 *   oldest entry first (FIFO), and each departure is counted once even when several entries are open.
 *   (Counting it once per entry would under-count what is in flight and drain extra workers.)
 * - In flight = the outstanding requests of unexpired entries, never more than the workers running.
 * - At every new request the ledger is rebased: each entry keeps only what is still outstanding, spent and
 *   expired entries go, and `base` becomes the workers running now. So departures are never re-counted.
 *
 * What this means (see docs/graceful-downscale.md):
 * - A worker that leaves on its own (empty queue, crash, pre-emption) counts as a fulfilled drain. The
 *   drained worker is then counted as running until it leaves: we may hire its replacement a little late,
 *   but we never drain extra.
 * - A message that expires unread drains nobody, yet its entry stays in flight until the drain timeout: the
 *   region looks smaller than it is, so it under-drains (never over-drains) until then.
 * - Expired entries still absorb departures first: a worker whose task outlived the timeout and then leaves
 *   does not make a newer request look fulfilled.
 */

export interface DrainLedgerEntry {
  /** Unique per entry, so a partially failed send can correct its own entry. */
  id: string;
  /** When the requests were sent (epoch ms). */
  at: number;
  /** After this, the entry no longer counts as in flight (epoch ms). */
  expiresAt: number;
  /** Requests of this batch not yet matched by a departure (as of the last rebase). */
  count: number;
}

export interface DrainLedger {
  /** Workers running at the last request: departures are measured against them. */
  base: string[];
  /** Oldest first. */
  entries: DrainLedgerEntry[];
}

export interface EntryState {
  entry: DrainLedgerEntry;
  /** Departures attributed to this entry since the last rebase. */
  fulfilled: number;
  /** count - fulfilled. */
  outstanding: number;
  expired: boolean;
}

export interface LedgerEvaluation {
  /** Drain requests in flight now: outstanding in unexpired entries, capped at the workers running. */
  inFlight: number;
  /** Workers of `base` that are no longer running. */
  departed: number;
  entries: EntryState[];
}

export function emptyLedger(): DrainLedger {
  return { base: [], entries: [] };
}

function byAge(a: DrainLedgerEntry, b: DrainLedgerEntry): number {
  return a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** What is in flight given the workers running now. */
export function evaluateLedger(
  ledger: DrainLedger,
  running: readonly string[],
  now: number,
): LedgerEvaluation {
  const runningSet = new Set(running);
  const departed = new Set(ledger.base.filter((id) => !runningSet.has(id))).size;
  let unattributed = departed;
  let outstandingTotal = 0;
  const entries = [...ledger.entries].sort(byAge).map((entry): EntryState => {
    const fulfilled = Math.min(Math.max(0, entry.count), unattributed);
    unattributed -= fulfilled;
    const outstanding = Math.max(0, entry.count - fulfilled);
    const expired = now >= entry.expiresAt;
    if (!expired) outstandingTotal += outstanding;
    return { entry, fulfilled, outstanding, expired };
  });
  return { inFlight: Math.min(outstandingTotal, runningSet.size), departed, entries };
}

/** Drain requests in flight now (see evaluateLedger). */
export function inFlight(ledger: DrainLedger, running: readonly string[], now: number): number {
  return evaluateLedger(ledger, running, now).inFlight;
}

/** Running workers not yet asked to leave: the most that a new drain may ask for. */
export function drainable(ledger: DrainLedger, running: readonly string[], now: number): number {
  return Math.max(0, new Set(running).size - inFlight(ledger, running, now));
}

/**
 * The ledger rebased on the workers running now: entries keep only their outstanding requests, spent or
 * expired ones are dropped, and `base` becomes `running`.
 */
export function rebaseLedger(ledger: DrainLedger, running: readonly string[], now: number): DrainLedger {
  const { entries } = evaluateLedger(ledger, running, now);
  const kept = entries
    .filter((state) => !state.expired && state.outstanding > 0)
    .map((state) => ({ ...state.entry, count: state.outstanding }));
  return { base: kept.length > 0 ? [...new Set(running)].sort() : [], entries: kept };
}

export interface RecordDrainOptions {
  id: string;
  now: number;
  /** How long the requests count as in flight (the drain timeout), ms. */
  timeoutMs: number;
}

/** Record `count` new drain requests sent against the workers running now (count > 0). */
export function recordDrain(
  ledger: DrainLedger,
  running: readonly string[],
  count: number,
  options: RecordDrainOptions,
): DrainLedger {
  if (!Number.isInteger(count) || count <= 0)
    throw new RangeError(`drain count must be a positive integer; given ${count}`);
  const rebased = rebaseLedger(ledger, running, options.now);
  return {
    base: [...new Set(running)].sort(),
    entries: [
      ...rebased.entries,
      { id: options.id, at: options.now, expiresAt: options.now + options.timeoutMs, count },
    ],
  };
}

/**
 * Correct an entry after its send: only `delivered` of its requests reached the broker. The entry goes when
 * none did. An unknown id (already rebased away) leaves the ledger as it is.
 */
export function settleDrain(ledger: DrainLedger, id: string, delivered: number): DrainLedger {
  const entries = ledger.entries.flatMap((entry) => {
    if (entry.id !== id) return [entry];
    const count = Math.min(entry.count, Math.max(0, delivered));
    return count > 0 ? [{ ...entry, count }] : [];
  });
  return { base: entries.length > 0 ? ledger.base : [], entries };
}
