import { describe, expect, test } from "vitest";
import { takeSnapshot, type LastGood } from "../../src/controller/snapshot.js";
import { InFlightHires } from "../../src/controller/in-flight.js";
import type { QueueProbe } from "../../src/queue/types.js";
import type { BackoffState, RegionObservation, WorkerExit } from "../../src/regions/types.js";
import { MemoryRegion } from "../support/memory-region.js";

/** What a region reading carries besides the four counts, and how a failed read is told. */

const queueOf = (depth: () => Promise<number>): QueueProbe =>
  ({ description: "test queue", depth }) as unknown as QueueProbe;

function regionAnswering(name: string, answer: () => Promise<unknown>, backoffs?: BackoffState[]) {
  const region = new MemoryRegion(name) as MemoryRegion & { backoffs?: () => BackoffState[] };
  region.observe = answer as () => Promise<RegionObservation>;
  if (backoffs) region.backoffs = () => backoffs;
  return region;
}

const options = (extra: Record<string, unknown> = {}) => ({
  callTimeoutMs: 200,
  readConcurrency: 4,
  staleTicks: 2,
  lastGood: new Map<string, LastGood>(),
  now: () => 1_000,
  ...extra,
});

const failing = (error: unknown) => regionAnswering("east", () => Promise.reject(error));

describe("snapshot: a region reading", () => {
  test("hires in flight count as pending and take the room they will use", async () => {
    const region = regionAnswering("east", async () => ({
      running: 4,
      pending: 2,
      draining: 0,
      capacity: 10,
    }));
    const inFlight = new InFlightHires(60_000, () => 1_000);
    inFlight.submitted("east", "w1");
    inFlight.submitted("east", "w2");
    const snapshot = await takeSnapshot(
      queueOf(async () => 5),
      [region],
      options({ inFlight }),
    );
    expect(snapshot.regions[0]).toMatchObject({
      inFlight: 2,
      observation: { running: 4, pending: 4, capacity: 8 },
    });
  });

  test("carries the region's exits, expired drains and back-off (the start backoff and metrics read them)", async () => {
    const exits: WorkerExit[] = [{ workerId: "w9", outcome: "failed_start", at: 900, detail: "exit code 1" }];
    const expiredDrains = [{ id: "d1", count: 2, at: 800 }];
    const backoff: BackoffState[] = [{ call: "read", until: 5_000, reason: "HTTP 429, Retry-After 4 s" }];
    const fresh = await takeSnapshot(
      queueOf(async () => 5),
      [
        regionAnswering(
          "east",
          async () => ({ running: 1, pending: 0, draining: 0, capacity: 3, exits, expiredDrains }),
          backoff,
        ),
      ],
      options(),
    );
    expect(fresh.regions[0]!.observation).toMatchObject({ exits, expiredDrains });
    expect(fresh.regions[0]!.backoff).toEqual(backoff);
    // A failed read still says what the service asked us to hold back.
    const failed = await takeSnapshot(
      queueOf(async () => 5),
      [regionAnswering("east", () => Promise.reject(new Error("HTTP 429")), backoff)],
      options(),
    );
    expect(failed.regions[0]!.backoff).toEqual(backoff);
    // No back-off: no field (the tick log stays short).
    const none = await takeSnapshot(
      queueOf(async () => 5),
      [regionAnswering("east", async () => ({ running: 1, pending: 0, draining: 0, capacity: 3 }), [])],
      options(),
    );
    expect(none.regions[0]).not.toHaveProperty("backoff");
    expect(none.regions[0]!.observation).not.toHaveProperty("exits");
  });
});

describe("snapshot: a failed read in one line", () => {
  const errorOf = async (error: unknown) =>
    (
      await takeSnapshot(
        queueOf(async () => 5),
        [failing(error)],
        options(),
      )
    ).regions[0]!;

  test("names the service's error code before its message, once", async () => {
    const notFound = Object.assign(new Error("The Resource 'ws' was not found."), {
      code: "WorkspaceNotFound",
      statusCode: 404,
    });
    const reading = await errorOf(notFound);
    expect(reading.permanent).toBe(true);
    expect(reading.error).toBe(
      "permanent: WorkspaceNotFound: The Resource 'ws' was not found. (not found: check the name of the queue, workspace, cluster or resource group, and the subscription)",
    );
    // Already in the message, or not a service code: not repeated.
    expect(
      (await errorOf(Object.assign(new Error("Throttled: too many"), { code: "Throttled" }))).error,
    ).toBe("Throttled: too many");
    expect((await errorOf(Object.assign(new Error("boom"), { code: "ERR_SOMETHING" }))).error).toBe("boom");
    expect((await errorOf(Object.assign(new Error("slow"), { code: "DeadlineExceeded" }))).error).toBe(
      "slow",
    );
    expect((await errorOf(Object.assign(new Error("odd"), { code: 7 }))).error).toBe("odd");
  });

  test("says the network cause and what to fix, both", async () => {
    const reading = await errorOf(
      Object.assign(new Error("denied after read ECONNRESET"), { statusCode: 403 }),
    );
    expect(reading.error).toMatch(
      /^permanent: denied after read ECONNRESET \(connection [^;)]+; authentication or authorization failed: /,
    );
  });

  test("a value thrown that is not an Error is described too", async () => {
    expect((await errorOf(undefined)).error).toBe("undefined");
  });
});

describe("snapshot: the CLI is told when each read starts and ends", () => {
  test("for the queue and every region, failed reads included", async () => {
    const calls: string[] = [];
    await takeSnapshot(
      queueOf(() => Promise.reject(new Error("queue down"))),
      [
        failing(new Error("region down")),
        regionAnswering("west", async () => ({ running: 0, pending: 0, draining: 0, capacity: 1 })),
      ],
      options({ onCall: (what: string, state: string) => calls.push(`${what} ${state}`) }),
    );
    expect([...calls].sort()).toEqual(
      [
        "queue test queue start",
        "queue test queue end",
        "region east start",
        "region east end",
        "region west start",
        "region west end",
      ].sort(),
    );
    for (const what of ["queue test queue", "region east", "region west"])
      expect(calls.indexOf(`${what} start`)).toBeLessThan(calls.indexOf(`${what} end`));
  });
});
