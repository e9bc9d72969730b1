import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { noTaskInterrupted, PATIENCE_MS, sendControl, tempDir, waitUntil } from "./agent-support.js";
import { listening, OWN_PID_FILE, pidFiles, wrapHarness, workerLog } from "./agent-wrap-support.js";

/** `workforce agent -- CMD` (wrap mode): the worker started, its PID file, control messages, exit codes. */
const { broker, startWrapped, withOwnTopic } = wrapHarness("wrap");

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
    await sendControl(broker().connectionString, topic);
    expect(await run.exited).toBe(3);
    expect(workerLog(dir)).toContain("signal SIGINT");
    expect(noTaskInterrupted(workerLog(dir))).toBe(true);
    // Its PID file goes with it.
    expect(pidFiles(pidDir)).toEqual([]);
    expect(broker().counts(`${topic}/Subscriptions/shutdown`).active).toBe(0);
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
    await sendControl(broker().connectionString, topic);
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
    await sendControl(broker().connectionString, topic);
    expect(await run.exited).toBe(0);
    expect(workerLog(dir).filter((line) => line.startsWith("signal"))).toEqual(["signal SIGINT"]);
    expect(noTaskInterrupted(workerLog(dir))).toBe(true);
    expect(broker().counts(`${topic}/Subscriptions/shutdown`).active).toBe(1);
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
    broker().faults.ackDelayMs = 3_000;
    try {
      await sendControl(broker().connectionString, topic);
      await waitUntil(() => broker().counts(subscription).locked === 1, 10_000, "the agent to take it");
      // The completion is at the broker, unanswered (sent as soon as the message is in hand).
      await waitUntil(() => broker().faults.acksHeld === 1, 10_000, "the completion to reach the broker");
      process.kill(run.pid, "SIGTERM");
      await waitUntil(() => broker().counts(subscription).total === 0, 10_000, "the completion");
    } finally {
      broker().faults.reset();
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
    await sendControl(broker().connectionString, topic);
    expect(broker().counts(`${topic}/Subscriptions/shutdown`).active).toBe(1);
  });
});
