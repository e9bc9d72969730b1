import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ queues: ["tasks"], topics: ["control"], subscriptions: ["control/Subscriptions/shutdown"] });
  client = new ServiceBusClient(emulator.connectionString);
});
afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

describe("service bus emulator with the real client", () => {
  it("sends to a queue, receives in peek-lock and completes", async () => {
    const sender = client.createSender("tasks");
    await sender.sendMessages({ body: { operation: "x" } });
    const receiver = client.createReceiver("tasks");
    const [msg] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(msg?.body).toEqual({ operation: "x" });
    expect(emulator.counts("tasks").locked).toBe(1);
    await receiver.completeMessage(msg!);
    expect(emulator.counts("tasks").active).toBe(0);
    await sender.close();
    await receiver.close();
  });

  it("admin get", async () => {
    const admin = new ServiceBusAdministrationClient(emulator.adminConnectionString, { tlsOptions: { ca: emulator.ca } } as never);
    const props = await admin.getQueueRuntimeProperties("tasks");
    expect(props.activeMessageCount).toBe(0);
    await admin.createTopic("t2");
    await admin.createSubscription("t2", "s");
    expect((await admin.getSubscription("t2", "s")).subscriptionName).toBe("s");
  });
});

describe("topic", () => {
  it("topic -> subscription, dead-letter", async () => {
    const sender = client.createSender("control");
    await sender.sendMessages({ body: { operation: "graceful-downscale" } });
    const receiver = client.createReceiver("control", "shutdown");
    const [msg] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(msg?.body).toEqual({ operation: "graceful-downscale" });
    await receiver.deadLetterMessage(msg!, { deadLetterReason: "bad", deadLetterErrorDescription: "why" });
    const dlq = client.createReceiver("control", "shutdown", { subQueueType: "deadLetter" });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(dead?.deadLetterReason).toBe("bad");
    expect(dead?.deadLetterErrorDescription).toBe("why");
    await dlq.completeMessage(dead!);
    await Promise.all([sender.close(), receiver.close(), dlq.close()]);
  });
});
