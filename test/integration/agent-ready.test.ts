import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { REPO_ROOT, workforceArgv } from "../support/cli.js";
import { encodeTask, shellTask } from "../../src/queue/tasks.js";
import { controlTopics, killQuietly, readLines, sendControl, tempDir } from "./agent-support.js";
import { depth, uniqueQueueName } from "./queue/helpers.js";

/**
 * A control message that is already waiting when a node starts must not reach its worker before the worker
 * is ready (has written its PID file, hence installed its signal handlers): a Python worker dies of SIGUSR1's
 * default action, a Node one of SIGINT's.
 */

const PYTHON = "/usr/bin/python3";
const LATE_WORKER = join(REPO_ROOT, "test", "python", "late-handlers-worker.py");

let emulator: ServiceBusEmulator;
let azurite: AzuriteInstance;
const children: Array<ReturnType<typeof spawn>> = [];

beforeAll(async () => {
  [emulator, azurite] = await Promise.all([startServiceBusEmulator(), startAzurite()]);
});
afterEach(() => children.splice(0).forEach(killQuietly));
afterAll(async () => {
  await Promise.all([emulator?.stop(), azurite?.stop()]);
});

/** A topic whose `shutdown` subscription already holds one control message. */
const newTopic = controlTopics("ready", () => emulator);
async function topicWithWaitingMessage(): Promise<string> {
  const topic = newTopic();
  await sendControl(emulator.connectionString, topic, "do-not-accept-new-tasks", 120_000);
  return topic;
}

function startAgent(topic: string, agentArgs: string[], command: string[], env: NodeJS.ProcessEnv) {
  const [node, ...args] = workforceArgv("agent", "--receive-wait", "5", ...agentArgs, "--", ...command);
  const child = spawn(node!, args, {
    env: {
      ...process.env,
      ...env,
      WORKFORCE_BACK_CHANNEL_CONNECTION_STRING: emulator.connectionString,
      WORKFORCE_CONTROL_TOPIC_NAME: topic,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { exited, output: () => output };
}

describe("the agent signals only ready workers", () => {
  it.skipIf(!existsSync(PYTHON))(
    "waits for a slow Python worker's PID file before signalling it, so the worker is not killed",
    async () => {
      const topic = await topicWithWaitingMessage();
      const dir = tempDir("ready-py");
      const log = join(dir, "worker.log");
      const run = startAgent(topic, ["--signal", "SIGUSR1"], [PYTHON, LATE_WORKER], {
        STUB_LOG: log,
        STUB_STARTUP_MS: "1500",
        STUB_TASK_MS: "300",
        STUB_WORKER_ID: "late",
        JOBQ_PID_DIR: join(dir, "pids"),
      });
      const code = await run.exited;
      // Signalled before its handlers, the worker dies of SIGUSR1 (agent exit 128 + 10).
      expect(code, run.output()).toBe(0);
      const lines = readLines(log);
      expect(lines).toContain("signal SIGUSR1");
      expect(lines.at(-1)).toBe("exit 0");
      expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(0);
    },
    30_000,
  );

  it("waits for a real `workforce worker` to write its PID file, which then finishes its task and exits 0", async () => {
    const topic = await topicWithWaitingMessage();
    const dir = tempDir("ready-wf");
    const queue = uniqueQueueName("ready");
    const client = new QueueClient(azurite.connectionString, queue);
    await client.create();
    const marks = [1, 2, 3].map((i) => join(dir, `task-${i}`));
    for (const mark of marks)
      await client.sendMessage(encodeTask(shellTask({ cmd: `sleep 1 && touch ${mark}` })), {
        messageTimeToLive: -1,
      });
    const run = startAgent(topic, [], workforceArgv("worker", queue, "--concurrency", "1"), {
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    });
    const code = await run.exited;
    // Signalled (SIGINT) while it is still loading, a Node worker dies of it (128 + 2).
    expect(code, run.output()).toBe(0);
    expect(run.output()).toContain("control message taken: signalled 1 worker");
    // It finished what it had started and left the rest in the queue.
    expect(existsSync(marks[0]!)).toBe(true);
    expect(await depth(client)).toBeGreaterThanOrEqual(1);
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(0);
  }, 40_000);
});
