import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { runAgent, signalPlan } from "../../src/agent/index.js";
import { createLogger } from "../../src/logging/logger.js";
import { holdRefusedPort } from "../support/refused-port.js";
import { tempDir, waitUntil } from "./agent-support.js";

// Issue 11, finding 9: the agent logged "listening for control messages" before it had connected, so a
// node whose back channel was unreachable looked ready to be drained. It says so only once it is.

let emulator: ServiceBusEmulator;
beforeAll(async () => {
  emulator = await startServiceBusEmulator({
    topics: ["connect"],
    subscriptions: ["connect/Subscriptions/shutdown"],
  });
});
afterAll(async () => {
  await emulator?.stop();
});

function capture() {
  const messages: string[] = [];
  const logger = createLogger({
    level: "info",
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean)) messages.push(JSON.parse(line).msg);
        done();
      },
    }),
  });
  return { messages, logger };
}

const sleepers: ChildProcess[] = [];
afterEach(() => sleepers.splice(0).forEach((child) => child.kill("SIGKILL")));

/** A PID dir naming a live process: the node has a worker, so the agent takes messages. */
function livePidDir(): string {
  const dir = tempDir("agent-connect");
  const sleeper = spawn("sleep", ["60"], { stdio: "ignore" });
  sleepers.push(sleeper);
  writeFileSync(join(dir, "worker.pid"), String(sleeper.pid));
  return dir;
}

it("does not say listening while the back channel refuses connections", async () => {
  const refused = await holdRefusedPort();
  const port = refused.port;
  const { messages, logger } = capture();
  const stop = new AbortController();
  const done = runAgent({
    channel: {
      connectionString: `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=k;SharedAccessKey=a2V5;UseDevelopmentEmulator=true;`,
      topic: "connect",
      subscription: "shutdown",
    },
    pidDir: livePidDir(),
    signals: signalPlan("SIGINT"),
    logger,
    signal: stop.signal,
    maxWaitMs: 2_000,
  });
  try {
    await waitUntil(
      () => messages.some((m) => m.startsWith("cannot connect to the back channel yet")),
      30_000,
      "a connect failure",
    );
  } finally {
    stop.abort();
    await done;
    await refused.release();
  }
  expect(messages).toContain("connecting to the back channel");
  expect(messages).not.toContain("listening for control messages");
});

it("says listening once connected", async () => {
  const { messages, logger } = capture();
  const stop = new AbortController();
  const done = runAgent({
    channel: { connectionString: emulator.connectionString, topic: "connect", subscription: "shutdown" },
    pidDir: livePidDir(),
    signals: signalPlan("SIGINT"),
    logger,
    signal: stop.signal,
    maxWaitMs: 2_000,
  });
  try {
    await waitUntil(
      () => messages.includes("listening for control messages"),
      20_000,
      `listening; saw ${JSON.stringify(messages)}`,
    );
  } finally {
    stop.abort();
    await done;
  }
  expect(messages.indexOf("connecting to the back channel")).toBeLessThan(
    messages.indexOf("listening for control messages"),
  );
});
