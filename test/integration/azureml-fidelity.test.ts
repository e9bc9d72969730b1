import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureMachineLearningWorkspaces } from "@azure/arm-machinelearning";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import {
  makeRegion,
  seededJobProperties,
  SUBSCRIPTION,
  RESOURCE_GROUP,
} from "../emulators/azureml/fixtures.js";
import { StaticTokenCredential } from "../../src/azure/credentials.js";
import { WriteLimiterPool } from "../../src/azure/rate-limiter.js";

// The service's behaviour that our own client does not decide: the emulator decorates jobs, compares a
// PUT with the stored job, and the region must round-trip raw JSON.
let emulator: ArmEmulator;

beforeEach(async () => {
  emulator = await startArmEmulator({ stepMs: 0 });
});
afterEach(async () => {
  await emulator.close();
});

/** Fields the service adds to every job (real-azure.md), by path in `properties`. */
const SERVICE_ADDED = [
  "outputs.default.uri",
  "outputs.default.mode",
  "services.Tracking.endpoint",
  "services.Studio.endpoint",
  "properties.ContentSnapshotId",
  "resources.shmSize",
  "isArchived",
];
const at = (value: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], value);

describe("AzureML as the service answers", () => {
  it("archives decorated finished jobs with every service-added field still in the wire body; 0 refusals", async () => {
    const region = makeRegion(emulator, "ws1", 10);
    const ws = emulator.findWorkspace("ws1")!;
    ws.seedFinished(30, () => seededJobProperties(ws, "exp-ws1", true), "done");
    await region.observe();
    await region.settled();
    const puts = emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate");
    expect(puts.map((r) => r.status)).toEqual(Array(30).fill(200));
    for (const put of puts) {
      const sent = (put.body as { properties: Record<string, unknown> }).properties;
      const stored = ws.jobs.get(put.path.split("/").pop()!)!.properties;
      for (const path of SERVICE_ADDED.filter((p) => p !== "isArchived"))
        expect(at(sent, path), path).toEqual(at(stored, path));
      expect(sent.isArchived).toBe(true);
    }
    expect([...ws.jobs.values()].every((job) => job.properties.isArchived === true)).toBe(true);
    // The listing is back to the active jobs: one page (empty) + the cluster.
    const before = region.calls.reads;
    await region.observe();
    expect(region.calls.reads - before).toBe(2);
  });

  it("untags decorated finished jobs the same way (only the tags change)", async () => {
    const region = makeRegion(emulator, "ws1", 10, { retireFinished: "untag" });
    const ws = emulator.findWorkspace("ws1")!;
    ws.seedFinished(5, () => seededJobProperties(ws, "exp-ws1", true), "done");
    await region.observe();
    await region.settled();
    const puts = emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate");
    expect(puts.map((r) => r.status)).toEqual(Array(5).fill(200));
    expect([...ws.jobs.values()].map((job) => job.properties.tags)).toEqual(
      Array(5).fill({ "workforce.exp-ws1.done": "exp-ws1" }),
    );
  });

  it("submits an ARM-JSON template with inputs and outputs exactly as written", async () => {
    const outputs = {
      model: { jobOutputType: "custom_model", uri: "azureml://datastores/store/paths/model", mode: "Upload" },
    };
    const inputs = {
      data: {
        jobInputType: "uri_folder",
        uri: "azureml://datastores/store/paths/data",
        mode: "ReadOnlyMount",
      },
      lr: { jobInputType: "literal", value: "0.1" },
    };
    const template = {
      properties: {
        jobType: "Command",
        command: "run ${{inputs.data}}",
        environmentId: "azureml:env:1",
        inputs,
        outputs,
      },
    };
    const region = makeRegion(emulator, "ws1", 10, { template });
    expect(await region.hire(2)).toEqual({ hired: 2, errors: [] });
    for (const job of emulator.findWorkspace("ws1")!.jobs.values()) {
      expect(job.properties.inputs).toEqual(inputs);
      expect(job.properties.outputs).toMatchObject(outputs);
    }
  });

  it("refuses the typed SDK's round trip of a listed job (its models drop outputs.default): why we send raw JSON", async () => {
    const region = makeRegion(emulator, "ws1", 10);
    await region.hire(1);
    const client = new AzureMachineLearningWorkspaces(new StaticTokenCredential(), SUBSCRIPTION, {
      endpoint: emulator.url,
      retryOptions: { maxRetries: 0 },
      tlsOptions: { ca: emulator.ca },
    });
    const [job] = await client.jobs
      .list(RESOURCE_GROUP, "ws1")
      .byPage()
      .next()
      .then((page) => page.value);
    job.properties.isArchived = true;
    const refusal = await client.jobs
      .createOrUpdate(RESOURCE_GROUP, "ws1", job.name!, job)
      .catch((e: Error) => e);
    expect(String((refusal as { response?: { bodyAsText?: string } }).response?.bodyAsText)).toContain(
      "JobPropertyImmutable",
    );
    expect(
      (emulator.requests.at(-1)!.body as { properties: { outputs: unknown } }).properties.outputs,
    ).toEqual({
      default: { jobOutputType: "uri_folder", description: null },
    });
  });

  it("answers with ARM's remaining budget headers and throttles over the subscription's read budget", async () => {
    await emulator.close();
    emulator = await startArmEmulator({
      stepMs: 0,
      budget: { reads: { burst: 3, perSecond: 0.01 }, writes: { burst: 200, perSecond: 10 } },
    });
    const region = makeRegion(emulator, "ws1", 10, { retries: 0 });
    await region.observe(); // 2 reads
    const error = await region.observe().catch((e: Error) => e);
    expect(String(error)).toMatch(/HTTP 429/);
    const throttled = emulator.requests.find((r) => r.status === 429)!;
    expect(throttled.operation).toMatch(/jobs.list|computes.get/);
  });

  it("a service that ignores the tag filter: the region still counts only its own jobs", async () => {
    await emulator.close();
    emulator = await startArmEmulator({ stepMs: 0, honourTagFilter: false });
    const region = makeRegion(emulator, "ws1", 10);
    const ws = emulator.findWorkspace("ws1")!;
    for (let i = 0; i < 3; i++) ws.createJob(`other-${i}`, seededJobProperties(ws, "exp-ws1", false));
    ws.schedule();
    await region.hire(2);
    expect(await region.observe()).toMatchObject({ running: 2, pending: 0 });
  });

  it("holds a region with a clear budget error, reading nothing, when the subscription's read budget has no room", async () => {
    const readLimiters = new WriteLimiterPool({ burst: 2, perSecond: 0.001 });
    // A token takes 1,000 s to come back: no wait the region would accept (its request timeout) covers it.
    const region = makeRegion(emulator, "ws1", 10, {}, undefined, readLimiters);
    await region.observe();
    const before = emulator.requests.length;
    const error = await region.observe().catch((e: Error) => e);
    expect(String(error)).toMatch(/region ws1: budget: .* held this tick/);
    expect(emulator.requests.length).toBe(before);
  });
});

describe("AzureML throttling longer than a minute", () => {
  it("a Retry-After of 120 s is honoured through the region's back-off: the call gives up at once, and no read goes before then", async () => {
    const region = makeRegion(emulator, "ws1", 10, { retries: 3 });
    emulator.addFault({ kind: "throttle", retryAfterSeconds: 120, operations: ["jobs.list"], times: 1 });
    const started = Date.now();
    const first = await region.observe().catch((e: Error) => e);
    expect(String(first)).toMatch(/back-off until .*Retry-After 120/);
    // At once, not after the 120 s: a bound far from both, so a loaded machine does not matter.
    expect(Date.now() - started).toBeLessThan(30_000);
    const lists = () => emulator.requests.filter((r) => r.operation === "jobs.list").length;
    const sent = lists();
    const second = await region.observe().catch((e: Error) => e);
    expect(String(second)).toMatch(/back-off until/);
    expect(lists()).toBe(sent);
  });
});
