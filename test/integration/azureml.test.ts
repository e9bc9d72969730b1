import https from "node:https";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import {
  makeRegion,
  SUBSCRIPTION,
  RESOURCE_GROUP,
  testContext,
  regionInput,
} from "../emulators/azureml/fixtures.js";
import { spreadHires } from "../../src/policy/index.js";
import { azuremlRegionSchema, createAzuremlRegion } from "../../src/regions/azureml/index.js";
import { WriteLimiterPool } from "../../src/azure/rate-limiter.js";
import { ConfigError } from "../../src/config/load.js";
import { Reconciler } from "../../src/controller/reconciler.js";
import { stepPolicy } from "../../src/policy/index.js";
import { createLogger } from "../../src/logging/logger.js";

// The real @azure/arm-machinelearning client against the HTTPS ARM emulator.
let emulator: ArmEmulator;

beforeEach(async () => {
  emulator = await startArmEmulator({ stepMs: 0, timing: { cancelMs: 60_000 } });
});
afterEach(async () => {
  await emulator.close();
});

const ws = (name: string) => emulator.findWorkspace(name)!;
const jobsOf = (name: string) => [...ws(name).jobs.values()];

describe("AzureML region against the ARM emulator", () => {
  it("observes running, pending and capacity from the jobs list and the cluster's inner properties", async () => {
    const region = makeRegion(emulator, "ws1", 3);
    expect(await region.observe()).toEqual({ running: 0, pending: 0, draining: 0, capacity: 3 });

    const hire = await region.hire(5);
    expect(hire).toEqual({ hired: 5, errors: [] });
    emulator.step(); // three get a node, two wait
    expect(await region.observe()).toEqual({ running: 3, pending: 2, draining: 0, capacity: -2 });
  });

  it("submits jobs named {experiment}-{8 chars} built from the CLI v2 template, with the workforce tag", async () => {
    const region = makeRegion(emulator, "ws1", 10);
    await region.hire(2);
    const jobs = jobsOf("ws1");
    expect(jobs).toHaveLength(2);
    for (const job of jobs) {
      expect(job.name).toMatch(/^exp-ws1-[a-z0-9]{8}$/);
      expect(job.properties).toMatchObject({
        jobType: "Command",
        command: "workforce worker --queue $QUEUE",
        experimentName: "exp-ws1",
        computeId: `${ws("ws1").armId}/computes/cluster`,
        environmentId: `${ws("ws1").armId}/environments/jobq-worker/versions/3`,
        environmentVariables: { QUEUE: "tasks" },
        identity: { identityType: "Managed" },
        resources: { instanceCount: 1, shmSize: "8g" },
        limits: { jobLimitsType: "Command", timeout: "PT7200S" },
        tags: { team: "science", "workforce.exp-ws1": "exp-ws1" },
      });
    }
    expect(jobs[0]!.name).not.toBe(jobs[1]!.name);
  });

  it("spreads a hire over three regions by capacity", async () => {
    const regions = [
      makeRegion(emulator, "a", 100),
      makeRegion(emulator, "b", 0),
      makeRegion(emulator, "c", 5),
    ];
    const observations = await Promise.all(regions.map((region) => region.observe()));
    const plan = spreadHires(
      10,
      regions.map((region, i) => ({ name: region.name, capacity: observations[i]!.capacity })),
    );
    await Promise.all(regions.map((region) => region.hire(plan[region.name]!)));
    emulator.step();
    const after = await Promise.all(regions.map((region) => region.observe()));
    // b has no room; c takes what fits; a takes the rest.
    expect(after.map((o) => o.running + o.pending)).toEqual([5, 0, 5]);
    expect(after.reduce((sum, o) => sum + o.running + o.pending, 0)).toBe(10);
  });

  it("creates an environment version once for a template with an inline image, and reuses it", async () => {
    const template = {
      command: "python -m worker",
      environment: { image: "mcr.microsoft.com/azureml/base:1" },
    };
    const region = makeRegion(emulator, "ws1", 10, { template });
    await region.hire(3);
    await region.hire(2);
    const envPuts = emulator.requests.filter((r) => r.operation === "environmentVersions.createOrUpdate");
    expect(envPuts).toHaveLength(1);
    expect(envPuts[0]!.path).toMatch(/\/environments\/exp-ws1-image\/versions\/[0-9a-f]{16}$/);
    const jobs = jobsOf("ws1");
    expect(jobs).toHaveLength(5);
    expect(new Set(jobs.map((job) => job.properties.environmentId))).toEqual(new Set([envPuts[0]!.path]));
  });

  it("accepts raw ARM JSON templates and never mutates them", async () => {
    const template = {
      properties: {
        jobType: "Command",
        command: "run",
        environmentId: "azureml:env:1",
        tags: { a: "b" },
        environmentVariables: { X: "1" },
      },
    };
    const before = JSON.stringify(template);
    const region = makeRegion(emulator, "ws1", 10, { template });
    await region.hire(3);
    expect(JSON.stringify(template)).toBe(before);
    expect(jobsOf("ws1").every((job) => (job.properties.tags as Record<string, string>).a === "b")).toBe(
      true,
    );
  });

  it("works with the compute given as a full ARM id", async () => {
    const computeId = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/ws1/computes/cluster`;
    const region = makeRegion(emulator, "ws1", 4, { compute: computeId });
    await region.hire(1);
    emulator.step();
    expect(await region.observe()).toEqual({ running: 1, pending: 0, draining: 0, capacity: 3 });
    const computeGets = emulator.requests.filter((r) => r.operation === "computes.get");
    expect(computeGets.every((r) => r.path.endsWith("/workspaces/ws1/computes/cluster"))).toBe(true);
  });

  it("rejects a compute id of another workspace and a bad template as config errors naming the field", () => {
    const ctx = testContext(emulator);
    const other = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/other/computes/c`;
    const bad = (overrides: object) => () =>
      createAzuremlRegion(azuremlRegionSchema.parse(regionInput(emulator, "ws1", overrides)), ctx);
    expect(bad({ compute: other })).toThrow(ConfigError);
    expect(bad({ compute: other })).toThrow(/regions\[ws1\]\.compute: .*workspaces other|other/);
    expect(bad({ template: { command: "x", environment: "azureml:env@latest" } })).toThrow(
      /regions\[ws1\]\.template\.environment: .*pin a version/,
    );
    expect(bad({ template: { command: "x", environment: "azureml:e:1", inputs: {} } })).toThrow(
      /template\.inputs: not supported/,
    );
    expect(
      bad({ template: { command: "x", environment: "azureml:e:1", limits: { timeout: "two hours" } } }),
    ).toThrow(/template\.limits\.timeout/);
    expect(bad({ credential: { type: "emulator" }, armEndpoint: "https://management.azure.com" })).toThrow(
      /credential\.type: .*only for an ARM emulator/,
    );
  });

  it("builds no credential and makes no call until the region is first used", async () => {
    emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1").addCluster("cluster", 2);
    let built = 0;
    const base = testContext(emulator);
    const ctx = { ...base, credential: () => (built++, base.credential()) };
    const region = createAzuremlRegion(azuremlRegionSchema.parse(regionInput(emulator, "ws1")), ctx, {
      writeLimiters: new WriteLimiterPool(),
    });
    expect(built).toBe(0);
    expect(emulator.requests).toHaveLength(0);
    await region.observe();
    await region.observe();
    expect(built).toBe(1);
  });

  it("the emulator credential talks to a local emulator without the daemon's credential", async () => {
    emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1").addCluster("cluster", 2);
    const config = azuremlRegionSchema.parse(
      regionInput(emulator, "ws1", { credential: { type: "emulator" } }),
    );
    const ctx = {
      ...testContext(emulator),
      credential: () => {
        throw new Error("the daemon credential must not be used");
      },
    };
    const region = createAzuremlRegion(config, ctx, { writeLimiters: new WriteLimiterPool() });
    expect(await region.observe()).toEqual({ running: 0, pending: 0, draining: 0, capacity: 2 });
  });

  it("honours a 429 storm with Retry-After and creates every requested job exactly once", async () => {
    const region = makeRegion(emulator, "ws1", 100);
    // 20 refusals over the 12 submits, at most 2 for any one job: within its 3 retries whatever the order in
    // which the parallel submits reach the server (a plain count of 20 could give one job 4 in a row).
    emulator.addFault({
      kind: "throttle",
      retryAfterMs: 50,
      operations: ["jobs.createOrUpdate"],
      times: 20,
      perPath: 2,
    });
    const result = await region.hire(12);
    expect(result).toEqual({ hired: 12, errors: [] });
    expect(jobsOf("ws1")).toHaveLength(12);
    const throttled = emulator.requests.filter((r) => r.status === 429);
    expect(throttled).toHaveLength(20);
    // Every retry came after the wait the server asked for.
    const puts = emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate");
    for (const retry of puts.filter((r) => r.status === 201)) {
      const earlier = puts.filter((r) => r.path === retry.path && r.status === 429);
      for (const refused of earlier) expect(retry.at - refused.at).toBeGreaterThanOrEqual(45);
    }
  });

  it("counts the duplicate-name race (request committed, answer lost, retry gets JobPropertyImmutable) as one hire", async () => {
    const region = makeRegion(emulator, "ws1", 100);
    emulator.addFault({ kind: "resetAfterCommit", operations: ["jobs.createOrUpdate"], times: 1 });
    const result = await region.hire(3);
    expect(result).toEqual({ hired: 3, errors: [] });
    expect(jobsOf("ws1")).toHaveLength(3);
    const puts = emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate");
    // The lost answer, its retry refused as JobPropertyImmutable, and the two other submits.
    expect(puts.map((r) => r.status).sort()).toEqual([-1, 201, 201, 400].sort());
  }, 20_000);

  it("retries an HTML 503 from a front door and a 500", async () => {
    const region = makeRegion(emulator, "ws1", 5);
    emulator.addFault({ kind: "html503", operations: ["computes.get"], times: 1 });
    emulator.addFault({ kind: "throttle", retryAfterSeconds: 0, operations: ["jobs.list"], times: 1 });
    expect(await region.observe()).toEqual({ running: 0, pending: 0, draining: 0, capacity: 5 });
  }, 20_000);

  it("retries a connection reset at once, and abandons then retries a call that hangs", async () => {
    // 3 s per attempt: the hanging one is abandoned, while a retry slowed by a loaded machine (a new TLS
    // connection after the reset) is not abandoned too, which would add a request to those counted below.
    const region = makeRegion(emulator, "ws1", 5, { requestTimeoutSeconds: 3 });
    emulator.addFault({ kind: "reset", operations: ["jobs.list"], times: 1 });
    emulator.addFault({ kind: "hang", operations: ["computes.get"], times: 1 });
    expect(await region.observe()).toEqual({ running: 0, pending: 0, draining: 0, capacity: 5 });
    const byOperation = (operation: string) =>
      emulator.requests.filter((r) => r.operation === operation).map((r) => r.status);
    expect(byOperation("jobs.list")).toEqual([-1, 200]);
    expect(byOperation("computes.get")).toEqual([-2, 200]);
  }, 20_000);

  it("cancels pending jobs only, Paused first, then Queued, Waiting, Preparing, Starting, oldest first within a status", async () => {
    const region = makeRegion(emulator, "ws1", 0);
    await region.hire(7);
    const names = jobsOf("ws1")
      .sort((a, b) => a.seq - b.seq)
      .map((job) => job.name);
    const workspace = ws("ws1");
    const statuses = ["Running", "Starting", "Queued", "Preparing", "Queued", "Paused", "Waiting"] as const;
    names.forEach((name, i) => workspace.setStatus(name, statuses[i]!));
    await region.observe();

    expect(await region.cancelPending(3)).toEqual({ cancelled: 3, errors: [] });
    const cancelled = () =>
      emulator.requests.filter((r) => r.operation === "jobs.cancel").map((r) => r.path.split("/").at(-2));
    // Paused (#5), then the two Queued, oldest (#2) before #4.
    expect(cancelled()).toEqual([names[5], names[2], names[4]]);
    expect(workspace.jobs.get(names[5]!)!.status).toBe("CancelRequested");

    expect(await region.observe()).toMatchObject({ running: 1, pending: 3 });
    await region.cancelPending(10);
    expect(cancelled().slice(3)).toEqual([names[6], names[3], names[1]]);
    // The running one is never touched.
    expect(workspace.jobs.get(names[0]!)!.status).toBe("Running");
    // The cancel operation is started, not polled: every job is still CancelRequested (60 s to cancel).
    expect(workspace.byStatus("CancelRequested")).toHaveLength(6);
    expect(emulator.requests.filter((r) => r.operation === "operations.get")).toHaveLength(0);
  });

  it("cancels from the tick's listing, without listing again; without a listing (a CLI lay-off) it lists once", async () => {
    const region = makeRegion(emulator, "ws1", 0);
    await region.hire(3);
    const lists = () => emulator.requests.filter((r) => r.operation === "jobs.list").length;
    expect(await region.cancelPending(1)).toEqual({ cancelled: 1, errors: [] });
    expect(lists()).toBe(1);
    await region.observe();
    expect(await region.cancelPending(2)).toEqual({ cancelled: 2, errors: [] });
    expect(lists()).toBe(2);
    expect(ws("ws1").byStatus("CancelRequested")).toHaveLength(3);
  });

  it("in the controller's tick, a failing and a hanging region do not stop the others from hiring", async () => {
    const regions = [
      makeRegion(emulator, "good", 20),
      makeRegion(emulator, "failing", 5, { retries: 1 }),
      makeRegion(emulator, "hanging", 5, { retries: 0, requestTimeoutSeconds: 60 }),
    ];
    const reconciler = new Reconciler({
      queue: { description: "fixed", depth: async () => 100 },
      regions,
      policy: stepPolicy,
      parameters: { concurrency: 1, maxWorkers: 100, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 0 },
      // Long enough for the good region's read on a loaded machine (a stale reading would hire nothing
      // there), far below the hanging region's 60 s attempt.
      callTimeoutMs: 6_000,
      actTimeoutMs: 10_000,
      readConcurrency: 3,
      staleTicks: 3,
      dryRun: false,
      logger: createLogger({ level: "silent" }),
    });
    // Every region answers once (a region never read has unknown workers: nobody would be hired).
    await reconciler.tick();
    const failingBefore = jobsOf("failing").length;
    emulator.step();
    emulator.addFault({ kind: "error500", workspaces: ["failing"] });
    emulator.addFault({ kind: "hang", workspaces: ["hanging"] });
    const report = await reconciler.tick();
    expect(report.result).toBe("degraded");
    const hiredGood = report.outcomes.find((outcome) => outcome.region === "good")!.hired;
    expect(hiredGood).toBeGreaterThan(0);
    expect(jobsOf("failing")).toHaveLength(failingBefore);
    expect(report.durations.totalMs).toBeLessThan(20_000);
  }, 30_000);

  it("counts CancelRequested and Finalizing as leaving, NotResponding as running, Unknown as pending", async () => {
    const region = makeRegion(emulator, "ws1", 10);
    await region.hire(4);
    const names = jobsOf("ws1").map((job) => job.name);
    const workspace = ws("ws1");
    workspace.setStatus(names[0]!, "CancelRequested");
    workspace.setStatus(names[1]!, "Finalizing");
    workspace.setStatus(names[2]!, "NotResponding");
    workspace.setStatus(names[3]!, "Unknown");
    expect(await region.observe()).toMatchObject({ running: 1, pending: 1 });
    // Unknown may be running: never cancelled.
    expect(await region.cancelPending(5)).toEqual({ cancelled: 0, errors: [] });
  });

  it("drain without a back channel delivers nothing and says why", async () => {
    const region = makeRegion(emulator, "ws1", 10);
    const result = await region.drain(2);
    expect(result.drained).toBe(0);
    expect(result.errors[0]!.message).toMatch(/no back channel configured/);
  });

  it("a failing or hanging region does not stop the others", async () => {
    const good = makeRegion(emulator, "good", 5);
    const failing = makeRegion(emulator, "failing", 5, { retries: 1 });
    const hanging = makeRegion(emulator, "hanging", 5, { retries: 0, requestTimeoutSeconds: 60 });
    emulator.addFault({ kind: "error500", workspaces: ["failing"] });
    emulator.addFault({ kind: "hang", workspaces: ["hanging"] });
    const started = Date.now();
    // 6 s: the good region answers within it even on a loaded machine.
    const results = await Promise.allSettled(
      [good, failing, hanging].map((region) => region.observe({ signal: AbortSignal.timeout(6_000) })),
    );
    expect(results[0]).toEqual({
      status: "fulfilled",
      value: { running: 0, pending: 0, draining: 0, capacity: 5 },
    });
    expect(results[1]!.status).toBe("rejected");
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/Something went wrong|500/);
    expect(results[2]!.status).toBe("rejected");
    // The hanging region was given up at the caller's deadline, not after its 60 s attempt timeout.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await good.hire(2)).hired).toBe(2);
  }, 60_000);

  it("the emulator refuses a request without a bearer token with an ARM 401", async () => {
    emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1");
    const path = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/ws1/jobs?api-version=2022-10-01`;
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https
        .get(`${emulator.url}${path}`, { ca: emulator.ca }, (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => (text += chunk.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        })
        .on("error", reject);
    });
    expect(status).toBe(401);
    expect(JSON.parse(body)).toMatchObject({ error: { code: "AuthenticationFailed" } });
  });

  it("shares one write limiter per subscription: submits beyond the burst wait for tokens", async () => {
    const limiters = new WriteLimiterPool({ burst: 4, perSecond: 20 });
    const a = makeRegion(emulator, "a", 100, {}, limiters);
    const b = makeRegion(emulator, "b", 100, {}, limiters);
    const started = Date.now();
    await Promise.all([a.hire(6), b.hire(6)]);
    // 12 writes, 4 at once, then 20/s: at least 8/20 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(jobsOf("a").length + jobsOf("b").length).toBe(12);
  });
});
