import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { workforceArgv } from "../support/cli.js";
import { alive } from "../support/processes.js";
import {
  controlTopics,
  killQuietly,
  noTaskInterrupted,
  PATIENCE_MS,
  readLines,
  sendControl,
  STUB_PATH,
  stubEnv,
  tempDir,
  waitUntil,
} from "./agent-support.js";

/** `workforce agent -- node worker-stub.mjs` as a job command runs it: the built CLI as a child process. */

let emulator: ServiceBusEmulator;
const agents: Array<ReturnType<typeof spawn>> = [];

beforeAll(async () => {
  emulator = await startServiceBusEmulator();
});
/** Worker logs of this test: a failed test must not leave its worker behind (the agent dies by SIGKILL). */
const workerDirs: string[] = [];
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

const newTopic = controlTopics("wrap", () => emulator);

interface WrapRun {
  exited: Promise<number | null>;
  stderr: () => string;
  pid: number;
}

function startWrapped(options: {
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
}): WrapRun {
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
          WORKFORCE_BACK_CHANNEL_CONNECTION_STRING: emulator.connectionString,
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

/** Until the agent listens for control messages: it has started, and reached the broker. */
const listening = (run: WrapRun, ms = PATIENCE_MS) =>
  waitUntil(() => run.stderr().includes("listening for control messages"), ms, "the agent to listen");

/** The worker writes its own PID file, and the agent waits long enough for a loaded machine to start it. */
const OWN_PID_FILE = { ownPidFile: true, pidFileGrace: 5 } as const;

const workerLog = (dir: string) => readLines(join(dir, "worker.log"));
const pidFiles = (dir: string) =>
  existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith(".pid")) : [];

describe("workforce agent -- CMD (wrap mode)", () => {
  it("starts the worker, writes its PID file, and on a control message exits with the worker's code after its task", async () => {
    const { topic, dir, pidDir } = withOwnTopic("wrap-msg");
    const run = startWrapped({ topic, pidDir, dir, stubExitCode: 3 });
    // The worker writes no PID file of its own: the agent writes one for it.
    await waitUntil(
      () => pidFiles(pidDir).includes("wrapped.pid"),
      PATIENCE_MS,
      "the agent to write the PID file",
    );
    const workerPid = Number(readFileSync(join(pidDir, "wrapped.pid"), "utf8"));
    await waitUntil(() => workerLog(dir).length > 0, PATIENCE_MS, "the worker to start");
    expect(workerLog(dir)[0]).toBe(`ready ${workerPid}`);
    // The agent is the node's only listener: the worker does not see the back channel.
    expect(workerLog(dir)).toContain("topic -");
    await listening(run);
    await sendControl(emulator.connectionString, topic);
    expect(await run.exited).toBe(3);
    expect(workerLog(dir)).toContain("signal SIGINT");
    expect(noTaskInterrupted(workerLog(dir))).toBe(true);
    // Its PID file goes with it.
    expect(pidFiles(pidDir)).toEqual([]);
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(0);
  });

  it("leaves the PID file to a worker that writes its own, and signals the worker once", async () => {
    const { topic, dir, pidDir } = withOwnTopic("wrap-own");
    const run = startWrapped({ topic, pidDir, dir, ...OWN_PID_FILE });
    await listening(run);
    await waitUntil(() => pidFiles(pidDir).includes("worker.pid"), PATIENCE_MS, "the worker's own PID file");
    // Past the grace: the agent has looked (it says so) and left the worker's file alone.
    await waitUntil(
      () => run.stderr().includes("the worker wrote its own PID file"),
      PATIENCE_MS,
      "the agent's look at the end of the grace",
    );
    expect(pidFiles(pidDir)).toEqual(["worker.pid"]);
    await sendControl(emulator.connectionString, topic);
    expect(await run.exited).toBe(0);
    expect(workerLog(dir).filter((line) => line.startsWith("signal"))).toEqual(["signal SIGINT"]);
  });

  it("passes SIGTERM on to the worker and reports 128 + signal when the worker dies of it", async () => {
    const dir = tempDir("wrap-term");
    const pidDir = join(dir, "pids");
    // No back channel configured: the agent just runs the worker. The stub traps nothing, so SIGTERM kills it.
    const run = startWrapped({ pidDir, dir, trap: "" });
    await waitUntil(
      () => workerLog(dir).some((line) => line.startsWith("ready")),
      PATIENCE_MS,
      "the worker to start",
    );
    // SIGINT to the agent alone is not passed on (Ctrl-C reaches the worker through the process group).
    process.kill(run.pid, "SIGINT");
    await waitUntil(
      () => run.stderr().includes("SIGINT: waiting for the worker"),
      PATIENCE_MS,
      "the agent to log the SIGINT",
    );
    expect(workerLog(dir).filter((line) => line.startsWith("exit"))).toEqual([]);
    process.kill(run.pid, "SIGTERM");
    expect(await run.exited).toBe(128 + 15);
    expect(run.stderr()).toContain("passing signal on to the worker");
  });

  it("stops listening once its worker is told to leave through the process group (a cancel, Ctrl-C)", async () => {
    const { topic, dir, pidDir } = withOwnTopic("wrap-group");
    const run = startWrapped({ topic, pidDir, dir, taskMs: 2_000, detached: true });
    await listening(run);
    await waitUntil(() => workerLog(dir).includes("start 1"), PATIENCE_MS, "the worker's first task");
    // What the local region's cancel does: the drain signal to the whole group, agent and worker.
    process.kill(-run.pid, "SIGINT");
    await waitUntil(
      () => run.stderr().includes("SIGINT: waiting for the worker"),
      PATIENCE_MS,
      "the agent to see the SIGINT",
    );
    // A drain request arrives while the worker finishes its task: it is meant for another node.
    await sendControl(emulator.connectionString, topic);
    expect(await run.exited).toBe(0);
    expect(workerLog(dir).filter((line) => line.startsWith("signal"))).toEqual(["signal SIGINT"]);
    expect(noTaskInterrupted(workerLog(dir))).toBe(true);
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(1);
  });

  it("does not act on a message whose completion is answered after SIGTERM: the worker gets one signal, not two", async () => {
    const { topic, dir, pidDir } = withOwnTopic("wrap-late-complete");
    const run = startWrapped({
      topic,
      pidDir,
      dir,
      ...OWN_PID_FILE,
      trap: "SIGTERM,SIGINT",
      taskMs: 10_000,
    });
    await listening(run, 10_000);
    // A task that starts now is still running when the late answer comes.
    const starts = () => workerLog(dir).filter((line) => line.startsWith("start ")).length;
    const before = starts();
    await waitUntil(() => starts() > before, 10_000, "the worker's next task");
    const subscription = `${topic}/Subscriptions/shutdown`;
    // The broker answers the agent's completion late: the node is told to leave before the answer comes.
    emulator.faults.ackDelayMs = 3_000;
    try {
      await sendControl(emulator.connectionString, topic);
      await waitUntil(() => emulator.counts(subscription).locked === 1, 10_000, "the agent to take it");
      // The completion is at the broker, unanswered (sent as soon as the message is in hand).
      await waitUntil(() => emulator.faults.acksHeld === 1, 10_000, "the completion to reach the broker");
      process.kill(run.pid, "SIGTERM");
      await waitUntil(() => emulator.counts(subscription).total === 0, 10_000, "the completion");
    } finally {
      emulator.faults.reset();
    }
    expect(await run.exited).toBe(0);
    // SIGTERM was passed on; a control message on top would be a second signal: a hard stop of the task.
    expect(workerLog(dir).filter((line) => line.startsWith("signal "))).toEqual(["signal SIGTERM"]);
    expect(noTaskInterrupted(workerLog(dir))).toBe(true);
    expect(run.stderr()).toContain("taken as this node stopped listening");
  });

  it("exits with the worker's code when the worker leaves on its own, and stops listening", async () => {
    const { topic, dir, pidDir } = withOwnTopic("wrap-self");
    const run = startWrapped({ topic, pidDir, dir, stubExitCode: 0, trap: "SIGUSR2" });
    await listening(run);
    await waitUntil(() => workerLog(dir).length > 0, PATIENCE_MS, "the worker to start");
    const workerPid = Number(workerLog(dir)[0]!.split(" ")[1]);
    // The worker decides to leave (as a jobq worker does on an empty queue).
    process.kill(workerPid, "SIGUSR2");
    expect(await run.exited).toBe(0);
    // A message sent afterwards is left for another node.
    await sendControl(emulator.connectionString, topic);
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(1);
  });
});

describe("workforce agent -- CMD: the leave signals jobq workers know (SIGUSR1, SIGUSR2)", () => {
  for (const signal of ["SIGUSR1", "SIGUSR2"] as const) {
    it(`passes ${signal} sent to the agent's PID on to the worker once, waits for it, exits with its code and stops listening`, async () => {
      const { topic, dir, pidDir } = withOwnTopic(`wrap-${signal.toLowerCase()}`);
      const run = startWrapped({
        topic,
        pidDir,
        dir,
        ...OWN_PID_FILE,
        trap: "SIGUSR1,SIGUSR2",
        stubExitCode: 5,
        taskMs: 1_500,
        // However late in its task the signal comes, the worker is still there for a while after it.
        exitDelayMs: 3_000,
      });
      await listening(run);
      await waitUntil(() => workerLog(dir).includes("start 1"), PATIENCE_MS, "the worker's first task");
      // An operator, or a tool that signals by PID, asks the agent (not the worker) to leave.
      process.kill(run.pid, signal);
      await waitUntil(
        () => workerLog(dir).some((line) => line.startsWith("signal ")),
        PATIENCE_MS,
        "the worker to get the signal",
      );
      // The worker is finishing its task: the agent is still there to supervise it.
      expect(workerLog(dir).some((line) => line.startsWith("exit "))).toBe(false);
      expect(alive(run.pid)).toBe(true);
      // This node is leaving: a drain request sent meanwhile is for another node, and is left untouched.
      await sendControl(emulator.connectionString, topic);
      expect(await run.exited).toBe(5);
      expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(1);
      expect(run.stderr()).not.toContain("control message given back");
      expect(workerLog(dir).filter((line) => line.startsWith("signal "))).toEqual([`signal ${signal}`]);
      expect(noTaskInterrupted(workerLog(dir))).toBe(true);
      // SIGUSR1 must not open Node's debugger port on the node.
      expect(run.stderr()).not.toContain("Debugger listening");
    });
  }

  it("holds a leave signal until the worker is ready (its PID file exists), then passes it on once", async () => {
    const dir = tempDir("wrap-held");
    const pidDir = join(dir, "pids");
    // The worker writes no PID file: the agent writes one for it after the grace (5 s: the test sees the
    // worker start and signals the agent well within it, even on a loaded machine).
    const run = startWrapped({ pidDir, dir, pidFileGrace: 5, trap: "SIGUSR1,SIGUSR2", taskMs: 300 });
    await waitUntil(
      () => workerLog(dir).some((line) => line.startsWith("ready")),
      PATIENCE_MS,
      "the worker to start",
    );
    expect(pidFiles(pidDir)).toEqual([]);
    process.kill(run.pid, "SIGUSR1");
    await waitUntil(
      () => workerLog(dir).some((line) => line.startsWith("signal ")),
      PATIENCE_MS,
      "the worker to get the signal",
    );
    expect(alive(run.pid)).toBe(true);
    expect(await run.exited).toBe(0);
    expect(workerLog(dir).filter((line) => line.startsWith("signal "))).toEqual(["signal SIGUSR1"]);
    // A jobq worker installs its handlers before it writes its PID file: until then SIGUSR1 would kill it.
    // The agent's own log says in which order things happened: held, PID file written, then passed on.
    const said = (msg: string) => run.stderr().indexOf(msg);
    expect(said("the signal is passed on once it does")).toBeGreaterThanOrEqual(0);
    expect(said("wrote the worker's PID file")).toBeGreaterThan(said("the signal is passed on once it does"));
    expect(said("passing signal on to the worker")).toBeGreaterThan(said("wrote the worker's PID file"));
  });

  it("does not deliver a group's SIGUSR1 twice to a worker that is not ready (a local region's cancel)", async () => {
    const dir = tempDir("wrap-group-usr1");
    const pidDir = join(dir, "pids");
    const run = startWrapped({ pidDir, dir, pidFileGrace: 10, trap: "SIGUSR1,SIGUSR2", detached: true });
    await waitUntil(() => workerLog(dir).includes("start 1"), PATIENCE_MS, "the worker's first task");
    // What the local region's cancelPending does with drainSignal SIGUSR1: the whole process group.
    process.kill(-run.pid, "SIGUSR1");
    expect(await run.exited).toBe(0);
    expect(workerLog(dir).filter((line) => line.startsWith("signal "))).toEqual(["signal SIGUSR1"]);
  });

  it("passes SIGHUP on to the worker once and stays to report its exit code", async () => {
    const dir = tempDir("wrap-hup");
    const pidDir = join(dir, "pids");
    const run = startWrapped({ pidDir, dir, trap: "SIGHUP", stubExitCode: 4, taskMs: 1_000 });
    await waitUntil(() => workerLog(dir).includes("start 1"), PATIENCE_MS, "the worker's first task");
    process.kill(run.pid, "SIGHUP");
    expect(await run.exited).toBe(4);
    expect(workerLog(dir).filter((line) => line.startsWith("signal "))).toEqual(["signal SIGHUP"]);
    expect(noTaskInterrupted(workerLog(dir))).toBe(true);
  });
});
