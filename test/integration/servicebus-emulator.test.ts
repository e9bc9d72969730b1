import {
  ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from "@azure/service-bus";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";

// The real @azure/service-bus client against the emulator's AMQP broker.

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;
const closers: Array<{ close(): Promise<void> }> = [];
let nextName = 0;

function track<T extends { close(): Promise<void> }>(link: T): T {
  closers.push(link);
  return link;
}

/** A fresh queue per test, so tests never see each other's messages. */
function queue(settings: Parameters<ServiceBusEmulator["createQueue"]>[1] = {}): string {
  const name = `q${++nextName}`;
  emulator.createQueue(name, settings);
  return name;
}

async function receiveOne(
  receiver: ServiceBusReceiver,
  maxWaitTimeInMs = 3000,
): Promise<ServiceBusReceivedMessage> {
  const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs });
  if (!message) throw new Error(`no message within ${maxWaitTimeInMs} ms`);
  return message;
}

beforeAll(async () => {
  emulator = await startServiceBusEmulator();
  client = new ServiceBusClient(emulator.connectionString, {
    retryOptions: { maxRetries: 5, retryDelayInMs: 100, maxRetryDelayInMs: 500, timeoutInMs: 10_000 },
  });
});

afterEach(async () => {
  emulator.faults.reset();
  await Promise.all(closers.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

describe("queues", () => {
  it("delivers a sent message once in peek-lock mode and forgets it after complete", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages({
      body: { task: 1 },
      applicationProperties: { kind: "test" },
    });
    const receiver = track(client.createReceiver(q));

    const message = await receiveOne(receiver);
    expect(message.body).toEqual({ task: 1 });
    expect(message.applicationProperties).toEqual({ kind: "test" });
    expect(message.deliveryCount).toBe(0);
    expect(message.lockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    expect(message.sequenceNumber!.toNumber()).toBe(1);
    // The broker assigned a message id (the sender gave none), and the lock token reads back as the broker's.
    const [stored] = emulator.messages(q);
    expect(stored?.messageId).toBe(message.messageId);
    expect(stored?.state).toBe("locked");
    expect(stored?.lockToken).toBe(message.lockToken);
    expect(stored?.lockedUntil?.getTime()).toBe(message.lockedUntilUtc?.getTime());

    await receiver.completeMessage(message);
    expect(emulator.counts(q)).toEqual({ active: 0, locked: 0, deadLetter: 0, total: 0 });
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
  });

  it("keeps the sender's message id and raw bytes of a Buffer body", async () => {
    const q = queue();
    const bytes = Buffer.from('{"operation": "graceful-downscale"}');
    await track(client.createSender(q)).sendMessages({ body: bytes, messageId: "m-1" });
    const [stored] = emulator.messages(q);
    expect(stored?.messageId).toBe("m-1");
    expect(stored?.bodyBytes?.equals(bytes)).toBe(true);
    expect(stored?.body).toEqual({ operation: "graceful-downscale" });
  });

  it("redelivers an abandoned message with its delivery count raised", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages({ body: "work" });
    const receiver = track(client.createReceiver(q));

    const first = await receiveOne(receiver);
    await receiver.abandonMessage(first);
    const second = await receiveOne(receiver);
    expect(second.messageId).toBe(first.messageId);
    expect(second.deliveryCount).toBe(1);
    expect(second.lockToken).not.toBe(first.lockToken);
    await receiver.completeMessage(second);
  });

  it("makes a message available again when its lock expires, and refuses the stale lock", async () => {
    const q = queue({ lockDurationMs: 400 });
    await track(client.createSender(q)).sendMessages({ body: "slow task" });
    // No auto-renewal: this receiver lets the lock lapse.
    const receiver = track(client.createReceiver(q, { maxAutoLockRenewalDurationInMs: 0 }));

    const first = await receiveOne(receiver);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 100 })).toEqual([]); // still locked
    const second = await receiveOne(receiver, 3000);
    expect(second.messageId).toBe(first.messageId);
    expect(second.deliveryCount).toBe(1);

    await expect(receiver.completeMessage(first)).rejects.toMatchObject({ code: "MessageLockLost" });
    await receiver.completeMessage(second);
    expect(emulator.counts(q).active).toBe(0);
  });

  it("dead-letters a message after max delivery count", async () => {
    const q = queue({ maxDeliveryCount: 2 });
    await track(client.createSender(q)).sendMessages({ body: "poison" });
    const receiver = track(client.createReceiver(q));
    await receiver.abandonMessage(await receiveOne(receiver));
    await receiver.abandonMessage(await receiveOne(receiver));
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [dead] = emulator.messages(`${q}/$DeadLetterQueue`);
    expect(dead?.deadLetterReason).toBe("MaxDeliveryCountExceeded");
  });

  it("renews a lock over $management and keeps it past the lock duration", async () => {
    // Margins of 1.5 s either side: a loaded machine may fire a timer, or answer a renewal, late.
    const q = queue({ lockDurationMs: 3_000 });
    await track(client.createSender(q)).sendMessages({ body: "long task" });
    const receiver = track(client.createReceiver(q, { maxAutoLockRenewalDurationInMs: 0 }));
    const message = await receiveOne(receiver);
    const before = message.lockedUntilUtc!.getTime();

    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const renewed = await receiver.renewMessageLock(message);
    expect(renewed.getTime()).toBeGreaterThan(before);
    // Past the first lock's end, within the renewed one.
    while (Date.now() <= before + 100) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(Date.now()).toBeLessThan(renewed.getTime());
    expect(emulator.messages(q)[0]?.state).toBe("locked");
    await receiver.completeMessage(message);
    expect(emulator.counts(q).active).toBe(0);
  });

  it("renews locks automatically for a receiver that asks for it", async () => {
    // The SDK renews halfway through a lock (at once for locks under 1 s): a 3 s lock leaves each renewal
    // 1.5 s to answer, which a loaded machine needs (with 600 ms, one slow round trip lost the lock).
    const q = queue({ lockDurationMs: 3_000 });
    await track(client.createSender(q)).sendMessages({ body: "auto renewed" });
    const receiver = track(client.createReceiver(q, { maxAutoLockRenewalDurationInMs: 20_000 }));
    const message = await receiveOne(receiver);
    const lockedUntil = message.lockedUntilUtc!.getTime();
    // Past the first lock's end.
    while (Date.now() <= lockedUntil + 500) await new Promise((resolve) => setTimeout(resolve, 100));
    await receiver.completeMessage(message); // would be MessageLockLost without renewal
    expect(emulator.counts(q).active).toBe(0);
  });

  it("fails to renew a lost lock with MessageLockLost", async () => {
    const q = queue({ lockDurationMs: 200 });
    await track(client.createSender(q)).sendMessages({ body: "x" });
    const receiver = track(client.createReceiver(q, { maxAutoLockRenewalDurationInMs: 0 }));
    const message = await receiveOne(receiver);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await expect(receiver.renewMessageLock(message)).rejects.toMatchObject({ code: "MessageLockLost" });
  });

  it("never delivers a message whose time-to-live has passed", async () => {
    const q = queue();
    const sender = track(client.createSender(q));
    await sender.sendMessages([
      { body: "stale", timeToLive: 200 },
      { body: "fresh", timeToLive: 60_000 },
    ]);
    expect(emulator.messages(q).map((m) => m.timeToLiveMs)).toEqual([200, 60_000]);
    await new Promise((resolve) => setTimeout(resolve, 400));

    const receiver = track(client.createReceiver(q));
    const messages = await receiver.receiveMessages(10, { maxWaitTimeInMs: 500 });
    expect(messages.map((m) => m.body)).toEqual(["fresh"]);
  });

  it("moves expired messages to the dead-letter queue when the entity says so", async () => {
    const q = queue({ deadLetteringOnMessageExpiration: true });
    await track(client.createSender(q)).sendMessages({ body: "stale", timeToLive: 100 });
    await emulator.waitFor(() => emulator.counts(q).deadLetter === 1);
    const dlq = track(client.createReceiver(q, { subQueueType: "deadLetter" }));
    const dead = await receiveOne(dlq);
    expect(dead.body).toBe("stale");
    expect(dead.deadLetterReason).toBe("TTLExpiredException");
  });

  it("accepts a batch (format 0x80013700) as separate messages, sized by the broker's max_message_size", async () => {
    const q = queue();
    const sender = track(client.createSender(q));
    const batch = await sender.createMessageBatch();
    expect(batch.maxSizeInBytes).toBe(256 * 1024);
    for (const i of [1, 2, 3]) expect(batch.tryAddMessage({ body: { i } })).toBe(true);
    await sender.sendMessages(batch);

    expect(emulator.messages(q).map((m) => m.body)).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }]);
    const receiver = track(client.createReceiver(q));
    const received: ServiceBusReceivedMessage[] = [];
    while (received.length < 3)
      received.push(...(await receiver.receiveMessages(3, { maxWaitTimeInMs: 1000 })));
    expect(received.map((m) => m.body)).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }]);
    expect(new Set(received.map((m) => m.messageId)).size).toBe(3);
  });

  it("locks only as many messages as the receiver gave credit for", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages([1, 2, 3, 4].map((body) => ({ body })));
    const receiver = track(client.createReceiver(q));
    const taken = await receiver.receiveMessages(2, { maxWaitTimeInMs: 1000 });
    expect(taken.map((m) => m.body)).toEqual([1, 2]);
    expect(emulator.messages(q).map((m) => m.state)).toEqual(["locked", "locked", "active", "active"]);
  });

  it("peeks at messages, locked ones included, without taking them", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages([1, 2, 3].map((body) => ({ body })));
    const receiver = track(client.createReceiver(q));
    await receiveOne(receiver); // locks the first
    const peeked = await receiver.peekMessages(10);
    expect(peeked.map((m) => m.body)).toEqual([1, 2, 3]);
    expect(peeked.map((m) => m.sequenceNumber!.toNumber())).toEqual([1, 2, 3]);
    expect(await receiver.peekMessages(10)).toEqual([]); // the client continues after the last peeked one
    expect(emulator.messages(q).map((m) => m.state)).toEqual(["locked", "active", "active"]);
  });

  it("gives each message to one of several competing receivers", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages(Array.from({ length: 10 }, (_, i) => ({ body: i })));
    const receivers = [track(client.createReceiver(q)), track(client.createReceiver(q))];
    const seen: number[] = [];
    for (let round = 0; seen.length < 10 && round < 20; round++) {
      const batches = await Promise.all(receivers.map((r) => r.receiveMessages(3, { maxWaitTimeInMs: 300 })));
      for (const [i, batch] of batches.entries()) {
        for (const m of batch) {
          seen.push(m.body as number);
          await receivers[i]!.completeMessage(m);
        }
      }
    }
    expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(emulator.counts(q).active).toBe(0);
  });

  it("receive-and-delete removes the message on delivery", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages({ body: "once" });
    const receiver = track(client.createReceiver(q, { receiveMode: "receiveAndDelete" }));
    const message = await receiveOne(receiver);
    expect(message.body).toBe("once");
    expect(emulator.counts(q).active).toBe(0);
  });

  it("answers a drain: receiveMessages returns what there is when fewer messages than asked wait", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages([{ body: 1 }, { body: 2 }]);
    const receiver = track(client.createReceiver(q));
    const messages = await receiver.receiveMessages(10, { maxWaitTimeInMs: 500 });
    expect(messages.map((m) => m.body)).toEqual([1, 2]);
    // The credit left after the drain is not used for a later message.
    await track(client.createSender(q)).sendMessages({ body: 3 });
    expect(emulator.counts(q).locked).toBe(2);
    expect((await receiveOne(receiver)).body).toBe(3);
  });

  it("streams messages to a subscribe() handler", async () => {
    const q = queue();
    const receiver = track(client.createReceiver(q));
    const bodies: unknown[] = [];
    const subscription = receiver.subscribe(
      {
        processMessage: async (message) => {
          bodies.push(message.body);
        },
        processError: async () => undefined,
      },
      { autoCompleteMessages: true },
    );
    closers.push(subscription);
    await track(client.createSender(q)).sendMessages([{ body: "a" }, { body: "b" }]);
    await emulator.waitFor(() => bodies.length === 2 && emulator.counts(q).active === 0);
    expect(bodies).toEqual(["a", "b"]);
  });

  it("refuses to attach to an entity that does not exist", async () => {
    const sender = track(client.createSender("no-such-queue"));
    await expect(sender.sendMessages({ body: 1 })).rejects.toMatchObject({ code: "MessagingEntityNotFound" });
  });
});

describe("topics and subscriptions", () => {
  it("copies a message sent to a topic into each subscription", async () => {
    emulator.createTopic("control");
    emulator.createSubscription("control", "shutdown");
    emulator.createSubscription("control", "audit");
    await track(client.createSender("control")).sendMessages({ body: { operation: "graceful-downscale" } });

    for (const sub of ["shutdown", "audit"]) {
      const receiver = track(client.createReceiver("control", sub));
      const message = await receiveOne(receiver);
      expect(message.body).toEqual({ operation: "graceful-downscale" });
      await receiver.completeMessage(message);
    }
    expect(
      emulator
        .receivedLog()
        .filter((r) => r.entity.startsWith("control/"))
        .map((r) => r.entity),
    ).toEqual(["control/Subscriptions/shutdown", "control/Subscriptions/audit"]);
  });

  it("dead-letters with reason and description into TOPIC/Subscriptions/SUB/$DeadLetterQueue", async () => {
    emulator.createTopic("events");
    emulator.createSubscription("events", "main");
    await track(client.createSender("events")).sendMessages({ body: "not json we understand" });
    const receiver = track(client.createReceiver("events", "main"));
    const message = await receiveOne(receiver);
    await receiver.deadLetterMessage(message, {
      deadLetterReason: "MalformedMessage",
      deadLetterErrorDescription: "no operation field",
    });

    expect(emulator.counts("events/Subscriptions/main")).toMatchObject({ active: 0, deadLetter: 1 });
    const [inspected] = emulator.messages("events/Subscriptions/main/$DeadLetterQueue");
    expect(inspected).toMatchObject({
      deadLetterReason: "MalformedMessage",
      deadLetterDescription: "no operation field",
    });

    const dlq = track(client.createReceiver("events", "main", { subQueueType: "deadLetter" }));
    const dead = await receiveOne(dlq);
    expect(dead.body).toBe("not json we understand");
    expect(dead.deadLetterReason).toBe("MalformedMessage");
    expect(dead.deadLetterErrorDescription).toBe("no operation field");
    await dlq.completeMessage(dead);
    expect(emulator.counts("events/Subscriptions/main").deadLetter).toBe(0);
  });

  it("expires a subscription's messages at the lower of the message's and the topic's time-to-live: dropped, or dead-lettered when the subscription says so", async () => {
    emulator.createTopic("short-lived", { defaultTtlMs: 300 });
    emulator.createSubscription("short-lived", "drop");
    emulator.createSubscription("short-lived", "keep", {
      deadLetteringOnMessageExpiration: true,
      defaultTtlMs: undefined,
    });
    // The message asks for a minute; the topic's default is the ceiling.
    await track(client.createSender("short-lived")).sendMessages({ body: "late", timeToLive: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));

    const dropping = track(client.createReceiver("short-lived", "drop"));
    expect(await dropping.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    expect(emulator.counts("short-lived/Subscriptions/drop")).toMatchObject({ active: 0, deadLetter: 0 });

    const dlq = track(client.createReceiver("short-lived", "keep", { subQueueType: "deadLetter" }));
    const dead = await receiveOne(dlq);
    expect(dead.body).toBe("late");
    expect(dead.deadLetterReason).toBe("TTLExpiredException");
    expect(dead.deadLetterErrorDescription).toBe("The message expired and was dead lettered.");
  });

  it("does not expire a locked message: it can still be completed after its time-to-live", async () => {
    emulator.createTopic("held");
    emulator.createSubscription("held", "shutdown");
    await track(client.createSender("held")).sendMessages({ body: "held", timeToLive: 200 });
    const receiver = track(client.createReceiver("held", "shutdown"));
    const message = await receiveOne(receiver);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await receiver.completeMessage(message);
    expect(emulator.counts("held/Subscriptions/shutdown")).toMatchObject({ active: 0, deadLetter: 0 });
  });
});

/**
 * A send issued in the same tick as the drop goes out on the dead socket and waits for the operation
 * timeout before the retry (as it would against Azure); give the client a moment to see the close.
 */
function clientSeesTheDrop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 200));
}

describe("faults", () => {
  it("a receiver survives dropped connections: it reconnects and receives", async () => {
    const q = queue();
    const receiver = track(client.createReceiver(q));
    const sender = track(client.createSender(q));
    await sender.sendMessages({ body: "before" });
    await receiver.completeMessage(await receiveOne(receiver));

    expect(emulator.faults.dropConnections()).toBeGreaterThan(0);
    await clientSeesTheDrop();
    await sender.sendMessages({ body: "after" });
    const message = await receiveOne(receiver, 10_000);
    expect(message.body).toBe("after");
    await receiver.completeMessage(message);
  });

  it("a message received before a drop can still be completed by its lock token afterwards", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages({ body: "in hand" });
    const receiver = track(client.createReceiver(q));
    const message = await receiveOne(receiver);
    emulator.faults.dropConnections();
    await clientSeesTheDrop();
    // The delivery's link is gone: the client settles through $management (update-disposition).
    await receiver.completeMessage(message);
    expect(emulator.counts(q).active).toBe(0);
  });

  it("a subscribe() handler keeps receiving after the connection drops", async () => {
    const q = queue();
    const receiver = track(client.createReceiver(q));
    const bodies: unknown[] = [];
    closers.push(
      receiver.subscribe({
        processMessage: async (m) => void bodies.push(m.body),
        processError: async () => undefined,
      }),
    );
    const sender = track(client.createSender(q));
    await sender.sendMessages({ body: 1 });
    await emulator.waitFor(() => bodies.length === 1);
    emulator.faults.dropConnections();
    await clientSeesTheDrop();
    await sender.sendMessages({ body: 2 });
    await emulator.waitFor(() => bodies.length === 2, { timeoutMs: 15_000 });
    expect(bodies).toEqual([1, 2]);
  });

  it("a refused put-token fails the operation; the next one is authorised", async () => {
    const q = queue();
    const noRetry = new ServiceBusClient(emulator.connectionString, {
      retryOptions: { maxRetries: 0, timeoutInMs: 5000 },
    });
    try {
      emulator.faults.refuseNextPutTokens(1);
      const sender = noRetry.createSender(q);
      await expect(sender.sendMessages({ body: "refused" })).rejects.toMatchObject({
        code: "UnauthorizedAccess",
      });
      expect(emulator.faults.putTokensToRefuse).toBe(0);
      await sender.sendMessages({ body: "accepted" });
      expect(emulator.messages(q).map((m) => m.body)).toEqual(["accepted"]);
    } finally {
      await noRetry.close();
    }
  });

  it("slow acks hold a settlement until the broker answers", async () => {
    const q = queue();
    await track(client.createSender(q)).sendMessages({ body: "x" });
    const receiver = track(client.createReceiver(q));
    const message = await receiveOne(receiver);
    // Held far longer than the wait below, which a loaded machine may stretch.
    emulator.faults.ackDelayMs = 2_500;
    let done = false;
    const completing = receiver.completeMessage(message).then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(done).toBe(false);
    expect(emulator.counts(q).active).toBe(1);
    await completing;
    expect(emulator.counts(q).active).toBe(0);
  });
});
