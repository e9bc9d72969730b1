import { createLogger } from "../src/logging/logger.js";
import { WriteLimiterPool } from "../src/azure/rate-limiter.js";
import {
  azuremlRegionSchema,
  createAzuremlRegion,
  type AzuremlRegion,
} from "../src/regions/azureml/index.js";
import type { AzuremlRegionInput } from "../src/regions/azureml/index.js";
import { startArmEmulator, type ArmEmulator } from "../test/emulators/azureml/server.js";
import { startMlApiEmulator, type MlApiEmulator } from "../test/emulators/azureml/ml-api.js";
import {
  regionInput,
  RESOURCE_GROUP,
  seededJobProperties,
  SUBSCRIPTION,
  testContext,
} from "../test/emulators/azureml/fixtures.js";

/**
 * What upstream runs, measured against the emulators (ARM + ml.azure.com over one job store):
 * 1. `listing: index` vs `listing: arm` with 500 active jobs and 10,000 finished ones not (yet) retired:
 *    reads per observation and the time of one;
 * 2. resuming 300 paused workers under ARM's write budget (200 burst, 10/s): time against the bound the
 *    budget sets.
 */
const ACTIVE = 500;
const FINISHED = 10_000;

function region(
  arm: ArmEmulator,
  ml: MlApiEmulator,
  ws: string,
  overrides: Partial<AzuremlRegionInput>,
  limiters = new WriteLimiterPool({ burst: 10_000, perSecond: 10_000 }),
): AzuremlRegion {
  const config = azuremlRegionSchema.parse(
    regionInput(arm, ws, { mlEndpoint: ml.url, requestTimeoutSeconds: 60, ...overrides }),
  );
  return createAzuremlRegion(config, testContext(arm, createLogger({ level: "silent" })), {
    writeLimiters: limiters,
    readLimiters: new WriteLimiterPool({ burst: 100_000, perSecond: 100_000 }),
  });
}

async function listings(): Promise<void> {
  const arm = await startArmEmulator({ stepMs: 0, budget: false });
  const ml = await startMlApiEmulator({ arm });
  try {
    const ws = arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, "big");
    ws.addCluster("cluster", 1000);
    ws.seedFinished(FINISHED, () => seededJobProperties(ws, "exp-big", true), "done");
    for (let i = 0; i < ACTIVE; i++) ws.createJob(`exp-big-a${i}`, seededJobProperties(ws, "exp-big", true));
    console.log(`| listing | observation | ARM reads | ml.azure.com reads | time of one observation |`);
    console.log(`| --- | --- | --- | --- | --- |`);
    for (const listing of ["arm", "index"] as const) {
      const r = region(arm, ml, "big", { listing, retireFinished: "keep", maxListPages: 1000 });
      await r.observe(); // warm: TLS, the workspace location
      const arm0 = r.calls.reads;
      const ml0 = r.mlCalls.reads;
      const started = performance.now();
      const seen = await r.observe();
      const ms = performance.now() - started;
      console.log(
        `| ${listing} | ${seen.running} running, ${seen.pending} pending | ${r.calls.reads - arm0} | ${r.mlCalls.reads - ml0} | ${ms.toFixed(0)} ms |`,
      );
      await r.close?.();
    }
  } finally {
    await ml.close();
    await arm.close();
  }
}

async function resumes(): Promise<void> {
  const PAUSED = 300;
  const arm = await startArmEmulator({ stepMs: 0, budget: false });
  const ml = await startMlApiEmulator({ arm });
  try {
    const ws = arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, "paused");
    ws.addCluster("cluster", PAUSED);
    for (let i = 0; i < PAUSED; i++) {
      const job = ws.createJob(`exp-paused-${i}`, seededJobProperties(ws, "exp-paused", true));
      job.status = "Paused";
    }
    const burst = 200;
    const perSecond = 10;
    const r = region(
      arm,
      ml,
      "paused",
      { resumeBatch: PAUSED, submitConcurrency: 8 },
      new WriteLimiterPool({ burst, perSecond }),
    );
    await r.observe();
    const started = performance.now();
    const result = await r.resumePaused();
    const s = (performance.now() - started) / 1000;
    const bound = Math.max(0, PAUSED - burst) / perSecond;
    console.log(
      `resume ${PAUSED} paused workers, write budget ${burst} burst + ${perSecond}/s: ${result.resumed} resumed, ${result.failed} failed in ${s.toFixed(1)} s; bound ${bound.toFixed(1)} s; ratio ${(s / bound).toFixed(2)}`,
    );
  } finally {
    await ml.close();
    await arm.close();
  }
}

export default async function bench(): Promise<void> {
  await listings();
  await resumes();
}
