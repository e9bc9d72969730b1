import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { CLI_TEMPLATE, makeRegion, seededJobProperties } from "../emulators/azureml/fixtures.js";

// Capacity read against clusters whose nodes behave like AmlCompute's (test/emulators/azureml/cluster.ts).
let emulator: ArmEmulator;

beforeEach(async () => {
  emulator = await startArmEmulator({ stepMs: 0 });
});
afterEach(async () => {
  await emulator.close();
});

const region = (max: number, cluster = {}, overrides = {}) =>
  makeRegion(emulator, "ws1", max, overrides, undefined, undefined, cluster);

describe("AzureML capacity against the cluster as the service keeps it", () => {
  it("a fixed-size pool (min = max) with every node idle has room for every node, and hires land", async () => {
    const r = region(10, { minNodeCount: 10 });
    expect(await r.observe()).toMatchObject({ capacity: 10 });
    expect(await r.hire(10)).toEqual({ hired: 10, errors: [] });
    expect(await r.observe()).toMatchObject({ running: 10, pending: 0, capacity: 0 });
  });

  it("idle nodes waiting out nodeIdleTimeBeforeScaleDown are free", async () => {
    const r = region(10);
    await r.hire(4);
    const ws = emulator.findWorkspace("ws1")!;
    for (const job of ws.jobs.values()) ws.finish(job.name);
    const compute = ws.cluster("cluster")!.counts();
    expect(compute).toMatchObject({ currentNodeCount: 4, nodeStateCounts: { idleNodeCount: 4 } });
    expect(await r.observe()).toMatchObject({ running: 0, capacity: 10 });
  });

  it("a cluster Resizing for our queued jobs does not count them twice", async () => {
    const r = region(10, { allocateMs: 60_000 });
    await r.hire(4);
    expect(emulator.findWorkspace("ws1")!.cluster("cluster")!.counts()).toMatchObject({
      allocationState: "Resizing",
      currentNodeCount: 0,
      targetNodeCount: 4,
    });
    expect(await r.observe()).toMatchObject({ pending: 4, capacity: 6 });
  });

  it("nodes used by another experiment are not free", async () => {
    const r = region(10);
    const ws = emulator.findWorkspace("ws1")!;
    for (let i = 0; i < 6; i++) ws.createJob(`other-${i}`, seededJobProperties(ws, "someone-else", false));
    ws.schedule();
    expect(await r.observe()).toMatchObject({ running: 0, capacity: 4 });
  });

  it("a template with 2 nodes per worker counts workers, not nodes: 5 on a 10-node cluster", async () => {
    const template = { ...CLI_TEMPLATE, resources: { instance_count: 2, shm_size: "8g" } };
    const r = region(10, {}, { template });
    const first = await r.observe();
    expect(first.capacity).toBe(5);
    await r.hire(first.capacity);
    expect(await r.observe()).toMatchObject({ running: 5, pending: 0, capacity: 0 });
    expect(emulator.findWorkspace("ws1")!.cluster("cluster")!.counts().nodeStateCounts.runningNodeCount).toBe(
      10,
    );
  });
});
