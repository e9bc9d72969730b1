import { Writable } from "node:stream";
import { afterAll, beforeAll, expect, test } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { startMlApiEmulator, type MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { SUBSCRIPTION, RESOURCE_GROUP, CLI_TEMPLATE } from "../emulators/azureml/fixtures.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon, type Daemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics } from "../../src/metrics/registry.js";
import { StaticTokenCredential } from "../../src/azure/credentials.js";

// The daemon with two AzureML regions, one listed through ARM and one through the index API, both
// resuming paused workers: preempted workers come back, one past its execution limit is cancelled and
// replaced, and an HTML 503 from the index front door costs nothing but a retry.
let azurite: AzuriteInstance;
let arm: ArmEmulator;
let ml: MlApiEmulator;

beforeAll(async () => {
  [azurite, arm] = await Promise.all([startAzurite(), startArmEmulator({ stepMs: 20 })]);
  ml = await startMlApiEmulator({ arm });
});

afterAll(async () => {
  await ml?.close();
  await arm?.close();
  await azurite?.stop();
});

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("the daemon resumes preempted workers every tick, cancels one past its execution limit, and lists by ARM or the index alike", async () => {
  const queueName = "e2e-upstream";
  const queue = new QueueClient(azurite.connectionString, queueName);
  await queue.create();
  // Tasks nobody takes: the target stays at 4 workers (concurrency 1).
  await Promise.all(Array.from({ length: 4 }, (_, i) => queue.sendMessage(`task-${i}`)));

  const names = { east: "arm", west: "index" } as const;
  for (const name of Object.keys(names))
    arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, name).addCluster("cluster", 4);
  const regions = Object.entries(names).map(([name, listing]) => ({
    kind: "azureml",
    name,
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    workspace: name,
    experiment: `up-${name}`,
    compute: "cluster",
    template: CLI_TEMPLATE,
    armEndpoint: arm.url,
    mlEndpoint: ml.url,
    listing,
  }));
  const config = loadConfig({
    env: {
      WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queueName}`,
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_CONCURRENCY: "1",
      WORKFORCE_POLICY: "proportional",
      WORKFORCE_INTERVAL_SECONDS: "0.3",
      WORKFORCE_JITTER: "0",
      WORKFORCE_METRICS_PORT: "0",
      WORKFORCE_METRICS_HOST: "127.0.0.1",
      WORKFORCE_REGIONS: JSON.stringify(regions),
    },
  });
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const metrics = createMetrics({ processMetrics: false });
  const jobs = (ws: string) => [...arm.findWorkspace(ws)!.jobs.values()];
  const runningIn = (ws: string) => jobs(ws).filter((job) => job.status === "Running");
  const ticks: TickReport[] = [];
  ml.addFault({ kind: "html503", operations: ["index.entities"], times: 1 });

  let daemon: Daemon | undefined;
  try {
    daemon = await startDaemon({
      config,
      logger: createLogger({ level: "info", destination }),
      metrics,
      credential: new StaticTokenCredential(),
      tlsCa: arm.ca,
      onTick: (report) => void ticks.push(report),
    });
    await until("4 running workers", () => runningIn("east").length + runningIn("west").length === 4);

    // Preemptions: one worker in each region; the one in east is past its max execution time.
    const [expired] = runningIn("east");
    const [paused] = runningIn("west");
    ml.preempt(arm.findWorkspace("east")!, expired!.name);
    ml.expire(arm.findWorkspace("east")!, expired!.name);
    ml.preempt(arm.findWorkspace("west")!, paused!.name);

    await until(
      "the paused worker running again, the expired one cancelled and replaced",
      () =>
        paused!.status === "Running" &&
        ["CancelRequested", "Canceled"].includes(expired!.status) &&
        runningIn("east").length + runningIn("west").length === 4,
    );
  } finally {
    await daemon?.stop();
    if (process.env.E2E_DEBUG) for (const line of lines) console.log(JSON.stringify(line));
  }

  // Never more than the 4 the queue asks for, whatever paused and came back.
  const active = (ws: string) =>
    jobs(ws).filter((job) => !["Canceled", "CancelRequested", "Completed"].includes(job.status));
  expect(active("east").length + active("west").length).toBe(4);
  expect(jobs("east").length + jobs("west").length).toBe(5); // 4 hires + 1 replacement

  const resumed = (await metrics.resumed.get()).values;
  const count = (region: string, outcome: string) =>
    resumed.find((v) => v.labels.region === region && v.labels.outcome === outcome)?.value ?? 0;
  expect(count("west", "resumed")).toBe(1);
  expect(count("east", "cancelled")).toBe(1);
  expect(count("east", "failed") + count("west", "failed")).toBe(0);

  // The tick log says what the sweep did.
  const tickLines = lines.filter((line) => line.msg === "tick");
  expect(tickLines.some((line) => line.resumed === 1)).toBe(true);
  expect(tickLines.some((line) => (line.resume as { cancelled?: number } | undefined)?.cancelled === 1)).toBe(
    true,
  );
  // The HTML 503 was retried within its tick: no tick lost the west region.
  expect(ml.requests.some((r) => r.faults.includes("html503"))).toBe(true);
  expect(ticks.every((report) => report.snapshot.regions.every((reading) => reading.fresh))).toBe(true);
  expect(ml.requests.filter((r) => r.operation === "index.entities" && r.workspace === "east")).toHaveLength(
    0,
  );
});
