import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startAzuriteProxy } from "../support/azurite-proxy.js";
import { daemonEnv, workforceArgv } from "../support/cli.js";
import {
  controlTopics,
  killQuietly,
  sendControl,
  startStub,
  tempDir,
  waitUntil,
  type Stub,
} from "./agent-support.js";

/**
 * SIGUSR1 and SIGUSR2 sent to the daemon or to a standalone agent (an operator's habit on a node of ai4s-jobq
 * workers, where SIGUSR1 means "do-not-accept-new-tasks"). Without a listener, SIGUSR1 makes Node open its
 * debugger, through which any local process can run code as the daemon, and SIGUSR2 kills the process. Each
 * must be logged and ignored: no debugger port, the process goes on working and stops cleanly on SIGTERM.
 */

let azurite: AzuriteInstance;
let emulator: ServiceBusEmulator;
let workDir: string;
const children: ChildProcess[] = [];
const stubs: Stub[] = [];
const QUEUE = "stray-signal-tasks";

beforeAll(async () => {
  [azurite, emulator] = await Promise.all([startAzurite(), startServiceBusEmulator()]);
  workDir = mkdtempSync(join(tmpdir(), "wf-stray-"));
  const queue = new QueueClient(azurite.connectionString, QUEUE);
  await queue.create();
  for (let i = 0; i < 5; i++) await queue.sendMessage(JSON.stringify({ i }));
});
afterEach(async () => {
  // SIGTERM first, so that a demo that failed its test still stops its Azurite and workers.
  await Promise.all(children.splice(0).map(stopGently));
  stubs.splice(0).forEach((stub) => killQuietly(stub.child));
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), emulator?.stop()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

async function stopGently(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => killQuietly(child), 20_000);
  await exited;
  clearTimeout(timer);
}

/** A port nothing listens on now: the one SIGUSR1 would open the debugger on (--inspect-port). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether something accepts a TCP connection on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

interface Running {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  alive(): boolean;
}

function startCli(args: string[], env: NodeJS.ProcessEnv, inspectPort: number): Running {
  const [node, ...rest] = workforceArgv(...args);
  const child = spawn(node!, rest, {
    env: { ...env, NODE_OPTIONS: `--inspect-port=127.0.0.1:${inspectPort}` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  let running = true;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      running = false;
      resolve(code);
    }),
  );
  return { child, output: () => output, exited, alive: () => running };
}

/** The JSON log lines of a process, skipping anything else it printed. */
function logEntries(output: string): Array<Record<string, unknown>> {
  return output.split("\n").flatMap((line) => {
    try {
      const entry: unknown = JSON.parse(line);
      return entry && typeof entry === "object" ? [entry as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Send `signal` and wait until the process has reacted one way or another: it logged the signal, Node opened
 * its debugger, or the process died. Then: no debugger, neither announced nor accepting, and still alive.
 */
async function sendAndCheckIgnored(run: Running, signal: NodeJS.Signals, inspectPort: number) {
  const seen = (entry: Record<string, unknown>) => entry.signal === signal && entry.level === "warn";
  run.child.kill(signal);
  await waitUntil(
    () => !run.alive() || run.output().includes("Debugger listening") || logEntries(run.output()).some(seen),
    15_000,
    `a reaction to ${signal}`,
  );
  expect(run.output()).not.toContain("Debugger listening");
  expect(await accepts(inspectPort)).toBe(false);
  expect(run.alive(), run.output()).toBe(true);
  return logEntries(run.output()).filter(seen);
}

describe("SIGUSR1 and SIGUSR2 are logged and ignored by the long-running commands", () => {
  it("the daemon opens no debugger, keeps ticking and stops on SIGTERM", async () => {
    const inspectPort = await freePort();
    const env = daemonEnv(azurite, QUEUE, [
      {
        kind: "local",
        name: "here",
        capacity: 2,
        stateDir: join(workDir, "state"),
        // Never started: the daemon plans in dry-run mode.
        command: ["{node}", "-e", "setTimeout(() => {}, 60000)"],
      },
    ]);
    const run = startCli(["run", "--dry-run"], env, inspectPort);
    const ticks = () => logEntries(run.output()).filter((entry) => entry.msg === "tick").length;
    await waitUntil(() => ticks() >= 1 || !run.alive(), 30_000, "the first tick");
    expect(run.alive(), run.output()).toBe(true);

    const [usr1] = await sendAndCheckIgnored(run, "SIGUSR1", inspectPort);
    const [usr2] = await sendAndCheckIgnored(run, "SIGUSR2", inspectPort);
    // The operator is told what happened and that the daemon has no use for the signal.
    expect(usr1!.msg).toMatch(/SIGUSR1 received and ignored/);
    expect(usr2!.msg).toMatch(/SIGUSR2 received and ignored/);
    expect(usr1!.msg).toMatch(/SIGTERM/);

    // Still working: two more ticks after both signals.
    const before = ticks();
    await waitUntil(() => ticks() >= before + 2 || !run.alive(), 30_000, "two more ticks");
    expect(run.alive(), run.output()).toBe(true);
    expect(await accepts(inspectPort)).toBe(false);

    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(run.output()).toContain("workforce autoscaler stopped");
  });

  it("the daemon ignores them while it is still starting (its leader lease's Storage slow to answer)", async () => {
    const inspectPort = await freePort();
    // Blob answers held back: leader election's first calls (container, lease) hang until let go.
    let letGo: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    let blobCalls = 0;
    const proxy = await startAzuriteProxy(
      azurite,
      azurite.blobEndpoint,
      () => false,
      () => {
        blobCalls++;
        return held;
      },
    );
    try {
      const env = {
        ...daemonEnv(azurite, QUEUE, [
          {
            kind: "local",
            name: "here",
            capacity: 2,
            stateDir: join(workDir, "state-starting"),
            command: ["{node}", "-e", "setTimeout(() => {}, 60000)"],
          },
        ]),
        WORKFORCE_LEADER_ELECTION: "true",
        WORKFORCE_STATE_CONNECTION_STRING: proxy.connectionString,
      };
      const run = startCli(["run", "--dry-run"], env, inspectPort);
      await waitUntil(() => blobCalls > 0 || !run.alive(), 30_000, "the daemon to ask for its lease");
      expect(logEntries(run.output()).some((entry) => entry.msg === "workforce autoscaler started")).toBe(
        false,
      );

      const [usr1] = await sendAndCheckIgnored(run, "SIGUSR1", inspectPort);
      const [usr2] = await sendAndCheckIgnored(run, "SIGUSR2", inspectPort);
      expect(usr1!.msg).toMatch(/SIGUSR1 received and ignored/);
      expect(usr2!.msg).toMatch(/SIGUSR2 received and ignored/);

      // Storage answers: the daemon starts, ticks and stops as usual.
      letGo();
      const ticks = () => logEntries(run.output()).filter((entry) => entry.msg === "tick").length;
      await waitUntil(() => ticks() >= 1 || !run.alive(), 30_000, "the first tick");
      expect(run.alive(), run.output()).toBe(true);
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
      expect(run.output()).not.toContain("Debugger listening");
    } finally {
      letGo();
      await proxy.close();
    }
  });

  it("the demo (npm start) opens no debugger, keeps ticking and stops on SIGTERM", async () => {
    const inspectPort = await freePort();
    const env = { PATH: process.env.PATH, AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential" };
    const args = ["demo", "--tasks", "0", "--interval", "1", "--metrics-port", "0"];
    const run = startCli(args, env, inspectPort);
    const ticks = () => logEntries(run.output()).filter((entry) => entry.msg === "tick").length;
    await waitUntil(() => ticks() >= 1 || !run.alive(), 90_000, "the demo's first tick");
    expect(run.alive(), run.output()).toBe(true);

    const [usr1] = await sendAndCheckIgnored(run, "SIGUSR1", inspectPort);
    const [usr2] = await sendAndCheckIgnored(run, "SIGUSR2", inspectPort);
    expect(usr1!.msg).toMatch(/SIGUSR1 received and ignored/);
    expect(usr2!.msg).toMatch(/SIGUSR2 received and ignored/);
    const before = ticks();
    await waitUntil(() => ticks() >= before + 1 || !run.alive(), 30_000, "another tick");
    expect(run.alive(), run.output()).toBe(true);

    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(run.output()).toContain("no worker or Azurite process left behind");
  });

  describe("the standalone agent", () => {
    const newTopic = controlTopics("stray", () => emulator);

    async function startListeningAgent(topic: string, pidDir: string, inspectPort: number) {
      const env = {
        PATH: process.env.PATH,
        AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
        WORKFORCE_BACK_CHANNEL_CONNECTION_STRING: emulator.connectionString,
        WORKFORCE_CONTROL_TOPIC_NAME: topic,
      };
      const run = startCli(["agent", "--pid-dir", pidDir, "--receive-wait", "1"], env, inspectPort);
      await waitUntil(
        () => run.output().includes("listening for control messages") || !run.alive(),
        30_000,
        "the agent to listen",
      );
      expect(run.alive(), run.output()).toBe(true);
      return run;
    }

    /** A worker of the node (it writes its PID file): the agent listens only while there is one. */
    async function nodeWorker(pidDir: string): Promise<Stub> {
      const stub = await startStub({ dir: tempDir("stray-stub"), name: "w1", pidDir, taskMs: 200 });
      stubs.push(stub);
      return stub;
    }

    it("opens no debugger, stays and stops on SIGTERM", async () => {
      const inspectPort = await freePort();
      const pidDir = tempDir("stray-agent-pids");
      const stub = await nodeWorker(pidDir);
      const run = await startListeningAgent(newTopic(), pidDir, inspectPort);

      const [usr1] = await sendAndCheckIgnored(run, "SIGUSR1", inspectPort);
      const [usr2] = await sendAndCheckIgnored(run, "SIGUSR2", inspectPort);
      // Told where control goes and where the signal should have gone.
      for (const entry of [usr1!, usr2!]) {
        expect(entry.msg).toMatch(/received and ignored/);
        expect(entry.msg).toMatch(/back channel/);
        expect(entry.msg).toMatch(/worker/);
      }

      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
      expect(run.output()).not.toContain("Debugger listening");
      // The signals were the agent's to ignore: the worker got none of them.
      expect(stub.lines().filter((line) => line.startsWith("signal"))).toEqual([]);
    });

    it("still takes a control message and signals the node's worker afterwards", async () => {
      const inspectPort = await freePort();
      const topic = newTopic();
      const pidDir = tempDir("stray-agent-pids");
      const stub = await nodeWorker(pidDir);
      const run = await startListeningAgent(topic, pidDir, inspectPort);

      await sendAndCheckIgnored(run, "SIGUSR1", inspectPort);
      await sendAndCheckIgnored(run, "SIGUSR2", inspectPort);

      await sendControl(emulator.connectionString, topic);
      await waitUntil(() => stub.lines().includes("signal SIGINT"), 20_000, "the worker to be signalled");
      expect(await run.exited).toBe(0);
      expect(await stub.exited).toBe(0);
      expect(await accepts(inspectPort)).toBe(false);
    });
  });
});
