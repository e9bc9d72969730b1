import { describe, expect, it } from "vitest";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { startMlApiEmulator, type MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { azuremlEmulatorsPerTest } from "../support/azureml-emulators.js";
import {
  CLI_TEMPLATE,
  makeRegion,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  regionFor,
  seededJobProperties,
} from "../emulators/azureml/fixtures.js";
import { startBackoff } from "../../src/policy/start-backoff.js";
import type { AzuremlRegion, AzuremlRegionInput } from "../../src/regions/azureml/index.js";
import { createLogger } from "../../src/logging/logger.js";
import { logLines } from "../support/log-lines.js";
import type { WorkerExit } from "../../src/regions/types.js";

// The failed-start streak across a restart, in the two modes where finished jobs are not retired:
// `retireFinished: keep` (they stay listed, untouched) and `listing: index` (finished jobs are never
// listed). A restarted daemon (or `workforce status`) must find the streak where it was, not start it
// afresh from one failed start and hire again 30 s later. Real region and SDK pipeline against the ARM
// and ml.azure.com emulators, scheduler stepped by hand.
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuremlEmulatorsPerTest((started) => ({ arm, ml } = started), { stepMs: 0 });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const EXIT_TAG = "workforce.exp-ws1.exit";
const PARAMETERS = { initialMs: 30_000, maxMs: 1_800_000 };

const modes: Array<[string, () => Partial<AzuremlRegionInput>]> = [
  ["retireFinished: keep", () => ({ retireFinished: "keep" })],
  ["listing: index", () => ({ listing: "index", mlEndpoint: ml.url })],
];

/** Workers whose command exits 2 one second after it starts: seen Running, then Failed (failed starts). */
const failing = (mode: Partial<AzuremlRegionInput>): Partial<AzuremlRegionInput> => ({
  template: { ...CLI_TEMPLATE, command: "workforce worker --queue $QUEUE # emulator-exit=2@1000" },
  ...mode,
});

/** The region as a restarted daemon (or a one-shot `workforce status`) builds it: a new process's. */
function restarted(mode: Partial<AzuremlRegionInput>): AzuremlRegion {
  return regionFor(arm, "ws1", failing(mode));
}

const tagsOf = (name: string) =>
  (arm.findWorkspace("ws1")!.jobs.get(name)!.properties.tags ?? {}) as Record<string, string>;

describe.each(modes)("the failed-start streak across a restart (%s)", (_, modeOf) => {
  it("a restarted region finds the streak where it was; a worker that runs ends it, for the next restart too", async () => {
    const mode = modeOf();
    const before = makeRegion(arm, "ws1", 4, failing(mode));
    await before.observe();
    expect((await before.hire(2)).hired).toBe(2);
    arm.step();
    expect(await before.observe()).toMatchObject({ running: 2 });
    await sleep(1_100);
    arm.step(); // both exited: Finalizing, then Failed
    const seen = (await before.observe()).exits!;
    expect(seen.map((exit) => exit.outcome)).toEqual(["failed_start", "failed_start"]);
    expect(startBackoff(seen, Date.now(), PARAMETERS)).toMatchObject({ failures: 2 });
    await before.settled();
    // Marked with their exit (the Studio shows the tag), and not archived: the mode's own promise.
    for (const exit of seen) {
      expect(tagsOf(exit.workerId)[EXIT_TAG]).toMatch(/^failed_start@\d{4}-\d\d-\d\dT[\d:.]+Z@[\d.]+$/);
      expect(arm.findWorkspace("ws1")!.jobs.get(exit.workerId)!.properties.isArchived).toBe(false);
    }

    const startedAt = Date.now();
    const after = restarted(mode);
    const mark = arm.requests.length;
    const found = (await after.observe()).exits ?? [];
    // What finding the streak costs a first listing: the job list (keep: the one it makes anyway;
    // index: the marked jobs', asked for by the mark's tag key), one page.
    const lists = arm.requests.slice(mark).filter((r) => r.operation === "jobs.list");
    expect(lists.map((r) => r.query.tag)).toEqual([
      mode.listing === "index" ? EXIT_TAG : "workforce.exp-ws1",
    ]);
    // (Both at the same time: in either order.)
    const byName = (exits: WorkerExit[]) => [...exits].sort((a, b) => a.workerId.localeCompare(b.workerId));
    expect(byName(found).map((exit) => [exit.workerId, exit.outcome, exit.at])).toEqual(
      byName(seen).map((exit) => [exit.workerId, "failed_start", exit.at]),
    );
    // At the marked times, before this process started: the streak goes on, counted once.
    expect(found.every((exit) => exit.at < startedAt)).toBe(true);
    const resumed = startBackoff(found, Date.now(), PARAMETERS);
    expect(resumed, "the backoff of two failed starts (60 s), not one (30 s)").toMatchObject({
      failures: 2,
      until: Math.max(...seen.map((exit) => exit.at)) + 60_000,
    });

    // Someone fixed the command by hand: a worker that runs, then completes, ends the streak.
    const ws = arm.findWorkspace("ws1")!;
    ws.createJob("fixed-1", { ...seededJobProperties(ws, "exp-ws1", true), command: "ok" });
    ws.setStatus("fixed-1", "Running");
    expect(await after.observe()).toMatchObject({ running: 1 });
    ws.finish("fixed-1", "Completed");
    const ending = arm.requests.length;
    const exits = (await after.observe()).exits!;
    expect(exits.at(-1)).toMatchObject({ workerId: "fixed-1", outcome: "succeeded" });
    expect(startBackoff(exits, Date.now(), PARAMETERS)).toBeUndefined();
    await after.observe();
    await after.settled();
    // One read and one write each (the job as it is now, then without the tag), nothing else written.
    const names = new Set(seen.map((exit) => exit.workerId));
    const writes = arm.requests
      .slice(ending)
      .filter(
        (r) => names.has(r.path.split("/").pop()!) && (r.method !== "GET" || r.operation === "jobs.get"),
      );
    expect(writes.map((r) => `${r.method} ${r.path.split("/").pop()}`).sort()).toEqual(
      seen.flatMap((exit) => [`GET ${exit.workerId}`, `PUT ${exit.workerId}`]).sort(),
    );
    // The marks are taken off (nothing retires these jobs here), and the jobs are kept as they were.
    for (const exit of seen) {
      expect(tagsOf(exit.workerId)).not.toHaveProperty(EXIT_TAG);
      expect(ws.jobs.get(exit.workerId)!.properties.isArchived).toBe(false);
    }

    // So the next restart finds no streak: the ended one is not taken for the current one.
    const again = restarted(mode);
    const later = (await again.observe()).exits ?? [];
    expect(later.filter((exit) => exit.outcome === "failed_start")).toEqual([]);
    expect(startBackoff(later, Date.now(), PARAMETERS)).toBeUndefined();
  });
});

it("listing: index, a service that ignores tag=: the restart's look for the streak reads 3 pages at most", async () => {
  // Under listing: index our finished jobs are never archived: a list that ignores the mark's tag filter
  // would page through all of them at every start (and past maxListPages, fail every observation).
  const loose = await startArmEmulator({ stepMs: 0, honourTagFilter: false });
  const index = await startMlApiEmulator({ arm: loose });
  try {
    const ws = loose.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1");
    ws.addCluster("cluster", 2);
    ws.seedFinished(450, () => seededJobProperties(ws, "exp-ws1", true));
    const { lines, destination } = logLines();
    const region = regionFor(
      loose,
      "ws1",
      { listing: "index", mlEndpoint: index.url },
      { logger: createLogger({ level: "info", destination }) },
    );
    expect(await region.observe()).toMatchObject({ running: 0, pending: 0 });
    await sleep(300); // the page asked for ahead, if it was
    const lists = loose.requests.filter((r) => r.operation === "jobs.list").length;
    expect(lists).toBeGreaterThanOrEqual(2);
    expect(lists).toBeLessThanOrEqual(3);
    expect(lines.find((line) => String(line.msg).includes("seems to ignore tag="))).toMatchObject({
      level: "warn",
    });
    // Once per process: later listings are the index's only. Counted by first pages (a list started anew
    // has no $skip): the page asked ahead by the first listing may reach the emulator only now, on a
    // loaded machine, and is not a second listing.
    const firstPages = () =>
      loose.requests.filter((r) => r.operation === "jobs.list" && r.query.$skip === undefined).length;
    expect(firstPages()).toBe(1);
    await region.observe();
    await sleep(300);
    expect(firstPages()).toBe(1);
    expect(loose.requests.filter((r) => r.operation === "jobs.list").length).toBeLessThanOrEqual(3);
  } finally {
    await index.close();
    await loose.close();
  }
});
