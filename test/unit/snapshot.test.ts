import { describe, expect, test } from "vitest";
import { takeSnapshot, describeError, type LastGood } from "../../src/controller/snapshot.js";
import type { QueueProbe } from "../../src/queue/types.js";
import type { RegionObservation } from "../../src/regions/types.js";
import { Reconciler } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { stepPolicy } from "../../src/policy/step.js";
import { MemoryQueue, MemoryRegion } from "../support/memory-region.js";

const queueOf = (depth: () => Promise<number>): QueueProbe =>
  ({ description: "test queue", depth }) as unknown as QueueProbe;

function regionAnswering(name: string, answer: () => Promise<unknown>): MemoryRegion {
  const region = new MemoryRegion(name);
  region.observe = answer as () => Promise<RegionObservation>;
  return region;
}

const good: RegionObservation = { running: 4, pending: 2, draining: 1, capacity: 10 };

function snapshotOptions(lastGood = new Map<string, LastGood>(), now = () => 1_000) {
  return { callTimeoutMs: 200, readConcurrency: 4, staleTicks: 2, lastGood, now };
}

describe("snapshot: the queue depth", () => {
  test.each([
    ["-1", -1],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["a fraction", 2.5],
    ["a string", "12"],
    ["nothing", undefined],
  ])("a depth of %s is an error, not a reading", async (_what, depth) => {
    const snapshot = await takeSnapshot(
      queueOf(async () => depth as number),
      [],
      snapshotOptions(),
    );
    expect(snapshot.queue.depth).toBeUndefined();
    expect(snapshot.queue.error).toMatch(/queue depth must be a whole number >= 0; got /);
  });

  test("0 and large whole numbers are readings", async () => {
    for (const depth of [0, 1, 10_000_000]) {
      const snapshot = await takeSnapshot(
        queueOf(async () => depth),
        [],
        snapshotOptions(),
      );
      expect(snapshot.queue).toMatchObject({ depth });
      expect(snapshot.queue.error).toBeUndefined();
    }
  });

  test("a failed or hanging read is an error naming the queue, with its duration", async () => {
    let clock = 5_000;
    const failing = await takeSnapshot(
      queueOf(async () => {
        clock += 7;
        throw new Error("503 from the queue");
      }),
      [],
      snapshotOptions(new Map(), () => clock),
    );
    expect(failing.queue).toEqual({ error: "503 from the queue", durationMs: 7, permanent: false });
    const hanging = await takeSnapshot(
      queueOf(() => new Promise(() => undefined)),
      [],
      snapshotOptions(),
    );
    expect(hanging.queue.error).toBe("queue test queue did not answer within 200 ms");
  });

  test("a depth of -1 holds the tick: nothing hired, nothing shrunk", async () => {
    const region = new MemoryRegion("east");
    region.running = 8;
    const queue = new MemoryQueue();
    queue.depthValue = -1;
    const reconciler = new Reconciler({
      queue,
      regions: [region],
      policy: stepPolicy,
      parameters: { concurrency: 1, maxWorkers: 100, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 0 },
      callTimeoutMs: 200,
      actTimeoutMs: 200,
      readConcurrency: 2,
      staleTicks: 2,
      dryRun: false,
      logger: createLogger({ level: "silent" }),
    });
    const report = await reconciler.tick();
    expect(report.result).toBe("held");
    expect(region.calls.map((call) => call.operation)).toEqual(["observe"]);
    expect(region.running).toBe(8);
  });
});

describe("snapshot: region observations", () => {
  test.each([
    ["negative running", { ...good, running: -1 }, "running must be"],
    ["negative pending", { ...good, pending: -3 }, "pending must be"],
    ["negative draining", { ...good, draining: -1 }, "draining must be"],
    ["NaN running", { ...good, running: Number.NaN }, "running must be"],
    ["fractional pending", { ...good, pending: 1.5 }, "pending must be"],
    ["infinite capacity", { ...good, capacity: Number.POSITIVE_INFINITY }, "capacity must be"],
    ["a string count", { ...good, draining: "1" }, 'draining must be a whole number >= 0; got "1"'],
    ["NaN capacity", { ...good, capacity: Number.NaN }, "capacity must be a whole number; got NaN"],
    ["no capacity", { running: 1, pending: 0, draining: 0 }, "capacity must be"],
    ["not an object", null, "running must be"],
  ])(
    "%s is an error naming the field; the region falls back to its last good reading",
    async (_what, answer, field) => {
      const lastGood = new Map<string, LastGood>([["east", { observation: good, at: 500, ageTicks: 0 }]]);
      const snapshot = await takeSnapshot(
        queueOf(async () => 5),
        [regionAnswering("east", async () => answer)],
        snapshotOptions(lastGood),
      );
      const [reading] = snapshot.regions;
      expect(reading!.fresh).toBe(false);
      expect(reading!.error).toContain(`region east observe: ${field}`);
      expect(reading!.observation).toEqual(good);
      expect(reading).toMatchObject({ ageTicks: 1, ageMs: 500 });
    },
  );

  test("a negative capacity is a reading (an over-committed cluster), not an error", async () => {
    const observation = { ...good, capacity: -4 };
    const snapshot = await takeSnapshot(
      queueOf(async () => 5),
      [regionAnswering("east", async () => observation)],
      snapshotOptions(),
    );
    expect(snapshot.regions[0]).toMatchObject({ fresh: true, observation, ageTicks: 0, ageMs: 0 });
  });

  test("a good reading is stored as last good; a failed one stands in for it, growing older, for as long as the region fails", async () => {
    let clock = 1_000;
    const lastGood = new Map<string, LastGood>();
    let answer: () => Promise<unknown> = async () => good;
    const east = regionAnswering("east", () => answer());
    const read = () =>
      takeSnapshot(
        queueOf(async () => 5),
        [east],
        snapshotOptions(lastGood, () => clock),
      );

    const first = await read();
    expect(first.regions[0]).toMatchObject({ fresh: true, observation: good });
    expect(lastGood.get("east")).toEqual({ observation: good, at: 1_000, ageTicks: 0 });

    answer = async () => {
      throw new Error("ARM 500");
    };
    clock = 2_000;
    expect((await read()).regions[0]).toMatchObject({
      fresh: false,
      observation: good,
      ageTicks: 1,
      ageMs: 1_000,
    });
    clock = 3_000;
    expect((await read()).regions[0]).toMatchObject({
      fresh: false,
      observation: good,
      ageTicks: 2,
      ageMs: 2_000,
    });
    clock = 4_000;
    // Past staleTicks too: unknown counts as "as many as could be" (the decision stops hiring there).
    const old = (await read()).regions[0]!;
    expect(old).toMatchObject({
      fresh: false,
      observation: good,
      ageTicks: 3,
      ageMs: 3_000,
      error: "ARM 500",
    });
    expect(lastGood.has("east")).toBe(true);
  });

  test("a region never read successfully has no observation; its error is redacted", async () => {
    const snapshot = await takeSnapshot(
      queueOf(async () => 5),
      [
        regionAnswering("east", async () => {
          throw new Error("failed with AccountKey=c2VjcmV0c2VjcmV0c2VjcmV0");
        }),
      ],
      snapshotOptions(),
    );
    expect(snapshot.regions[0]!.observation).toBeUndefined();
    expect(snapshot.regions[0]!.error).not.toContain("c2VjcmV0c2VjcmV0c2VjcmV0");
    expect(describeError("plain text")).toBe("plain text");
  });

  test("reads go at most readConcurrency at a time, and one slow region does not hold the others", async () => {
    let inFlight = 0;
    let most = 0;
    const regions = ["a", "b", "c", "d", "e"].map((name) =>
      regionAnswering(name, async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 20));
        inFlight--;
        return good;
      }),
    );
    regions.push(regionAnswering("slow", () => new Promise(() => undefined)));
    const snapshot = await takeSnapshot(
      queueOf(async () => 5),
      regions,
      {
        ...snapshotOptions(),
        readConcurrency: 2,
      },
    );
    expect(most).toBe(2);
    expect(snapshot.regions.filter((reading) => reading.fresh)).toHaveLength(5);
    expect(snapshot.regions.at(-1)!.error).toBe("region slow observe did not answer within 200 ms");
  });
});

describe("snapshot: deadlines and durations", () => {
  test("every read gets a signal that fires at its deadline", async () => {
    const signals: Array<AbortSignal | undefined> = [];
    const hang = (options?: { signal?: AbortSignal }) => {
      signals.push(options?.signal);
      return new Promise<never>(() => undefined);
    };
    const region = new MemoryRegion("east");
    region.observe = hang as MemoryRegion["observe"];
    const queue = { description: "q", depth: hang } as unknown as QueueProbe;
    await takeSnapshot(queue, [region], { ...snapshotOptions(), callTimeoutMs: 50 });
    expect(signals).toHaveLength(2);
    expect(signals.map((signal) => signal?.aborted)).toEqual([true, true]);
  });

  test("durations are measured from the start of each read", async () => {
    let clock = 10_000;
    const tick = (ms: number) => async () => {
      clock += ms;
      return ms === 3 ? 5 : good;
    };
    const snapshot = await takeSnapshot(
      queueOf(tick(3) as () => Promise<number>),
      [regionAnswering("east", tick(4))],
      snapshotOptions(new Map(), () => clock),
    );
    expect(snapshot.at).toBe(10_000);
    expect(snapshot.queue.durationMs).toBeGreaterThanOrEqual(3);
    expect(snapshot.queue.durationMs).toBeLessThanOrEqual(7);
    expect(snapshot.regions[0]!.durationMs).toBeGreaterThanOrEqual(4);
    expect(snapshot.regions[0]!.durationMs).toBeLessThanOrEqual(7);

    const failing = await takeSnapshot(
      queueOf(async () => 5),
      [
        regionAnswering("east", async () => {
          clock += 6;
          throw new Error("down");
        }),
      ],
      snapshotOptions(new Map(), () => clock),
    );
    expect(failing.regions[0]!.durationMs).toBe(6);
  });
});
