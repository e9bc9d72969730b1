import { describe, expect, it } from "vitest";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { azuremlEmulatorsPerTest } from "../support/azureml-emulators.js";
import { regionFor, RESOURCE_GROUP, SUBSCRIPTION, testContext } from "../emulators/azureml/fixtures.js";
import type { AzuremlRegion, AzuremlRegionInput } from "../../src/regions/azureml/index.js";
import { LeaseFence } from "../../src/controller/leader.js";
import { FencedError, type WriteFence } from "../../src/regions/fence.js";
import { Reconciler } from "../../src/controller/reconciler.js";
import { stepPolicy } from "../../src/policy/step.js";
import { createLogger, type Logger } from "../../src/logging/logger.js";
import { MemoryQueue } from "../support/memory-region.js";
import { logLines } from "../support/log-lines.js";
import type { TokenCredential } from "@azure/core-auth";
import { ML_SCOPE } from "../../src/regions/azureml/ml-api.js";

// "One replica acts at a time" covers the resume of paused workers too: a resume is a write (POST to the
// ml.azure.com execution API), so a replica whose leader lease ran out by its own clock sends none, and
// says so. Real region, real HTTP pipeline, against the ARM and ml.azure.com emulators.
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuremlEmulatorsPerTest((started) => ({ arm, ml } = started));

const ws = () => arm.findWorkspace("ws1")!;
const resumes = () => ml.requests.filter((r) => r.operation === "execution.resume");
const armCancels = () => arm.requests.filter((r) => r.operation === "jobs.cancel");

/** A lease fence on a clock the test moves: granted for 15 s at t=0. */
function lease() {
  const clock = { now: 0 };
  const fence = new LeaseFence(() => clock.now);
  fence.grant(0, 15_000);
  return { fence, runOut: () => (clock.now = 20_000) };
}

/** A fence that lets `open` writes through (the lease still held), then refuses every later one. */
function closingAfter(open: number, only: (write: string) => boolean = () => true) {
  const checked: string[] = [];
  const fence: WriteFence = {
    check(write) {
      if (!only(write)) return;
      checked.push(write);
      if (checked.length > open)
        throw new FencedError(write, "this replica's leader lease ran out 5 ms ago by its own clock");
    },
  };
  return { fence, checked };
}

/** Region ws1 with `count` workers hired through ARM (fence open), all preempted: Paused, observed. */
async function pausedRegion(
  count: number,
  fence: WriteFence,
  extra: Partial<AzuremlRegionInput> = {},
  logger = createLogger({ level: "silent" }),
  credential?: () => TokenCredential,
): Promise<AzuremlRegion> {
  arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1").addCluster("cluster", count);
  const region = regionFor(
    arm,
    "ws1",
    { mlEndpoint: ml.url, submitConcurrency: 1, ...extra },
    { logger, ...(credential ? { credential } : {}), fence },
  );
  expect((await region.hire(count)).hired).toBe(count);
  arm.step();
  for (const name of ws().jobs.keys()) ml.preempt(ws(), name);
  expect(await region.observe()).toMatchObject({ running: 0, pending: count });
  return region;
}

/** The controller's loop over that one region, acting behind `fence`. */
function reconcilerOf(
  region: AzuremlRegion,
  queue: MemoryQueue,
  fence: WriteFence,
  logger: Logger,
): Reconciler {
  return new Reconciler({
    queue,
    regions: [region],
    policy: stepPolicy,
    parameters: { concurrency: 1, maxWorkers: 100, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 0 },
    callTimeoutMs: 10_000,
    actTimeoutMs: 10_000,
    readConcurrency: 4,
    staleTicks: 2,
    dryRun: false,
    logger,
    fence,
  });
}

describe("resume of paused workers behind the leader lease", () => {
  it("a replica whose lease ran out sends no resume at all and reports the workers as fenced", async () => {
    const { fence, runOut } = lease();
    const region = await pausedRegion(3, fence);
    runOut();
    const result = await region.resumePaused();
    expect(resumes()).toEqual([]);
    // Neither resumed nor failed: not sent, because another replica may be the leader now.
    expect(result).toMatchObject({ resumed: 0, cancelled: 0, refused: 0, failed: 0, fenced: 3 });
    expect(result.errors.map((error) => error.message)).toEqual([
      expect.stringMatching(
        /^region ws1: resume stopped: ml\.azure\.com resume \S+ not sent: this replica's leader lease ran out 5000 ms ago by its own clock and is not renewed yet: 3 of 3 paused workers not resumed$/,
      ),
    ]);
    expect([...ws().jobs.values()].every((job) => job.status === "Paused")).toBe(true);
  });

  it("a lease that runs out during the sweep stops it at the first refusal", async () => {
    const { fence, checked } = closingAfter(1, (write) => write.startsWith("ml.azure.com"));
    const region = await pausedRegion(4, fence);
    const result = await region.resumePaused();
    expect(resumes()).toHaveLength(1);
    expect(result).toMatchObject({ resumed: 1, failed: 0, fenced: 3 });
    // One refusal, then no more tries: the other two are not even asked about.
    expect(checked).toHaveLength(2);
  });

  it("the lease running out while the ml.azure.com token is fetched stops the resume: no POST after it", async () => {
    // The sweep's first call for that scope fetches a token (AAD or the node's identity endpoint: seconds,
    // more with its retries); the fence is checked after it, right before the request goes.
    const { fence, runOut } = lease();
    const logger = createLogger({ level: "silent" });
    const base = testContext(arm, logger);
    const slowToken: TokenCredential = {
      getToken: async (scopes, options) => {
        const wanted = Array.isArray(scopes) ? scopes : [scopes];
        if (wanted.includes(ML_SCOPE)) runOut();
        return base.credential().getToken(scopes, options);
      },
    };
    const region = await pausedRegion(1, fence, {}, logger, () => slowToken);
    const result = await region.resumePaused();
    expect(resumes()).toEqual([]);
    expect(result).toMatchObject({ resumed: 0, failed: 0, fenced: 1 });
    expect([...ws().jobs.values()].every((job) => job.status === "Paused")).toBe(true);
  });

  it("each retry attempt is checked: no retry of a resume once the lease has run out", async () => {
    const { fence } = closingAfter(1, (write) => write.startsWith("ml.azure.com"));
    const region = await pausedRegion(1, fence);
    ml.addFault({ kind: "html503", operations: ["execution.resume"], times: 1 });
    const result = await region.resumePaused();
    // The first attempt went (and met a 503); its retry was not sent.
    expect(resumes().map((r) => r.status)).toEqual([503]);
    expect(result).toMatchObject({ resumed: 0, failed: 0, fenced: 1 });
    expect(ws().jobs.get(resumes()[0]!.job!)!.status).toBe("Paused");
  });

  it("the cancel of a worker past its execution limit, refused by the fence, is fenced, not failed", async () => {
    // The lease runs out between the resume's answer and the cancel that follows it (an ARM write).
    const { fence } = closingAfter(0, (write) => write.startsWith("ARM jobs.cancel"));
    const region = await pausedRegion(1, fence);
    ml.expire(ws(), [...ws().jobs.keys()][0]!);
    const result = await region.resumePaused();
    expect(armCancels()).toEqual([]);
    expect(result).toMatchObject({ resumed: 0, cancelled: 0, failed: 0, fenced: 1 });
    expect(result.errors[0]!.message).toMatch(/^region ws1: resume stopped: ARM jobs\.cancel not sent: /);
  });
});

describe("a tick of a replica that lost its lease", () => {
  it("sends no resume, and the tick line says the resume was fenced", async () => {
    const { fence, runOut } = lease();
    const { lines, destination } = logLines();
    const logger = createLogger({ level: "info", destination });
    const region = await pausedRegion(2, fence, {}, logger);
    const queue = Object.assign(new MemoryQueue(), { depthValue: 2 });
    const reconciler = reconcilerOf(region, queue, fence, logger);
    runOut(); // e.g. the process was stopped for a while after it last renewed
    const report = await reconciler.tick();
    expect(resumes()).toEqual([]);
    const tick = lines.find((line) => line.msg === "tick")!;
    expect(tick).toMatchObject({ resumed: 0 });
    expect(tick.regionProblems).toContainEqual(
      expect.objectContaining({
        region: "ws1",
        operation: "resume",
        message: expect.stringMatching(
          /resume stopped: ml\.azure\.com resume \S+ not sent: this replica's leader lease ran out .*: 2 of 2 paused workers not resumed/,
        ),
      }),
    );
    expect(report.outcomes[0]!.resume).toMatchObject({ resumed: 0, failed: 0, fenced: 2 });
  });

  it("a lease that runs out after the act phase began: the tick line counts the fenced workers", async () => {
    const { lines, destination } = logLines();
    const logger = createLogger({ level: "info", destination });
    const { fence } = closingAfter(0, (write) => write.startsWith("ml.azure.com"));
    const region = await pausedRegion(3, fence, {}, logger);
    // The queue unreadable: a held tick, which hires and cancels nothing but still sweeps paused workers.
    const queue = Object.assign(new MemoryQueue(), { fail: new Error("connection reset") });
    const reconciler = reconcilerOf(region, queue, fence, logger);
    const report = await reconciler.tick();
    expect(report.result).toBe("held");
    expect(resumes()).toEqual([]);
    expect(report.outcomes[0]!.resume).toMatchObject({ resumed: 0, failed: 0, fenced: 3 });
    expect(lines.find((line) => line.msg === "tick")).toMatchObject({
      resumed: 0,
      resume: { resumed: 0, failed: 0, fenced: 3 },
    });
  });
});
