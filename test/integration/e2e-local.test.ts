import { afterAll, beforeAll, expect, test } from "vitest";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon, type Daemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { pushTasks } from "../../src/queue/push.js";
import { parseQueueSpec, type StorageQueueSpec } from "../../src/queue/spec.js";
import { LocalRegion } from "../../src/regions/local/index.js";
import { workforceWorkerCommand } from "../../src/regions/local/command.js";

const TASKS = 240;
const CONCURRENCY = 4;
const CAPACITY = 12;
const MAX_WORKERS = 10;

let azurite: AzuriteInstance;
let workDir: string;

beforeAll(async () => {
  azurite = await startAzurite();
  workDir = mkdtempSync(join(tmpdir(), "wf-e2e-"));
});

afterAll(async () => {
  await azurite?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

test("the daemon drains a few hundred tasks with a local region: every tick within ramp and cap, no task interrupted", async () => {
  const queueName = "e2e-local";
  const queueUrl = `${azurite.queueEndpoint}/${queueName}`;
  const markers = join(workDir, "markers");
  const stateDir = join(workDir, "state");
  await new QueueClient(azurite.connectionString, queueName).create();
  // Each task leaves a start marker, works a little, then an end marker: a task cut short leaves a start
  // marker without its end marker.
  const commands = Array.from(
    { length: TASKS },
    (_, i) =>
      `mkdir -p ${markers} && touch ${markers}/${i}.start && sleep 0.${(i % 4) + 2} && touch ${markers}/${i}.end`,
  );
  await pushTasks({
    spec: parseQueueSpec(queueUrl) as StorageQueueSpec,
    connectionString: azurite.connectionString,
    commands,
  });

  const config = loadConfig({
    env: {
      WORKFORCE_QUEUE: queueUrl,
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_CONCURRENCY: String(CONCURRENCY),
      WORKFORCE_MAX_WORKERS: String(MAX_WORKERS),
      WORKFORCE_INTERVAL_SECONDS: "1",
      WORKFORCE_JITTER: "0",
      WORKFORCE_SCALE_DOWN_DELAY_SECONDS: "2",
      WORKFORCE_METRICS_PORT: "0",
      WORKFORCE_METRICS_HOST: "127.0.0.1",
      WORKFORCE_REGIONS: JSON.stringify([
        {
          kind: "local",
          name: "local",
          capacity: CAPACITY,
          stateDir,
          // Workers wait on an empty queue, so the controller must drain the surplus ones itself.
          command: workforceWorkerCommand(60),
          env: { WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString, WORKFORCE_LOG_LEVEL: "warn" },
        },
      ]),
    },
  });

  const reports: TickReport[] = [];
  let finished: () => void = () => undefined;
  const allGone = new Promise<void>((resolve) => (finished = resolve));
  const daemon: Daemon = await startDaemon({
    config,
    logger: createLogger({ level: "warn" }),
    onTick: (report) => {
      reports.push(report);
      const t = report.plan.totals;
      if (report.snapshot.queue.depth === 0 && t.running + t.pending + t.draining === 0) finished();
    },
  });
  try {
    await Promise.race([
      allGone,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("workload not drained in 150 s")), 150_000),
      ),
    ]);
  } finally {
    await daemon.stop();
    for (const region of daemon.workforce.regions)
      if (region instanceof LocalRegion) await region.stopAll(2_000);
  }

  // Every task ran to its end; none was cut short by a scale-down.
  const files = readdirSync(markers);
  const started = files.filter((f) => f.endsWith(".start")).map((f) => f.replace(".start", ""));
  const ended = new Set(files.filter((f) => f.endsWith(".end")).map((f) => f.replace(".end", "")));
  expect(started.length).toBe(TASKS);
  expect(started.filter((id) => !ended.has(id))).toEqual([]);

  // Every tick respected the ramp, the queue and the cap, and hired no more than it wanted.
  expect(reports.length).toBeGreaterThan(3);
  for (const report of reports) {
    const { plan } = report;
    if (plan.hold) continue;
    const depth = report.snapshot.queue.depth ?? 0;
    expect(plan.desired).toBeLessThanOrEqual(10 * (plan.totals.running + 1));
    expect(plan.desired).toBeLessThanOrEqual(Math.max(depth, 0));
    expect(plan.desired).toBeLessThanOrEqual(MAX_WORKERS);
    const hired = report.outcomes.reduce((sum, o) => sum + o.hired, 0);
    expect(plan.totals.running + plan.totals.pending + hired).toBeLessThanOrEqual(
      Math.max(plan.desired, plan.totals.running + plan.totals.pending),
    );
  }
  // It scaled up and then down through drains (workers wait on an empty queue, so only drains end them).
  expect(Math.max(...reports.map((r) => r.plan.totals.running))).toBeGreaterThan(1);
  expect(reports.reduce((sum, r) => sum + r.outcomes.reduce((s, o) => s + o.drained, 0), 0)).toBeGreaterThan(
    0,
  );
}, 200_000);
