import { afterEach, describe, expect, it, vi } from "vitest";
import { LeaseFence } from "../../src/controller/leader.js";
import { carryOut } from "../../src/controller/act.js";
import { fencedSignal, isFenced, type WriteFence } from "../../src/regions/fence.js";
import {
  backChannelSchema,
  createDrainChannel,
  createMemoryLedgerStore,
  type ControlSender,
} from "../../src/backchannel/index.js";
import type { Plan } from "../../src/policy/decide.js";
import { createLogger } from "../../src/logging/logger.js";
import { MemoryRegion } from "../support/memory-region.js";

const logger = createLogger({ level: "silent" });

describe("LeaseFence", () => {
  it("lets writes go from a grant until its end by the monotonic clock, then refuses them", () => {
    let clock = 1_000;
    const fence = new LeaseFence(() => clock);
    expect(() => fence.check("hire")).toThrow(/hire not sent: this replica does not hold the leader lease/);
    fence.grant(1_000, 12_000);
    clock = 12_999;
    expect(() => fence.check("hire")).not.toThrow();
    clock = 13_000;
    expect(fence.holds()).toBe(false);
    let refusal: unknown;
    try {
      fence.check("ARM jobs.createOrUpdate");
    } catch (error) {
      refusal = error;
    }
    expect(isFenced(refusal)).toBe(true);
    expect(isFenced(new Error("wrapped", { cause: refusal }))).toBe(true);
    expect((refusal as Error).message).toMatch(/ran out 0 ms ago by its own clock and is not renewed yet/);
  });

  it("a paused replica finds its lease run out on waking; only a renewal opens the fence again", () => {
    let clock = 0;
    const fence = new LeaseFence(() => clock);
    fence.grant(0, 12_000);
    clock = 40_000; // SIGSTOP for 40 s
    expect(() => fence.check("hire")).toThrow(/ran out 28000 ms ago/);
    fence.grant(40_000, 12_000); // the renewal sent on waking succeeded
    expect(() => fence.check("hire")).not.toThrow();
    fence.revoke();
    expect(fence.holds()).toBe(false);
  });
});

describe("fencedSignal (for writes the SDK retries by itself)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("aborts at the lease's end with the fence's refusal; a renewal before it moves the end", async () => {
    vi.useFakeTimers();
    const fence = new LeaseFence(() => Date.now());
    fence.grant(Date.now(), 1_000);
    const guard = fencedSignal(fence, "control message send (a retry)");
    await vi.advanceTimersByTimeAsync(600);
    fence.grant(Date.now(), 1_000); // renewed: the write may go on until 1,600
    await vi.advanceTimersByTimeAsync(900);
    expect(guard.signal!.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(guard.signal!.aborted).toBe(true);
    expect(isFenced(guard.signal!.reason)).toBe(true);
    expect(guard.fenced()!.message).toMatch(/^control message send \(a retry\) not sent: .*ran out/);
    guard.done();
  });

  it("aborts at once when the lease is lost or given up before its end, and stops watching when done", () => {
    const fence = new LeaseFence(() => 0);
    fence.grant(0, 10_000);
    const guard = fencedSignal(fence, "drain ledger write (a retry)");
    fence.revoke(); // a renewal answered 409: another replica holds the lease now
    expect(guard.signal!.aborted).toBe(true);
    expect(guard.fenced()!.message).toMatch(/does not hold the leader lease/);
    guard.done();
    fence.grant(0, 10_000);
    const finished = fencedSignal(fence, "write");
    finished.done();
    fence.revoke();
    expect(finished.signal!.aborted).toBe(false);
  });

  it("follows the caller's signal, and is the caller's own without a fence that knows its end", () => {
    const caller = new AbortController();
    const fence = new LeaseFence(() => 0);
    fence.grant(0, 10_000);
    const guard = fencedSignal(fence, "write", caller.signal);
    caller.abort(new Error("deadline"));
    expect((guard.signal!.reason as Error).message).toBe("deadline");
    expect(guard.fenced()).toBeUndefined();
    guard.done();
    const plain = fencedSignal({ check: () => undefined }, "write", caller.signal);
    expect(plain.signal).toBe(caller.signal);
  });
});

const plan = (regions: Plan["regions"]): Plan => ({
  desired: 0,
  target: 0,
  totals: { running: 0, pending: 0, draining: 0, capacity: 0 },
  hire: 0,
  surplus: 0,
  busyWorkers: 0,
  regions,
});

describe("act phase with a fence", () => {
  it("checks the fence before each step: a refused fence makes no call at all and says why", async () => {
    const region = new MemoryRegion("east");
    region.running = 5;
    region.pending = 5;
    const refuse: WriteFence = {
      check: (write) => {
        throw new Error(`${write} not sent: fenced`);
      },
    };
    const [outcome] = await carryOut(plan([{ region: "east", hire: 3, cancel: 2, drain: 1 }]), [region], {
      actTimeoutMs: 1000,
      concurrency: 1,
      dryRun: false,
      logger,
      fence: refuse,
    });
    expect(region.calls).toEqual([]);
    expect(outcome).toMatchObject({ hired: 0, cancelled: 0, drained: 0 });
    expect(outcome!.errors).toEqual([
      {
        operation: "cancel",
        message: "region east cancel not sent: fenced",
        reason: "error",
        permanent: false,
      },
    ]);
  });

  it("a fence that closes during the tick stops the region's later steps", async () => {
    const region = new MemoryRegion("east");
    region.running = 5;
    region.pending = 5;
    let open = true;
    const fence: WriteFence = {
      check: (write) => {
        if (!open) throw new Error(`${write} not sent: fenced`);
      },
    };
    const cancelPending = region.cancelPending.bind(region);
    region.cancelPending = async (count, options) => {
      const result = await cancelPending(count, options);
      open = false; // the lease ran out while the cancel was in flight
      return result;
    };
    const [outcome] = await carryOut(plan([{ region: "east", hire: 3, cancel: 2, drain: 1 }]), [region], {
      actTimeoutMs: 1000,
      concurrency: 1,
      dryRun: false,
      logger,
      fence,
    });
    expect(region.calls.map((call) => call.operation)).toEqual(["cancel"]);
    expect(outcome).toMatchObject({ cancelled: 2, drained: 0, hired: 0 });
    expect(outcome!.errors.map((error) => error.operation)).toEqual(["drain"]);
  });
});

describe("resume sweep with a fence", () => {
  // The sweep's writes are fenced by the region itself, right before each POST (azureml-resume-fence):
  // a sweep with nothing paused, or a region that does not resume, refuses nothing and reports no error.
  it("a fenced tick reports no resume error when the sweep has nothing to resume", async () => {
    const region = new MemoryRegion("east");
    Object.assign(region, {
      resumePaused: async () => ({ resumed: 0, cancelled: 0, refused: 0, failed: 0, errors: [] }),
    });
    const refuse: WriteFence = {
      check: (write) => {
        throw new Error(`${write} not sent: fenced`);
      },
    };
    const [outcome] = await carryOut(
      { ...plan([{ region: "east", hire: 0, cancel: 0, drain: 0 }]), hold: "queue unreadable" },
      [region],
      { actTimeoutMs: 1000, concurrency: 1, dryRun: false, logger, fence: refuse },
    );
    expect(outcome!.errors).toEqual([]);
    expect(outcome!.resume).toMatchObject({ resumed: 0 });
  });
});

describe("drain channel with a fence", () => {
  it("a fenced replica neither writes the ledger nor sends a control message", async () => {
    let sends = 0;
    const sender: ControlSender = {
      async send(_operation, count) {
        sends += count;
        return { sent: count, errors: [] };
      },
      async ensureTopology() {},
      async close() {},
    };
    const store = createMemoryLedgerStore();
    const fence = new LeaseFence(() => 0); // never granted
    const channel = createDrainChannel(
      "r",
      backChannelSchema.parse({ fullyQualifiedNamespace: "bus.servicebus.windows.net", topic: "wf" }),
      {
        settings: {
          drainOperation: "graceful-downscale",
          drainTimeoutSeconds: 600,
          controlMessageTtlSeconds: 60,
        },
        logger,
        store,
        sender,
        fence,
      },
    );
    const result = await channel.requestDrain(2, ["a", "b", "c"]);
    expect(result.drained).toBe(0);
    expect(result.errors[0]?.message).toMatch(/drain ledger write for region r not sent/);
    expect(sends).toBe(0);
    expect((await store.load("r")).version).toBeUndefined();
  });
});
