import { execFileSync } from "node:child_process";
import { ServiceBusAdministrationClient } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import {
  createDrainChannel,
  createMemoryLedgerStore,
  createControlSender,
  drainChannelFactory,
} from "../../src/backchannel/index.js";
import { backChannelSchema } from "../../src/backchannel/config.js";
import type { ServiceBusClientDeps } from "../../src/backchannel/clients.js";
import { quietLogger } from "./agent-support.js";
import { LeaseFence } from "../../src/controller/leader.js";
import type { WriteFence } from "../../src/regions/fence.js";

const settings = {
  drainOperation: "graceful-downscale" as const,
  drainTimeoutSeconds: 3600,
  controlMessageTtlSeconds: 120,
};
const running = ["w1", "w2", "w3", "w4", "w5"];

let emulator: ServiceBusEmulator;
beforeAll(async () => {
  emulator = await startServiceBusEmulator();
});
afterAll(async () => {
  await emulator?.stop();
});

function backChannel(topic: string) {
  return backChannelSchema.parse({
    connectionString: emulator.connectionString,
    topic,
    adminEndpoint: emulator.adminEndpoint,
  });
}

/** A control sender to `topic` of the emulator (its `shutdown` subscription, messages live 60 s). */
function senderTo(
  topic: string,
  options: { autoCreate?: boolean; retry?: ServiceBusClientDeps["retry"]; fence?: WriteFence } = {},
) {
  return createControlSender({
    target: {
      connectionString: emulator.connectionString,
      adminEndpoint: emulator.adminNamespace,
      topic,
      subscription: "shutdown",
      autoCreate: options.autoCreate ?? true,
    },
    ttlSeconds: 60,
    logger: quietLogger(),
    clientDeps: { tlsCa: emulator.ca, ...(options.retry ? { retry: options.retry } : {}) },
    fence: options.fence,
  });
}

const pythonBytes = (operation: string) =>
  execFileSync("python3", [
    "-c",
    `import json,sys; sys.stdout.write(json.dumps({"operation": "${operation}"}))`,
  ]);

describe("drain channel over Service Bus", () => {
  it("creates the topic and its shutdown subscription, then sends k messages with a TTL and a JSON-object body", async () => {
    const channel = createDrainChannel("r1", backChannel("wf-r1"), {
      settings,
      logger: quietLogger(),
      store: createMemoryLedgerStore(),
      clientDeps: { tlsCa: emulator.ca },
    });
    try {
      const result = await channel.requestDrain(3, running);
      expect(result).toEqual({ drained: 3, errors: [] });
      const admin = new ServiceBusAdministrationClient(emulator.adminConnectionString, {
        tlsOptions: { ca: emulator.ca },
      });
      expect(await admin.subscriptionExists("wf-r1", "shutdown")).toBe(true);
      const messages = emulator.messages("wf-r1/Subscriptions/shutdown");
      expect(messages).toHaveLength(3);
      for (const message of messages) {
        expect(message.timeToLiveMs).toBe(120_000);
        expect(message.bodyBytes?.equals(pythonBytes("graceful-downscale"))).toBe(true);
        expect(message.body).toEqual({ operation: "graceful-downscale" });
        expect(message.applicationProperties.region).toBe("r1");
      }
    } finally {
      await channel.close?.();
    }
  });

  it("does not ask again for workers already asked: the next request only sends the difference", async () => {
    const channel = createDrainChannel("r2", backChannel("wf-r2"), {
      settings: { ...settings, drainOperation: "do-not-accept-new-tasks" },
      logger: quietLogger(),
      store: createMemoryLedgerStore(),
      clientDeps: { tlsCa: emulator.ca },
    });
    try {
      expect((await channel.requestDrain(2, running)).drained).toBe(2);
      expect(await channel.inFlight(running)).toBe(2);
      // Five running, two already asked: at most three more.
      expect((await channel.requestDrain(5, running)).drained).toBe(3);
      expect((await channel.requestDrain(1, running)).drained).toBe(0);
      // Two of them left: two requests are done, three are still in flight.
      expect(await channel.inFlight(["w3", "w4", "w5"])).toBe(3);
      const messages = emulator.messages("wf-r2/Subscriptions/shutdown");
      expect(messages).toHaveLength(5);
      expect(
        messages.every((message) => message.bodyBytes?.equals(pythonBytes("do-not-accept-new-tasks"))),
      ).toBe(true);
    } finally {
      await channel.close?.();
    }
  });

  it("a failed send leaves no drain in flight, so the next tick may ask again", async () => {
    const channel = createDrainChannel("r3", backChannel("wf-r3"), {
      settings,
      logger: quietLogger(),
      store: createMemoryLedgerStore(),
      clientDeps: { tlsCa: emulator.ca, retry: { maxRetries: 0, timeoutInMs: 5_000 } },
    });
    try {
      // Topic first (its own connection), then refuse the sender's tokens.
      await channel.requestDrain(1, running);
      await channel.close?.();
      emulator.faults.refuseNextPutTokens(10);
      const failed = await channel.requestDrain(2, running);
      expect(failed.drained).toBe(0);
      expect(failed.errors.length).toBeGreaterThan(0);
      expect(await channel.inFlight(running)).toBe(1);
    } finally {
      emulator.faults.reset();
      await channel.close?.();
    }
  });

  it("the factory gives each region its own channel and ledger", async () => {
    const make = drainChannelFactory({
      settings,
      logger: quietLogger(),
      stateStore: createMemoryLedgerStore(),
      tlsCa: emulator.ca,
    });
    const a = make("fa", backChannel("wf-shared"));
    const b = make("fb", backChannel("wf-shared"));
    try {
      expect((await a.requestDrain(1, ["x1"])).drained).toBe(1);
      expect((await b.requestDrain(1, ["y1"])).drained).toBe(1);
      // Separate ledgers per region: region fa's request does not count in region fb.
      expect(await b.inFlight(["y1", "y2"])).toBe(1);
      expect(
        emulator.messages("wf-shared/Subscriptions/shutdown").map((m) => m.applicationProperties.region),
      ).toEqual(["fa", "fb"]);
    } finally {
      await a.close?.();
      await b.close?.();
    }
  });

  it("a fenced sender (lease run out) neither creates the topic nor sends, and says why", async () => {
    const sender = senderTo("wf-fenced", {
      fence: new LeaseFence(() => 0), // never granted
    });
    try {
      const result = await sender.send("graceful-downscale", 2);
      expect(result).toMatchObject({ sent: 0, unknown: 0 });
      expect(result.errors.map((error) => error.message)).toEqual([
        "control message send not sent: this replica does not hold the leader lease",
      ]);
      const admin = new ServiceBusAdministrationClient(emulator.adminConnectionString, {
        tlsOptions: { ca: emulator.ca },
      });
      // The topic's creation is a write to the namespace too.
      expect(await admin.topicExists("wf-fenced")).toBe(false);
    } finally {
      await sender.close();
    }
  });

  it("the SDK's own retry of a send is fenced too: none goes after the lease ran out", async () => {
    // Each attempt times out at 1 s (acknowledgements come 3 s late) and the SDK sends the batch
    // again, twice. The lease was renewed right before the batch went out, with 250 ms left, and not
    // again (the process stalled): it runs out 250 ms into the first attempt.
    const lease = new LeaseFence();
    const fence: WriteFence = {
      check(write) {
        if (write === "control message send") lease.grant(performance.now(), 250);
        lease.check(write);
      },
      remainingMs: () => lease.remainingMs(),
    };
    const sender = senderTo("wf-fenced-retry", {
      autoCreate: false,
      retry: { maxRetries: 2, retryDelayInMs: 200, timeoutInMs: 1_000 },
      fence,
    });
    const admin = new ServiceBusAdministrationClient(emulator.adminConnectionString, {
      tlsOptions: { ca: emulator.ca },
    });
    await admin.createTopic("wf-fenced-retry");
    await admin.createSubscription("wf-fenced-retry", "shutdown");
    emulator.faults.ackDelayMs = 3_000;
    try {
      const result = await sender.send("graceful-downscale", 1);
      // The first attempt may have gone: counted as maybe sent, never as not sent.
      expect(result).toMatchObject({ sent: 0, unknown: 1 });
      expect(result.errors.map((error) => error.message)).toEqual([
        expect.stringMatching(
          /^control message send cut off, the batch may have gone: control message send \(a retry\) not sent: this replica's leader lease ran out/,
        ),
      ]);
      // Every attempt that reached the broker is taken once its acknowledgement is due: one at most.
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect(emulator.counts("wf-fenced-retry/Subscriptions/shutdown").active).toBeLessThanOrEqual(1);
    } finally {
      emulator.faults.reset();
      await sender.close();
    }
  }, 20_000);

  it("a send's SDK retries stop at once when the lease is lost to another replica (not at its old end)", async () => {
    // As above, but the lease has 10 s left: 300 ms into the first attempt a renewal is answered 409
    // (another replica holds the lease now), and the fence is revoked. No retry may go after that.
    const lease = new LeaseFence();
    lease.grant(performance.now(), 10_000);
    const sender = senderTo("wf-lease-lost", {
      autoCreate: false,
      retry: { maxRetries: 2, retryDelayInMs: 200, timeoutInMs: 1_000 },
      fence: lease,
    });
    const admin = new ServiceBusAdministrationClient(emulator.adminConnectionString, {
      tlsOptions: { ca: emulator.ca },
    });
    await admin.createTopic("wf-lease-lost");
    await admin.createSubscription("wf-lease-lost", "shutdown");
    emulator.faults.ackDelayMs = 3_000;
    const lost = setTimeout(() => lease.revoke(), 300);
    try {
      const result = await sender.send("graceful-downscale", 1);
      expect(result).toMatchObject({ sent: 0, unknown: 1 });
      expect(result.errors.map((error) => error.message)).toEqual([
        expect.stringMatching(
          /^control message send cut off, the batch may have gone: control message send \(a retry\) not sent: this replica does not hold the leader lease/,
        ),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect(emulator.counts("wf-lease-lost/Subscriptions/shutdown").active).toBeLessThanOrEqual(1);
    } finally {
      clearTimeout(lost);
      emulator.faults.reset();
      await sender.close();
    }
  }, 20_000);

  it("the SDK's own retry of the topic's creation is fenced too: no topic made after the lease ran out", async () => {
    // The topic is missing; the first creation is answered 503 after 1 s (the administration client
    // retries it). The lease had 250 ms left when the send began, and was not renewed.
    const lease = new LeaseFence();
    lease.grant(performance.now(), 250);
    const sender = senderTo("wf-fenced-topic", { fence: lease });
    emulator.faults.busyNextAdminWrites(1, 1_000);
    try {
      const result = await sender.send("graceful-downscale", 1);
      // Nothing sent (there is no topic to send to, and the lease ran out before any batch went).
      expect(result).toMatchObject({ sent: 0, unknown: 0 });
      expect(result.errors).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const admin = new ServiceBusAdministrationClient(emulator.adminConnectionString, {
        tlsOptions: { ca: emulator.ca },
      });
      expect(await admin.topicExists("wf-fenced-topic")).toBe(false);
    } finally {
      emulator.faults.reset();
      await sender.close();
    }
  }, 20_000);

  it("sends nothing for a count of zero and rejects a negative count", async () => {
    const sender = senderTo("wf-zero");
    try {
      expect(await sender.send("graceful-downscale", 0)).toEqual({ sent: 0, unknown: 0, errors: [] });
      await expect(sender.send("graceful-downscale", -1)).rejects.toThrow(/>= 0/);
      // Many messages go in batches, and all arrive.
      expect((await sender.send("graceful-downscale", 250)).sent).toBe(250);
      expect(emulator.counts("wf-zero/Subscriptions/shutdown").active).toBe(250);
    } finally {
      await sender.close();
    }
  });
});
