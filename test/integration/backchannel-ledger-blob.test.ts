import { BlobServiceClient } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { forwardRequest, startAzuriteProxy } from "../support/azurite-proxy.js";
import {
  createBlobLedgerStore,
  createDrainChannel,
  emptyLedger,
  LedgerConflictError,
  ledgerStoreFromSettings,
  recordDrain,
  type ControlSender,
} from "../../src/backchannel/index.js";
import { backChannelSchema } from "../../src/backchannel/config.js";
import { quietLogger } from "./agent-support.js";
import { LeaseFence } from "../../src/controller/leader.js";
import type { WriteFence } from "../../src/regions/fence.js";

const settings = {
  drainOperation: "graceful-downscale" as const,
  drainTimeoutSeconds: 3600,
  controlMessageTtlSeconds: 120,
};
const config = backChannelSchema.parse({
  fullyQualifiedNamespace: "unused.servicebus.windows.net",
  topic: "wf",
});

/** Counts what would have been sent; the Service Bus side is covered by backchannel-sender.test.ts. */
function countingSender(): ControlSender & { total: number } {
  const sender = {
    total: 0,
    async send(_operation: string, count: number) {
      sender.total += count;
      return { sent: count, errors: [] };
    },
    async ensureTopology() {},
    async close() {},
  };
  return sender as ControlSender & { total: number };
}

let azurite: AzuriteInstance;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

describe("drain ledger in blob storage", () => {
  it("a restarted daemon sees the drains in flight and does not drain extra workers", async () => {
    const running = ["w1", "w2", "w3", "w4"];
    const before = countingSender();
    const first = createDrainChannel("eastus", config, {
      settings,
      logger: quietLogger(),
      store: createBlobLedgerStore({
        connectionString: azurite.connectionString,
        container: "state-restart",
      }),
      sender: before,
    });
    expect((await first.requestDrain(2, running)).drained).toBe(2);

    // A new process: new store, new channel, same blob.
    const after = countingSender();
    const second = createDrainChannel("eastus", config, {
      settings,
      logger: quietLogger(),
      store: createBlobLedgerStore({
        connectionString: azurite.connectionString,
        container: "state-restart",
      }),
      sender: after,
    });
    // The controller sees the two as draining, not as surplus to ask again.
    expect(await second.inFlight(running)).toBe(2);
    // Even asked for all four, it only asks the two that were not asked before the restart.
    expect((await second.requestDrain(4, running)).drained).toBe(2);
    expect(after.total).toBe(2);
    expect(await second.inFlight(running)).toBe(4);
    expect((await second.requestDrain(1, running)).drained).toBe(0);
  });

  it("stores one readable JSON blob per region", async () => {
    const store = createBlobLedgerStore({
      connectionString: azurite.connectionString,
      container: "state-readable",
      prefix: "ledgers",
    });
    const channel = createDrainChannel("west.eu-1", config, {
      settings,
      logger: quietLogger(),
      store,
      sender: countingSender(),
    });
    await channel.requestDrain(1, ["a", "b"]);
    const blob = BlobServiceClient.fromConnectionString(azurite.connectionString)
      .getContainerClient("state-readable")
      .getBlobClient("ledgers/west.eu-1.json");
    const document = JSON.parse((await blob.downloadToBuffer()).toString("utf8"));
    expect(document).toMatchObject({ version: 1, base: ["a", "b"], entries: [{ count: 1 }] });
    expect(
      new Date(document.entries[0].expiresAt).getTime() - new Date(document.entries[0].at).getTime(),
    ).toBe(3_600_000);
  });

  it("refuses a write based on a stale read (ETag), so two writers never lose each other's drains", async () => {
    const store = createBlobLedgerStore({
      connectionString: azurite.connectionString,
      container: "state-etag",
    });
    const other = createBlobLedgerStore({
      connectionString: azurite.connectionString,
      container: "state-etag",
    });
    const ledger = recordDrain(emptyLedger(), ["w1"], 1, { id: "e1", now: Date.now(), timeoutMs: 60_000 });
    const empty = await store.load("r");
    expect(empty.version).toBeUndefined();
    const version = await store.save("r", ledger, undefined);
    // A second "create" loses.
    await expect(other.save("r", ledger, undefined)).rejects.toBeInstanceOf(LedgerConflictError);
    // A write at the current version wins once; a write at the old version then loses.
    const newer = await other.save("r", emptyLedger(), version);
    await expect(store.save("r", ledger, version)).rejects.toBeInstanceOf(LedgerConflictError);
    expect((await store.load("r")).version).toBe(newer);
  });

  it("concurrent requests from two replicas never send more than there are workers", async () => {
    const running = ["w1", "w2", "w3"];
    const senders = [countingSender(), countingSender()];
    const channels = senders.map((sender) =>
      createDrainChannel("race", config, {
        settings,
        logger: quietLogger(),
        store: createBlobLedgerStore({ connectionString: azurite.connectionString, container: "state-race" }),
        sender,
      }),
    );
    const results = await Promise.allSettled(channels.map((channel) => channel.requestDrain(3, running)));
    const drained = results.reduce(
      (sum, result) => sum + (result.status === "fulfilled" ? result.value.drained : 0),
      0,
    );
    expect(drained).toBe(3);
    expect(senders[0]!.total + senders[1]!.total).toBe(3);
  });

  it("falls back to the queue's Storage connection string, and to memory without any", async () => {
    const store = ledgerStoreFromSettings(
      {
        stateConnectionString: undefined,
        queueConnectionString: azurite.connectionString,
        stateContainer: "state-default",
      },
      { logger: quietLogger() },
    );
    expect(store.description).toContain('blob container "state-default"');
    expect(store.description).not.toContain("AccountKey");
    const memory = ledgerStoreFromSettings(
      {
        stateConnectionString: undefined,
        queueConnectionString: "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=x",
        stateContainer: "c",
      },
      { logger: quietLogger() },
    );
    expect(memory.description).toContain("memory");
  });
});

describe("drain ledger writes cut off", () => {
  it("a reservation written by the service but answered after the cut-off sends nothing and leaves no phantom drain", async () => {
    // Azurite takes the ledger upload; its answer is held until the caller's deadline has passed.
    let release: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (release = resolve));
    let uploads = 0;
    const proxy = await startAzuriteProxy(
      azurite,
      azurite.blobEndpoint,
      () => false,
      (incoming) => {
        const isUpload = incoming.method === "PUT" && /\.json(\?|$)/.test(incoming.url ?? "");
        if (isUpload && ++uploads === 1) return answered;
      },
    );
    const sender = countingSender();
    const running = ["w1", "w2", "w3"];
    const channel = createDrainChannel("late", config, {
      settings,
      logger: quietLogger(),
      store: createBlobLedgerStore({ connectionString: proxy.connectionString, container: "state-late" }),
      sender,
    });
    try {
      const cutOff = AbortSignal.timeout(1_000);
      cutOff.addEventListener("abort", () => setTimeout(release, 200), { once: true });
      const result = await channel.requestDrain(2, running, { signal: cutOff });
      expect(result.drained).toBe(0);
      expect(result.errors[0]?.message).toMatch(/drain not sent: ledger unavailable/);
      expect(sender.total).toBe(0);
      // Nobody was asked to leave: no worker counts as draining (it would for the drain timeout, an hour).
      expect(await channel.inFlight(running)).toBe(0);
    } finally {
      release();
      await proxy.close();
    }
  });
});

describe("drain ledger writes answered by a dropped connection", () => {
  it("a reservation the service made, whose answer was lost and whose retry conflicts with it, is sent", async () => {
    // Azurite makes the first ledger upload; the proxy then drops the connection instead of answering, so
    // the Storage SDK retries it, and the retry finds the blob changed (by the first attempt).
    let uploads = 0;
    const proxy = await startAzuriteProxy(azurite, azurite.blobEndpoint, (incoming, outgoing) => {
      const isUpload = incoming.method === "PUT" && /\.json(\?|$)/.test(incoming.url ?? "");
      if (!isUpload || ++uploads > 1) return false;
      forwardRequest(azurite.blobEndpoint, incoming, (answer) => {
        answer.resume();
        answer.on("end", () => outgoing.socket?.destroy());
      });
      return true;
    });
    const sender = countingSender();
    const running = ["w1", "w2", "w3"];
    const channel = createDrainChannel("reset", config, {
      settings,
      logger: quietLogger(),
      store: createBlobLedgerStore({ connectionString: proxy.connectionString, container: "state-reset" }),
      sender,
    });
    try {
      const result = await channel.requestDrain(2, running);
      expect(uploads).toBeGreaterThan(1);
      // The ledger says 2 workers were asked: they must have been, or they count as leaving for an hour.
      expect(await channel.inFlight(running)).toBe(2);
      expect(sender.total).toBe(2);
      expect(result).toMatchObject({ drained: 2, errors: [] });
    } finally {
      await proxy.close();
    }
  });
});

describe("drain ledger behind the leader lease", () => {
  it("the Storage SDK's own retry of a ledger write is fenced too: none goes after the lease ran out", async () => {
    // Azurite behind a proxy that answers the first ledger upload 503 ServerBusy after 1 s (the SDK
    // retries it at once); the lease was renewed right before the write, with 250 ms left, and not again.
    const uploads: string[] = [];
    const proxy = await startAzuriteProxy(azurite, azurite.blobEndpoint, (incoming, outgoing) => {
      const isUpload = incoming.method === "PUT" && /\.json(\?|$)/.test(incoming.url ?? "");
      if (isUpload) uploads.push(incoming.url ?? "");
      if (isUpload && uploads.length === 1) {
        incoming.resume();
        setTimeout(() => {
          outgoing.writeHead(503, { "content-type": "application/xml", "x-ms-error-code": "ServerBusy" });
          outgoing.end(
            '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>busy</Message></Error>',
          );
        }, 1_000);
        return true;
      }
      return false;
    });
    const lease = new LeaseFence();
    const fence: WriteFence = {
      check(write) {
        if (!write.endsWith("(a retry)")) lease.grant(performance.now(), 250);
        lease.check(write);
      },
      remainingMs: () => lease.remainingMs(),
    };
    const sender = countingSender();
    const channel = createDrainChannel("fenced", config, {
      settings,
      logger: quietLogger(),
      store: createBlobLedgerStore({
        connectionString: proxy.connectionString,
        container: "state-fenced",
      }),
      sender,
      fence,
    });
    try {
      const result = await channel.requestDrain(2, ["w1", "w2", "w3"]);
      expect(result.drained).toBe(0);
      expect(result.errors[0]?.message).toMatch(
        /^region fenced: drain not sent: ledger unavailable: drain ledger write for region fenced cut off, it may have gone: .*ran out/,
      );
      expect(sender.total).toBe(0);
      // Give the retry time to have gone, if it were to go.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(uploads.length).toBeLessThanOrEqual(1);
      const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
      expect(
        await service.getContainerClient("state-fenced").getBlobClient("drain-ledger/fenced.json").exists(),
      ).toBe(false);
    } finally {
      await proxy.close();
    }
  });
});
