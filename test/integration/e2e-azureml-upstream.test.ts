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
import { formatStatus } from "../../src/cli/commands/status.js";
import { logLines } from "../support/log-lines.js";

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

/** A region of this test: its own workspace and experiment, listed through ARM or the index API. */
function upstreamRegion(name: string, listing: "arm" | "index") {
  return {
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
  };
}

/** The daemon's configuration: the queue's tasks, one per worker, a fast tick. */
function daemonConfig(queueName: string, regions: unknown[], extra: Record<string, string> = {}) {
  return loadConfig({
    env: {
      WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queueName}`,
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_CONCURRENCY: "1",
      WORKFORCE_POLICY: "proportional",
      WORKFORCE_INTERVAL_SECONDS: "0.3",
      WORKFORCE_JITTER: "0",
      WORKFORCE_METRICS_PORT: "0",
      WORKFORCE_METRICS_HOST: "127.0.0.1",
      ...extra,
      WORKFORCE_REGIONS: JSON.stringify(regions),
    },
  });
}

/** What a daemon of this test leaves to look at: its log lines, metrics and tick reports. */
function recorder() {
  const { lines, destination } = logLines();
  const metrics = createMetrics({ processMetrics: false });
  const ticks: TickReport[] = [];
  const start = (config: ReturnType<typeof loadConfig>): Promise<Daemon> =>
    startDaemon({
      config,
      logger: createLogger({ level: "info", destination }),
      metrics,
      credential: new StaticTokenCredential(),
      tlsCa: arm.ca,
      onTick: (report) => void ticks.push(report),
    });
  return { lines, metrics, ticks, start };
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
  const regions = Object.entries(names).map(([name, listing]) => upstreamRegion(name, listing));
  const config = daemonConfig(queueName, regions);
  const { lines, metrics, ticks, start } = recorder();
  const jobs = (ws: string) => [...arm.findWorkspace(ws)!.jobs.values()];
  const runningIn = (ws: string) => jobs(ws).filter((job) => job.status === "Running");
  ml.addFault({ kind: "html503", operations: ["index.entities"], times: 1 });

  let daemon: Daemon | undefined;
  try {
    daemon = await start(config);
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

test("ml.azure.com throttling through the daemon: the region is held, not shrunk, and nothing goes to the index or resumes before Retry-After", async () => {
  const queueName = "e2e-ml-backoff";
  const queue = new QueueClient(azurite.connectionString, queueName);
  await queue.create();
  await Promise.all(Array.from({ length: 4 }, (_, i) => queue.sendMessage(`task-${i}`)));
  const name = "north";
  arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, name).addCluster("cluster", 6);
  // A call deadline that a read on a loaded machine keeps within (a read cut off by it would be a stale
  // reading of another kind), and a Retry-After longer than it, which leaves room for several ticks.
  const CALL_TIMEOUT_S = 5;
  const RETRY_AFTER_S = 8;
  const config = daemonConfig(queueName, [upstreamRegion(name, "index")], {
    WORKFORCE_CALL_TIMEOUT_SECONDS: String(CALL_TIMEOUT_S),
  });
  const { lines, metrics, ticks, start } = recorder();
  const jobs = () => [...arm.findWorkspace(name)!.jobs.values()];
  const running = () => jobs().filter((job) => job.status === "Running");
  const ours = (operation: string) =>
    ml.requests.filter((r) => r.workspace === name && r.operation === operation);
  const gauge = async (call: string) =>
    (await metrics.regionBackoff.get()).values.find((v) => v.labels.region === name && v.labels.call === call)
      ?.value ?? 0;
  let daemon: Daemon | undefined;
  let indexGauge: number;
  let resumeGauge: number;
  try {
    daemon = await start(config);
    await until("4 running workers", () => running().length === 4);

    // The index throttles north's listing for longer than the call deadline.
    ml.addFault({
      kind: "throttle",
      retryAfterSeconds: RETRY_AFTER_S,
      operations: ["index.entities"],
      workspaces: [name],
      times: 1,
    });
    await until("the throttled page", () => ours("index.entities").some((r) => r.status === 429));
    const throttledAt = ours("index.entities").find((r) => r.status === 429)!.at;
    const ticksBefore = ticks.length;
    await until("two ticks under the back-off", () => ticks.length >= ticksBefore + 2);
    indexGauge = await gauge("index-list");
    await until("north read again", () => ours("index.entities").some((r) => r.at > throttledAt + 500));
    const heldTicks = ticks.slice(ticksBefore).filter((t) => !t.snapshot.regions[0]!.fresh);

    // No index page before Retry-After had passed.
    const early = ours("index.entities").filter(
      (r) => r.at > throttledAt + 200 && r.at < throttledAt + RETRY_AFTER_S * 1000 - 100,
    );
    expect(early.map((r) => `+${r.at - throttledAt} ms`)).toEqual([]);
    // Held, not shrunk: every tick under the back-off counted north's 4 workers, and hired none.
    expect(heldTicks.length).toBeGreaterThanOrEqual(2);
    for (const tick of heldTicks) {
      const reading = tick.snapshot.regions[0]!;
      expect(reading.observation!.running + reading.observation!.pending).toBe(4);
      expect(reading.backoff).toMatchObject([
        { call: "index-list", reason: `HTTP 429, Retry-After ${RETRY_AFTER_S} s` },
      ]);
      expect(tick.plan.hire).toBe(0);
      // A throttled read costs the tick nothing (no wait until the call deadline).
      expect(reading.durationMs).toBeLessThan((CALL_TIMEOUT_S * 1000) / 2);
    }
    expect(formatStatus(heldTicks[0]!)).toMatch(
      new RegExp(
        `north .*\\[index listings in back-off for \\d+ s \\(HTTP 429, Retry-After ${RETRY_AFTER_S} s\\)\\]`,
      ),
    );
    expect(jobs()).toHaveLength(4);
    expect(indexGauge).toBeGreaterThan(0);

    // Then the execution API throttles a resume: the sweep is held, said in the tick log, and tried after.
    const [paused] = running();
    ml.addFault({
      kind: "throttle",
      retryAfterSeconds: RETRY_AFTER_S,
      operations: ["execution.resume"],
      workspaces: [name],
      times: 1,
    });
    ml.preempt(arm.findWorkspace(name)!, paused!.name);
    await until("the throttled resume", () => ours("execution.resume").some((r) => r.status === 429));
    const resumeThrottledAt = ours("execution.resume")[0]!.at;
    await until("a tick after", () => ticks.some((t) => (t.outcomes[0]?.resume?.backedOff ?? 0) > 0));
    resumeGauge = await gauge("resume");
    await until("the paused worker running again", () => paused!.status === "Running", 45_000);
    const earlyResumes = ours("execution.resume").filter(
      (r) => r.at > resumeThrottledAt + 200 && r.at < resumeThrottledAt + RETRY_AFTER_S * 1000 - 100,
    );
    expect(earlyResumes).toEqual([]);
    expect(resumeGauge).toBeGreaterThan(0);
  } finally {
    await daemon?.stop();
    if (process.env.E2E_DEBUG) for (const line of lines) console.log(JSON.stringify(line));
  }
  const tickLines = lines.filter((line) => line.msg === "tick");
  const said = (call: string) =>
    tickLines.some((line) =>
      ((line.backoff as Array<{ region: string; call: string }> | undefined) ?? []).some(
        (b) => b.region === name && b.call === call,
      ),
    );
  expect(said("index-list")).toBe(true);
  expect(said("resume")).toBe(true);
  expect(
    tickLines.some((line) => ((line.resume as { backedOff?: number } | undefined)?.backedOff ?? 0) > 0),
  ).toBe(true);
  // Never more workers than the queue asks for, whatever was throttled.
  expect(jobs().filter((job) => !["Canceled", "CancelRequested"].includes(job.status))).toHaveLength(4);
  const resumed = (await metrics.resumed.get()).values;
  expect(resumed.find((v) => v.labels.region === name && v.labels.outcome === "failed")?.value ?? 0).toBe(0);
}, 150_000);
