import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { makeRegion } from "../emulators/azureml/fixtures.js";
import { carryOut } from "../../src/controller/act.js";
import type { Plan } from "../../src/policy/decide.js";
import { createLogger } from "../../src/logging/logger.js";

// A long cancel batch cut off by the act deadline: what went through must be reported, not 0.
let emulator: ArmEmulator;

beforeEach(async () => {
  emulator = await startArmEmulator({ stepMs: 0, timing: { cancelMs: 60_000 } });
});
afterEach(async () => {
  await emulator.close();
});

const cancelRequested = () =>
  [...emulator.findWorkspace("ws1")!.jobs.values()].filter((job) => job.status === "CancelRequested").length;

function cancelPlan(count: number): Plan {
  return {
    desired: 0,
    target: 0,
    totals: { running: 0, pending: count, draining: 0, capacity: 0 },
    hire: 0,
    surplus: 0,
    regions: [{ region: "ws1", hire: 0, cancel: count, drain: 0 }],
  } as unknown as Plan;
}

describe("AzureML cancel cut off by the act deadline", () => {
  it("reports the cancels the service confirmed before the cut-off, and the ones in flight as unknown", async () => {
    const region = makeRegion(emulator, "ws1", 0);
    expect((await region.hire(60)).hired).toBe(60);
    await region.observe();
    // 8 cancels at a time, 400 ms each: 60 take over 3 s; the deadline cuts them off at 2 s (the first
    // ones are answered well before it, even on a loaded machine).
    emulator.addFault({ kind: "latency", ms: 400, operations: ["jobs.cancel"] });
    const [outcome] = await carryOut(cancelPlan(60), [region], {
      actTimeoutMs: 2_000,
      concurrency: 1,
      dryRun: false,
      logger: createLogger({ level: "silent" }),
    });
    const done = cancelRequested();
    expect(done).toBeGreaterThan(0);
    expect(done).toBeLessThan(60);
    expect(outcome!.cancelled).toBeGreaterThan(0);
    // Every cancel counted was done; every one done was counted or is unknown (answer still on its way).
    expect(outcome!.cancelled).toBeLessThanOrEqual(done);
    expect(outcome!.cancelled + outcome!.cancelUnknown).toBeGreaterThanOrEqual(done);
    expect(outcome!.cancelUnknown).toBeLessThanOrEqual(8);
    expect(outcome!.errors.some((e) => e.operation === "cancel" && /2000 ms/.test(e.message))).toBe(true);
    // No cancel goes out after the cut-off (those in flight have had time to arrive).
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(cancelRequested()).toBeLessThanOrEqual(outcome!.cancelled + outcome!.cancelUnknown);
  }, 30_000);
});
