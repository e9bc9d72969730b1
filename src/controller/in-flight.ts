import type { SubmitOutcome, WorkerNames } from "../regions/types.js";

/**
 * Hires in flight, per region: submissions the region's listing may not show yet. A submission counts as a
 * pending worker from the moment it goes out until a fresh listing accounts for it, so that a slow or
 * abandoned submit (timed out, cut off, reset) is never forgotten and hired a second time.
 *
 * - Named submissions (the region tells the job name before sending) leave when a listing shows the name.
 * - Accepted ones of a region that lists no names leave with the first listing taken after the acceptance.
 * - Refused ones leave at once: the service said no.
 * - Whatever is left leaves only after the grace period, and only when a fresh listing has still not shown
 *   it: while the region cannot be read, every hire made there keeps counting.
 */
interface Entry {
  at: number;
  outcome?: SubmitOutcome;
  settledAt?: number;
}

export class InFlightHires {
  private readonly regions = new Map<string, Map<string, Entry>>();
  private unnamed = 0;

  constructor(
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private of(region: string): Map<string, Entry> {
    let entries = this.regions.get(region);
    if (!entries) {
      entries = new Map();
      this.regions.set(region, entries);
    }
    return entries;
  }

  /** A copy to read without changing this one (a preview). */
  clone(): InFlightHires {
    const copy = new InFlightHires(this.graceMs, this.now);
    for (const [region, entries] of this.regions)
      copy.regions.set(region, new Map([...entries].map(([name, entry]) => [name, { ...entry }])));
    copy.unnamed = this.unnamed;
    return copy;
  }

  /** A submission is about to go out under `name`. */
  submitted(region: string, name: string): void {
    this.of(region).set(name, { at: this.now() });
  }

  /** What became of it (possibly long after the tick that sent it). */
  settled(region: string, name: string, outcome: SubmitOutcome): void {
    const entries = this.of(region);
    const entry = entries.get(name);
    if (!entry) return;
    if (outcome === "refused") entries.delete(name);
    else Object.assign(entry, { outcome, settledAt: this.now() });
  }

  /** `count` workers accepted by a region that does not name them before sending. */
  hiredUnnamed(region: string, count: number): void {
    const at = this.now();
    for (let i = 0; i < count; i++)
      this.of(region).set(`#unnamed-${++this.unnamed}`, { at, outcome: "accepted", settledAt: at });
  }

  /**
   * A fresh reading of `region` that started at `readAt` and listed `listed` (when the region names its
   * workers): drop what it accounts for and what is past the
   * grace period; the rest is in flight and counts as pending on top of the reading.
   */
  reconcile(region: string, listed: WorkerNames | undefined, readAt: number): number {
    const entries = this.regions.get(region);
    if (!entries) return 0;
    for (const [name, entry] of entries) {
      const named = !name.startsWith("#unnamed-");
      const acceptedBefore =
        entry.outcome === "accepted" && entry.settledAt !== undefined && entry.settledAt < readAt;
      if (
        (named && listed?.has(name)) ||
        ((!named || !listed) && acceptedBefore) ||
        readAt - entry.at >= this.graceMs
      ) {
        entries.delete(name);
      }
    }
    return entries.size;
  }

  /** Every hire in flight in `region` (for a region that cannot be read: all of them count). */
  count(region: string): number {
    return this.regions.get(region)?.size ?? 0;
  }
}
