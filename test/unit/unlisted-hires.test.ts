import { describe, expect, it } from "vitest";
import {
  afterUnlistedRead,
  MIN_REREAD_MS,
  unlistedDue,
  unlistedExpired,
  unlistedHire,
  type UnlistedHire,
} from "../../src/policy/unlisted-hires.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const WINDOW = 300_000;

/** Reads a hire the listing never shows gets, listings every `intervalMs`, until the window ends. */
function readsOfLagging(intervalMs: number): number[] {
  let hire: UnlistedHire | undefined = unlistedHire(T0 + 10);
  const reads: number[] = [];
  for (let at = T0 + intervalMs; hire && !unlistedExpired(hire, at, WINDOW); at += intervalMs) {
    if (!unlistedDue(hire, at - 5, at)) continue;
    reads.push(at - T0);
    hire = afterUnlistedRead(hire, "active", at);
  }
  return reads;
}

describe("hires a listing of active jobs does not show yet", () => {
  it("is read at the first listing that started after its acceptance, not one that started before", () => {
    const hire = unlistedHire(T0);
    expect(unlistedDue(hire, T0 - 1, T0 + 500)).toBe(false); // that listing may not have seen it
    expect(unlistedDue(hire, T0, T0 + 500)).toBe(true);
    expect(unlistedDue(hire, T0 + 60_000, T0 + 60_500)).toBe(true);
  });

  it("ended, or gone from ARM: no longer looked for; leaving, or a failed read: read at the next listing", () => {
    const hire = unlistedHire(T0);
    expect(afterUnlistedRead(hire, "finished", T0 + 60_000)).toBeUndefined();
    expect(afterUnlistedRead(hire, "gone", T0 + 60_000)).toBeUndefined();
    for (const found of ["leaving", "failed"] as const) {
      const next = afterUnlistedRead(hire, found, T0 + 60_000)!;
      expect(unlistedDue(next, T0 + 120_000, T0 + 120_100)).toBe(true);
    }
  });

  it("still active (the listing lags): read again once its age has doubled, a few reads in the window", () => {
    // Listings a minute apart (the default interval): reads at 1, 2, 4 minutes, then the window ends.
    expect(readsOfLagging(60_000)).toEqual([60_000, 120_000, 240_000]);
    // Every 500 ms: log2 of the window in ticks, not 600 reads.
    const fast = readsOfLagging(500);
    expect(fast.length).toBeLessThanOrEqual(11);
    expect(fast.slice(0, 3)).toEqual([500, 1_500, 3_000]); // at least a second apart
    const lagging = afterUnlistedRead(unlistedHire(T0), "active", T0 + 1_000)!;
    expect(lagging.lagging).toBe(true);
  });

  it("is read again at least a second later, even when read right after its submit", () => {
    const next = afterUnlistedRead(unlistedHire(T0), "active", T0 + 3)!;
    expect(next.readAfter).toBe(T0 + 3 + MIN_REREAD_MS);
  });

  it("past the window (the hire grace) it is no longer looked for", () => {
    expect(unlistedExpired(unlistedHire(T0), T0 + WINDOW - 1, WINDOW)).toBe(false);
    expect(unlistedExpired(unlistedHire(T0), T0 + WINDOW, WINDOW)).toBe(true);
  });
});
