import { describe, expect, it } from "vitest";
import {
  drainable,
  emptyLedger,
  evaluateLedger,
  inFlight,
  rebaseLedger,
  recordDrain,
  settleDrain,
  type DrainLedger,
} from "../../src/backchannel/ledger.js";
import {
  createMemoryLedgerStore,
  parseLedger,
  serializeLedger,
  LedgerConflictError,
} from "../../src/backchannel/ledger-store.js";

const MIN = 60_000;
const TIMEOUT = 60 * MIN;
const workers = (...ids: number[]) => ids.map((id) => `w${id}`);

/** Ledger after a sequence of drain requests: [time, running at the time, count]. */
function afterRequests(requests: Array<[number, string[], number]>): DrainLedger {
  return requests.reduce(
    (ledger, [now, running, count], index) =>
      recordDrain(ledger, running, count, { id: `e${index}`, now, timeoutMs: TIMEOUT }),
    emptyLedger(),
  );
}

describe("drain ledger: what is in flight", () => {
  const table: Array<{
    name: string;
    requests: Array<[number, string[], number]>;
    now: number;
    running: string[];
    expected: number;
  }> = [
    { name: "nothing asked", requests: [], now: 0, running: workers(1, 2, 3), expected: 0 },
    {
      name: "asked 2 of 5, nobody left yet",
      requests: [[0, workers(1, 2, 3, 4, 5), 2]],
      now: MIN,
      running: workers(1, 2, 3, 4, 5),
      expected: 2,
    },
    {
      name: "asked 2, one left",
      requests: [[0, workers(1, 2, 3, 4, 5), 2]],
      now: MIN,
      running: workers(2, 3, 4, 5),
      expected: 1,
    },
    {
      name: "asked 2, both left",
      requests: [[0, workers(1, 2, 3, 4, 5), 2]],
      now: MIN,
      running: workers(3, 4, 5),
      expected: 0,
    },
    {
      name: "more left than asked: never negative",
      requests: [[0, workers(1, 2, 3, 4, 5), 1]],
      now: MIN,
      running: workers(5),
      expected: 0,
    },
    {
      name: "a worker hired after the request leaving does not count",
      requests: [[0, workers(1, 2, 3), 1]],
      now: MIN,
      running: workers(1, 2, 3),
      expected: 1,
    },
    {
      name: "expired after the drain timeout",
      requests: [[0, workers(1, 2, 3), 2]],
      now: TIMEOUT,
      running: workers(1, 2, 3),
      expected: 0,
    },
    {
      name: "just before the timeout",
      requests: [[0, workers(1, 2, 3), 2]],
      now: TIMEOUT - 1,
      running: workers(1, 2, 3),
      expected: 2,
    },
    {
      // Each departure is counted once across entries: counting w1 for both would say 1 and drain extra.
      name: "two open entries, one departure: it fulfils the oldest only",
      requests: [
        [0, workers(1, 2, 3, 4, 5), 2],
        [MIN, workers(1, 2, 3, 4, 5), 1],
      ],
      now: 2 * MIN,
      running: workers(2, 3, 4, 5),
      expected: 2,
    },
    {
      name: "departures before a later request are not counted again",
      requests: [
        [0, workers(1, 2, 3, 4, 5), 2],
        // w1 left before the second request: entry e0 keeps 1 outstanding.
        [MIN, workers(2, 3, 4, 5), 1],
      ],
      now: 2 * MIN,
      running: workers(2, 3, 4, 5),
      expected: 2,
    },
    {
      name: "the older entry expires, the newer still counts",
      requests: [
        [0, workers(1, 2, 3, 4, 5), 2],
        [30 * MIN, workers(1, 2, 3, 4, 5), 1],
      ],
      now: TIMEOUT + MIN,
      running: workers(1, 2, 3, 4, 5),
      expected: 1,
    },
    {
      // A worker whose task outlived the timeout leaves: that does not make the newer request look done.
      name: "an expired entry absorbs departures first",
      requests: [
        [0, workers(1, 2, 3, 4, 5), 1],
        [30 * MIN, workers(1, 2, 3, 4, 5), 1],
      ],
      now: TIMEOUT + MIN,
      running: workers(2, 3, 4, 5),
      expected: 1,
    },
  ];
  it.each(table)("$name -> $expected", ({ requests, now, running, expected }) => {
    expect(inFlight(afterRequests(requests), running, now)).toBe(expected);
  });

  it("is never more than the workers running", () => {
    // A ledger written by hand (or by an older version) asking for more workers than there are.
    const ledger: DrainLedger = { base: [], entries: [{ id: "x", at: 0, expiresAt: TIMEOUT, count: 5 }] };
    expect(inFlight(ledger, workers(1, 2), MIN)).toBe(2);
    expect(inFlight(ledger, [], MIN)).toBe(0);
  });

  it("says how many running workers may still be asked", () => {
    const ledger = afterRequests([[0, workers(1, 2, 3, 4, 5), 2]]);
    expect(drainable(ledger, workers(1, 2, 3, 4, 5), MIN)).toBe(3);
    expect(drainable(ledger, workers(3, 4, 5), MIN)).toBe(3);
    // Three left (more than asked): the two requests count as done, both remaining workers may be asked.
    expect(drainable(ledger, workers(1, 2), MIN)).toBe(2);
  });

  it("reports departures and per-entry state", () => {
    const ledger = afterRequests([
      [0, workers(1, 2, 3, 4), 1],
      [MIN, workers(1, 2, 3, 4), 2],
    ]);
    const evaluation = evaluateLedger(ledger, workers(3, 4), 2 * MIN);
    expect(evaluation.departed).toBe(2);
    expect(evaluation.entries.map((state) => [state.entry.id, state.fulfilled, state.outstanding])).toEqual([
      ["e0", 1, 0],
      ["e1", 1, 1],
    ]);
    expect(evaluation.inFlight).toBe(1);
  });
});

describe("drain ledger: rebasing and settling", () => {
  it("a new request keeps what is outstanding and forgets what is spent or expired", () => {
    let ledger = afterRequests([
      [0, workers(1, 2, 3, 4, 5, 6), 1], // expires at TIMEOUT
      [40 * MIN, workers(1, 2, 3, 4, 5, 6), 2],
    ]);
    // w1 left: absorbed by the oldest (e0).
    ledger = recordDrain(ledger, workers(2, 3, 4, 5, 6), 1, {
      id: "e2",
      now: TIMEOUT + 1,
      timeoutMs: TIMEOUT,
    });
    expect(ledger.base).toEqual(workers(2, 3, 4, 5, 6));
    expect(ledger.entries.map((entry) => [entry.id, entry.count])).toEqual([
      ["e1", 2],
      ["e2", 1],
    ]);
    expect(inFlight(ledger, workers(2, 3, 4, 5, 6), TIMEOUT + 2)).toBe(3);
  });

  it("rebasing with nothing outstanding empties the ledger", () => {
    const ledger = afterRequests([[0, workers(1, 2), 1]]);
    expect(rebaseLedger(ledger, workers(2), MIN)).toEqual(emptyLedger());
  });

  it("a partly failed send shrinks its own entry; a failed one removes it", () => {
    const ledger = afterRequests([
      [0, workers(1, 2, 3, 4, 5), 1],
      [MIN, workers(1, 2, 3, 4, 5), 3],
    ]);
    const partly = settleDrain(ledger, "e1", 1);
    expect(partly.entries.map((entry) => [entry.id, entry.count])).toEqual([
      ["e0", 1],
      ["e1", 1],
    ]);
    const none = settleDrain(ledger, "e1", 0);
    expect(none.entries.map((entry) => entry.id)).toEqual(["e0"]);
    expect(settleDrain(afterRequests([[0, workers(1), 1]]), "e0", 0)).toEqual(emptyLedger());
  });

  it("refuses a drain of zero or a fraction", () => {
    expect(() => recordDrain(emptyLedger(), workers(1), 0, { id: "x", now: 0, timeoutMs: TIMEOUT })).toThrow(
      /positive integer/,
    );
    expect(() =>
      recordDrain(emptyLedger(), workers(1), 1.5, { id: "x", now: 0, timeoutMs: TIMEOUT }),
    ).toThrow(/positive integer/);
  });
});

describe("drain ledger: stored form", () => {
  it("round-trips through JSON with readable times", () => {
    const ledger = afterRequests([[Date.UTC(2026, 0, 2, 3, 4, 5), workers(1, 2), 1]]);
    const text = serializeLedger(ledger);
    expect(JSON.parse(text).entries[0].at).toBe("2026-01-02T03:04:05.000Z");
    expect(parseLedger(text, "test")).toEqual(ledger);
  });

  it("a damaged ledger is an error naming the field", () => {
    expect(() =>
      parseLedger(
        '{"version":1,"base":[],"entries":[{"id":"a","at":"soon","expiresAt":"2026-01-01T00:00:00Z","count":1}]}',
        "blob x",
      ),
    ).toThrow(/blob x .*entries\.0\.at/);
    expect(() => parseLedger("not json", "blob x")).toThrow(/blob x is not a valid ledger \(not JSON/);
  });

  it("the memory store refuses a save based on a stale read", async () => {
    const store = createMemoryLedgerStore();
    const first = await store.load("r1");
    expect(first.version).toBeUndefined();
    const ledger = afterRequests([[0, workers(1), 1]]);
    await store.save("r1", ledger, first.version);
    await expect(store.save("r1", ledger, first.version)).rejects.toBeInstanceOf(LedgerConflictError);
    const second = await store.load("r1");
    expect(second.ledger).toEqual(ledger);
    expect(await store.save("r1", emptyLedger(), second.version)).not.toBe(second.version);
  });
});
