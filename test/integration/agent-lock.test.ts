import { spawn } from "node:child_process";
import { existsSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { SIGNAL_LOCK_FILE } from "../../src/agent/lock.js";
import { processInfo } from "../../src/agent/pids.js";
import { killQuietly, PATIENCE_MS, startStub, tempDir, waitUntil, type Stub } from "./agent-support.js";

/**
 * Two agents of one node (or one restarted by a supervisor) must never signal a worker twice: the second
 * signal is a hard stop of the task in hand. These run the built code in separate processes, with a delay
 * between an agent's last look at the PID files and its signal, so the window is wide and deterministic.
 */
const here = dirname(fileURLToPath(import.meta.url));
const RACER = join(here, "agent-lock-racer.mjs");
const DIST = join(here, "..", "..", "dist", "src", "agent", "signal-once.js");

interface RacerOutput {
  result: { kind: string; pids?: number[]; reason?: string };
  lines: Array<{ level: string; message: string }>;
}

const stubs: Stub[] = [];
const others: Array<ReturnType<typeof spawn>> = [];
afterEach(() => {
  stubs.splice(0).forEach((stub) => killQuietly(stub.child));
  others.splice(0).forEach(killQuietly);
});

/** A process that stands for an agent holding the lock; `kill` makes it a killed agent. */
async function lockHolder(
  pidDir: string,
  startedAtMs?: (real: number) => number,
): Promise<ReturnType<typeof spawn>> {
  const child = spawn("sleep", ["60"], { stdio: "ignore" });
  others.push(child);
  await waitUntil(() => processInfo(child.pid!) !== undefined, PATIENCE_MS, "the holder to start");
  const real = processInfo(child.pid!)!.startedAtMs;
  writeFileSync(
    join(pidDir, SIGNAL_LOCK_FILE),
    JSON.stringify({ pid: child.pid, startedAtMs: startedAtMs ? startedAtMs(real) : real }),
  );
  return child;
}

const signalLines = (stub: Stub) => stub.lines().filter((line) => line.startsWith("signal "));

function racer(env: Record<string, string>): Promise<RacerOutput> {
  const child = spawn(process.execPath, [RACER], {
    env: { ...process.env, RACER_DIST: DIST, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) =>
    child.once("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out) as RacerOutput) : reject(new Error(`racer exited ${code}`)),
    ),
  );
}

async function race(dir: string, pidDir: string, targets: number[], holdMs: number): Promise<RacerOutput[]> {
  const go = join(dir, "go");
  const runs = ["a", "b"].map((name) =>
    racer({
      RACER_PID_DIR: pidDir,
      RACER_TARGETS: targets.join(","),
      RACER_HOLD_MS: String(holdMs),
      RACER_READY: join(dir, `${name}.ready`),
      RACER_GO: go,
    }),
  );
  await waitUntil(
    () => ["a", "b"].every((name) => existsSync(join(dir, `${name}.ready`))),
    PATIENCE_MS,
    "racers",
  );
  writeFileSync(go, "");
  return Promise.all(runs);
}

describe("two agents of one node", () => {
  it("never signal the same worker twice, even when both act at once", async () => {
    const dir = tempDir("lock");
    const pidDir = join(dir, "pids");
    const stub = await startStub({ dir, name: "w1", pidDir, taskMs: 60_000 });
    stubs.push(stub);
    const outputs = await race(dir, pidDir, [stub.pid], 1_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(stub.lines().filter((line) => line.startsWith("signal "))).toEqual(["signal SIGINT"]);
    expect(outputs.map((output) => output.result.pids ?? []).flat()).toEqual([stub.pid]);
  }, 60_000);

  it("keep their lock file out of jobq's *.pid glob and remove it when done", async () => {
    expect(SIGNAL_LOCK_FILE.endsWith(".pid")).toBe(false);
    const dir = tempDir("lock");
    const pidDir = join(dir, "pids");
    const stub = await startStub({ dir, name: "w1", pidDir, taskMs: 60_000 });
    stubs.push(stub);
    await race(dir, pidDir, [stub.pid], 0);
    expect(readdirSync(pidDir).sort()).toEqual([".workforce-signalled.json", "w1.pid"]);
  }, 60_000);

  it("are not blocked by a lock left by a killed agent", async () => {
    const dir = tempDir("lock");
    const pidDir = join(dir, "pids");
    const stub = await startStub({ dir, name: "w1", pidDir, taskMs: 60_000 });
    stubs.push(stub);
    const holder = await lockHolder(pidDir);
    holder.kill("SIGKILL");
    await new Promise((resolve) => holder.once("exit", resolve));
    const started = Date.now();
    const output = await racer({
      RACER_PID_DIR: pidDir,
      RACER_TARGETS: String(stub.pid),
      RACER_LOCK_TIMEOUT_MS: "60000",
    });
    expect(output.result).toEqual({ kind: "signalled", pids: [stub.pid] });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(output.lines.map((line) => line.message)).toContain(
      "broke a stale signal lock (its agent is gone)",
    );
    await waitUntil(() => signalLines(stub).length > 0, PATIENCE_MS, "the signal");
    expect(existsSync(join(pidDir, SIGNAL_LOCK_FILE))).toBe(false);
  }, 60_000);

  it("are not blocked by a lock whose PID now names another process (PID reuse)", async () => {
    const dir = tempDir("lock");
    const pidDir = join(dir, "pids");
    const stub = await startStub({ dir, name: "w1", pidDir, taskMs: 60_000 });
    stubs.push(stub);
    // The owner's PID runs, but it started later than the agent that wrote the lock: another process.
    await lockHolder(pidDir, (real) => real - 3_600_000);
    const output = await racer({
      RACER_PID_DIR: pidDir,
      RACER_TARGETS: String(stub.pid),
      RACER_LOCK_TIMEOUT_MS: "60000",
    });
    expect(output.result).toEqual({ kind: "signalled", pids: [stub.pid] });
  }, 60_000);

  it("signal nothing while another live agent holds the lock past the timeout, and say why", async () => {
    const dir = tempDir("lock");
    const pidDir = join(dir, "pids");
    const stub = await startStub({ dir, name: "w1", pidDir, taskMs: 60_000 });
    stubs.push(stub);
    const holder = await lockHolder(pidDir);
    const output = await racer({
      RACER_PID_DIR: pidDir,
      RACER_TARGETS: String(stub.pid),
      RACER_LOCK_TIMEOUT_MS: "300",
    });
    expect(output.result).toEqual({
      kind: "busy",
      reason: `${join(pidDir, SIGNAL_LOCK_FILE)} is held by process ${holder.pid} (another agent of this node)`,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(signalLines(stub)).toEqual([]);
    // The live agent's lock is left alone.
    expect(existsSync(join(pidDir, SIGNAL_LOCK_FILE))).toBe(true);
  }, 60_000);

  it("are not blocked for ever by a damaged lock that names no owner", async () => {
    const dir = tempDir("lock");
    const pidDir = join(dir, "pids");
    const stub = await startStub({ dir, name: "w1", pidDir, taskMs: 60_000 });
    stubs.push(stub);
    const lockPath = join(pidDir, SIGNAL_LOCK_FILE);
    writeFileSync(lockPath, "");
    const env = { RACER_PID_DIR: pidDir, RACER_TARGETS: String(stub.pid), RACER_LOCK_TIMEOUT_MS: "300" };
    // Fresh, it counts as held: waited for, then given up.
    expect((await racer(env)).result.kind).toBe("busy");
    const old = new Date(Date.now() - 60_000);
    utimesSync(lockPath, old, old);
    expect((await racer(env)).result).toEqual({ kind: "signalled", pids: [stub.pid] });
  }, 60_000);
});
