import { utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServiceBusClient, type ServiceBusMessage, type ServiceBusSender } from "@azure/service-bus";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { listenForControl, runAgent, signalPlan, type AgentOptions } from "../../src/agent/index.js";
import { encodeControlMessage } from "../../src/backchannel/message.js";
import { createLogger } from "../../src/logging/logger.js";
import { logLines } from "../support/log-lines.js";
import {
  controlTopics,
  killQuietly,
  noTaskInterrupted,
  PATIENCE_MS,
  quietLogger,
  startStub,
  tempDir,
  waitUntil,
  type Stub,
} from "./agent-support.js";

/** A message or an AMQP annotated message (the only way to send an AMQP value body). */
type Outgoing = Extract<Parameters<ServiceBusSender["sendMessages"]>[0], unknown[]>[number];

let emulator: ServiceBusEmulator;
const stubs: Stub[] = [];

beforeAll(async () => {
  emulator = await startServiceBusEmulator();
});
afterEach(() => stubs.splice(0).forEach((stub) => killQuietly(stub.child)));
afterAll(async () => {
  await emulator?.stop();
});

const newTopic = controlTopics("agent", () => emulator);

async function send(topic: string, ...messages: Outgoing[]): Promise<void> {
  const client = new ServiceBusClient(emulator.connectionString);
  try {
    const sender = client.createSender(topic);
    await sender.sendMessages(messages as ServiceBusMessage[]);
  } finally {
    await client.close();
  }
}

const control = (operation: "graceful-downscale" | "do-not-accept-new-tasks"): ServiceBusMessage => ({
  body: encodeControlMessage(operation),
  timeToLive: 60_000,
});

function agent(topic: string, pidDir: string, extra: Partial<AgentOptions> = {}) {
  const stop = new AbortController();
  const done = runAgent({
    channel: { connectionString: emulator.connectionString, topic, subscription: "shutdown" },
    pidDir,
    signals: signalPlan("SIGINT"),
    logger: quietLogger(),
    signal: stop.signal,
    // Long enough that a send never races the end of a receive call (the SDK may then lock a message it
    // does not hand over; Service Bus frees it when the lock expires).
    maxWaitMs: 5_000,
    ...extra,
  });
  return { done, stop: () => stop.abort() };
}

/** A logger whose messages the test reads: what the agent says it is doing, instead of a guess from time. */
function recordingLogger() {
  const { lines, destination } = logLines();
  const logger = createLogger({ level: "info", destination });
  const said = (msg: string | RegExp) =>
    lines.filter((line) => (typeof msg === "string" ? line.msg === msg : msg.test(String(line.msg)))).length;
  return { logger, said };
}

async function stub(
  dir: string,
  name: string,
  options: { pidDir?: string; trap?: string } = {},
): Promise<Stub> {
  const started = await startStub({ dir, name, taskMs: 400, ...options });
  stubs.push(started);
  return started;
}

describe("node agent", () => {
  it("on a control message signals only live workers whose PID file is theirs, which finish their task and exit", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-live");
    const pidDir = join(dir, "pids");
    // Two workers that write their own PID files, as jobq workers do.
    const a = await stub(dir, "a", { pidDir });
    const b = await stub(dir, "b", { pidDir });
    // A process whose PID sits in a file written before it started: a reused PID, never signalled.
    const bystander = await stub(dir, "bystander");
    writeFileSync(join(pidDir, "old-worker.pid"), String(bystander.pid));
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(join(pidDir, "old-worker.pid"), hourAgo, hourAgo);
    writeFileSync(join(pidDir, "gone.pid"), "999999");

    const running = agent(topic, pidDir);
    await send(topic, control("graceful-downscale"));
    expect(await running.done).toBe(0);

    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    for (const worker of [a, b]) {
      expect(worker.lines()).toContain("signal SIGINT");
      expect(noTaskInterrupted(worker.lines())).toBe(true);
    }
    expect(bystander.lines()).not.toContain("signal SIGINT");
    expect(bystander.child.exitCode).toBeNull();
    // The message is consumed: it will not stop another node.
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`)).toMatchObject({ active: 0, deadLetter: 0 });
  });

  it("takes one message and stops listening, so the next one goes to another node", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-one");
    const pidDir = join(dir, "pids");
    await stub(dir, "w", { pidDir });
    const running = agent(topic, pidDir);
    await send(topic, control("graceful-downscale"), control("graceful-downscale"));
    expect(await running.done).toBe(0);
    const left = emulator.messages(`${topic}/Subscriptions/shutdown`);
    expect(left).toHaveLength(1);
    expect(left[0]!.state).toBe("active");
    expect(left[0]!.deliveryCount).toBe(0);
  });

  it("delivers the per-operation signal", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-op");
    const pidDir = join(dir, "pids");
    const worker = await stub(dir, "w", { pidDir, trap: "SIGINT,SIGUSR1" });
    const running = agent(topic, pidDir, {
      signals: signalPlan("SIGINT", ["do-not-accept-new-tasks=SIGUSR1"]),
    });
    await send(topic, control("do-not-accept-new-tasks"));
    expect(await running.done).toBe(0);
    await worker.exited;
    expect(worker.lines()).toContain("signal SIGUSR1");
    expect(worker.lines()).not.toContain("signal SIGINT");
  });

  it("dead-letters malformed and unknown messages with a reason and keeps listening", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-bad");
    const pidDir = join(dir, "pids");
    const worker = await stub(dir, "w", { pidDir });
    const running = agent(topic, pidDir);
    await send(
      topic,
      { body: Buffer.from("shut down please") },
      { body: Buffer.from('{"operation": "explode"}') },
      { body: Buffer.from('["graceful-downscale"]') },
      // A JS string body: the SDK JSON-encodes it, so it arrives as a JSON string, not an object.
      { body: '{"operation": "graceful-downscale"}' },
      { body: { operation: "graceful-downscale" }, bodyType: "value" } as Outgoing,
    );
    const deadLetters = `${topic}/Subscriptions/shutdown/$DeadLetterQueue`;
    await emulator.waitFor(() => emulator.messages(deadLetters).length === 5, { timeoutMs: 20_000 });
    // Still listening: a good message is acted upon.
    expect(worker.lines()).not.toContain("signal SIGINT");
    await send(topic, control("graceful-downscale"));
    expect(await running.done).toBe(0);
    await worker.exited;
    expect(worker.lines()).toContain("signal SIGINT");
    const reasons = emulator
      .messages(deadLetters)
      .map((message) => [message.deadLetterReason, message.deadLetterDescription]);
    expect(reasons).toEqual([
      ["MalformedControlMessage", expect.stringMatching(/not JSON/)],
      ["UnknownOperation", expect.stringMatching(/"explode"/)],
      ["MalformedControlMessage", expect.stringMatching(/an array/)],
      ["MalformedControlMessage", expect.stringMatching(/JSON string/)],
      ["MalformedControlMessage", expect.stringMatching(/AMQP value section/)],
    ]);
  });

  it("takes no message before a worker has started, then acts on it once the worker's PID file appears", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-early");
    const pidDir = join(dir, "pids");
    const log = recordingLogger();
    const running = agent(topic, pidDir, { logger: log.logger });
    await send(topic, control("graceful-downscale"));
    // The agent is up and says it is waiting for a worker; then several of its polls' worth of time: the
    // message is neither locked nor counted as a delivery (a message given back 10 times would be
    // dead-lettered by Service Bus and the drain lost).
    await waitUntil(
      () => log.said("no live worker on this node yet; not taking control messages") > 0,
      PATIENCE_MS,
      "the agent to wait for a worker",
    );
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(emulator.messages(`${topic}/Subscriptions/shutdown`)).toMatchObject([
      { state: "active", deliveryCount: 0 },
    ]);
    const worker = await stub(dir, "late", { pidDir });
    expect(await running.done).toBe(0);
    await worker.exited;
    expect(worker.lines()).toContain("signal SIGINT");
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`)).toMatchObject({ active: 0, deadLetter: 0 });
  });

  it("a restarted agent never signals a worker that is already leaving, nor takes a message on its behalf", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-restart");
    const pidDir = join(dir, "pids");
    // A long task: the worker is still finishing it when the agent comes back.
    const worker = await startStub({ dir, name: "w", pidDir, taskMs: 8_000 });
    stubs.push(worker);
    const first = agent(topic, pidDir);
    await send(topic, control("graceful-downscale"));
    expect(await first.done).toBe(0);
    await waitUntil(() => worker.lines().includes("signal SIGINT"), PATIENCE_MS, "the first signal");

    // A supervisor restarts the agent; another drain request arrives meanwhile.
    const log = recordingLogger();
    const second = agent(topic, pidDir, { logger: log.logger });
    await send(topic, control("graceful-downscale"));
    // It sees the worker as leaving (no worker to stop here), and keeps seeing it so for a while.
    await waitUntil(
      () => log.said("no live worker on this node yet; not taking control messages") > 0,
      PATIENCE_MS,
      "the restarted agent to find no worker to stop",
    );
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    // Not taken: it is for a node that still has a worker to stop.
    expect(emulator.messages(`${topic}/Subscriptions/shutdown`)).toMatchObject([
      { state: "active", deliveryCount: 0 },
    ]);
    expect(worker.lines().filter((line) => line.startsWith("signal"))).toEqual(["signal SIGINT"]);
    second.stop();
    expect(await second.done).toBe(0);
    expect(await worker.exited).toBe(0);
    expect(noTaskInterrupted(worker.lines())).toBe(true);
  });

  it("two agents of a node that take a message each at once signal their worker once, not twice", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-two");
    const pidDir = join(dir, "pids");
    const worker = await startStub({ dir, name: "w", pidDir, taskMs: 6_000 });
    stubs.push(worker);
    const subscription = `${topic}/Subscriptions/shutdown`;
    // Both completions are answered late: each agent chose its targets before the other had signalled.
    emulator.faults.ackDelayMs = 1_500;
    try {
      const first = agent(topic, pidDir);
      const second = agent(topic, pidDir);
      await send(topic, control("graceful-downscale"), control("graceful-downscale"));
      expect(await first.done).toBe(0);
      expect(await second.done).toBe(0);
      expect(emulator.counts(subscription).total).toBe(0);
    } finally {
      emulator.faults.reset();
    }
    // The signal reaches the worker's log a moment after the agent sent it (another process, a loaded
    // machine): wait for it, then for the worker's exit, after which its log is complete.
    await waitUntil(
      () => worker.lines().some((line) => line.startsWith("signal")),
      PATIENCE_MS,
      "the worker to be signalled",
    );
    expect(await worker.exited).toBe(0);
    // A second signal would be a hard stop of the task in hand.
    expect(worker.lines().filter((line) => line.startsWith("signal"))).toEqual(["signal SIGINT"]);
    expect(noTaskInterrupted(worker.lines())).toBe(true);
  });

  it("gives a message back when its worker left between the check and the message", async () => {
    const topic = newTopic();
    await send(topic, control("graceful-downscale"));
    const client = new ServiceBusClient(emulator.connectionString);
    const stop = new AbortController();
    try {
      const receiver = client.createReceiver(topic, "shutdown", { skipParsingBodyAsJson: true });
      const listening = listenForControl({
        receiver,
        logger: quietLogger(),
        hasWorkers: () => true,
        onControl: () => ({ kind: "nothing-here" }),
        signal: stop.signal,
        maxWaitMs: 2_000,
        pauseAfterAbandonMs: 60_000,
      });
      await emulator.waitFor(
        () => (emulator.messages(`${topic}/Subscriptions/shutdown`)[0]?.deliveryCount ?? 0) >= 1,
        { timeoutMs: 10_000 },
      );
      stop.abort();
      expect(await listening).toEqual({ kind: "stopped" });
      expect(emulator.messages(`${topic}/Subscriptions/shutdown`)).toMatchObject([{ state: "active" }]);
    } finally {
      await client.close();
    }
  });

  it("standalone, stopped while the broker has not answered its completion yet: the workers get nothing", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-late-complete");
    const pidDir = join(dir, "pids");
    const worker = await stub(dir, "w", { pidDir });
    const subscription = `${topic}/Subscriptions/shutdown`;
    emulator.faults.ackDelayMs = 2_000;
    try {
      const running = agent(topic, pidDir);
      await send(topic, control("graceful-downscale"));
      await emulator.waitFor(() => emulator.counts(subscription).locked === 1, { timeoutMs: 10_000 });
      // The completion is at the broker, unanswered; SIGTERM stops the agent before the answer comes.
      await emulator.waitFor(() => emulator.faults.acksHeld === 1, { timeoutMs: 10_000 });
      running.stop();
      expect(await running.done).toBe(0);
      await emulator.waitFor(() => emulator.counts(subscription).total === 0, { timeoutMs: 10_000 });
    } finally {
      emulator.faults.reset();
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(worker.lines()).not.toContain("signal SIGINT");
    expect(worker.child.exitCode).toBeNull();
  });

  it("survives a dropped connection: it reconnects and still acts on the next message", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-drop");
    const pidDir = join(dir, "pids");
    const worker = await stub(dir, "w", { pidDir });
    const running = agent(topic, pidDir);
    // Once it has provably received something (a bad message, dead-lettered), cut every connection.
    await send(topic, { body: Buffer.from("not a control message") });
    await emulator.waitFor(
      () => emulator.messages(`${topic}/Subscriptions/shutdown/$DeadLetterQueue`).length === 1,
      {
        timeoutMs: 20_000,
      },
    );
    expect(emulator.faults.dropConnections()).toBeGreaterThan(0);
    await send(topic, control("graceful-downscale"));
    expect(await running.done).toBe(0);
    await worker.exited;
    expect(worker.lines()).toContain("signal SIGINT");
  });

  it("keeps trying while its subscription is disabled, and acts once it is enabled again", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-disabled");
    const pidDir = join(dir, "pids");
    const worker = await stub(dir, "w", { pidDir });
    await send(topic, control("graceful-downscale"));
    const subscription = `${topic}/Subscriptions/shutdown`;
    emulator.updateSettings(subscription, { status: "Disabled" });
    const log = recordingLogger();
    const running = agent(topic, pidDir, { logger: log.logger });
    // Refused with com.microsoft:entity-disabled meanwhile, more than once: not a reason to stop.
    await waitUntil(() => log.said(/; retrying/) >= 2, PATIENCE_MS, "the agent to be refused twice");
    expect(worker.lines()).not.toContain("signal SIGINT");
    emulator.updateSettings(subscription, { status: "Active" });
    expect(await running.done).toBe(0);
    await worker.exited;
    expect(worker.lines()).toContain("signal SIGINT");
    expect(emulator.counts(subscription)).toMatchObject({ active: 0, deadLetter: 0 });
  });

  it("survives a refused token at connect and keeps trying", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-token");
    const pidDir = join(dir, "pids");
    const worker = await stub(dir, "w", { pidDir });
    await send(topic, control("graceful-downscale"));
    emulator.faults.refuseNextPutTokens(2);
    try {
      const running = agent(topic, pidDir);
      expect(await running.done).toBe(0);
      await waitUntil(
        () => worker.lines().includes("signal SIGINT"),
        PATIENCE_MS,
        "the worker to be signalled",
      );
    } finally {
      emulator.faults.reset();
    }
  });
});
