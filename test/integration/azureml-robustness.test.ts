import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { encodeSkipToken, startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import {
  makeRegion,
  regionInput,
  seededJobProperties,
  testContext,
  SUBSCRIPTION,
  RESOURCE_GROUP,
} from "../emulators/azureml/fixtures.js";
import { azuremlRegionSchema, createAzuremlRegion } from "../../src/regions/azureml/index.js";
import { WriteLimiterPool } from "../../src/azure/rate-limiter.js";
import { createLogger } from "../../src/logging/logger.js";

// Bad answers from ARM and operator traps, with the real @azure/arm-machinelearning client against the
// HTTPS emulator. Job names are random; `forcedNames` lets a test pick the next ones (a name clash).
const forcedNames: string[] = [];
vi.mock("../../src/regions/azureml/names.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../src/regions/azureml/names.js")>();
  return {
    ...original,
    newJobName: (experiment: string) => forcedNames.shift() ?? original.newJobName(experiment),
  };
});

let emulator: ArmEmulator;
beforeEach(async () => {
  emulator = await startArmEmulator({ stepMs: 0, timing: { cancelMs: 60_000 } });
  forcedNames.length = 0;
});
afterEach(async () => {
  await emulator.close();
});

const ws = (name: string) => emulator.findWorkspace(name)!;

/** A region whose warnings land in `lines`. */
function regionWithLog(name: string, maxNodes: number, lines: string[]) {
  emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, name).addCluster("cluster", maxNodes);
  const config = azuremlRegionSchema.parse(regionInput(emulator, name));
  const logger = createLogger({
    level: "warn",
    destination: { write: (line: string) => void lines.push(line) },
  });
  return createAzuremlRegion(config, testContext(emulator, logger), {
    writeLimiters: new WriteLimiterPool({ burst: 10_000, perSecond: 10_000 }),
  });
}

describe("AzureML region: bad answers from ARM", () => {
  it("a job list page without `value` is an error naming the region and the field, not zero workers", async () => {
    const region = makeRegion(emulator, "ws1", 5);
    await region.hire(2);
    emulator.addFault({
      kind: "rewrite",
      operations: ["jobs.list"],
      body: (answer) => ({ ...(answer as object), value: undefined }),
    });
    await expect(region.observe()).rejects.toThrow(
      /region ws1: jobs\.list: expected an array of jobs at value/,
    );
    // Hiring does not go on as if the region were empty.
    expect(emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate")).toHaveLength(2);
  });

  it("a 200 that is not JSON (a proxy's HTML page) on the job list is an error that says what came", async () => {
    const region = makeRegion(emulator, "ws1", 5);
    emulator.addFault({
      kind: "rewrite",
      operations: ["jobs.list"],
      raw: "<html><body>Sign in</body></html>",
    });
    await expect(region.observe()).rejects.toThrow(
      /region ws1: jobs\.list: .* at value; given a text\/html answer/,
    );
  });

  it("a compute without scaleSettings (not an AmlCompute cluster) is an error naming the field and the compute type", async () => {
    const region = makeRegion(emulator, "ws1", 5);
    emulator.addFault({
      kind: "rewrite",
      operations: ["computes.get"],
      body: (answer) => {
        const copy = structuredClone(answer) as {
          properties: { computeType: string; properties: Record<string, unknown> };
        };
        copy.properties.computeType = "Kubernetes";
        delete copy.properties.properties.scaleSettings;
        return copy;
      },
    });
    await expect(region.observe()).rejects.toThrow(
      /region ws1: compute cluster \(computeType Kubernetes\): expected a number >= 0 .* at properties\.properties\.scaleSettings\.maxNodeCount; given nothing/,
    );
  });

  it("jobs without a status or with an unknown one count as pending, are never cancelled, and are reported once", async () => {
    const lines: string[] = [];
    const region = regionWithLog("ws1", 10, lines);
    await region.hire(3);
    const [a, b] = [...ws("ws1").jobs.keys()];
    emulator.addFault({
      kind: "rewrite",
      operations: ["jobs.list"],
      body: (answer) => {
        const copy = structuredClone(answer) as {
          value: { name: string; properties: Record<string, unknown> }[];
        };
        for (const job of copy.value) {
          if (job.name === a) delete job.properties.status;
          if (job.name === b) job.properties.status = "Hibernating";
        }
        return copy;
      },
    });
    emulator.step(); // all three Running in the emulator; two of them hidden behind odd statuses
    expect(await region.observe()).toMatchObject({ running: 1, pending: 2 });
    await region.observe();
    expect(await region.cancelPending(5)).toEqual({ cancelled: 0, errors: [] });
    const warnings = lines.map((line) => JSON.parse(line) as { msg: string });
    expect(warnings.map((w) => w.msg).sort()).toEqual(
      [
        `region ws1: job ${a} has no properties.status; counted as pending, never cancelled`,
        `region ws1: job ${b} has an unknown properties.status "Hibernating"; counted as pending, never cancelled`,
      ].sort(),
    );
  });

  it("counts a job once when the pages shift under the listing (it shows up on two pages)", async () => {
    await emulator.close();
    emulator = await startArmEmulator({ stepMs: 0, pageSize: 2 });
    const region = makeRegion(emulator, "ws1", 10);
    await region.hire(3);
    // The first page's nextLink points one job back, as if a job had been created meanwhile.
    emulator.addFault({
      kind: "rewrite",
      operations: ["jobs.list"],
      times: 1,
      body: (answer) => {
        const page = answer as { value: unknown[]; nextLink: string };
        return {
          ...page,
          nextLink: page.nextLink.replace(encodeSkipToken(2), encodeSkipToken(1)),
        };
      },
    });
    expect(await region.observe()).toMatchObject({ pending: 0, running: 3 });
    const lists = emulator.requests.filter((r) => r.operation === "jobs.list");
    expect(lists.map((r) => r.query.$skip)).toEqual([undefined, encodeSkipToken(1)]);
  });
});

describe("AzureML region: cancel as a long-running operation", () => {
  it("a cancel is one POST answered 202 with a Location and no Retry-After, never polled; the job shows CancelRequested", async () => {
    const region = makeRegion(emulator, "ws1", 0);
    await region.hire(2);
    await region.observe();
    const before = emulator.requests.length;
    expect(await region.cancelPending(2)).toEqual({ cancelled: 2, errors: [] });
    const calls = emulator.requests.slice(before);
    // No listing again and no poll of the operation: the shrink's chain is the POST alone.
    expect(calls.map((r) => `${r.operation} ${r.status}`)).toEqual(["jobs.cancel 202", "jobs.cancel 202"]);
    expect([...ws("ws1").jobs.values()].map((job) => job.status)).toEqual([
      "CancelRequested",
      "CancelRequested",
    ]);
  });
});

describe("AzureML region: operator traps", () => {
  it("a 403 (a missing role) or a 401 is not retried, and the error names the region and what to check", async () => {
    const region = makeRegion(emulator, "ws1", 5, { retries: 3 });
    emulator.addFault({
      kind: "error",
      status: 403,
      code: "AuthorizationFailed",
      operations: ["computes.get"],
      message:
        "The client does not have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/computes/read'.",
    });
    emulator.addFault({
      kind: "error",
      status: 401,
      code: "ExpiredAuthenticationToken",
      operations: ["jobs.createOrUpdate"],
    });
    await expect(region.observe()).rejects.toThrow(
      /^region ws1: observe: HTTP 403 AuthorizationFailed: .*computes\/read.*lacks a role.*not retried\)$/,
    );
    const hire = await region.hire(1);
    expect(hire.hired).toBe(0);
    expect(hire.errors[0]!.message).toMatch(
      /^region ws1: submit job .*: HTTP 401 ExpiredAuthenticationToken: .*token was refused/,
    );
    const calls = (operation: string) => emulator.requests.filter((r) => r.operation === operation).length;
    expect([calls("computes.get"), calls("jobs.createOrUpdate")]).toEqual([1, 1]);
  });

  it("a new name that belongs to a job we never submitted is not counted as a hire: another name is used", async () => {
    const region = makeRegion(emulator, "ws1", 10);
    const workspace = ws("ws1");
    const taken = "exp-ws1-taken000";
    workspace.createJob(taken, seededJobProperties(workspace, "someone-else", false));
    forcedNames.push(taken);
    expect(await region.hire(1)).toEqual({ hired: 1, errors: [] });
    const ours = [...workspace.jobs.values()].filter((job) => job.name !== taken);
    expect(ours).toHaveLength(1);
    expect(ours[0]!.properties.experimentName).toBe("exp-ws1");
    // The other job is untouched.
    expect(workspace.jobs.get(taken)!.properties.experimentName).toBe("someone-else");
  });

  it("a hire stops at the first refusal every submit would get (a missing role), instead of sending them all", async () => {
    const region = makeRegion(emulator, "ws1", 100, { submitConcurrency: 2 });
    emulator.addFault({
      kind: "error",
      status: 403,
      code: "AuthorizationFailed",
      operations: ["jobs.createOrUpdate"],
    });
    const result = await region.hire(50);
    expect(result.hired).toBe(0);
    const puts = emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate").length;
    expect(puts).toBeLessThanOrEqual(2); // the ones already in flight
    expect(result.errors.at(-1)!.message).toBe(
      `region ws1: hire stopped after an HTTP 403 refusal that every submit would get: ${50 - puts} of 50 workers not submitted`,
    );
  });

  it("waiting for a write token does not count against a request's deadline", async () => {
    // 4 submits, 1 token now and 4 a second after: the last waits ~750 ms, longer than a request may take.
    const region = makeRegion(
      emulator,
      "ws1",
      10,
      { requestTimeoutSeconds: 0.3, retries: 0 },
      new WriteLimiterPool({ burst: 1, perSecond: 4 }),
    );
    expect(await region.hire(4)).toEqual({ hired: 4, errors: [] });
    expect(emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate")).toHaveLength(4);
  });

  it("a hire cut short by the caller's deadline says how many workers were not submitted", async () => {
    const region = makeRegion(
      emulator,
      "ws1",
      100,
      { submitConcurrency: 1 },
      new WriteLimiterPool({ burst: 1, perSecond: 5 }),
    );
    const result = await region.hire(20, { signal: AbortSignal.timeout(500) });
    const created = ws("ws1").jobs.size;
    // What the service accepted is counted exactly; a submit cut off in flight is unknown (it may exist).
    expect(result.hired).toBeLessThanOrEqual(created);
    expect(result.hired + (result.unknown ?? 0)).toBeGreaterThanOrEqual(created);
    expect(created).toBeGreaterThan(0);
    expect(created).toBeLessThan(20);
    const messages = result.errors.map((error) => error.message).join("\n");
    expect(messages).toMatch(
      /region ws1: hire stopped by the caller's deadline .*: \d+ of 20 workers not submitted/,
    );
  });
});
