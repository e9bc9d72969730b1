import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../../support/azurite.js";
import { startAzuriteProxy, type AzuriteProxy } from "../../support/azurite-proxy.js";
import { encodeTask, shellTask } from "../../../src/queue/tasks.js";
import { depth, startCli, uniqueQueueName } from "./helpers.js";

/**
 * Storage bills every call: a worker should pay about one receive per batch, not one per task. Azurite is
 * reached through a pass-through proxy that counts the worker's requests.
 */

let azurite: AzuriteInstance;
let proxy: AzuriteProxy;
let proxiedConnectionString: string;
const requests: Array<{ method: string; url: string }> = [];

beforeAll(async () => {
  azurite = await startAzurite();
  proxy = await startAzuriteProxy(azurite, azurite.queueEndpoint, (incoming) => {
    requests.push({ method: incoming.method ?? "", url: incoming.url ?? "" });
    return false;
  });
  proxiedConnectionString = proxy.connectionString;
});
afterAll(async () => {
  await proxy?.close();
  await azurite?.stop();
});

describe("workforce worker receives in batches", () => {
  it("asks for up to its free slots per receive: about one queue call per task", async () => {
    const name = uniqueQueueName("batch");
    const client = new QueueClient(azurite.connectionString, name);
    await client.create();
    const tasks = 64;
    await Promise.all(
      Array.from({ length: tasks }, () =>
        client.sendMessage(encodeTask(shellTask({ cmd: "sleep 0.2" })), { messageTimeToLive: -1 }),
      ),
    );
    requests.length = 0;
    const run = startCli(["worker", name, "--concurrency", "16"], {
      WORKFORCE_QUEUE_CONNECTION_STRING: proxiedConnectionString,
      JOBQ_PID_DIR: mkdtempSync(join(tmpdir(), "wf-batch-")),
    });
    expect((await run.exit).code, run.output()).toBe(0);
    expect(await depth(client)).toBe(0);

    const ofQueue = requests.filter((r) => r.url.includes(`/${name}/`) || r.url.includes(`/${name}?`));
    const receives = ofQueue.filter((r) => r.method === "GET" && /numofmessages=/i.test(r.url));
    const asked = receives.map((r) => Number(/numofmessages=(\d+)/i.exec(r.url)![1]));
    // Never more than its free slots (16), and never one message at a time while the queue is full.
    expect(Math.max(...asked)).toBeLessThanOrEqual(16);
    expect(receives.length).toBeLessThanOrEqual(tasks / 4);
    const deletes = ofQueue.filter((r) => r.method === "DELETE");
    expect(deletes.length).toBe(tasks);
    // Creating the queue, the receives and the deletes: no call per task besides its delete.
    expect(ofQueue.length / tasks).toBeLessThanOrEqual(1.25);
  }, 60_000);
});
