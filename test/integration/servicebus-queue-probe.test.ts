import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { holdRefusedPort } from "../support/refused-port.js";
import { ServiceBusClient } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createQueueProbe, parseQueueSpec, type ServiceBusQueueSpec } from "../../src/queue/index.js";
import { createServiceBusQueueProbe } from "../../src/queue/servicebus-queue.js";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";

// Queue depth from a Service Bus queue: the admin API's activeMessageCount, read from the emulator.

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ queues: ["tasks", "empty"] });
  client = new ServiceBusClient(emulator.connectionString);
});

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

function spec(queueName: string): ServiceBusQueueSpec {
  return { kind: "servicebus", queueName, fullyQualifiedNamespace: "emulator.servicebus.windows.net" };
}

const tls = () => ({ clientOptions: { tlsOptions: { ca: emulator.ca } } });

describe("ServiceBusQueueProbe", () => {
  it("counts waiting and locked (in-flight) messages, not completed or dead-lettered ones", async () => {
    // The AMQP connection string with the admin endpoint given separately, as the daemon is configured.
    const probe = createServiceBusQueueProbe(spec("tasks"), {
      connectionString: emulator.connectionString,
      adminEndpoint: emulator.adminEndpoint,
      ...tls(),
    });
    expect(await probe.depth()).toBe(0);

    const sender = client.createSender("tasks");
    await sender.sendMessages([{ body: 1 }, { body: 2 }, { body: 3 }, { body: 4 }]);
    expect(await probe.depth()).toBe(4);

    const receiver = client.createReceiver("tasks");
    const taken = await receiver.receiveMessages(2, { maxWaitTimeInMs: 2000 });
    expect(taken).toHaveLength(2);
    expect(emulator.counts("tasks").locked).toBe(2);
    expect(await probe.depth()).toBe(4); // a worker holding a task is still work in the queue

    await receiver.completeMessage(taken[0]!);
    await receiver.deadLetterMessage(taken[1]!, {
      deadLetterReason: "bad",
      deadLetterErrorDescription: "test",
    });
    expect(await probe.depth()).toBe(2);
    await Promise.all([sender.close(), receiver.close()]);
    await probe.close();
  });

  it("is built by createQueueProbe for an sb:// spec, and describes itself without secrets", async () => {
    const probe = createQueueProbe(parseQueueSpec("sb://emulator/empty"), {
      connectionString: emulator.connectionString,
      serviceBus: { adminEndpoint: emulator.adminNamespace, ...tls() },
    });
    expect(probe.description).toBe("servicebus:emulator.servicebus.windows.net/empty");
    expect(probe.description).not.toContain("emulator-key");
    expect(await probe.depth()).toBe(0);
  });

  it("works with a TokenCredential thunk, built on first use only", async () => {
    let built = 0;
    const credential: TokenCredential = {
      getToken: async (): Promise<AccessToken> => ({
        token: "static-test-token",
        expiresOnTimestamp: Date.now() + 3_600_000,
      }),
    };
    const probe = createServiceBusQueueProbe(spec("empty"), {
      credential: () => {
        built += 1;
        return credential;
      },
      adminEndpoint: emulator.adminEndpoint,
      ...tls(),
    });
    expect(built).toBe(0);
    expect(await probe.depth()).toBe(0);
    expect(await probe.depth()).toBe(0);
    expect(built).toBe(1);
  });

  it("names the queue when it does not exist, without the connection string", async () => {
    const probe = createServiceBusQueueProbe(spec("nope"), {
      connectionString: emulator.connectionString,
      adminEndpoint: emulator.adminEndpoint,
      ...tls(),
    });
    const error = await probe.depth().catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain("servicebus:emulator.servicebus.windows.net/nope");
    expect((error as Error).message).toContain("does not exist");
    expect((error as Error).message).not.toContain("emulator-key");
    expect(error).toMatchObject({ code: "MessageEntityNotFoundError" });
  });

  it("names the queue when the admin endpoint refuses the call", async () => {
    // Nothing listens on the port (held, so no other process takes it): the call fails, and the error
    // says which queue and what failed.
    const refused = await holdRefusedPort();
    const port = refused.port;
    const probe = createServiceBusQueueProbe(spec("tasks"), {
      connectionString: emulator.connectionString,
      adminEndpoint: `127.0.0.1:${port}`,
      clientOptions: { tlsOptions: { ca: emulator.ca }, retryOptions: { maxRetries: 0 } },
    });
    try {
      await expect(probe.depth()).rejects.toThrow(
        /^queue servicebus:emulator\.servicebus\.windows\.net\/tasks: reading its runtime properties failed: /,
      );
    } finally {
      await refused.release();
    }
  });

  it("honours an abort signal", async () => {
    const probe = createServiceBusQueueProbe(spec("tasks"), {
      connectionString: emulator.connectionString,
      adminEndpoint: emulator.adminEndpoint,
      ...tls(),
    });
    await expect(probe.depth({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });
  });

  it("rejects a malformed admin endpoint naming the option", async () => {
    const probe = createServiceBusQueueProbe(spec("tasks"), {
      connectionString: emulator.connectionString,
      adminEndpoint: "http://127.0.0.1:1/path",
    });
    await expect(probe.depth()).rejects.toThrow(
      /adminEndpoint: expected host\[:port\] or https:\/\/host\[:port\], got/,
    );
  });

  it("without a connection string or credential, says what is missing", async () => {
    const probe = createServiceBusQueueProbe(spec("tasks"), {});
    await expect(probe.depth()).rejects.toThrow(/no connection string and no Azure credential/);
  });
});
