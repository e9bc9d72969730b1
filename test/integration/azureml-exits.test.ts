import { describe, expect, it } from "vitest";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { azuremlEmulatorsPerTest } from "../support/azureml-emulators.js";
import { CLI_TEMPLATE, makeRegion, regionFor, seededJobProperties } from "../emulators/azureml/fixtures.js";
import { startBackoff } from "../../src/policy/start-backoff.js";
import type { AzuremlRegionInput } from "../../src/regions/azureml/index.js";

// Issue 11, finding 3: the AzureML region records each finished job of ours once as a worker exit, from
// what the ARM job list shows (the real region and SDK pipeline against the ARM emulator, scheduler
// stepped by hand: each step moves every job one state on).
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuremlEmulatorsPerTest((started) => ({ arm, ml } = started), { stepMs: 0 });

/** A region whose command exits 2 `afterMs` after it starts (the emulator's marker). */
const failing = (extra: Partial<AzuremlRegionInput> = {}, afterMs = 0): Partial<AzuremlRegionInput> => ({
  template: { ...CLI_TEMPLATE, command: `workforce worker --queue $QUEUE # emulator-exit=2@${afterMs}` },
  ...extra,
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ws = (name: string) => arm.findWorkspace(name)!;

/** One worker hired, listed Running, then (its `emulator-exit` of 1 s passed) Failed in the emulator. */
async function seenRunningThenFailed(region: ReturnType<typeof makeRegion>): Promise<void> {
  await region.observe();
  await region.hire(1);
  arm.step();
  expect(await region.observe()).toMatchObject({ running: 1 });
  await sleep(1_100);
  arm.step();
}

describe("worker exits of an AzureML region", () => {
  it("a job that Failed before any listing saw it Running is one failed start, across listings", async () => {
    const region = makeRegion(arm, "ws1", 2, failing());
    await region.observe(); // the first look, before any job of ours
    expect((await region.hire(1)).hired).toBe(1);
    arm.step(); // Running
    arm.step(); // Finalizing, then Failed
    const [job] = [...ws("ws1").jobs.values()];
    expect(job!.status).toBe("Failed");

    const first = await region.observe();
    expect(first.exits).toEqual([
      expect.objectContaining({
        workerId: job!.name,
        outcome: "failed_start",
        detail: expect.stringMatching(/^Failed \d+ s after it was submitted, never seen Running$/),
      }),
    ]);
    // Not archived: a failed start of the streak stays listed, marked with its exit.
    await region.settled();
    expect(job!.properties.isArchived).toBe(false);
    expect((job!.properties.tags as Record<string, string>)["workforce.exp-ws1.exit"]).toMatch(
      /^failed_start@\d{4}-\d\d-\d\dT[\d:.]+Z$/,
    );
    const second = await region.observe();
    expect(second.exits).toEqual(first.exits);
  });

  it("a restarted region finds the streak on the marked jobs; a worker that runs ends it, and they are archived", async () => {
    const before = makeRegion(arm, "ws1", 4, failing());
    await before.observe();
    await before.hire(2);
    arm.step();
    arm.step();
    const seen = (await before.observe()).exits!;
    expect(seen.map((exit) => exit.outcome)).toEqual(["failed_start", "failed_start"]);
    await before.settled(); // marked

    const startedAt = Date.now();
    const after = regionFor(arm, "ws1", failing());
    const found = (await after.observe()).exits!;
    expect(found.map((exit) => [exit.workerId, exit.outcome])).toEqual(
      seen.map((exit) => [exit.workerId, "failed_start"]),
    );
    // The marked time: before this process started, so the controller does not count them again.
    expect(found.map((exit) => exit.at)).toEqual(seen.map((exit) => exit.at));
    expect(found.every((exit) => exit.at < startedAt)).toBe(true);
    const parameters = { initialMs: 30_000, maxMs: 1_800_000 };
    expect(startBackoff(found, Date.now(), parameters)).toMatchObject({ failures: 2 });

    // A job that completes (another team fixed the command by hand) ends the streak.
    const fixed = ws("ws1");
    fixed.createJob(
      "fixed-1",
      { ...seededJobProperties(fixed, "exp-ws1", true), command: "ok # emulator-exit=0@0" },
      0,
    );
    arm.step();
    arm.step();
    arm.step();
    const exits = (await after.observe()).exits!;
    expect(exits.at(-1)).toMatchObject({ workerId: "fixed-1", outcome: "succeeded" });
    expect(startBackoff(exits, Date.now(), parameters)).toBeUndefined();
    await after.observe(); // the released failed starts are retired like any finished job
    await after.settled();
    for (const exit of seen) expect(fixed.jobs.get(exit.workerId)!.properties.isArchived).toBe(true);
  });

  it("a job seen Running that then Failed within seconds is a failed start, with how long it ran", async () => {
    const region = makeRegion(arm, "ws1", 2, failing({ retireFinished: "keep" }, 1_000));
    await seenRunningThenFailed(region);
    for (let i = 0; i < 3; i++) await region.observe(); // listed finished three times (keep)
    const exits = (await region.observe()).exits!;
    expect(exits).toHaveLength(1);
    expect(exits[0]!.outcome).toBe("failed_start");
    expect(exits[0]!.ranSeconds).toBeGreaterThanOrEqual(0);
    expect(exits[0]!.ranSeconds).toBeLessThan(30);
  });

  it("Completed is a success; Canceled is a drain when the region cancelled it, else an operator's stop", async () => {
    const region = makeRegion(arm, "ws1", 3, { retireFinished: "keep" });
    await region.observe();
    await region.hire(3);
    arm.step();
    expect(await region.observe()).toMatchObject({ running: 3 });
    const [a, b, c] = [...ws("ws1").jobs.values()].sort((x, y) => x.seq - y.seq);
    ws("ws1").finish(a!.name, "Completed");
    expect((await region.cancelRunning(1)).cancelled).toBe(1); // the newest: c
    ws("ws1").requestCancel(b!); // someone else, in the Studio
    await sleep(100);
    arm.step(); // cancels take effect (after the emulator's 50 ms)
    const outcomes = Object.fromEntries(
      ((await region.observe()).exits ?? []).map((exit) => [exit.workerId, exit.outcome]),
    );
    expect(outcomes).toEqual({ [a!.name]: "succeeded", [b!.name]: "stopped", [c!.name]: "drained" });
  });

  it("a restarted region does not count again the unmarked jobs a previous one saw finished (keep)", async () => {
    const before = makeRegion(arm, "ws1", 2, { retireFinished: "keep" });
    await before.observe();
    await before.hire(1);
    arm.step();
    expect(await before.observe()).toMatchObject({ running: 1 });
    const [job] = [...ws("ws1").jobs.values()];
    ws("ws1").finish(job!.name, "Completed");
    const seen = (await before.observe()).exits!;
    expect(seen.map((exit) => exit.outcome)).toEqual(["succeeded"]);
    await before.settled();
    // (A failed start would be marked and found: azureml-streak-restart.test.ts.)
    expect(job!.properties.tags).not.toHaveProperty("workforce.exp-ws1.exit");

    const after = regionFor(arm, "ws1", { retireFinished: "keep" });
    // Still listed, found finished at start-up: a previous process counted it (or none watched it
    // end), so it is marked seen, not an exit, now or on later listings.
    expect((await after.observe()).exits).toBeUndefined();
    expect((await after.observe()).exits).toBeUndefined();
  });

  it("listing: index lists no finished job: the one that left it is read through ARM, once", async () => {
    const region = makeRegion(arm, "ws1", 2, failing({ listing: "index", mlEndpoint: ml.url }, 1_000));
    await seenRunningThenFailed(region);
    const reads = () => arm.requests.filter((r) => r.operation === "jobs.get").length;
    const exits = (await region.observe()).exits!;
    expect(exits.map((exit) => exit.outcome)).toEqual(["failed_start"]);
    expect(reads()).toBe(1);
    expect((await region.observe()).exits).toEqual(exits);
    expect(reads()).toBe(1);
  });
});
