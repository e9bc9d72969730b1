import { readFileSync } from "node:fs";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { createLogger } from "../src/logging/logger.js";
import { WriteLimiterPool } from "../src/azure/rate-limiter.js";
import { azuremlRegionSchema, createAzuremlRegion } from "../src/regions/azureml/index.js";
import type { ArmEmulator } from "../test/emulators/azureml/server.js";
import { regionInput, testContext } from "../test/emulators/azureml/fixtures.js";

/**
 * The daemon's side of the memory bench, alone in a fresh process (its resident memory is the figure):
 * `regions` AzureML regions observed 20 times, `concurrency` regions at a time (the daemon's
 * readConcurrency), against the emulator given as `{"url","ca"}` on argv. Prints one JSON line.
 */
const [emulatorJson, regionsArg, concurrencyArg] = process.argv.slice(2);
const emulator = JSON.parse(emulatorJson!) as { url: string; ca: string };
const count = Number(regionsArg);
const concurrency = Number(concurrencyArg);
const logger = createLogger({ level: "silent" });
const roomy = () => new WriteLimiterPool({ burst: 100_000, perSecond: 100_000 });
const limiters = { writeLimiters: roomy(), readLimiters: roomy() };
const regions = Array.from({ length: count }, (_, i) => {
  const name = `r${String(i).padStart(3, "0")}`;
  const config = azuremlRegionSchema.parse(
    regionInput(emulator as ArmEmulator, name, { requestTimeoutSeconds: 30, retireFinished: "keep" }),
  );
  return createAzuremlRegion(config, testContext(emulator as ArmEmulator, logger), limiters);
});

/** A full garbage collection (V8's `gc`, exposed at run time for the heap figures only). */
function collectGarbage(): void {
  v8.setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** The process's peak resident memory so far (VmHWM), in bytes. */
function peakRss(): number {
  const kb = /VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  return kb ? Number(kb) * 1024 : process.resourceUsage().maxRSS * 1024;
}

const heap: number[] = [];
let rss = 0;
let cpuMicros = 0;
let listed = 0;
for (let tick = 1; tick <= 20; tick++) {
  const cpu = process.cpuUsage();
  const observations = [];
  for (let first = 0; first < regions.length; first += concurrency)
    observations.push(
      ...(await Promise.all(regions.slice(first, first + concurrency).map((region) => region.observe()))),
    );
  const used = process.cpuUsage(cpu);
  // The first tick builds clients and opens connections: a daemon pays it once.
  if (tick > 1) {
    cpuMicros += used.user + used.system;
    listed += observations.reduce((sum, o) => sum + o.running + o.pending, 0);
  }
  if (tick === 20) rss = process.memoryUsage().rss;
  // The heap that stays (garbage collected first): what a daemon keeps from tick to tick.
  if (tick === 5 || tick === 20) collectGarbage();
  heap.push(process.memoryUsage().heapUsed);
}
const peak = peakRss();
await Promise.all(regions.map((region) => region.close?.()));
process.stdout.write(
  JSON.stringify({ rss, peak, heap5: heap[4], heap20: heap[19], cpuPerJob: cpuMicros / listed, listed }) +
    "\n",
);
process.exit(0);
