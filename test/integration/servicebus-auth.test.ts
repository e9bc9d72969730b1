import { createHmac } from "node:crypto";
import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { createControlSender } from "../../src/backchannel/sender.js";
import { quietLogger } from "./agent-support.js";

/**
 * The emulator checks SAS tokens as Service Bus does, so that a wrong key or a missing claim shows up in
 * tests: the signature over the url-encoded resource and the expiry with the rule's key, the expiry, and
 * the rule's rights (Send to send, Listen to receive, Manage for the administration API).
 */

let emulator: ServiceBusEmulator;
const LISTEN = { name: "listener", key: "bGlzdGVuZXIta2V5", rights: ["Listen" as const] };
const SEND = { name: "sender", key: "c2VuZGVyLWtleQ==", rights: ["Send" as const] };
const noRetry = { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } };

beforeAll(async () => {
  emulator = await startServiceBusEmulator({
    rules: [LISTEN, SEND],
    topics: ["auth"],
    subscriptions: ["auth/Subscriptions/shutdown"],
  });
});
afterAll(async () => {
  await emulator?.stop();
});

/** A token as the SDKs build one: sr url-encoded, signed over "sr\nse". */
function sasToken(resource: string, rule: { name: string; key: string }, expiresAtSeconds: number): string {
  const sr = encodeURIComponent(resource);
  const sig = createHmac("sha256", rule.key).update(`${sr}\n${expiresAtSeconds}`).digest("base64");
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiresAtSeconds}&skn=${rule.name}`;
}

async function sendWith(client: ServiceBusClient): Promise<unknown> {
  try {
    await client.createSender("auth").sendMessages({ body: { operation: "graceful-downscale" } });
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await client.close();
  }
}

describe("SAS tokens on $cbs", () => {
  it("accepts the right key, and refuses a wrong key with InvalidSignature", async () => {
    expect(await sendWith(new ServiceBusClient(emulator.connectionString, noRetry))).toBeUndefined();
    const wrong = emulator.connectionStringFor({ name: "RootManageSharedAccessKey", key: "d3Jvbmc=" });
    expect(await sendWith(new ServiceBusClient(wrong, noRetry))).toMatchObject({
      code: "UnauthorizedAccess",
      message: expect.stringContaining("InvalidSignature"),
    });
  });

  it("refuses an expired token, and one for another entity", async () => {
    const host = `127.0.0.1:${emulator.amqpPort}`;
    const now = Math.floor(Date.now() / 1000);
    const root = { name: "RootManageSharedAccessKey", key: "emulator-key" };
    // A connection string may carry a token instead of a key.
    const viaToken = (token: string) =>
      new ServiceBusClient(
        `Endpoint=sb://${host};SharedAccessSignature=${token};UseDevelopmentEmulator=true`,
        noRetry,
      );
    expect(await sendWith(viaToken(sasToken(`sb://${host}/auth`, root, now + 600)))).toBeUndefined();
    expect(await sendWith(viaToken(sasToken(`sb://${host}/auth`, root, now - 60)))).toMatchObject({
      message: expect.stringContaining("ExpiredToken"),
    });
    expect(await sendWith(viaToken(sasToken(`sb://${host}/other`, root, now + 600)))).toMatchObject({
      code: "UnauthorizedAccess",
    });
  });

  it("a rule without Send cannot send, one without Listen cannot receive", async () => {
    expect(await sendWith(new ServiceBusClient(emulator.connectionStringFor(LISTEN), noRetry))).toMatchObject(
      { code: "UnauthorizedAccess", message: expect.stringContaining("'Send' claim") },
    );
    expect(await sendWith(new ServiceBusClient(emulator.connectionStringFor(SEND), noRetry))).toBeUndefined();

    const sendOnly = new ServiceBusClient(emulator.connectionStringFor(SEND), noRetry);
    try {
      const receiver = sendOnly.createReceiver("auth", "shutdown");
      await expect(receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 })).rejects.toMatchObject({
        code: "UnauthorizedAccess",
        message: expect.stringContaining("'Listen' claim"),
      });
    } finally {
      await sendOnly.close();
    }
    const listener = new ServiceBusClient(emulator.connectionStringFor(LISTEN), noRetry);
    try {
      const [message] = await listener
        .createReceiver("auth", "shutdown")
        .receiveMessages(1, { maxWaitTimeInMs: 5_000 });
      expect(message?.body).toEqual({ operation: "graceful-downscale" });
    } finally {
      await listener.close();
    }
  });
});

describe("the administration API", () => {
  const admin = (rule: { name: string; key: string }) =>
    new ServiceBusAdministrationClient(
      emulator.adminConnectionString
        .replace(/SharedAccessKeyName=[^;]*/, `SharedAccessKeyName=${rule.name}`)
        .replace(/SharedAccessKey=[^;]*/, `SharedAccessKey=${rule.key}`),
      { tlsOptions: { ca: emulator.ca } },
    );

  it("needs Manage, and a right key", async () => {
    await expect(admin(LISTEN).createTopic("made-by-listener")).rejects.toMatchObject({
      statusCode: 401,
      message: expect.stringContaining("Manage"),
    });
    await expect(
      admin({ name: "RootManageSharedAccessKey", key: "d3Jvbmc=" }).getTopic("auth"),
    ).rejects.toMatchObject({ statusCode: 401, message: expect.stringContaining("InvalidSignature") });
  });

  it("follows Azure's name rules: '/' in topic names, subscriptions up to 50 characters without '/'", async () => {
    const root = admin({ name: "RootManageSharedAccessKey", key: "emulator-key" });
    await root.createTopic("team-a/eastus.v2_x");
    await root.createSubscription("team-a/eastus.v2_x", "shutdown");
    expect((await root.getSubscription("team-a/eastus.v2_x", "shutdown")).subscriptionName).toBe("shutdown");
    expect((await root.getTopic("team-a/eastus.v2_x")).name).toBe("team-a/eastus.v2_x");
    await expect(root.createSubscription("team-a/eastus.v2_x", "s".repeat(51))).rejects.toMatchObject({
      statusCode: 400,
    });
    await expect(root.createTopic("t".repeat(261))).rejects.toMatchObject({ statusCode: 400 });

    const client = new ServiceBusClient(emulator.connectionString, noRetry);
    try {
      await client
        .createSender("team-a/eastus.v2_x")
        .sendMessages({ body: { operation: "graceful-downscale" } });
      const [message] = await client
        .createReceiver("team-a/eastus.v2_x", "shutdown")
        .receiveMessages(1, { maxWaitTimeInMs: 5_000 });
      expect(message?.body).toEqual({ operation: "graceful-downscale" });
    } finally {
      await client.close();
    }
  });
});

describe("our sender on a refused token", () => {
  it("names the refusal (not the empty AggregateError of the SDK's retries) and counts nothing as sent", async () => {
    const sender = createControlSender({
      target: {
        connectionString: emulator.connectionStringFor({
          name: "RootManageSharedAccessKey",
          key: "d3Jvbmc=",
        }),
        topic: "auth",
        subscription: "shutdown",
        autoCreate: false,
      },
      ttlSeconds: 60,
      logger: quietLogger(),
      clientDeps: { retry: { maxRetries: 1, retryDelayInMs: 10 } },
    });
    try {
      const result = await sender.send("graceful-downscale", 2);
      expect(result.sent).toBe(0);
      expect(result.unknown ?? 0).toBe(0);
      expect(result.errors[0]).toMatchObject({
        name: "BackChannelAccessError",
        message: expect.stringMatching(/refused access to .*auth.*InvalidSignature.*Send is needed/),
      });
    } finally {
      await sender.close();
    }
  });
});
