import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../../support/azurite.js";
import { decodeTask, shellTaskKwargs } from "../../../src/queue/tasks.js";
import { drainMessages, startCli, uniqueQueueName } from "./helpers.js";

let azurite: AzuriteInstance;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

function push(args: string[], input?: string) {
  return startCli(["push", ...args], { WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString }, input);
}

describe("workforce push", () => {
  it("enqueues one task per -c, as plain JSON that never expires, creating the queue", async () => {
    const name = uniqueQueueName("push-c");
    const run = push([name, "-c", "echo one", "-c", "echo 'two'", "--num-retries", "3", "-e", "A=1"]);
    expect((await run.exit).code, run.output()).toBe(0);
    expect(JSON.parse(run.output().trim().split("\n").pop()!)).toMatchObject({ pushed: 2 });
    const client = new QueueClient(azurite.connectionString, name);
    const peeked = await client.peekMessages({ numberOfMessages: 32 });
    // Never expires: TTL -1 shows as the far-future expiry.
    for (const item of peeked.peekedMessageItems)
      expect(item.expiresOn.getUTCFullYear()).toBeGreaterThan(9000);
    const bodies = await drainMessages(client);
    // Plain JSON text (not base64), upstream's key order.
    expect(bodies.every((b) => b.startsWith('{"version": 1, "reply_requested": false, "kwargs": '))).toBe(
      true,
    );
    const tasks = bodies.map(decodeTask);
    expect(tasks.map((t) => shellTaskKwargs(t).cmd).sort()).toEqual(["echo 'two'", "echo one"]);
    expect(tasks.every((t) => t.numRetries === 3)).toBe(true);
    expect(tasks.map((t) => t.kwargs)).toContainEqual({
      cmd: "echo one",
      bg_dirsync_to: null,
      env: { A: "1" },
    });
  });

  it("reads commands from stdin, one per line, skipping blank lines, with upstream's default of 0 retries", async () => {
    const name = uniqueQueueName("push-stdin");
    const run = push([name], 'echo a\n\necho b\n{"cmd": "echo c", "env": {"X": "y"}}\n');
    expect((await run.exit).code, run.output()).toBe(0);
    const tasks = (await drainMessages(new QueueClient(azurite.connectionString, name))).map(decodeTask);
    expect(tasks.map((t) => shellTaskKwargs(t).cmd).sort()).toEqual(["echo a", "echo b", "echo c"]);
    expect(tasks.every((t) => t.numRetries === 0)).toBe(true);
    expect(tasks.find((t) => t.kwargs.cmd === "echo c")?.kwargs).toEqual({
      cmd: "echo c",
      env: { X: "y" },
      bg_dirsync_to: null,
    });
  });

  it("rejects a bad --num-retries with exit code 2", async () => {
    const run = push([uniqueQueueName("push-bad"), "-c", "true", "--num-retries", "-1"]);
    expect((await run.exit).code).toBe(2);
    expect(run.output()).toMatch(/--num-retries: expected an integer >= 0, got "-1"/);
  });
});
