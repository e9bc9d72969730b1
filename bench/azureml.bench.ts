import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger } from "../src/logging/logger.js";
import { WriteLimiterPool, ARM_READ_BUDGET } from "../src/azure/rate-limiter.js";
import { stepPolicy } from "../src/policy/index.js";
import { Reconciler } from "../src/controller/reconciler.js";
import {
  azuremlRegionSchema,
  createAzuremlRegion,
  type AzuremlRegion,
} from "../src/regions/azureml/index.js";
import {
  startArmEmulator,
  type ArmEmulator,
  type ArmEmulatorOptions,
} from "../test/emulators/azureml/server.js";
import { SETTINGS } from "../src/config/settings.js";
import { fixedPageFloor, recordPage, scanCost, transportFloor } from "./azureml-floors.js";
import {
  regionInput,
  testContext,
  SUBSCRIPTION,
  RESOURCE_GROUP,
  seededJobProperties,
} from "../test/emulators/azureml/fixtures.js";

/**
 * AzureML cost, against the emulator as the service answers (decorated jobs, ARM's budgets):
 * 1. retiring 10,000 finished jobs: refusals, and reads per tick back to 1 + active pages;
 * 2. 84 regions x 50,000 active jobs, 20 ticks: resident memory, CPU per listed job, heap tick 5 -> 20
 *    (the emulator in its own process);
 * 3. peak memory of `workforce --help` and `workforce plan` (no Azure SDK loaded);
 * 4. tick time with 1.5 s per ARM call against the critical-path bound: growth, shrink, 200 regions,
 *    500 active jobs per region;
 * 5. ARM's read budget on at 84 x 500: every region read when the budget allows, a budget hold when not.
 */
const LATENCY_MS = 1500;
const PAGE_SIZE = 100;
const SUBMIT_CONCURRENCY = 8;
const READ_CONCURRENCY = SETTINGS.find((spec) => spec.key === "readConcurrency")!.default as number;
const here = dirname(fileURLToPath(import.meta.url));
const logger = createLogger({ level: "silent" });
const roomy = () => new WriteLimiterPool({ burst: 100_000, perSecond: 100_000 });

function makeRegions(
  emulator: { url: string; ca: string },
  count: number,
  overrides: Record<string, unknown> = {},
  limiters: { writeLimiters: WriteLimiterPool; readLimiters: WriteLimiterPool } = {
    writeLimiters: roomy(),
    readLimiters: roomy(),
  },
): AzuremlRegion[] {
  return Array.from({ length: count }, (_, i) => {
    const name = `r${String(i).padStart(3, "0")}`;
    const config = azuremlRegionSchema.parse(
      regionInput(emulator as ArmEmulator, name, { requestTimeoutSeconds: 30, ...overrides }),
    );
    return createAzuremlRegion(config, testContext(emulator as ArmEmulator, logger), limiters);
  });
}

function seed(emulator: ArmEmulator, regions: number, nodes: number, running: number, queued = 0): void {
  for (let i = 0; i < regions; i++) {
    const name = `r${String(i).padStart(3, "0")}`;
    const ws = emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, name);
    ws.addCluster("cluster", nodes);
    for (let j = 0; j < running + queued; j++)
      ws.createJob(`exp-${name}-s${j}`, seededJobProperties(ws, `exp-${name}`, true));
    ws.schedule();
  }
}

async function retireScenario(): Promise<void> {
  const emulator = await startArmEmulator({
    pageSize: PAGE_SIZE,
    stepMs: 0,
    budget: false,
    logBodies: false,
  });
  try {
    seed(emulator, 1, 500, 500);
    const ws = emulator.findWorkspace("r000")!;
    ws.seedFinished(10_000, () => seededJobProperties(ws, "exp-r000", true), "done");
    const [region] = makeRegions(emulator, 1, { retireBatch: 1000 });
    const readsPerTick: number[] = [];
    for (let tick = 0; tick < 30; tick++) {
      const before = region!.calls.reads;
      await region!.observe();
      readsPerTick.push(region!.calls.reads - before);
      await region!.settled();
      if ([...ws.jobs.values()].every((job) => job.status !== "Completed" || job.properties.isArchived))
        break;
    }
    const before = region!.calls.reads;
    await region!.observe();
    const after = region!.calls.reads - before;
    const puts = emulator.requests.filter((r) => r.operation === "jobs.createOrUpdate");
    const refused = puts.filter((r) => r.status !== 200).length;
    console.log(
      [
        `retiring 10,000 finished decorated jobs (500 active, retireBatch 1000, ${PAGE_SIZE} a page):`,
        `  archive PUTs              ${puts.length}, refused ${refused} (goal 0)`,
        `  ticks to retire them all  ${readsPerTick.length}`,
        `  reads per tick            ${readsPerTick[0]} at first -> ${after} once retired (goal 1 + ${Math.ceil(500 / PAGE_SIZE)} active pages = ${1 + Math.ceil(500 / PAGE_SIZE)})`,
      ].join("\n"),
    );
  } finally {
    await emulator.close();
  }
}

interface DaemonSide {
  rss: number;
  peak: number;
  heap5: number;
  heap20: number;
  cpuPerJob: number;
}

/** The daemon's side of 20 ticks in a fresh process (azureml-daemon-child.ts). */
async function daemonSide(
  emulator: { url: string; ca: string },
  regions: number,
  concurrency: number,
): Promise<DaemonSide> {
  const child = spawn(
    process.execPath,
    [join(here, "azureml-daemon-child.js"), JSON.stringify(emulator), String(regions), String(concurrency)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  return JSON.parse(line) as DaemonSide;
}

async function memoryScenario(): Promise<void> {
  const REGIONS = 84;
  const PER_REGION = Math.ceil(50_000 / REGIONS);
  const QUARTER = Math.ceil(REGIONS / 4);
  const child = spawn(
    process.execPath,
    [join(here, "azureml-emulator-child.js"), String(REGIONS), String(PER_REGION)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  try {
    const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
    const emulator = JSON.parse(line) as { url: string; ca: string };
    const all = await daemonSide(emulator, REGIONS, READ_CONCURRENCY);
    const quarter = await daemonSide(emulator, REGIONS, QUARTER);
    const floor = await transportFloor(emulator, REGIONS);
    const page = await recordPage(emulator, "r000");
    const idleServerFloor = await fixedPageFloor(page, REGIONS, Math.ceil(PER_REGION / PAGE_SIZE));
    const reading = scanCost(page, "workforce.exp-r000");
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
    const met = (ok: boolean) => (ok ? "met" : "NOT met");
    const heapRatio = all.heap20 / all.heap5;
    console.log(
      [
        `${REGIONS} regions x ${(REGIONS * PER_REGION).toLocaleString("en")} active jobs, 20 ticks (the daemon's side and the emulator each in a process of its own):`,
        `  resident memory after 20 ticks  ${mb(all.rss)}, peak ${mb(all.peak)} (goal <= 150 MB: ${met(all.rss <= 150 * 2 ** 20)}; before: 523 MB, then 250, then 184-205)`,
        `  CPU per listed job per tick     ${all.cpuPerJob.toFixed(2)} us (goal <= 10 us: ${met(all.cpuPerJob <= 10)}; before: 41 us); ${((all.cpuPerJob * REGIONS * PER_REGION) / 1e6).toFixed(2)} s a tick`,
        `  heap kept, tick 5 -> tick 20    ${(all.heap5 / 2 ** 20).toFixed(1)} MB -> ${(all.heap20 / 2 ** 20).toFixed(1)} MB (ratio ${heapRatio.toFixed(2)}, goal flat: ${met(heapRatio <= 1.1)})`,
        `  where it goes: node + the region's modules, no region yet: ${baselineRss()} MB resident;`,
        `    the same pages fetched by node:https alone (no pipeline, no reading): ${floor.toFixed(2)} us CPU per job;`,
        `    the same, from a server in another process that does no work per request: ${idleServerFloor.toFixed(2)} us;`,
        `    reading a page (the region's reader alone, 16 KB chunks, ${(page.length / PAGE_SIZE / 1024).toFixed(1)} KB a job): ${reading.toFixed(2)} us a job;`,
        `    ${QUARTER} regions read at a time (readConcurrency ${QUARTER}: a tick is 4 rounds of calls): ${mb(quarter.rss)} after 20 ticks, peak ${mb(quarter.peak)}, ${quarter.cpuPerJob.toFixed(2)} us a job`,
      ].join("\n"),
    );
  } finally {
    child.kill("SIGTERM");
  }
}

/** Resident memory of a fresh node that has loaded the AzureML region and the HTTP pipeline. */
function baselineRss(): string {
  const script = `await import(${JSON.stringify(join(here, "..", "src", "regions", "azureml", "index.js"))}); await import("@azure/core-rest-pipeline"); process.stdout.write(String(process.memoryUsage().rss))`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    cwd: here,
  });
  return (Number(run.stdout) / 2 ** 20).toFixed(0);
}

function cliScenario(): void {
  const main = join(here, "..", "src", "cli", "main.js");
  // VmHWM of the process's own memory map (ru_maxrss would count the forked image of this big bench
  // process before exec).
  const hook =
    "data:text/javascript," +
    encodeURIComponent(
      'import { readFileSync } from "node:fs"; process.on("exit", () => { const hwm = /VmHWM:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8")); process.stderr.write("MAXRSS " + (hwm ? hwm[1] : process.resourceUsage().maxRSS) + "\\n"); });',
    );
  const peak = (args: string[]) => {
    const run = spawnSync(process.execPath, ["--import", hook, main, ...args], { encoding: "utf8" });
    const kb = Number(/MAXRSS (\d+)/.exec(run.stderr)?.[1]);
    return `${(kb / 1024).toFixed(0)} MB`;
  };
  console.log(
    [
      "CLI peak resident memory (no Azure SDK loaded; goal <= 60 MB, before: 123 MB):",
      `  workforce --help                                    ${peak(["--help"])}`,
      `  workforce plan --queue 1600 --concurrency 4 --running 3  ${peak(["plan", "--queue", "1600", "--concurrency", "4", "--running", "3"])}`,
    ].join("\n"),
  );
}

interface TickCase {
  name: string;
  regions: number;
  nodes: number;
  running: number;
  queued: number;
  depth: number;
  concurrency: number;
}

async function tickScenario(c: TickCase, budget: ArmEmulatorOptions["budget"] = undefined): Promise<void> {
  const emulator = await startArmEmulator({
    pageSize: PAGE_SIZE,
    stepMs: 0,
    logBodies: false,
    ...(budget !== undefined ? { budget } : {}),
  });
  const limiters = {
    writeLimiters: new WriteLimiterPool(),
    readLimiters: new WriteLimiterPool(ARM_READ_BUDGET),
  };
  const regions: AzuremlRegion[] = [];
  try {
    seed(emulator, c.regions, c.nodes, c.running, c.queued);
    regions.push(...makeRegions(emulator, c.regions, {}, limiters));
    const reconciler = new Reconciler({
      queue: { description: "bench:fixed", depth: async () => c.depth },
      regions,
      policy: stepPolicy,
      parameters: {
        concurrency: c.concurrency,
        maxWorkers: 100_000,
        minWorkers: 0,
        rampFactor: 10,
        scaleDownDelayMs: 0,
      },
      callTimeoutMs: 60_000,
      actTimeoutMs: 120_000,
      readConcurrency: READ_CONCURRENCY,
      staleTicks: 3,
      dryRun: false,
      logger,
    });
    // Warm: clients built, TLS open (a daemon after its first tick); the budgets refill meanwhile.
    await reconciler.preview();
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    emulator.addFault({ kind: "latency", ms: LATENCY_MS });
    const reads0 = regions.reduce((sum, region) => sum + region.calls.reads, 0);
    const writes0 = regions.reduce((sum, region) => sum + region.calls.writes, 0);
    const started = performance.now();
    const report = await reconciler.tick();
    const tickMs = performance.now() - started;
    const reads = regions.reduce((sum, region) => sum + region.calls.reads, 0) - reads0;
    const writes = regions.reduce((sum, region) => sum + region.calls.writes, 0) - writes0;
    // The bound: observe = list pages in a chain (the cluster read beside them) per round of regions
    // beyond the read concurrency, or the read budget's refill if it binds; act = rounds of submit
    // concurrency, or the write budget's refill if it binds.
    const pages = Math.max(1, Math.ceil((c.running + c.queued) / PAGE_SIZE));
    const observeRounds = Math.ceil(c.regions / READ_CONCURRENCY) * pages;
    const readBudgetS = Math.max(0, (reads - ARM_READ_BUDGET.burst!) / ARM_READ_BUDGET.perSecond!);
    const observeS = Math.max(observeRounds * (LATENCY_MS / 1000), readBudgetS);
    const actRounds = Math.max(
      0,
      ...report.plan.regions.map((plan) => Math.ceil(Math.max(plan.hire, plan.cancel) / SUBMIT_CONCURRENCY)),
    );
    const writeBudgetS = Math.max(0, (writes - 200) / 10);
    const actS = Math.max(actRounds * (LATENCY_MS / 1000), writeBudgetS);
    const boundS = observeS + actS;
    const hired = report.outcomes.reduce((sum, o) => sum + o.hired, 0);
    const cancelled = report.outcomes.reduce((sum, o) => sum + o.cancelled, 0);
    console.log(
      [
        `tick, ${c.name}: ${c.regions} regions, ${c.running + c.queued} active jobs each, ${LATENCY_MS} ms per ARM call:`,
        `  result ${report.result}; hired ${hired}, cancelled ${cancelled}; reads ${reads}, writes ${writes}`,
        `  tick ${(tickMs / 1000).toFixed(2)} s (observe ${(report.durations.observeMs / 1000).toFixed(2)}, act ${(report.durations.actMs / 1000).toFixed(2)}); bound ${boundS.toFixed(2)} s (observe ${observeS.toFixed(2)}: ${observeRounds} call(s) in a chain${readBudgetS > observeRounds * 1.5 ? ", read budget binds" : ""}; act ${actS.toFixed(2)}: ${actRounds} round(s)${writeBudgetS > actRounds * 1.5 ? ", write budget binds" : ""})`,
        `  ratio ${(tickMs / 1000 / boundS).toFixed(2)} (goal <= 1.5)`,
      ].join("\n"),
    );
  } finally {
    await Promise.all(regions.map((region) => region.close?.()));
    await emulator.close();
  }
}

async function budgetScenario(): Promise<void> {
  const emulator = await startArmEmulator({ pageSize: PAGE_SIZE, stepMs: 0, logBodies: false });
  const limiters = {
    writeLimiters: new WriteLimiterPool(),
    readLimiters: new WriteLimiterPool(ARM_READ_BUDGET),
  };
  try {
    seed(emulator, 84, 500, 500);
    const regions = makeRegions(emulator, 84, { requestTimeoutSeconds: 15 }, limiters);
    const read = async () => {
      const results = await Promise.allSettled(regions.map((region) => region.observe()));
      const held = results.filter((r) => r.status === "rejected");
      const budget = held.filter((r) => /budget/.test(String((r as PromiseRejectedResult).reason)));
      return {
        read: results.length - held.length,
        held: held.length,
        budget: budget.length,
        example: budget[0],
      };
    };
    const first = await read();
    const second = await read();
    const throttled = emulator.requests.filter((r) => r.status === 429).length;
    console.log(
      [
        "ARM read budget on (250 + 25/s per subscription), 84 regions x 500 active jobs (6 reads each):",
        `  first tick (budget allows)         ${first.read}/84 regions read, ${first.held} held`,
        `  at once again (budget spent)       ${second.read}/84 read, ${second.budget} held for budget`,
        `  429s from ARM                      ${throttled}`,
        `  a hold says: ${String((second.example as PromiseRejectedResult | undefined)?.reason?.message ?? "-").slice(0, 150)}`,
      ].join("\n"),
    );
    await Promise.all(regions.map((region) => region.close?.()));
  } finally {
    await emulator.close();
  }
}

export default async function bench(): Promise<void> {
  // AZUREML_BENCH=tick:500,budget runs only those (names: memory, retire, cli, tick:NAME, budget).
  const only = process.env.AZUREML_BENCH?.split(",");
  const run = (name: string) => !only || only.includes(name);
  // First, while the process is fresh: its resident memory is what the 20 ticks leave.
  if (run("memory")) await memoryScenario();
  if (run("retire")) await retireScenario();
  if (run("cli")) cliScenario();
  const cases: TickCase[] = [
    { name: "growth", regions: 84, nodes: 20, running: 3, queued: 0, depth: 8000, concurrency: 4 },
    { name: "shrink", regions: 84, nodes: 0, running: 0, queued: 2, depth: 0, concurrency: 4 },
    { name: "200 regions", regions: 200, nodes: 4, running: 3, queued: 0, depth: 80_000, concurrency: 4 },
    { name: "500 active", regions: 84, nodes: 500, running: 500, queued: 0, depth: 168_000, concurrency: 4 },
  ];
  for (const c of cases) if (run(`tick:${c.name.split(" ")[0]}`)) await tickScenario(c);
  if (run("budget")) await budgetScenario();
}
