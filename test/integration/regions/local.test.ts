import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../../support/azurite.js";
import { alive } from "../../support/processes.js";
import { createLogger } from "../../../src/logging/logger.js";
import { loadConfig } from "../../../src/config/load.js";
import { localRegionSchema } from "../../../src/regions/local/config.js";
import { LocalRegion } from "../../../src/regions/local/index.js";
import type { RegionContext } from "../../../src/regions/context.js";
import type { RegionObservation } from "../../../src/regions/types.js";
import { encodeTask, shellTask } from "../../../src/queue/tasks.js";
import { uniqueQueueName, waitFor } from "../queue/helpers.js";
import { workforceWorkerCommand } from "../../../src/regions/local/command.js";

const FAKE_WORKER = fileURLToPath(new URL("./fake-worker.mjs", import.meta.url));
const logger = createLogger({ level: "silent" });

/** The four counts of an observation (its exit history is checked on its own). */
function counts({ running, pending, draining, capacity }: RegionObservation) {
  return { running, pending, draining, capacity };
}

let root: string;
const regions: LocalRegion[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "wf-local-"));
});
afterEach(async () => {
  // Leave no process behind, whatever a test did.
  for (const region of regions.splice(0)) {
    await region.stopAll(1_000);
    await region.close();
  }
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function context(queue = "unused"): RegionContext {
  const regionsList = JSON.stringify([
    { kind: "local", name: "x", capacity: 1, stateDir: root, command: ["x"] },
  ]);
  const settings = loadConfig({
    env: { WORKFORCE_QUEUE: queue, WORKFORCE_CONCURRENCY: "2", WORKFORCE_REGIONS: regionsList },
  });
  return {
    logger,
    settings,
    credential: () => {
      throw new Error("the local region never needs an Azure credential");
    },
  };
}

let dirs = 0;
function fakeRegion(env: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  const dir = join(root, `r${dirs++}`);
  const config = localRegionSchema.parse({
    kind: "local",
    name: "local",
    capacity: 4,
    stateDir: join(dir, "state"),
    command: ["{node}", FAKE_WORKER],
    env: { FAKE_DIR: dir, ...env },
    ...extra,
  });
  const make = () => {
    const region = new LocalRegion(config, context());
    regions.push(region);
    return region;
  };
  return { dir, config, make, region: make() };
}

const signalsOf = (dir: string, id: string): string[] => {
  const file = join(dir, `${id}.signals`);
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : [];
};

/** Signals are logged by the worker a moment after delivery: wait for them, then check nothing more came. */
async function expectSignals(dir: string, ids: string[], expected: string[][]): Promise<void> {
  const read = () => JSON.stringify(ids.map((id) => signalsOf(dir, id)));
  await waitFor(
    () => read() === JSON.stringify(expected),
    20_000,
    `signals ${JSON.stringify(expected)} (got ${read()})`,
  ).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 200));
  expect(ids.map((id) => signalsOf(dir, id))).toEqual(expected);
}

async function until(
  region: LocalRegion,
  wanted: Partial<RegionObservation>,
  what = JSON.stringify(wanted),
): Promise<RegionObservation> {
  let last: RegionObservation | undefined;
  await waitFor(
    async () => {
      last = await region.observe();
      return Object.entries(wanted).every(([key, value]) => last![key as keyof RegionObservation] === value);
    },
    20_000,
    `${what} (last ${JSON.stringify(last)})`,
  );
  return last!;
}

describe("local region with the real worker", () => {
  let azurite: AzuriteInstance;
  beforeAll(async () => {
    azurite = await startAzurite();
  });
  afterAll(async () => {
    await azurite?.stop();
  });

  it("hire -> pending -> running; a drain lets the task in hand finish; exited workers are forgotten", async () => {
    const queue = uniqueQueueName("local");
    const client = new QueueClient(azurite.connectionString, queue);
    await client.create();
    const dir = join(root, "real");
    const config = localRegionSchema.parse({
      kind: "local",
      name: "real",
      capacity: 3,
      stateDir: join(dir, "state"),
      command: workforceWorkerCommand(60),
      env: { WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString },
    });
    const region = new LocalRegion(config, context(queue));
    regions.push(region);

    expect(await region.hire(1)).toEqual({ hired: 1, errors: [] });
    // The process is up but has not written its PID file yet.
    expect(counts(await region.observe())).toEqual({ running: 0, pending: 1, draining: 0, capacity: 2 });
    await until(region, { running: 1, pending: 0 });

    const started = join(dir, "task-started");
    const done = join(dir, "task-done");
    await client.sendMessage(encodeTask(shellTask({ cmd: `touch ${started}; sleep 2; touch ${done}` })));
    await waitFor(() => existsSync(started), 20_000, "the task to start");

    expect(await region.drain(1)).toEqual({ drained: 1, errors: [] });
    expect(counts(await region.observe())).toEqual({ running: 0, pending: 0, draining: 1, capacity: 2 });
    await until(region, { draining: 0, running: 0 }, "the drained worker to leave");
    expect(existsSync(done)).toBe(true);
    expect((await client.getProperties()).approximateMessagesCount).toBe(0);
    expect(await region.workers()).toEqual([]);
    // Its exit is on record: drained, with how long the drain took (the task in hand: about 2 s).
    const exit = (await region.observe()).exits!.at(-1)!;
    expect(exit).toMatchObject({ outcome: "drained", detail: "exit code 0" });
    expect(exit.drainSeconds).toBeGreaterThan(0.5);
    const logs = readdirSync(join(dir, "state", "logs"));
    expect(readFileSync(join(dir, "state", "logs", logs[0]!), "utf8")).toMatch(/task succeeded/);
  });
});

describe("local region states and signals", () => {
  it("drain signals only running workers, never one already draining", async () => {
    const { region, dir } = fakeRegion();
    await region.hire(3);
    await until(region, { running: 3 });
    expect((await region.drain(2)).drained).toBe(2);
    expect(await region.observe()).toMatchObject({ running: 1, draining: 2 });
    expect((await region.drain(2)).drained).toBe(1);
    expect((await region.drain(1)).drained).toBe(0);
    const ids = (await region.workers()).map((w) => w.id);
    await expectSignals(dir, ids, [["SIGINT"], ["SIGINT"], ["SIGINT"]]);
  });

  it("a pending worker is never drained; cancelPending stops the newest pending ones", async () => {
    const { region } = fakeRegion({ FAKE_GO: join(root, "never") });
    await region.hire(3);
    expect(await region.observe()).toMatchObject({ running: 0, pending: 3 });
    expect((await region.drain(3)).drained).toBe(0);
    const before = await region.workers();
    expect((await region.cancelPending(2)).cancelled).toBe(2);
    await until(region, { pending: 1, draining: 0 }, "the cancelled workers to leave");
    // The oldest one is left; the two newest were asked to leave with the drain signal.
    expect((await region.workers()).map((w) => w.id)).toEqual([before[0]!.id]);
    // (A process that has not even installed its handlers yet simply dies of the SIGINT: it held no task.)
    expect(before.filter((w) => w.pid !== undefined && alive(w.pid)).map((w) => w.id)).toEqual([
      before[0]!.id,
    ]);
  });

  it("cancelling a pending worker wrapped by `workforce agent` ends the worker, not only the agent", async () => {
    // As in the drain end-to-end test: the region starts an agent, which starts the worker. The worker has
    // not written its PID file yet (pending) when the surplus is cancelled.
    const { region } = fakeRegion(
      { FAKE_GO: join(root, "never") },
      { command: ["{node}", "{workforce}", "agent", "--", "{node}", FAKE_WORKER] },
    );
    await region.hire(1);
    const [worker] = await region.workers();
    // The agent is up and has started its worker (which logs its signals once its handlers are in place).
    const workerPids = () =>
      readdirSync("/proc")
        .filter((entry) => /^\d+$/.test(entry))
        .filter((pid) => {
          try {
            return (
              readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1] === String(worker!.pid)
            );
          } catch {
            return false;
          }
        });
    await waitFor(() => workerPids().length === 1, 20_000, "the agent to start its worker");
    expect(await region.observe()).toMatchObject({ running: 0, pending: 1 });
    expect((await region.cancelPending(1)).cancelled).toBe(1);
    await until(region, { pending: 0, draining: 0 }, "the cancelled worker to leave");
    expect(alive(worker!.pid!)).toBe(false);
    expect(workerPids()).toEqual([]);
    expect((await region.observe()).exits!.at(-1)).toMatchObject({ outcome: "drained" });
  });

  it("a worker on its way out (PID file removed, process not yet ended) is draining, never pending", async () => {
    const { region, config } = fakeRegion({ FAKE_LINGER_MS: "60000" });
    await region.hire(1);
    await until(region, { running: 1 });
    const [worker] = await region.workers();
    // It leaves on its own (an empty queue): PID file first, then the process, here a minute later.
    process.kill(worker!.pid!, "SIGUSR2");
    const pidFile = join(config.stateDir, "pids", worker!.id, `${worker!.id}.pid`);
    await waitFor(() => !existsSync(pidFile), 20_000, "the worker to remove its PID file");
    expect(counts(await region.observe())).toEqual({ running: 0, pending: 0, draining: 1, capacity: 3 });
    // Not a pending worker: a cancel of the surplus finds none to cancel.
    expect((await region.cancelPending(1)).cancelled).toBe(0);
  });

  it("a restarted region finds the same workers and can drain them", async () => {
    const { region, make, dir } = fakeRegion();
    await region.hire(2);
    await until(region, { running: 2 });
    const ids = (await region.workers()).map((w) => w.id);
    await region.close();
    const again = make();
    expect(counts(await again.observe())).toEqual({ running: 2, pending: 0, draining: 0, capacity: 2 });
    expect((await again.workers()).map((w) => w.id)).toEqual(ids);
    expect((await again.drain(1)).drained).toBe(1);
    await expectSignals(dir, ids, [["SIGINT"], []]);
    // The drain is remembered across a restart too.
    const third = make();
    expect(await third.observe()).toMatchObject({ running: 1, draining: 1 });
  });

  it("never signals a recorded PID whose start time differs (PID reuse)", async () => {
    const { region, config } = fakeRegion();
    // A record claiming this very test process, with another start time: as if our worker died and the
    // PID went to someone else.
    const recordDir = join(config.stateDir, "workers");
    await region.observe();
    const { mkdirSync } = await import("node:fs");
    mkdirSync(recordDir, { recursive: true });
    const now = new Date().toISOString();
    writeFileSync(
      join(recordDir, "local-reused.json"),
      JSON.stringify({
        id: "local-reused",
        hiredAt: now,
        startAt: now,
        pid: process.pid,
        processStartTime: "1",
        startedAt: now,
      }),
    );
    let signalled = 0;
    const onSignal = () => signalled++;
    process.on("SIGINT", onSignal);
    try {
      expect((await region.drain(1)).drained).toBe(0);
      expect((await region.cancelRunning(1)).cancelled).toBe(0);
      expect(counts(await region.observe())).toEqual({ running: 0, pending: 0, draining: 0, capacity: 4 });
      expect(existsSync(join(recordDir, "local-reused.json"))).toBe(false);
      await new Promise((r) => setTimeout(r, 200));
      expect(signalled).toBe(0);
    } finally {
      process.off("SIGINT", onSignal);
    }
  });

  it("a start-up delay keeps workers pending without a process, across a restart", async () => {
    // 3 s: the first look below comes well before the delay ends, even on a loaded machine.
    const { region, make } = fakeRegion({}, { startupDelaySeconds: 3 });
    await region.hire(2);
    expect(counts(await region.observe())).toEqual({ running: 0, pending: 2, draining: 0, capacity: 2 });
    expect((await region.workers()).every((w) => w.pid === undefined)).toBe(true);
    // The daemon stops before the delay is over; the next one starts them when due.
    await region.close();
    const again = make();
    expect(await again.observe()).toMatchObject({ pending: 2, running: 0 });
    await until(again, { running: 2, pending: 0 });
  });

  it("cancelling a delayed worker before it starts leaves no process", async () => {
    const { region, config } = fakeRegion({}, { startupDelaySeconds: 1 });
    await region.hire(1);
    expect((await region.cancelPending(1)).cancelled).toBe(1);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(counts(await region.observe())).toEqual({ running: 0, pending: 0, draining: 0, capacity: 4 });
    expect(existsSync(join(config.stateDir, "logs"))).toBe(false);
  });

  it("hires no more than the capacity and says so", async () => {
    const { region } = fakeRegion();
    const result = await region.hire(6);
    expect(result.hired).toBe(4);
    expect(result.errors[0]?.message).toMatch(/room for 4 \(capacity 4\)/);
    expect(await region.observe()).toMatchObject({ capacity: 0 });
  });

  it("stopAll leaves no process behind, even one that ignores SIGTERM", async () => {
    const { region } = fakeRegion({ FAKE_IGNORE_TERM: "1" });
    await region.hire(2);
    await until(region, { running: 2 });
    const pids = (await region.workers()).map((w) => w.pid!);
    await region.stopAll(500);
    await waitFor(() => pids.every((pid) => !alive(pid)), 20_000, "the workers to be gone");
    expect(counts(await region.observe())).toEqual({ running: 0, pending: 0, draining: 0, capacity: 4 });
  });

  it("an unknown placeholder in the command is a clear error, in the config and in the constructor", () => {
    const input = { kind: "local", name: "bad", capacity: 1, stateDir: root, command: ["{node}", "{wrong}"] };
    const parsed = localRegionSchema.safeParse(input);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({
      path: ["command"],
      message: expect.stringMatching(/unknown placeholder \{wrong\} \(expected \{queue\}/),
    });
    // A library caller may build the config by hand, without the schema.
    const config = { ...localRegionSchema.parse({ ...input, command: ["{node}"] }), command: input.command };
    expect(() => new LocalRegion(config, context())).toThrow(/command: unknown placeholder \{wrong\}/);
  });
});
