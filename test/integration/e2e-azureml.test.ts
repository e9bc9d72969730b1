import { afterAll, beforeAll, expect, test } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { SUBSCRIPTION, RESOURCE_GROUP, CLI_TEMPLATE } from "../emulators/azureml/fixtures.js";
import type { StoredJob } from "../emulators/azureml/workspace.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon, type Daemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { StaticTokenCredential } from "../../src/azure/credentials.js";

const TASKS = 300;
const TASK_MS = 100;
const RAMP = 10;
const CLUSTERS = { east: 30, west: 20 };

let azurite: AzuriteInstance;
let emulator: ArmEmulator;

beforeAll(async () => {
  [azurite, emulator] = await Promise.all([
    startAzurite(),
    startArmEmulator({ stepMs: 20, timing: { prepareMs: 150 } }),
  ]);
});

afterAll(async () => {
  await emulator?.close();
  await azurite?.stop();
});

test("the daemon drains a queue with AzureML regions (ARM emulator): every tick within the ramp, every task done once", async () => {
  const queueName = "e2e-azureml";
  const queue = new QueueClient(azurite.connectionString, queueName);
  await queue.create();
  for (let i = 0; i < TASKS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => queue.sendMessage(`task-${i + j}`)),
    );
  }

  // A Running job is a worker: it takes one task at a time until the queue is empty, then exits.
  const done = new Map<string, number>();
  const workers: Promise<void>[] = [];
  const work = async (workspace: string, job: StoredJob) => {
    const client = new QueueClient(azurite.connectionString, queueName);
    for (;;) {
      const {
        receivedMessageItems: [message],
      } = await client.receiveMessages({ numberOfMessages: 1, visibilityTimeout: 30 });
      if (!message) break;
      await new Promise((resolve) => setTimeout(resolve, TASK_MS));
      await client.deleteMessage(message.messageId, message.popReceipt);
      done.set(message.messageText, (done.get(message.messageText) ?? 0) + 1);
    }
    emulator.findWorkspace(workspace)!.finish(job.name);
  };
  for (const [name, nodes] of Object.entries(CLUSTERS)) {
    const ws = emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, name);
    ws.addCluster("cluster", nodes);
    ws.onRunning = (job) => void workers.push(work(name, job));
  }

  const regions = Object.keys(CLUSTERS).map((name) => ({
    kind: "azureml",
    name,
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    workspace: name,
    experiment: `e2e-${name}`,
    compute: "cluster",
    template: CLI_TEMPLATE,
    armEndpoint: emulator.url,
  }));
  const config = loadConfig({
    env: {
      WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queueName}`,
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_CONCURRENCY: "1",
      WORKFORCE_RAMP_FACTOR: String(RAMP),
      WORKFORCE_INTERVAL_SECONDS: "0.5",
      WORKFORCE_JITTER: "0",
      WORKFORCE_SCALE_DOWN_DELAY_SECONDS: "0",
      WORKFORCE_METRICS_PORT: "0",
      WORKFORCE_METRICS_HOST: "127.0.0.1",
      WORKFORCE_REGIONS: JSON.stringify(regions),
    },
  });

  const activeJobs = () =>
    Object.keys(CLUSTERS)
      .flatMap((name) => [...emulator.findWorkspace(name)!.jobs.values()])
      .filter((job) => !["Completed", "Failed", "Canceled", "CancelRequested"].includes(job.status)).length;
  const ticks: Array<{ report: TickReport; activeAfter: number }> = [];
  let daemon: Daemon | undefined;
  try {
    let drained: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (drained = resolve));
    daemon = await startDaemon({
      config,
      logger: createLogger({ level: "silent" }),
      credential: new StaticTokenCredential(),
      tlsCa: emulator.ca,
      onTick: (report) => {
        ticks.push({ report, activeAfter: activeJobs() });
        if (report.snapshot.queue.depth === 0 && done.size === TASKS && activeJobs() === 0) drained();
      },
    });
    await finished;
  } finally {
    await daemon?.stop();
  }
  await Promise.all(workers);

  if (process.env.E2E_DEBUG)
    console.log(
      ticks
        .map(
          (t) =>
            `${t.report.snapshot.queue.depth}:${t.report.plan.totals.running}/${t.report.plan.totals.pending}->${t.report.plan.target} hired ${t.report.outcomes.reduce((s, o) => s + o.hired, 0)} active ${t.activeAfter} ${t.report.result}`,
        )
        .join("\n"),
    );
  // Every task was done exactly once, and every worker left.
  expect(done.size).toBe(TASKS);
  expect([...done.values()].every((count) => count === 1)).toBe(true);
  expect((await queue.getProperties()).approximateMessagesCount).toBe(0);

  // The ramp held at every tick: what is active after a tick never exceeds 10 x (running seen + 1).
  for (const { report, activeAfter } of ticks) {
    expect(report.plan.target).toBeLessThanOrEqual(RAMP * (report.plan.totals.running + 1));
    const hired = report.outcomes.reduce((sum, outcome) => sum + outcome.hired, 0);
    if (hired > 0) expect(activeAfter).toBeLessThanOrEqual(RAMP * (report.plan.totals.running + 1));
  }
  // It did grow beyond the first step once workers ran, and never beyond the clusters.
  const peak = Math.max(...ticks.map((tick) => tick.activeAfter));
  expect(peak).toBeGreaterThan(RAMP);
  expect(peak).toBeLessThanOrEqual(CLUSTERS.east + CLUSTERS.west);
  expect(ticks[0]!.report.outcomes.reduce((sum, outcome) => sum + outcome.hired, 0)).toBe(RAMP);
}, 120_000);
