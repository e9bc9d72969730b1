import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { alive } from "../support/processes.js";
import { noTaskInterrupted, PATIENCE_MS, sendControl, tempDir, waitUntil } from "./agent-support.js";
import { listening, OWN_PID_FILE, pidFiles, wrapHarness, workerLog } from "./agent-wrap-support.js";

/** `workforce agent -- CMD` and the signals: SIGUSR1/SIGUSR2 (jobq's leave signals), held until ready, SIGHUP. */
const { broker, startWrapped, withOwnTopic } = wrapHarness("wrap-signals");

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
      await sendControl(broker().connectionString, topic);
      expect(await run.exited).toBe(5);
      expect(broker().counts(`${topic}/Subscriptions/shutdown`).active).toBe(1);
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
