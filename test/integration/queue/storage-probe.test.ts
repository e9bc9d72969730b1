import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import type { TokenCredential } from "@azure/core-auth";
import { startAzurite, type AzuriteInstance } from "../../support/azurite.js";
import { createQueueProbe } from "../../../src/queue/index.js";
import { parseQueueSpec } from "../../../src/queue/spec.js";
import { uniqueQueueName } from "./helpers.js";

let azurite: AzuriteInstance;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

const noCredential = (): TokenCredential => {
  throw new Error("no credential may be built when a connection string is given");
};

describe("Storage queue depth", () => {
  it("counts visible and in-flight (received, not deleted) messages", async () => {
    const name = uniqueQueueName("depth");
    const client = new QueueClient(azurite.connectionString, name);
    await client.create();
    for (let i = 0; i < 5; i++) await client.sendMessage(`m${i}`);
    const probe = createQueueProbe(parseQueueSpec(name, { connectionString: azurite.connectionString }), {
      connectionString: azurite.connectionString,
      credential: noCredential,
    });
    expect(probe.description).toBe(`storage:(connection string)/${name}`);
    expect(await probe.depth()).toBe(5);
    // Two in flight: invisible, but still work to do.
    const received = await client.receiveMessages({ numberOfMessages: 2, visibilityTimeout: 60 });
    expect(received.receivedMessageItems).toHaveLength(2);
    expect(await probe.depth()).toBe(5);
    const first = received.receivedMessageItems[0]!;
    await client.deleteMessage(first.messageId, first.popReceipt);
    expect(await probe.depth()).toBe(4);
  });

  it("reads through a queue URL spec and honours an aborted signal", async () => {
    const name = uniqueQueueName("depth-url");
    await new QueueClient(azurite.connectionString, name).create();
    const probe = createQueueProbe(parseQueueSpec(`${azurite.queueEndpoint}/${name}`), {
      connectionString: azurite.connectionString,
    });
    expect(await probe.depth()).toBe(0);
    await expect(probe.depth({ signal: AbortSignal.abort() })).rejects.toThrow(/abort/i);
  });

  it("a missing queue is an error, not an empty queue", async () => {
    const probe = createQueueProbe(
      parseQueueSpec("no-such-queue", { connectionString: azurite.connectionString }),
      {
        connectionString: azurite.connectionString,
      },
    );
    await expect(probe.depth()).rejects.toThrow();
  });
});
