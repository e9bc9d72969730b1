import { createLogger } from "../src/logging/logger.js";
import { WriteLimiterPool } from "../src/azure/rate-limiter.js";
import { stepPolicy } from "../src/policy/index.js";
import { Reconciler } from "../src/controller/reconciler.js";
import {
  azuremlRegionSchema,
  createAzuremlRegion,
  type AzuremlRegion,
} from "../src/regions/azureml/index.js";
import { ArmWorkspace } from "../src/regions/azureml/arm.js";
import { StaticTokenCredential } from "../src/azure/credentials.js";
import { startArmEmulator } from "../test/emulators/azureml/server.js";
import { SETTINGS } from "../src/config/settings.js";
import {
  regionInput,
  testContext,
  SUBSCRIPTION,
  RESOURCE_GROUP,
  seededJobProperties,
} from "../test/emulators/azureml/fixtures.js";

/**
 * AzureML tick cost.
 * 1. 84 regions, 1.5 s injected into every ARM call: one reconcile tick (observe all, decide, hire) with the
 *    real SDK against the emulator; prints tick time, the critical-path lower bound and their ratio.
 * 2. API calls per region per tick with 500 active jobs and 0 / 10,000 finished ones.
 */
const LATENCY_MS = 1500;
const REGIONS = 84;
const RUNNING_PER_REGION = 3;
const NODES_PER_REGION = 20;
const QUEUE_DEPTH = 8000;
const CONCURRENCY = 4;
const PAGE_SIZE = 100;

async function tickScenario(readConcurrency: number): Promise<void> {
  const emulator = await startArmEmulator({ pageSize: PAGE_SIZE });
  const logger = createLogger({ level: "silent" });
  const limiters = new WriteLimiterPool();
  const regions: AzuremlRegion[] = [];
  try {
    for (let i = 0; i < REGIONS; i++) {
      const name = `r${String(i).padStart(2, "0")}`;
      const ws = emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, name);
      ws.addCluster("cluster", NODES_PER_REGION);
      for (let j = 0; j < RUNNING_PER_REGION; j++)
        ws.createJob(`exp-${name}-run${j}`, seededJobProperties(ws, `exp-${name}`, true));
      ws.schedule();
      const config = azuremlRegionSchema.parse(regionInput(emulator, name, { requestTimeoutSeconds: 30 }));
      regions.push(
        createAzuremlRegion(config, testContext(emulator, logger.child({ region: name })), {
          writeLimiters: limiters,
        }),
      );
    }
    emulator.addFault({ kind: "latency", ms: LATENCY_MS });
    const reconciler = new Reconciler({
      queue: { description: "bench:fixed", depth: async () => QUEUE_DEPTH },
      regions,
      policy: stepPolicy,
      parameters: {
        concurrency: CONCURRENCY,
        maxWorkers: 50_000,
        minWorkers: 0,
        rampFactor: 10,
        scaleDownDelayMs: 300_000,
      },
      callTimeoutMs: 60_000,
      actTimeoutMs: 120_000,
      readConcurrency,
      staleTicks: 3,
      dryRun: false,
      logger,
    });
    // A daemon's clients are warm after its first tick (SDK clients built, TLS sessions open): warm up with
    // a preview (observe + plan, no action), and report the cold read too.
    const coldStarted = performance.now();
    await reconciler.preview();
    const coldObserveMs = performance.now() - coldStarted;
    const callsBefore = regions.map((region) => ({ ...region.calls }));
    const started = performance.now();
    const report = await reconciler.tick();
    const tickMs = performance.now() - started;

    // Lower bound: the longest chain of dependent calls. Observe: the list pages one after the other (the
    // cluster read runs beside them); act: ceil(hires / submits in flight) rounds; the two phases in sequence.
    const submitConcurrency = 8;
    const observeChain = Math.max(
      ...regions.map(() => Math.max(1, Math.ceil((RUNNING_PER_REGION + 1) / PAGE_SIZE))),
    );
    const actChain = Math.max(
      0,
      ...report.plan.regions.map((plan) => Math.ceil(plan.hire / submitConcurrency)),
    );
    const boundMs = (observeChain + actChain) * LATENCY_MS;
    const calls = regions.map(
      (region, i) =>
        region.calls.reads + region.calls.writes - callsBefore[i]!.reads - callsBefore[i]!.writes,
    );
    const reads = regions.reduce((sum, region, i) => sum + region.calls.reads - callsBefore[i]!.reads, 0);
    const writes = regions.reduce((sum, region, i) => sum + region.calls.writes - callsBefore[i]!.writes, 0);
    const hired = report.outcomes.reduce((sum, outcome) => sum + outcome.hired, 0);
    console.log(
      [
        `tick, ${REGIONS} regions, ${LATENCY_MS} ms per ARM call, readConcurrency ${readConcurrency}:`,
        `  result ${report.result}; queue ${QUEUE_DEPTH} / concurrency ${CONCURRENCY}; running ${report.plan.totals.running}; target ${report.plan.target}; hired ${hired}`,
        `  tick time               ${(tickMs / 1000).toFixed(2)} s (observe ${(report.durations.observeMs / 1000).toFixed(2)} s, act ${(report.durations.actMs / 1000).toFixed(2)} s)`,
        `  critical-path bound     ${(boundMs / 1000).toFixed(2)} s (${observeChain} observe + ${actChain} act round(s) x ${LATENCY_MS / 1000} s)`,
        `  ratio                   ${(tickMs / boundMs).toFixed(2)} (goal <= 1.5)`,
        `  ARM calls per region    ${(calls.reduce((a, b) => a + b, 0) / REGIONS).toFixed(2)} (reads ${(reads / REGIONS).toFixed(2)}, writes ${(writes / REGIONS).toFixed(2)}); max ${Math.max(...calls)}`,
        `  first (cold) observe    ${(coldObserveMs / 1000).toFixed(2)} s (builds ${REGIONS} SDK clients, opens TLS connections)`,
        `  upstream for 84 regions: 14.5 min sequential, 1.3 min parallel`,
      ].join("\n"),
    );
  } finally {
    await Promise.all(regions.map((region) => region.close?.()));
    await emulator.close();
  }
}

async function listingScenario(): Promise<void> {
  const emulator = await startArmEmulator({ pageSize: PAGE_SIZE, stepMs: 0 });
  const logger = createLogger({ level: "silent" });
  try {
    const ws = emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1");
    ws.addCluster("cluster", 300);
    for (let i = 0; i < 500; i++) ws.createJob(`exp-ws1-a${i}`, seededJobProperties(ws, "exp-ws1", true));
    ws.schedule();
    const config = azuremlRegionSchema.parse(regionInput(emulator, "ws1"));
    const region = createAzuremlRegion(config, testContext(emulator, logger), {
      writeLimiters: new WriteLimiterPool(),
    });
    const raw = new ArmWorkspace({
      subscriptionId: SUBSCRIPTION,
      resourceGroup: RESOURCE_GROUP,
      workspace: "ws1",
      endpoint: emulator.url,
      credential: new StaticTokenCredential(),
      tlsCa: emulator.ca,
      retries: 0,
      attemptTimeoutMs: 30_000,
      writeLimiter: new WriteLimiterPool().get("x"),
      logger,
    });
    const perTick = async () => {
      const before = region.calls.reads + region.calls.writes;
      await region.observe();
      await region.settled();
      return region.calls.reads + region.calls.writes - before;
    };
    /** What a list with no tag filter (every job of the workspace, archived or not) costs in pages. */
    const naivePages = async () => {
      let pages = 0;
      let url: string | undefined = raw.jobsUrl({ listViewType: "All" });
      do {
        const page = (await raw.getJson("jobs.list", url)) as { nextLink?: string };
        url = page.nextLink;
        pages++;
      } while (url);
      return pages;
    };
    const at0 = await perTick();
    const naive0 = await naivePages();
    ws.seedFinished(10_000, () => seededJobProperties(ws, "exp-ws1", true, true), "ours");
    ws.seedFinished(10_000, () => seededJobProperties(ws, "other", false), "theirs");
    const at10k = await perTick();
    const naive10k = await naivePages();
    console.log(
      [
        `ARM calls per region per tick (observe; 500 active jobs, ${PAGE_SIZE} jobs a page):`,
        `  0 finished jobs                           ${at0} (tag-filtered ActiveOnly list + cluster)`,
        `  10,000 finished (retired) + 10,000 others ${at10k}`,
        `  an unfiltered list would read             ${naive0 + 1} -> ${naive10k + 1}`,
      ].join("\n"),
    );
    await region.close?.();
  } finally {
    await emulator.close();
  }
}

export default async function bench(): Promise<void> {
  await listingScenario();
  // The default WORKFORCE_READ_CONCURRENCY, then a setting below the number of regions for contrast.
  await tickScenario(SETTINGS.find((spec) => spec.key === "readConcurrency")!.default as number);
  await tickScenario(16);
}
