import { describe, expect, it } from "vitest";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { azuremlEmulatorsPerTest } from "../support/azureml-emulators.js";
import { CLI_TEMPLATE, regionFor, testContext } from "../emulators/azureml/fixtures.js";
import { RESOURCE_GROUP, SUBSCRIPTION } from "../emulators/azureml/fixtures.js";
import { startBackoff } from "../../src/policy/start-backoff.js";
import type { AzuremlRegion, AzuremlRegionInput } from "../../src/regions/azureml/index.js";
import { createLogger, type Logger } from "../../src/logging/logger.js";
import { logLines } from "../support/log-lines.js";

// Under `listing: index` the region learnt exits only from jobs that an index listing had shown active and
// a later one did not. A job this process hired that failed before any index listing showed it was never
// read: no exit, no failed start, so a crash-looping template never got the start backoff there (under
// `listing: arm` the same job is a failed start). Now the names the region hired are expected in the
// index, and one absent from a listing after its hire is read through ARM, as a vanished job is.
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuremlEmulatorsPerTest((started) => ({ arm, ml } = started), { stepMs: 0 });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const jobReads = () => arm.requests.filter((r) => r.operation === "jobs.get").length;
const BACKOFF = { initialMs: 30_000, maxMs: 1_800_000 };

function region(
  overrides: Partial<AzuremlRegionInput>,
  settings: { hireGraceSeconds?: number } = {},
  logger?: Logger,
): AzuremlRegion {
  arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1").addCluster("cluster", 4);
  const ctx = testContext(arm, logger);
  return regionFor(arm, "ws1", overrides, { ...ctx, settings: { ...ctx.settings, ...settings } });
}

/** The docs' old command: exits 2 as soon as it runs. */
const FAILING = { ...CLI_TEMPLATE, command: "workforce worker --queue $QUEUE # emulator-exit=2@0" };

const modes: Array<[string, () => Partial<AzuremlRegionInput>]> = [
  ["arm", () => ({})],
  ["index", () => ({ listing: "index", mlEndpoint: ml.url })],
];

describe.each(modes)("listing: %s, jobs hired that fail before a listing shows them", (mode, modeOf) => {
  it("are failed starts: the region backs off, and the hires are no longer in flight", async () => {
    const east = region({ template: FAILING, ...modeOf() });
    await east.observe(); // the tick's observation, before its hires
    expect((await east.hire(2)).hired).toBe(2);
    arm.step(); // Running: its process exits at once
    arm.step(); // Finalizing, then Failed: no listing saw them active
    const names = [...arm.findWorkspace("ws1")!.jobs.keys()];
    expect(names.map((name) => arm.findWorkspace("ws1")!.jobs.get(name)!.status)).toEqual([
      "Failed",
      "Failed",
    ]);
    const readsBefore = jobReads();

    const seen = await east.observe();
    expect(seen).toMatchObject({ running: 0, pending: 0 });
    expect(seen.exits?.map((exit) => [exit.workerId, exit.outcome]).sort()).toEqual(
      names.map((name) => [name, "failed_start"]).sort(),
    );
    expect(seen.exits?.[0]?.detail).toMatch(/^Failed \d+ s after it was submitted, never seen Running$/);
    expect(startBackoff(seen.exits!, Date.now(), BACKOFF)).toMatchObject({ failures: 2 });
    // The controller's hire accounting: each name accounted for (it left as an exit), not in flight.
    for (const name of names) expect(east.observedWorkers!().has(name)).toBe(true);

    // Each read once through ARM under the index (the ARM list shows them finished itself).
    expect(jobReads() - readsBefore).toBe(mode === "index" ? 2 : 0);
    const again = await east.observe();
    expect(again.exits).toEqual(seen.exits);
    expect(jobReads() - readsBefore).toBe(mode === "index" ? 2 : 0);
  });
});

describe("listing: index, a hired job the index does not show yet (its lag)", () => {
  it("is no exit, costs a few reads rather than one a tick, and stays in flight until the index shows it", async () => {
    // The index shows a job only a minute after its creation; a hire's grace of 3 s.
    ml.indexLagMs = 60_000;
    const { lines, destination } = logLines();
    const east = region(
      { listing: "index", mlEndpoint: ml.url },
      { hireGraceSeconds: 3 },
      createLogger({ level: "warn", destination }),
    );
    await east.observe();
    expect((await east.hire(1)).hired).toBe(1);
    arm.step(); // Running, as ARM says
    const [name] = [...arm.findWorkspace("ws1")!.jobs.keys()];
    const readsBefore = jobReads();

    let ticks = 0;
    const started = Date.now();
    while (Date.now() - started < 3_500) {
      const seen = await east.observe();
      ticks++;
      // Not in the index: no worker of the listing, no exit; the hire accounting keeps counting it (in
      // flight, until the grace) as before.
      expect(seen).toMatchObject({ running: 0, pending: 0 });
      expect(seen.exits).toBeUndefined();
      expect(east.observedWorkers!().has(name!)).toBe(false);
      await sleep(100);
    }
    const reads = jobReads() - readsBefore;
    expect(ticks).toBeGreaterThanOrEqual(20);
    // Each read waits until the job's age has doubled: about log2(3 s / 100 ms) of them in the grace.
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(7);
    // Past the grace it is no longer read, and that is said once.
    for (let i = 0; i < 5; i++) await east.observe();
    expect(jobReads() - readsBefore).toBe(reads);
    const said = lines.filter((line) => String(line.msg).includes("is still not in the index listing"));
    expect(said).toEqual([
      expect.objectContaining({
        level: "warn",
        job: name,
        msg: expect.stringMatching(
          new RegExp(`^region ws1: job ${name}, hired \\d+ s ago and active through ARM, is still not in`),
        ),
      }),
    ]);

    // The index catches up: the job is a worker of the listing, and its end is read as any vanished job's.
    ml.indexLagMs = 0;
    expect(await east.observe()).toMatchObject({ running: 1 });
    expect(east.observedWorkers!().has(name!)).toBe(true);
    arm.findWorkspace("ws1")!.finish(name!, "Completed");
    const exits = (await east.observe()).exits;
    expect(exits?.map((exit) => [exit.workerId, exit.outcome])).toEqual([[name, "succeeded"]]);
    expect(jobReads() - readsBefore).toBe(reads + 1);
  });

  it("a hired job the index shows late is a failed start if it fails before then, with the run ARM showed", async () => {
    ml.indexLagMs = 60_000;
    const east = region({ listing: "index", mlEndpoint: ml.url });
    await east.observe();
    expect((await east.hire(1)).hired).toBe(1);
    arm.step(); // Running
    const [name] = [...arm.findWorkspace("ws1")!.jobs.keys()];
    const first = await east.observe(); // read through ARM: Running, so not an exit
    expect(first.exits).toBeUndefined();
    expect(jobReads()).toBeGreaterThanOrEqual(1);
    arm.findWorkspace("ws1")!.finish(name!, "Failed");
    let exits = undefined;
    for (let i = 0; i < 40 && !exits; i++) {
      await sleep(50);
      exits = (await east.observe()).exits;
    }
    expect(exits?.map((exit) => [exit.workerId, exit.outcome])).toEqual([[name, "failed_start"]]);
    // Seen Running by the ARM read: how long it ran is known (within the reads' spacing).
    expect(exits?.[0]?.ranSeconds).toBeGreaterThanOrEqual(0);
    expect(exits?.[0]?.ranSeconds).toBeLessThan(30);
  });
});
