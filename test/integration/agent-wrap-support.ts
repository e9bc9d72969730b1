import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { workforceArgv } from "../support/cli.js";
import {
  controlTopics,
  killQuietly,
  PATIENCE_MS,
  readLines,
  STUB_PATH,
  stubEnv,
  tempDir,
  waitUntil,
} from "./agent-support.js";

/**
 * `workforce agent -- node worker-stub.mjs` as a job command runs it: the built CLI as a child process,
 * against a Service Bus emulator of the test file's own. Call `wrapHarness()` at a test file's top level:
 * it registers the hooks that start the emulator and kill what a failed test left behind.
 */
export interface WrapRun {
  exited: Promise<number | null>;
  stderr: () => string;
  pid: number;
}

export interface WrapOptions {
  topic?: string;
  pidDir: string;
  dir: string;
  stubExitCode?: number;
  trap?: string;
  ownPidFile?: boolean;
  /** Seconds the agent waits for the worker's own PID file. */
  pidFileGrace?: number;
  taskMs?: number;
  /** In its own process group, as the local region starts it. */
  detached?: boolean;
  /** How long the worker takes to leave after its last task. */
  exitDelayMs?: number;
}

/** The worker writes its own PID file, and the agent waits long enough for a loaded machine to start it. */
export const OWN_PID_FILE = { ownPidFile: true, pidFileGrace: 5 } as const;

export const workerLog = (dir: string) => readLines(join(dir, "worker.log"));
export const pidFiles = (dir: string) =>
  existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith(".pid")) : [];

/** Until the agent listens for control messages: it has started, and reached the broker. */
export const listening = (run: WrapRun, ms = PATIENCE_MS) =>
  waitUntil(() => run.stderr().includes("listening for control messages"), ms, "the agent to listen");

export function wrapHarness(topicPrefix: string) {
  let emulator: ServiceBusEmulator | undefined;
  const agents: Array<ReturnType<typeof spawn>> = [];
  /** Worker logs of this test: a failed test must not leave its worker behind (the agent dies by SIGKILL). */
  const workerDirs: string[] = [];

  beforeAll(async () => {
    emulator = await startServiceBusEmulator();
  });
  afterEach(() => {
    agents.splice(0).forEach(killQuietly);
    for (const dir of workerDirs.splice(0)) {
      const ready = workerLog(dir).find((line) => line.startsWith("ready "));
      try {
        if (ready) process.kill(Number(ready.split(" ")[1]), "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  });
  afterAll(async () => {
    await emulator?.stop();
  });

  const broker = (): ServiceBusEmulator => {
    if (!emulator) throw new Error("the Service Bus emulator is started by wrapHarness's beforeAll");
    return emulator;
  };
  const newTopic = controlTopics(topicPrefix, broker);

  function startWrapped(options: WrapOptions): WrapRun {
    const env = {
      ...stubEnv({
        dir: options.dir,
        name: "worker",
        taskMs: options.taskMs ?? 400,
        ...(options.trap !== undefined ? { trap: options.trap } : {}),
        ...(options.stubExitCode !== undefined ? { exitCode: options.stubExitCode } : {}),
        ...(options.ownPidFile ? { pidDir: options.pidDir } : {}),
        ...(options.exitDelayMs !== undefined ? { exitDelayMs: options.exitDelayMs } : {}),
      }),
      JOBQ_PID_DIR: options.pidDir,
      WORKFORCE_LOG_LEVEL: "debug",
      ...(options.topic
        ? {
            WORKFORCE_BACK_CHANNEL_CONNECTION_STRING: broker().connectionString,
            WORKFORCE_CONTROL_TOPIC_NAME: options.topic,
          }
        : {}),
    };
    const [node, ...args] = workforceArgv(
      "agent",
      "--worker-id",
      "wrapped",
      "--pid-file-grace",
      String(options.pidFileGrace ?? 0.3),
      "--receive-wait",
      "5",
      "--",
      process.execPath,
      STUB_PATH,
    );
    const child = spawn(node!, args, {
      env,
      stdio: ["ignore", "ignore", "pipe"],
      detached: options.detached ?? false,
    });
    agents.push(child);
    workerDirs.push(options.dir);
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    return { exited, stderr: () => stderr, pid: child.pid! };
  }

  /** A test's own control topic, and its own directory for the worker, with the PID directory in it. */
  function withOwnTopic(prefix: string): { topic: string; dir: string; pidDir: string } {
    const topic = newTopic();
    const dir = tempDir(prefix);
    return { topic, dir, pidDir: join(dir, "pids") };
  }

  return { broker, startWrapped, withOwnTopic };
}
