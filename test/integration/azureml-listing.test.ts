import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { makeRegion } from "../emulators/azureml/fixtures.js";
import type { VirtualWorkspace } from "../emulators/azureml/workspace.js";
import { azuremlRegionSchema, createAzuremlRegion } from "../../src/regions/azureml/index.js";
import { regionInput, testContext, SUBSCRIPTION, RESOURCE_GROUP } from "../emulators/azureml/fixtures.js";
import type { DrainChannel } from "../../src/backchannel/types.js";
import { WriteLimiterPool } from "../../src/azure/rate-limiter.js";
import { seededJobProperties } from "../emulators/azureml/fixtures.js";
import { ARM_BUDGET } from "../emulators/azureml/budget.js";

// The cost of a tick must not grow with finished jobs: the list is filtered by the workforce's tag key and
// by listViewType=ActiveOnly, and the region retires (archives) its own finished jobs.
// The tests count reads, and a retried attempt is a read too: give each attempt a generous deadline, so an
// answer slowed by a loaded machine (the emulator filters 20,000 jobs in this process) is not abandoned and
// retried, which would add a read that the listing did not need.
const PATIENT = { requestTimeoutSeconds: 60 };
let emulator: ArmEmulator;

beforeEach(async () => {
  // Retiring keeps half of the subscription's write budget for hires, as ARM's answers state it: with
  // ARM's 200 writes, 100 archives a tick. A bigger write budget lets 250 retire in the ticks counted here.
  emulator = await startArmEmulator({
    stepMs: 0,
    budget: { ...ARM_BUDGET, writes: { burst: 1_000, perSecond: 100 } },
  });
});
afterEach(async () => {
  await emulator.close();
});

/** 500 active workers of ours: 300 running, 200 queued. */
function seedActive(ws: VirtualWorkspace): void {
  for (let i = 0; i < 500; i++) ws.createJob(`exp-ws1-active${i}`, seededJobProperties(ws, "exp-ws1", true));
  ws.schedule();
}

async function readsOfOneObserve(
  region: ReturnType<typeof makeRegion>,
): Promise<{ reads: number; observation: unknown }> {
  const before = region.calls.reads;
  const observation = await region.observe();
  return { reads: region.calls.reads - before, observation };
}

describe("AzureML listing cost", () => {
  it("stays flat as finished jobs grow from 0 to 10,000 (500 active)", async () => {
    const region = makeRegion(emulator, "ws1", 300, PATIENT);
    const ws = emulator.findWorkspace("ws1")!;
    seedActive(ws);

    const empty = await readsOfOneObserve(region);
    expect(empty.observation).toEqual({ running: 300, pending: 200, draining: 0, capacity: -200 });

    // 10,000 of our own finished workers (retired as they finished) and 10,000 of another team's jobs.
    ws.seedFinished(10_000, () => seededJobProperties(ws, "exp-ws1", true, true), "ours");
    ws.seedFinished(10_000, () => seededJobProperties(ws, "someone-else", false), "theirs");
    const full = await readsOfOneObserve(region);
    expect(full.observation).toEqual(empty.observation);
    expect(full.reads).toBe(empty.reads);
    // 5 pages of 100 active jobs + the cluster.
    expect(full.reads).toBe(6);
    const lists = emulator.requests.filter((r) => r.operation === "jobs.list");
    expect(
      lists.every((r) => r.query.listViewType === "ActiveOnly" && r.query.tag === "workforce.exp-ws1"),
    ).toBe(true);
  });

  it("retires its own finished jobs in batches, after which the listing is back to the active jobs only", async () => {
    const region = makeRegion(emulator, "ws1", 300, { ...PATIENT, retireBatch: 100 });
    const ws = emulator.findWorkspace("ws1")!;
    seedActive(ws);
    ws.seedFinished(250, () => seededJobProperties(ws, "exp-ws1", true), "done");

    const first = await readsOfOneObserve(region);
    expect(first.reads).toBe(1 + 8); // 750 jobs listed
    await region.settled();
    await region.observe();
    await region.settled();
    await region.observe();
    await region.settled();
    const last = await readsOfOneObserve(region);
    expect(last.reads).toBe(1 + 5);
    expect(last.observation).toEqual(first.observation);
    const archived = [...ws.jobs.values()].filter((job) => job.properties.isArchived === true);
    expect(archived).toHaveLength(250);
    // Active jobs are never archived; finished ones keep their status and definition.
    expect(archived.every((job) => job.status === "Completed" && job.properties.command === "run")).toBe(
      true,
    );
  });

  it("untag mode renames the tag key instead of archiving", async () => {
    const region = makeRegion(emulator, "ws1", 10, { ...PATIENT, retireFinished: "untag" });
    const ws = emulator.findWorkspace("ws1")!;
    ws.seedFinished(3, () => seededJobProperties(ws, "exp-ws1", true), "done");
    await region.observe();
    await region.settled();
    const jobs = [...ws.jobs.values()];
    expect(jobs.every((job) => job.properties.isArchived === false)).toBe(true);
    expect(jobs.map((job) => job.properties.tags)).toEqual(
      Array(3).fill({ "workforce.exp-ws1.done": "exp-ws1" }),
    );
    expect((await readsOfOneObserve(region)).reads).toBe(2);
  });
});

describe("AzureML drain through a back channel", () => {
  it("counts drains in flight as draining (not running) and asks the channel to drain running workers only", async () => {
    const inFlightCalls: string[][] = [];
    const drainCalls: Array<{ count: number; running: string[] }> = [];
    const channel: DrainChannel = {
      async inFlight(running) {
        inFlightCalls.push([...running]);
        return Math.min(2, running.length);
      },
      async requestDrain(count, running) {
        drainCalls.push({ count, running: [...running] });
        return { drained: count, errors: [] };
      },
    };
    emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1").addCluster("cluster", 5);
    const config = azuremlRegionSchema.parse(
      regionInput(emulator, "ws1", {
        backChannel: { topic: "workers", fullyQualifiedNamespace: "ns.servicebus.windows.net" },
      }),
    );
    const region = createAzuremlRegion(
      config,
      { ...testContext(emulator), createDrainChannel: () => channel },
      { writeLimiters: new WriteLimiterPool() },
    );
    await region.hire(7);
    emulator.step();
    expect(await region.observe()).toEqual({ running: 3, pending: 2, draining: 2, capacity: -2 });
    expect(inFlightCalls.at(-1)).toHaveLength(5);

    expect(await region.drain(1)).toEqual({ drained: 1, errors: [] });
    const running = [...emulator.findWorkspace("ws1")!.jobs.values()]
      .filter((job) => job.status === "Running")
      .map((job) => job.name);
    expect(drainCalls).toEqual([{ count: 1, running: expect.arrayContaining(running) }]);
    expect(drainCalls[0]!.running).toHaveLength(5);
    // Draining never cancels anything.
    expect(emulator.requests.filter((r) => r.operation === "jobs.cancel")).toHaveLength(0);
  });
});
