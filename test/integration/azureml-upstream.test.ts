import { describe, expect, it } from "vitest";
import type { AccessToken } from "@azure/core-auth";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { azuremlEmulatorsPerTest } from "../support/azureml-emulators.js";
import {
  CLI_TEMPLATE,
  makeRegion,
  regionInput,
  RESOURCE_GROUP,
  seededJobProperties,
  SUBSCRIPTION,
  testContext,
} from "../emulators/azureml/fixtures.js";
import type { AzuremlRegionInput } from "../../src/regions/azureml/index.js";
import { azuremlRegionSchema, createAzuremlRegion } from "../../src/regions/azureml/index.js";
import { StaticTokenCredential } from "../../src/azure/credentials.js";
import { WriteLimiterPool } from "../../src/azure/rate-limiter.js";

// Resume of paused workers and the index listing, as upstream ai4s-jobq runs them: the real region
// against the ARM emulator and the ml.azure.com emulator over the same job store.
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuremlEmulatorsPerTest((started) => ({ arm, ml } = started));

const ws = (name: string) => arm.findWorkspace(name)!;
const byStatus = (name: string, status: string) =>
  [...ws(name).jobs.values()].filter((job) => job.status === status).map((job) => job.name);
const upstream = (extra: Partial<AzuremlRegionInput> = {}): Partial<AzuremlRegionInput> => ({
  mlEndpoint: ml.url,
  ...extra,
});

/** Hire `count` workers into a cluster of `nodes` and let them all run. */
async function running(name: string, nodes: number, count: number, extra: Partial<AzuremlRegionInput> = {}) {
  const region = makeRegion(arm, name, nodes, upstream(extra));
  expect((await region.hire(count)).hired).toBe(count);
  arm.step();
  return region;
}

describe("resuming paused workers (ml.azure.com execution API)", () => {
  it("resumes paused workers oldest first, with an ml.azure.com token, and they run again", async () => {
    const region = await running("ws1", 4, 4, { submitConcurrency: 1 });
    const jobs = [...ws("ws1").jobs.values()].sort((a, b) => a.seq - b.seq);
    // Two preemptions, the younger first: the sweep still goes oldest first.
    ml.preempt(ws("ws1"), jobs[3]!.name);
    ml.preempt(ws("ws1"), jobs[1]!.name);
    expect(await region.observe()).toMatchObject({ running: 2, pending: 2 });

    const result = await region.resumePaused();
    expect(result).toEqual({ resumed: 2, cancelled: 0, refused: 0, failed: 0, errors: [] });
    const resumes = ml.requests.filter((r) => r.operation === "execution.resume");
    expect(resumes.map((r) => r.job)).toEqual([jobs[1]!.name, jobs[3]!.name]);
    expect(resumes.every((r) => r.status === 200)).toBe(true);
    expect(resumes[0]!.path).toBe(
      `/api/eastus/execution/v1.0/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/ws1/experiments/exp-ws1/runId/${jobs[1]!.name}/resume`,
    );
    arm.step();
    expect(byStatus("ws1", "Running")).toHaveLength(4);
    expect(await region.observe()).toMatchObject({ running: 4, pending: 0 });
    // The workspace's location was read once from ARM, not per call.
    expect(arm.requests.filter((r) => r.operation === "workspaces.get")).toHaveLength(1);
  });

  it("cancels a paused worker that is past its max execution time instead of resuming it", async () => {
    const region = await running("ws1", 3, 3);
    const [old, young] = [...ws("ws1").jobs.values()].sort((a, b) => a.seq - b.seq);
    ml.preempt(ws("ws1"), old!.name);
    ml.preempt(ws("ws1"), young!.name);
    ml.expire(ws("ws1"), old!.name);
    await region.observe();

    const result = await region.resumePaused();
    expect(result).toMatchObject({ resumed: 1, cancelled: 1, refused: 0, failed: 0 });
    expect(ws("ws1").jobs.get(old!.name)!.status).toBe("CancelRequested");
    expect(arm.requests.filter((r) => r.operation === "jobs.cancel").length).toBe(1);
    arm.step();
    expect(ws("ws1").jobs.get(young!.name)!.status).toBe("Running");
  });

  it("skips a worker the service refuses for itself (no longer paused), and counts it", async () => {
    const region = await running("ws1", 2, 2);
    const [a, b] = [...ws("ws1").jobs.values()];
    ml.preempt(ws("ws1"), a!.name);
    ml.preempt(ws("ws1"), b!.name);
    await region.observe();
    ws("ws1").setStatus(b!.name, "Queued"); // resumed by someone else since the observation
    const result = await region.resumePaused();
    expect(result).toMatchObject({ resumed: 1, refused: 1, failed: 0, errors: [] });
  });

  it("retries a DatabaseOverCapacity 503 after its Retry-After, and an HTML 503 page", async () => {
    const region = await running("ws1", 2, 2);
    const [a, b] = [...ws("ws1").jobs.values()];
    ml.preempt(ws("ws1"), a!.name);
    ml.preempt(ws("ws1"), b!.name);
    await region.observe();
    ml.addFault({ kind: "overCapacity", retryAfterSeconds: 1, operations: ["execution.resume"], times: 1 });
    ml.addFault({ kind: "html503", operations: ["execution.resume"], times: 1 });
    const started = Date.now();
    const result = await region.resumePaused();
    expect(result).toMatchObject({ resumed: 2, failed: 0, errors: [] });
    // One attempt waited the server's second (the other the HTML page's backoff, 2 s + jitter).
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    const statuses = ml.requests.filter((r) => r.operation === "execution.resume").map((r) => r.status);
    expect(statuses.sort()).toEqual([200, 200, 503, 503]);
  });

  it("reports a persistent 5xx as a failed resume naming the region and the job", async () => {
    const region = await running("ws1", 1, 1, { retries: 0 });
    const [a] = [...ws("ws1").jobs.values()];
    ml.preempt(ws("ws1"), a!.name);
    await region.observe();
    ml.addFault({ kind: "html503", operations: ["execution.resume"] });
    const result = await region.resumePaused();
    expect(result).toMatchObject({ resumed: 0, failed: 1 });
    expect(result.errors[0]!.message).toMatch(
      new RegExp(`^region ws1: resume ${a!.name}: HTTP 503: an HTML error page`),
    );
  });

  it("refuses an ARM token at ml.azure.com (401) and says what the identity needs", async () => {
    emulatorWorkspace("ws1", 1);
    const armOnly = new StaticTokenCredential();
    const ctx = {
      ...testContext(arm),
      // A credential that hands out ARM tokens whatever it is asked for.
      credential: () => ({
        getToken: (): Promise<AccessToken> => armOnly.getToken("https://management.azure.com/.default"),
      }),
    };
    const region = createAzuremlRegion(azuremlRegionSchema.parse(regionInput(arm, "ws1", upstream())), ctx, {
      writeLimiters: new WriteLimiterPool({ burst: 100, perSecond: 100 }),
    });
    await region.hire(1);
    arm.step();
    ml.preempt(ws("ws1"), [...ws("ws1").jobs.keys()][0]!);
    await region.observe();
    const result = await region.resumePaused();
    expect(result).toMatchObject({ resumed: 0, failed: 1 });
    expect(result.errors[0]!.message).toMatch(
      /HTTP 401: .*audience 'https:\/\/management\.azure\.com'.*https:\/\/ml\.azure\.com/,
    );
  });

  it("resumes under the subscription's write budget", async () => {
    const limiters = new WriteLimiterPool({ burst: 6, perSecond: 3 });
    const region = makeRegion(arm, "ws1", 6, upstream(), limiters);
    expect((await region.hire(6)).hired).toBe(6);
    arm.step();
    for (const name of ws("ws1").jobs.keys()) ml.preempt(ws("ws1"), name);
    await region.observe();
    // Spend what refilled meanwhile: the 6 resumes start from an empty bucket.
    const bucket = limiters.get(`${arm.url}|${SUBSCRIPTION}`);
    while (bucket.tryAcquire()) {
      /* empty it */
    }
    const started = Date.now();
    expect((await region.resumePaused()).resumed).toBe(6);
    // 6 tokens at 3/s: 2 s (a little less for the fraction already refilled).
    expect(Date.now() - started).toBeGreaterThanOrEqual(1600);
  });

  it("does nothing with resumePaused: false", async () => {
    const region = await running("ws1", 1, 1, { resumePaused: false });
    ml.preempt(ws("ws1"), [...ws("ws1").jobs.keys()][0]!);
    await region.observe();
    expect(await region.resumePaused()).toMatchObject({ resumed: 0, failed: 0 });
    expect(ml.requests).toHaveLength(0);
  });
});

function emulatorWorkspace(name: string, nodes: number) {
  arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, name).addCluster("cluster", nodes);
  return ws(name);
}

/** Jobs of `experiment` in every status, of which `archived` are archived; some of another experiment. */
function seedMixed(name: string, experiment: string) {
  const workspace = emulatorWorkspace(name, 1000);
  const statuses = [
    "Running",
    "Queued",
    "Paused",
    "NotResponding",
    "Starting",
    "Unknown",
    "Completed",
    "Failed",
    "Canceled",
    "CancelRequested",
    "Finalizing",
    "Preparing",
  ] as const;
  for (let i = 0; i < 260; i++) {
    const job = workspace.createJob(
      `${experiment}-${i.toString().padStart(8, "0")}`,
      seededJobProperties(workspace, experiment, true, i % 13 === 0),
    );
    job.status = statuses[i % statuses.length]!;
  }
  for (let i = 0; i < 30; i++) {
    const job = workspace.createJob(`other-${i}`, seededJobProperties(workspace, "other", false));
    job.status = "Running";
  }
  return workspace;
}

describe("listing: index (ml.azure.com index API)", () => {
  it("gives the same observation as the ARM listing, over pages, with upstream's query", async () => {
    seedMixed("ws1", "exp-ws1");
    const limiters = new WriteLimiterPool({ burst: 10_000, perSecond: 10_000 });
    const config = (listing: "arm" | "index") =>
      azuremlRegionSchema.parse(regionInput(arm, "ws1", upstream({ listing, retireFinished: "keep" })));
    const byArm = createAzuremlRegion(config("arm"), testContext(arm), { writeLimiters: limiters });
    const byIndex = createAzuremlRegion(config("index"), testContext(arm), { writeLimiters: limiters });

    const seenByArm = await byArm.observe();
    const seenByIndex = await byIndex.observe();
    expect(seenByIndex).toEqual(seenByArm);
    expect(seenByArm.running).toBeGreaterThan(0);
    expect(seenByArm.pending).toBeGreaterThan(0);

    // The index listed only active jobs: fewer pages than ARM, and no ARM list of them; the one ARM list
    // is a first listing's look for the failed starts of a streak (jobs marked with the exit tag), 1 page.
    const pages = ml.requests.filter((r) => r.operation === "index.entities");
    expect(pages.length).toBe(2);
    expect(byIndex.calls.reads).toBe(3); // compute + workspace location + the marked jobs
    const armLists = arm.requests.filter((r) => r.operation === "jobs.list");
    expect(armLists.at(-1)!.query.tag).toBe("workforce.exp-ws1.exit");
    expect(pages[0]!.body).toMatchObject({
      filters: [
        { field: "type", operator: "eq", values: ["runs"] },
        { field: "annotations/archived", operator: "eq", values: ["false"] },
        { field: "properties/experimentName", operator: "eq", values: ["exp-ws1"] },
        {
          field: "annotations/status",
          operator: "eq",
          values: expect.arrayContaining(["Running", "Paused", "Queued"]),
        },
      ],
      order: [{ field: "properties/creationContext/createdTime", direction: "Asc" }],
      pageSize: 100,
      continuationToken: null,
    });
    expect(typeof (pages[1]!.body as { continuationToken?: unknown }).continuationToken).toBe("string");
  });

  it("the resume sweep works from the index listing too", async () => {
    const region = await running("ws1", 2, 2, { listing: "index" });
    for (const name of ws("ws1").jobs.keys()) ml.preempt(ws("ws1"), name);
    expect(await region.observe()).toMatchObject({ running: 0, pending: 2 });
    expect(await region.resumePaused()).toMatchObject({ resumed: 2 });
    arm.step();
    expect(await region.observe()).toMatchObject({ running: 2, pending: 0 });
  });

  it("retries the front door's HTML 503 pages, and fails a listing that stays partial instead of counting fewer workers", async () => {
    seedMixed("ws1", "exp-ws1");
    const region = makeRegion(arm, "ws1", 1000, upstream({ listing: "index", retries: 1 }));
    ml.addFault({ kind: "html503", operations: ["index.entities"], times: 1 });
    const first = await region.observe();
    expect(first.running + first.pending).toBeGreaterThan(100);

    // The second page keeps failing: the read fails as a whole, it does not return page one's jobs.
    ml.addFault({
      kind: "html503",
      operations: ["index.entities"],
      match: (body) => typeof (body as { continuationToken?: unknown }).continuationToken === "string",
    });
    await expect(region.observe()).rejects.toThrow(
      /^region ws1: observe: .*index entities: HTTP 503: an HTML error page/,
    );
  });

  it("says what is wrong with a 200 answer that is not a list of jobs", async () => {
    const region = makeRegion(arm, "ws1", 3, upstream({ listing: "index" }));
    ml.addFault({ kind: "error", status: 200, message: "not a page", operations: ["index.entities"] });
    await expect(region.observe()).rejects.toThrow(/index entities: expected an array of jobs at value/);
  });
});

describe("configuration of the ml.azure.com calls", () => {
  const bad = (overrides: Partial<AzuremlRegionInput>) => () =>
    createAzuremlRegion(azuremlRegionSchema.parse(regionInput(arm, "ws1", overrides)), testContext(arm));

  it("refuses listing: index with a template display name (the index names jobs by it)", () => {
    expect(bad({ listing: "index", template: { ...CLI_TEMPLATE, display_name: "worker" } })).toThrow(
      /regions\[ws1\]\.template\.display_name: the index listing knows a job by its display name/,
    );
  });

  it("never sends the emulator credential's token to the public ml.azure.com", async () => {
    expect(bad({ credential: { type: "emulator" }, listing: "index" })).toThrow(
      /credential\.type: .*mlEndpoint is https:\/\/ml\.azure\.com/,
    );
    // With resume on (the default), the region works and says once that it will not resume.
    const region = makeRegion(arm, "ws1", 1, { credential: { type: "emulator" } });
    await region.hire(1);
    arm.step();
    ml.preempt(ws("ws1"), [...ws("ws1").jobs.keys()][0]!);
    await region.observe();
    expect(await region.resumePaused()).toMatchObject({ resumed: 0, failed: 0 });
    expect(ml.requests).toHaveLength(0);
  });

  it("names the field of a bad listing or mlEndpoint", () => {
    const parse = (overrides: Record<string, unknown>) =>
      azuremlRegionSchema.safeParse({ ...regionInput(arm, "ws1"), ...overrides });
    expect(parse({ listing: "studio" }).error?.issues[0]).toMatchObject({ path: ["listing"] });
    expect(parse({ mlEndpoint: "http://127.0.0.1:1" }).error?.issues[0]).toMatchObject({
      path: ["mlEndpoint"],
      message: "an https:// URL",
    });
  });
});
