import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { runAgent, signalPlan } from "../../src/agent/index.js";
import { SIGNAL_LOCK_FILE } from "../../src/agent/lock.js";
import { processInfo } from "../../src/agent/pids.js";
import { createLogger } from "../../src/logging/logger.js";
import { logLines } from "../support/log-lines.js";
import {
  controlTopics,
  killQuietly,
  PATIENCE_MS,
  sendControl,
  startStub,
  tempDir,
  waitUntil,
  type Stub,
} from "./agent-support.js";

let emulator: ServiceBusEmulator;
const stubs: Stub[] = [];
const others: Array<ReturnType<typeof spawn>> = [];

beforeAll(async () => {
  emulator = await startServiceBusEmulator();
});
afterEach(() => {
  stubs.splice(0).forEach((stub) => killQuietly(stub.child));
  others.splice(0).forEach(killQuietly);
});
afterAll(async () => {
  await emulator?.stop();
});

const newTopic = controlTopics("agent-lock", () => emulator);

describe("node agent and the node's signal lock", () => {
  it("gives a message back while another agent holds the lock, and acts once that agent is gone", async () => {
    const topic = newTopic();
    const dir = tempDir("agent-lock");
    const pidDir = join(dir, "pids");
    const worker = await startStub({ dir, name: "w", pidDir, taskMs: 400 });
    stubs.push(worker);
    // Another agent of the node, stuck while it holds the lock.
    const holder = spawn("sleep", ["60"], { stdio: "ignore" });
    others.push(holder);
    await waitUntil(() => processInfo(holder.pid!) !== undefined, PATIENCE_MS, "the holder to start");
    const lockPath = join(pidDir, SIGNAL_LOCK_FILE);
    writeFileSync(
      lockPath,
      JSON.stringify({ pid: holder.pid, startedAtMs: processInfo(holder.pid!)!.startedAtMs }),
    );

    const { lines, destination } = logLines();
    const stop = new AbortController();
    const done = runAgent({
      channel: { connectionString: emulator.connectionString, topic, subscription: "shutdown" },
      pidDir,
      signals: signalPlan("SIGINT"),
      logger: createLogger({ level: "info", destination }),
      signal: stop.signal,
      maxWaitMs: 5_000,
      lockTimeoutMs: 300,
    });
    try {
      await sendControl(emulator.connectionString, topic);
      const gaveBack = (line: { msg?: unknown }) =>
        String(line.msg).startsWith("cannot act on this node now; control message given back");
      await waitUntil(() => lines.some(gaveBack), PATIENCE_MS, "the message to be given back");
      expect(lines.find(gaveBack)!.msg).toBe(
        `cannot act on this node now; control message given back: ${lockPath} is held by process ${holder.pid} (another agent of this node)`,
      );
      expect(worker.lines()).not.toContain("signal SIGINT");

      // That agent is killed: its lock is stale, and the next delivery of the message is acted on.
      holder.kill("SIGKILL");
      expect(await done).toBe(0);
      expect(await worker.exited).toBe(0);
      expect(worker.lines().filter((line) => line.startsWith("signal "))).toEqual(["signal SIGINT"]);
      expect(existsSync(lockPath)).toBe(false);
      expect(emulator.counts(`${topic}/Subscriptions/shutdown`)).toMatchObject({ active: 0, deadLetter: 0 });
    } finally {
      stop.abort();
      await done.catch(() => undefined);
    }
  }, 90_000);
});
