import { describe, expect, it } from "vitest";
import {
  backChannelSchema,
  createDrainChannel,
  createMemoryLedgerStore,
  type ControlSender,
  type LedgerStore,
} from "../../src/backchannel/index.js";
import { createLogger } from "../../src/logging/logger.js";

const settings = {
  drainOperation: "graceful-downscale" as const,
  drainTimeoutSeconds: 600,
  controlMessageTtlSeconds: 60,
};
const config = backChannelSchema.parse({
  fullyQualifiedNamespace: "bus.servicebus.windows.net",
  topic: "wf",
});
const logger = createLogger({ level: "silent" });

/** Accepts the first `capacity` messages, then fails (as a broker that goes away mid-batch). */
function sender(capacity = Infinity): ControlSender & { sent: number } {
  const fake = {
    sent: 0,
    async send(_operation: string, count: number) {
      const accepted = Math.max(0, Math.min(count, capacity - fake.sent));
      fake.sent += accepted;
      return accepted === count
        ? { sent: accepted, errors: [] }
        : { sent: accepted, errors: [new Error("broker gone")] };
    },
    async ensureTopology() {},
    async close() {},
  };
  return fake as ControlSender & { sent: number };
}

describe("drain channel (ledger + sender)", () => {
  it("records only what reached the broker when a send fails part-way", async () => {
    let clock = 1_000_000;
    const fake = sender(2);
    const channel = createDrainChannel("r", config, {
      settings,
      logger,
      store: createMemoryLedgerStore(),
      sender: fake,
      now: () => clock,
    });
    const result = await channel.requestDrain(3, ["a", "b", "c", "d"]);
    expect(result.drained).toBe(2);
    expect(result.errors.map((error) => error.message)).toEqual(["broker gone"]);
    expect(await channel.inFlight(["a", "b", "c", "d"])).toBe(2);
    // Past the drain timeout, nothing counts any more.
    clock += 600_000;
    expect(await channel.inFlight(["a", "b", "c", "d"])).toBe(0);
  });

  it("counts a send cut off before the broker answered as sent, until the drain timeout", async () => {
    let clock = 1_000_000;
    const cutOff: ControlSender = {
      // The deadline came while the broker had the batch: it may have taken every message.
      send: async (_operation, count) => ({ sent: 0, unknown: count, errors: [new Error("aborted")] }),
      ensureTopology: async () => {},
      close: async () => {},
    };
    const channel = createDrainChannel("r", config, {
      settings,
      logger,
      store: createMemoryLedgerStore(),
      sender: cutOff,
      now: () => clock,
    });
    const running = ["a", "b", "c", "d", "e"];
    const result = await channel.requestDrain(3, running);
    expect(result).toMatchObject({ drained: 0, unknown: 3 });
    expect(await channel.inFlight(running)).toBe(3);
    // The next tick's request for the same surplus sends nothing more than the 2 not asked yet.
    clock += 1_000;
    const again = await channel.requestDrain(5, running);
    expect(again.unknown).toBe(2);
    expect(await channel.inFlight(running)).toBe(5);
    clock += 600_000;
    expect(await channel.inFlight(running)).toBe(0);
  });

  it("sends nothing when its ledger cannot be read or written, and says why", async () => {
    const broken: LedgerStore = {
      description: "broken",
      load: async () => {
        throw new Error("storage unreachable");
      },
      save: async () => {
        throw new Error("storage unreachable");
      },
    };
    const fake = sender();
    const channel = createDrainChannel("r", config, { settings, logger, store: broken, sender: fake });
    const result = await channel.requestDrain(2, ["a", "b"]);
    expect(result.drained).toBe(0);
    expect(result.errors[0]?.message).toMatch(
      /region r: drain not sent: ledger unavailable: storage unreachable/,
    );
    expect(fake.sent).toBe(0);
    await expect(channel.inFlight(["a"])).rejects.toThrow(/storage unreachable/);
  });

  it("never asks for more workers than are running and not yet asked", async () => {
    const fake = sender();
    const channel = createDrainChannel("r", config, {
      settings,
      logger,
      store: createMemoryLedgerStore(),
      sender: fake,
    });
    expect((await channel.requestDrain(10, ["a", "b"])).drained).toBe(2);
    expect((await channel.requestDrain(1, ["a", "b"])).drained).toBe(0);
    expect((await channel.requestDrain(0, ["a", "b"])).drained).toBe(0);
    expect((await channel.requestDrain(1, [])).drained).toBe(0);
    expect(fake.sent).toBe(2);
  });
});
