import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus";
import { request } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";

// The real ServiceBusAdministrationClient against the emulator's ATOM API (HTTPS on its own port).

let emulator: ServiceBusEmulator;
let admin: ServiceBusAdministrationClient;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startServiceBusEmulator();
  admin = new ServiceBusAdministrationClient(emulator.adminConnectionString, {
    tlsOptions: { ca: emulator.ca },
  });
  client = new ServiceBusClient(emulator.connectionString);
});

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

describe("ServiceBusAdministrationClient against the emulator", () => {
  it("creates a queue that the AMQP side then serves, with the lock duration it was given", async () => {
    const created = await admin.createQueue("jobs", { lockDuration: "PT30S", maxDeliveryCount: 3 });
    expect(created).toMatchObject({ name: "jobs", lockDuration: "PT30S", maxDeliveryCount: 3 });
    expect(await admin.queueExists("jobs")).toBe(true);
    expect((await admin.getQueue("jobs")).lockDuration).toBe("PT30S");

    const sender = client.createSender("jobs");
    await sender.sendMessages({ body: "x" });
    const receiver = client.createReceiver("jobs");
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    const lockMs = message!.lockedUntilUtc!.getTime() - Date.now();
    expect(lockMs).toBeGreaterThan(20_000);
    expect(lockMs).toBeLessThanOrEqual(30_000);
    await receiver.completeMessage(message!);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it("creates and gets a topic and its subscription", async () => {
    expect((await admin.createTopic("control")).name).toBe("control");
    const sub = await admin.createSubscription("control", "shutdown", { lockDuration: "PT1M" });
    expect(sub).toMatchObject({ topicName: "control", subscriptionName: "shutdown", lockDuration: "PT1M" });
    expect((await admin.getTopic("control")).name).toBe("control");
    expect(await admin.subscriptionExists("control", "shutdown")).toBe(true);
    expect((await admin.getTopicRuntimeProperties("control")).subscriptionCount).toBe(1);

    const names: string[] = [];
    for await (const s of admin.listSubscriptions("control")) names.push(s.subscriptionName);
    expect(names).toEqual(["shutdown"]);
  });

  it("answers a second create with 409 (MessageEntityAlreadyExistsError)", async () => {
    await admin.createQueue("dup");
    await expect(admin.createQueue("dup")).rejects.toMatchObject({
      statusCode: 409,
      code: "MessageEntityAlreadyExistsError",
    });
    await admin.createTopic("dup-topic");
    await admin.createSubscription("dup-topic", "s");
    await expect(admin.createSubscription("dup-topic", "s")).rejects.toMatchObject({
      code: "MessageEntityAlreadyExistsError",
    });
  });

  it("reports a missing entity as MessageEntityNotFoundError and exists() false", async () => {
    await expect(admin.getQueue("missing")).rejects.toMatchObject({ code: "MessageEntityNotFoundError" });
    await expect(admin.getQueueRuntimeProperties("missing")).rejects.toMatchObject({
      code: "MessageEntityNotFoundError",
    });
    expect(await admin.queueExists("missing")).toBe(false);
    expect(await admin.topicExists("missing")).toBe(false);
    expect(await admin.subscriptionExists("control", "missing")).toBe(false);
  });

  it("reports runtime counts taken from the broker: active (locked included) and dead-lettered", async () => {
    await admin.createQueue("counted");
    const sender = client.createSender("counted");
    await sender.sendMessages([{ body: 1 }, { body: 2 }, { body: 3 }]);
    const receiver = client.createReceiver("counted");
    const [first] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    let props = await admin.getQueueRuntimeProperties("counted");
    expect(props).toMatchObject({
      name: "counted",
      activeMessageCount: 3,
      deadLetterMessageCount: 0,
      totalMessageCount: 3,
    });

    await receiver.deadLetterMessage(first!, {
      deadLetterReason: "test",
      deadLetterErrorDescription: "counted",
    });
    props = await admin.getQueueRuntimeProperties("counted");
    expect(props).toMatchObject({ activeMessageCount: 2, deadLetterMessageCount: 1, totalMessageCount: 3 });
    expect(props.createdAt.getTime()).toBeLessThanOrEqual(Date.now());

    await admin.createTopic("counted-topic");
    await admin.createSubscription("counted-topic", "a");
    const topicSender = client.createSender("counted-topic");
    await topicSender.sendMessages({ body: "to a" });
    expect((await admin.getSubscriptionRuntimeProperties("counted-topic", "a")).activeMessageCount).toBe(1);
    await Promise.all([sender.close(), receiver.close(), topicSender.close()]);
  });

  it("refuses a subscription of a topic that does not exist", async () => {
    await expect(admin.createSubscription("no-topic", "s")).rejects.toMatchObject({
      statusCode: 404,
      code: "MessageEntityNotFoundError",
    });
  });

  it("lists queues and topics", async () => {
    const queues: string[] = [];
    for await (const q of admin.listQueues()) queues.push(q.name);
    expect(queues).toEqual(expect.arrayContaining(["jobs", "dup", "counted"]));
    const topics: string[] = [];
    for await (const t of admin.listTopics()) topics.push(t.name);
    expect(topics).toEqual(expect.arrayContaining(["control", "dup-topic"]));
    expect(topics).not.toContain("jobs");
  });

  it("a subscription disabled through the admin API refuses receivers with MessagingEntityDisabled, and serves again once re-enabled", async () => {
    await admin.createTopic("switch");
    await admin.createSubscription("switch", "shutdown");
    const sender = client.createSender("switch");
    await sender.sendMessages({ body: "kept" });
    const subscription = await admin.getSubscription("switch", "shutdown");
    await admin.updateSubscription({ ...subscription, status: "Disabled" });
    expect((await admin.getSubscription("switch", "shutdown")).status).toBe("Disabled");

    // No retries: the error the agent's receive loop sees, at once.
    const strict = new ServiceBusClient(emulator.connectionString, { retryOptions: { maxRetries: 0 } });
    try {
      const refused = strict.createReceiver("switch", "shutdown");
      await expect(refused.receiveMessages(1, { maxWaitTimeInMs: 1000 })).rejects.toMatchObject({
        code: "MessagingEntityDisabled",
      });
    } finally {
      await strict.close();
    }

    await admin.updateSubscription({ ...subscription, status: "Active" });
    const receiver = client.createReceiver("switch", "shutdown");
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(message?.body).toBe("kept");
    await receiver.completeMessage(message!);
    await receiver.close();
    await sender.close();
  });

  it("deletes a queue", async () => {
    await admin.createQueue("doomed");
    await admin.deleteQueue("doomed");
    expect(await admin.queueExists("doomed")).toBe(false);
    await expect(admin.deleteQueue("doomed")).rejects.toMatchObject({ statusCode: 404 });
  });

  it("accepts a TokenCredential with the admin host:port as the namespace", async () => {
    const credential: TokenCredential = {
      getToken: async (): Promise<AccessToken> => ({
        token: "static-test-token",
        expiresOnTimestamp: Date.now() + 3_600_000,
      }),
    };
    const aad = new ServiceBusAdministrationClient(emulator.adminNamespace, credential, {
      tlsOptions: { ca: emulator.ca },
    });
    expect(await aad.queueExists("jobs")).toBe(true);
  });

  it("refuses a request without credentials with 401", async () => {
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(
        `${emulator.adminEndpoint}/jobs?api-version=2021-05`,
        { ca: emulator.ca },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(401);
  });
});
