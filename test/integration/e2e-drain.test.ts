import { afterAll, beforeAll, expect, test } from "vitest";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { loadConfig, type Config } from "../../src/config/load.js";
import { startDaemon, type Daemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { pushTasks } from "../../src/queue/push.js";
import { parseQueueSpec, type StorageQueueSpec } from "../../src/queue/spec.js";
import { LocalRegion } from "../../src/regions/local/index.js";
import { workforceWorkerCommand } from "../../src/regions/local/command.js";

const TOPIC = "control";
const SUBSCRIPTION_ENTITY = `${TOPIC}/Subscriptions/shutdown`;

let azurite: AzuriteInstance;
let sb: ServiceBusEmulator;
let workDir: string;

beforeAll(async () => {
  [azurite, sb] = await Promise.all([startAzurite(), startServiceBusEmulator()]);
  workDir = mkdtempSync(join(tmpdir(), "wf-e2e-drain-"));
});

afterAll(async () => {
  await Promise.all([azurite?.stop(), sb?.stop()]);
  rmSync(workDir, { recursive: true, force: true });
});

/** Control messages the daemon has sent to the topic (the broker logs one copy per subscription). */
function controlMessagesSent(): number {
  return sb
    .receivedLog()
    .filter((record) => record.entity.toLowerCase() === SUBSCRIPTION_ENTITY.toLowerCase()).length;
}

test("surplus workers are drained over Service Bus: pending first, exactly the surplus, no task interrupted, no extra drain after a restart", async () => {
  const queueName = "e2e-drain";
  const queueUrl = `${azurite.queueEndpoint}/${queueName}`;
  const markers = join(workDir, "markers");
  const stateDir = join(workDir, "state");
  await new QueueClient(azurite.connectionString, queueName).create();
  // Six short tasks and two long ones: once the short ones are done, six workers are surplus while two
  // still work; a drain message may land on a busy worker, which must finish its task first.
  const durations = [1, 1, 1, 1, 1, 1, 7, 7];
  await pushTasks({
    spec: parseQueueSpec(queueUrl) as StorageQueueSpec,
    connectionString: azurite.connectionString,
    commands: durations.map(
      (seconds, i) =>
        `mkdir -p ${markers} && touch ${markers}/${i}.start && sleep ${seconds} && touch ${markers}/${i}.end`,
    ),
  });

  const env = {
    WORKFORCE_QUEUE: queueUrl,
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_STATE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_POLICY: "proportional",
    WORKFORCE_CONCURRENCY: "1",
    WORKFORCE_INTERVAL_SECONDS: "1",
    WORKFORCE_JITTER: "0",
    WORKFORCE_SCALE_DOWN_DELAY_SECONDS: "0",
    WORKFORCE_METRICS_PORT: "0",
    WORKFORCE_METRICS_HOST: "127.0.0.1",
    WORKFORCE_REGIONS: JSON.stringify([
      {
        kind: "local",
        name: "nodes",
        capacity: 8,
        stateDir,
        // One agent per worker, as on an AzureML node: it wraps the worker and turns a control message
        // into SIGINT (finish the task in hand, then leave). Workers wait on an empty queue for 10 minutes,
        // so only drains end them.
        command: ["{node}", "{workforce}", "agent", "--", ...workforceWorkerCommand(600)],
        env: {
          WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
          WORKFORCE_BACK_CHANNEL_CONNECTION_STRING: sb.connectionString,
          WORKFORCE_CONTROL_TOPIC_NAME: TOPIC,
          // E2E_DIAG=1: agents and workers log at info, for the diagnostics printed on a failure.
          WORKFORCE_LOG_LEVEL: process.env.E2E_DIAG ? "info" : "warn",
        },
        backChannel: {
          connectionString: sb.connectionString,
          topic: TOPIC,
          adminEndpoint: `127.0.0.1:${sb.adminPort}`,
        },
      },
    ]),
  };
  const config: Config = loadConfig({ env });
  const reports: TickReport[] = [];
  const logger = createLogger({ level: "warn" });
  const start = (onTick: (report: TickReport) => void) =>
    startDaemon({ config, logger, tlsCa: sb.ca, onTick });

  // First daemon: ramp up, then stop it right after its first drain requests (drained workers still busy).
  let firstDrain: () => void = () => undefined;
  const drained = new Promise<void>((resolve) => (firstDrain = resolve));
  let daemon: Daemon = await start((report) => {
    reports.push(report);
    if (report.outcomes.some((o) => o.drained > 0)) firstDrain();
  });
  const localRegions: LocalRegion[] = [];
  try {
    await withTimeout(drained, 60_000, "no drain within 60 s");
    await daemon.stop();
    const sentBeforeRestart = controlMessagesSent();
    expect(sentBeforeRestart).toBeGreaterThan(0);

    // Second daemon on the same state: the ledger in blob storage tells it which drains are in flight.
    let allGone: () => void = () => undefined;
    const gone = new Promise<void>((resolve) => (allGone = resolve));
    daemon = await start((report) => {
      reports.push(report);
      const t = report.plan.totals;
      if (report.snapshot.queue.depth === 0 && t.running + t.pending + t.draining === 0) allGone();
    });
    await withTimeout(gone, 90_000, "workers not all gone within 90 s");
  } catch (error) {
    // What a flaky run needs to be understood: which worker stayed, in which state, and what it logged.
    await printDiagnostics(daemon, reports, stateDir);
    throw error;
  } finally {
    await daemon.stop();
    for (const region of daemon.workforce.regions)
      if (region instanceof LocalRegion) localRegions.push(region);
    for (const region of localRegions) await region.stopAll(2_000);
  }

  // No task interrupted: every task that started also ended.
  const files = readdirSync(markers);
  const started = files.filter((f) => f.endsWith(".start")).map((f) => f.replace(".start", ""));
  const ended = new Set(files.filter((f) => f.endsWith(".end")).map((f) => f.replace(".end", "")));
  expect(started.length).toBe(durations.length);
  expect(started.filter((id) => !ended.has(id))).toEqual([]);

  // Workers never leave on their own here, so each drain message ends exactly one worker: exactly as many
  // messages as workers hired, none left over for a worker hired later, across the restart. A worker still
  // starting (pending) when the surplus appeared was cancelled instead: the region signals it directly.
  const total = (field: "hired" | "cancelled") =>
    reports.reduce((sum, r) => sum + r.outcomes.reduce((s, o) => s + o[field], 0), 0);
  const hired = total("hired");
  expect(hired).toBeGreaterThan(1);
  expect(controlMessagesSent(), tickSummary(reports, stateDir)).toBe(hired - total("cancelled"));
  expect(sb.counts(SUBSCRIPTION_ENTITY).active).toBe(0);

  // Every message carried the ai4s-jobq body and a time-to-live.
  // (The subscription is empty now; the sender's unit tests check the bytes and TTL of each message.)
  for (const report of reports) {
    const drainedNow = report.outcomes.reduce((s, o) => s + o.drained, 0);
    // Never more drains than the surplus the tick computed.
    expect(drainedNow).toBeLessThanOrEqual(report.plan.surplus);
    // Pending workers above the target are cancelled before any running worker is drained.
    const plannedCancel = report.plan.regions.reduce((s, r) => s + r.cancel, 0);
    if (drainedNow > 0)
      expect(report.plan.totals.pending - plannedCancel).toBeLessThanOrEqual(
        Math.max(0, report.plan.target - report.plan.totals.running),
      );
  }
}, 240_000);

/** One line per tick (what it saw and did), and how each worker left: for a failed count. */
function tickSummary(reports: TickReport[], stateDir: string): string {
  const lines = reports.map((r) => {
    const t = r.plan.totals;
    const did = (field: "hired" | "cancelled" | "drained") => r.outcomes.reduce((s, o) => s + o[field], 0);
    return `depth ${r.snapshot.queue.depth} running ${t.running} pending ${t.pending} draining ${t.draining} target ${r.plan.target}: hired ${did("hired")} cancelled ${did("cancelled")} drained ${did("drained")}`;
  });
  const exits = join(stateDir, "exits.json");
  if (existsSync(exits)) lines.push(`exits: ${readFileSync(exits, "utf8")}`);
  return lines.join("\n");
}

async function printDiagnostics(daemon: Daemon, reports: TickReport[], stateDir: string): Promise<void> {
  const lines: string[] = [];
  for (const region of daemon.workforce.regions)
    if (region instanceof LocalRegion) lines.push(`workers: ${JSON.stringify(await region.workers())}`);
  lines.push(`last plans: ${JSON.stringify(reports.slice(-2).map((r) => r.plan))}`);
  for (const folder of ["workers", "logs"]) {
    const dir = join(stateDir, folder);
    for (const name of existsSync(dir) ? readdirSync(dir) : [])
      lines.push(`--- ${folder}/${name}\n${readFileSync(join(dir, name), "utf8").slice(-4_000)}`);
  }
  console.error(lines.join("\n"));
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(message)), ms)),
  ]);
}
