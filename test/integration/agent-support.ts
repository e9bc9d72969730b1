import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServiceBusClient } from "@azure/service-bus";
import type { ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { encodeControlMessage, type ControlOperation } from "../../src/backchannel/message.js";
import { createLogger, type Logger } from "../../src/logging/logger.js";

/** Helpers shared by the agent tests: the worker stub, control topics and messages, and a quiet logger. */

export const STUB_PATH = join(dirname(fileURLToPath(import.meta.url)), "agent-worker-stub.mjs");

/**
 * How long a test waits for a child process (a worker stub, the agent, the CLI) to get somewhere: usually
 * well under a second, but a loaded 2-core machine can take many seconds to start Node and connect.
 */
export const PATIENCE_MS = 30_000;

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `wf-${prefix}-`));
}

export function quietLogger(): Logger {
  return createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
}

export interface StubOptions {
  dir: string;
  name: string;
  taskMs?: number;
  /** Signals the stub traps (default SIGINT); "" traps none. */
  trap?: string;
  exitCode?: number;
  /** Write its own PID file here, as a jobq worker does. */
  pidDir?: string;
  /** How long it takes to leave after its last task (default 0). */
  exitDelayMs?: number;
}

export interface Stub {
  child: ChildProcess;
  pid: number;
  logPath: string;
  lines(): string[];
  exited: Promise<number | null>;
}

export function stubEnv(options: StubOptions): NodeJS.ProcessEnv {
  return {
    ...process.env,
    STUB_LOG: join(options.dir, `${options.name}.log`),
    STUB_TASK_MS: String(options.taskMs ?? 300),
    STUB_TRAP: options.trap ?? "SIGINT",
    STUB_EXIT_CODE: String(options.exitCode ?? 0),
    STUB_EXIT_DELAY_MS: String(options.exitDelayMs ?? 0),
    ...(options.pidDir ? { STUB_WORKER_ID: options.name, JOBQ_PID_DIR: options.pidDir } : {}),
  };
}

export function readLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
}

export async function waitUntil(
  predicate: () => boolean,
  timeoutMs = PATIENCE_MS,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export async function startStub(options: StubOptions): Promise<Stub> {
  const env = stubEnv(options);
  const logPath = env.STUB_LOG!;
  const child = spawn(process.execPath, [STUB_PATH], { env, stdio: "ignore" });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await waitUntil(
    () => readLines(logPath).some((line) => line.startsWith("ready")),
    PATIENCE_MS,
    `stub ${options.name} to start`,
  );
  return { child, pid: child.pid!, logPath, lines: () => readLines(logPath), exited };
}

/** True when every task the stub started, it also finished: no task was interrupted. */
export function noTaskInterrupted(lines: string[]): boolean {
  const started = lines.filter((line) => line.startsWith("start ")).length;
  const done = lines.filter((line) => line.startsWith("done ")).length;
  return started > 0 && started === done;
}

export function killQuietly(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/**
 * Topics `prefix-1`, `prefix-2`, ... of the emulator, one a call, each with the `shutdown` subscription the
 * agent reads. `emulator` is asked at each call (it is started in a hook).
 */
export function controlTopics(prefix: string, emulator: () => ServiceBusEmulator): () => string {
  let count = 0;
  return () => {
    count += 1;
    const topic = `${prefix}-${count}`;
    emulator().createTopic(topic);
    emulator().createSubscription(topic, "shutdown");
    return topic;
  };
}

/** One control message sent to `topic`, as the controller sends it (default: a drain request). */
export async function sendControl(
  connectionString: string,
  topic: string,
  operation: ControlOperation = "graceful-downscale",
  timeToLive = 60_000,
): Promise<void> {
  const client = new ServiceBusClient(connectionString);
  try {
    await client.createSender(topic).sendMessages({ body: encodeControlMessage(operation), timeToLive });
  } finally {
    await client.close();
  }
}
