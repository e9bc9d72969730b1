import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { workforceArgv } from "../support/cli.js";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startArmEmulator, type ArmEmulator, type Fault } from "../emulators/azureml/server.js";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import {
  CLI_TEMPLATE,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  seededJobProperties,
} from "../emulators/azureml/fixtures.js";
import { TERMINAL } from "../emulators/azureml/workspace.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon, type Daemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { StaticTokenCredential } from "../../src/azure/credentials.js";
import { formatStatus } from "../../src/cli/commands/status.js";

/**
 * The fault drill: the real daemon (in-process, short intervals) against the ARM and Service Bus emulators
 * and Azurite, one fault per test switched on through the emulators' hooks, and the promises checked from
 * the outside (the emulators' own state and request logs) after every tick:
 * - active workers (jobs not finished) <= WORKFORCE_MAX_WORKERS;
 * - growth within the ramp: active <= rampFactor x (running + 1);
 * - no Running job cancelled;
 * - control messages the broker took <= the surplus.
 * Figures are printed with DRILL_REPORT=1 (the README's reliability section quotes them).
 */

const CAP = 30;
const RAMP = 10;

let azurite: AzuriteInstance;
let arm: ArmEmulator;
let sb: ServiceBusEmulator;

beforeAll(async () => {
  [azurite, arm, sb] = await Promise.all([
    startAzurite(),
    startArmEmulator({ stepMs: 20, timing: { prepareMs: 100 } }),
    startServiceBusEmulator(),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([arm?.close(), sb?.stop(), azurite?.stop()]);
});

interface DrillTick {
  tick: number;
  /** Jobs of the drill's workspaces that are not finished (what the cloud bills), after the tick. */
  active: number;
  running: number;
  report: TickReport;
}

interface DrillSetup {
  /** Unique per test: names the queue, workspaces and experiments. */
  name: string;
  /** Workspaces and their cluster sizes. */
  clusters: Record<string, number>;
  queueDepth: number;
  env?: Record<string, string>;
  /** Extra fields for every region's config. */
  region?: Record<string, unknown>;
  /** Stop after this many ticks. */
  ticks: number;
  /** Stop earlier, once this is true after a tick's onTick (for drills timed from an event, not the start). */
  until?: (tick: number) => boolean;
  /** Called after each tick (1-based), to switch faults on and off. */
  onTick?: (tick: number, report: TickReport) => void | Promise<void>;
  /** Seeds the workspaces before the daemon starts. */
  seed?: () => void | Promise<void>;
}

interface DrillResult {
  ticks: DrillTick[];
  maxActive: number;
  /** Jobs created by the service, over the drill. */
  created: number;
  daemon: Daemon;
  metrics: string;
  workspaces: string[];
}

function workspaceName(setup: DrillSetup, ws: string): string {
  return `${setup.name}-${ws}`;
}

function jobsOf(workspaces: string[]) {
  return workspaces.flatMap((ws) => [...(arm.findWorkspace(ws)?.jobs.values() ?? [])]);
}

function activeJobs(workspaces: string[]): number {
  return jobsOf(workspaces).filter((job) => !TERMINAL.has(job.status)).length;
}

function runningJobs(workspaces: string[]): number {
  return jobsOf(workspaces).filter((job) => job.status === "Running").length;
}

async function fillQueue(queueName: string, depth: number): Promise<QueueClient> {
  const queue = new QueueClient(azurite.connectionString, queueName);
  await queue.create();
  for (let i = 0; i < depth; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, depth - i) }, (_, j) => queue.sendMessage(`task-${i + j}`)),
    );
  }
  return queue;
}

async function runDrill(setup: DrillSetup): Promise<DrillResult> {
  const workspaces = Object.keys(setup.clusters).map((ws) => workspaceName(setup, ws));
  for (const [ws, nodes] of Object.entries(setup.clusters))
    arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, workspaceName(setup, ws)).addCluster("cluster", nodes);
  await setup.seed?.();
  const queueName = setup.name;
  await fillQueue(queueName, setup.queueDepth);
  const regions = Object.keys(setup.clusters).map((ws) => ({
    kind: "azureml",
    name: ws,
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    workspace: workspaceName(setup, ws),
    experiment: `${setup.name}-${ws}`,
    compute: "cluster",
    template: CLI_TEMPLATE,
    armEndpoint: arm.url,
    requestTimeoutSeconds: 5,
    ...setup.region,
  }));
  const config = loadConfig({
    env: {
      WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queueName}`,
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_STATE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_POLICY: "proportional",
      WORKFORCE_CONCURRENCY: "1",
      WORKFORCE_MAX_WORKERS: String(CAP),
      WORKFORCE_RAMP_FACTOR: String(RAMP),
      WORKFORCE_INTERVAL_SECONDS: "0.4",
      WORKFORCE_CALL_TIMEOUT_SECONDS: "1",
      WORKFORCE_JITTER: "0",
      WORKFORCE_STALE_TICKS: "1",
      WORKFORCE_SCALE_DOWN_DELAY_SECONDS: "0",
      WORKFORCE_METRICS_PORT: "0",
      WORKFORCE_METRICS_HOST: "127.0.0.1",
      WORKFORCE_REGIONS: JSON.stringify(regions),
      ...setup.env,
    },
  });
  const ticks: DrillTick[] = [];
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let pending = Promise.resolve();
  const daemon = await startDaemon({
    config,
    logger: createLogger({ level: process.env.DRILL_DEBUG ? "debug" : "silent" }),
    credential: new StaticTokenCredential(),
    tlsCa: arm.ca,
    onTick: (report) => {
      const tick = ticks.length + 1;
      ticks.push({ tick, active: activeJobs(workspaces), running: runningJobs(workspaces), report });
      pending = pending.then(async () => {
        await setup.onTick?.(tick, report);
        if (setup.until?.(tick)) finish();
      });
      if (tick >= setup.ticks) finish();
    },
  });
  try {
    await withTimeout(finished, 90_000, `${setup.name}: ${setup.ticks} ticks not done within 90 s`);
    await pending;
  } finally {
    await daemon.stop();
  }
  const metrics = await daemon.metrics.registry.metrics();
  const created = jobsOf(workspaces).length - (setup.seed ? seededCount(workspaces) : 0);
  return {
    ticks,
    maxActive: Math.max(...ticks.map((t) => t.active), activeJobs(workspaces)),
    created,
    daemon,
    metrics,
    workspaces,
  };
}

function seededCount(workspaces: string[]): number {
  return jobsOf(workspaces).filter((job) => job.name.startsWith("seed-")).length;
}

/** The promises every drill checks, tick by tick, from the emulators' state. */
function expectPromisesKept(result: DrillResult): void {
  let runningBefore = 0;
  for (const tick of result.ticks) {
    expect(tick.active, `tick ${tick.tick}: active ${tick.active} > cap ${CAP}`).toBeLessThanOrEqual(CAP);
    // What the outside sees running at the end of the previous tick is at most what the daemon saw.
    expect(
      tick.active,
      `tick ${tick.tick}: active ${tick.active} > ramp ${RAMP} x (${runningBefore} + 1)`,
    ).toBeLessThanOrEqual(RAMP * (Math.max(runningBefore, tick.running) + 1));
    runningBefore = tick.running;
  }
  const cancelledRunning = jobsOf(result.workspaces).filter((job) => job.cancelledFrom === "Running");
  expect(cancelledRunning.map((job) => job.name)).toEqual([]);
}

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.split(" ").pop());
  }
  return total;
}

function report(row: string, figures: Record<string, unknown>): void {
  if (process.env.DRILL_REPORT) console.log(`drill ${row}: ${JSON.stringify(figures)}`);
}

describe("fault drill", () => {
  test("a region unreadable for longer than WORKFORCE_STALE_TICKS: its workers keep counting, the cap holds", async () => {
    const name = "drill-unreadable";
    const east = `${name}-east`;
    const fault: Fault = {
      kind: "error500",
      operations: ["jobs.list", "computes.get"],
      workspaces: [east],
    };
    let faultFrom: number | undefined;
    // The fault window is timed from east's first hires, not from the start: on a loaded machine the first
    // ticks can outlast the 1 s call deadline (a cold TLS connection, the queue's first read) and east then
    // hires a few ticks late. The drill ends 4 ticks after the fault is cleared, or at 40 ticks.
    const FAULT_TICKS = 6;
    const result = await runDrill({
      name,
      clusters: { east: 40, west: 40 },
      queueDepth: 100,
      ticks: 40,
      until: (tick) => faultFrom !== undefined && tick >= faultFrom + FAULT_TICKS + 4,
      onTick: (tick, tickReport) => {
        // East becomes unreadable right after its first hires, for FAULT_TICKS ticks (STALE_TICKS is 1).
        const eastHired = tickReport.outcomes.find((o) => o.region === "east")?.hired ?? 0;
        if (faultFrom === undefined && eastHired > 0) {
          faultFrom = tick;
          arm.addFault(fault);
        }
        if (faultFrom !== undefined && tick === faultFrom + FAULT_TICKS) arm.clearFaults();
      },
    });
    expect(
      faultFrom,
      "east hired, and its fault was cleared, within the drill's 40 ticks",
    ).toBeLessThanOrEqual(40 - FAULT_TICKS - 4);
    expectPromisesKept(result);
    const east4 = result.ticks[faultFrom! + 3]!.report.snapshot.regions.find((r) => r.name === "east")!;
    expect(east4.fresh).toBe(false);
    // Unknown is "as many as could be": its last reading after its own hires.
    expect((east4.observation?.running ?? 0) + (east4.observation?.pending ?? 0)).toBeGreaterThan(0);
    report("unreadable", { maxActive: result.maxActive, cap: CAP });
  }, 120_000);

  test("Retry-After beyond the call deadline: the region is left alone until then, the other's ticks stay short", async () => {
    const name = "drill-retry-after";
    const east = `${name}-east`;
    const RETRY_AFTER_S = 4;
    const result = await runDrill({
      name,
      clusters: { east: 40, west: 40 },
      queueDepth: 20,
      ticks: 12,
      // The call deadline (3 s) is shorter than Retry-After (4 s).
      env: { WORKFORCE_CALL_TIMEOUT_SECONDS: "3" },
      onTick: (tick) => {
        if (tick === 2) {
          arm.addFault({
            kind: "throttle",
            retryAfterSeconds: RETRY_AFTER_S,
            operations: ["jobs.list"],
            workspaces: [east],
            times: 1,
          });
        }
      },
    });
    expectPromisesKept(result);
    const eastRequests = arm.requests.filter((r) => r.workspace === east);
    const throttled = eastRequests.find((r) => r.status === 429);
    expect(throttled, "the throttle fault was hit").toBeDefined();
    const throttledAt = throttled!.at;
    // Nothing goes to east's reads before Retry-After has passed (a request sent together with the
    // throttled one, before its answer came, is allowed).
    const early = eastRequests.filter(
      (r) =>
        r.method === "GET" && r.at > throttledAt + 200 && r.at < throttledAt + RETRY_AFTER_S * 1000 - 100,
    );
    expect(early.map((r) => `${r.operation} +${r.at - throttledAt} ms`)).toEqual([]);
    // ...and east is read again afterwards.
    expect(eastRequests.some((r) => r.at >= throttledAt + RETRY_AFTER_S * 1000 - 100)).toBe(true);
    // The throttled region does not stretch the tick: no read waits out the Retry-After (4 s) until the
    // call deadline (3 s) cuts it. A read that did would fail with the deadline and last 3 s or more; a
    // read that answers (a wait of at most 1 s for the end of a back-off, then the request) stays under
    // it, even on a loaded machine, where a plain read can take a second.
    const readings = result.ticks.flatMap((t) => t.report.snapshot.regions);
    const observeMs = result.ticks.map((t) => t.report.snapshot.regions.map((r) => r.durationMs));
    const slowest = Math.max(...observeMs.flat());
    if (process.env.DRILL_DEBUG) console.log(JSON.stringify(observeMs));
    expect(readings.filter((r) => /did not answer within/.test(r.error ?? "")).map((r) => r.error)).toEqual(
      [],
    );
    expect(slowest).toBeLessThan(3_000);
    // The back-off is shown: in the tick's snapshot and in the metrics.
    const backedOff = result.ticks.find((t) =>
      t.report.snapshot.regions.some((r) => r.name === "east" && (r.backoff?.length ?? 0) > 0),
    );
    expect(backedOff, "a tick showed east in back-off").toBeDefined();
    // What `workforce status` prints for such a reading.
    expect(formatStatus(backedOff!.report)).toMatch(
      /east .*\[reads in back-off for \d+ s \(HTTP 429, Retry-After 4 s\)\]/,
    );
    expect(result.metrics).toContain("workforce_region_backoff_seconds");
    report("retry-after", {
      retryAfterSeconds: RETRY_AFTER_S,
      earlyRequests: early.length,
      slowestRegionReadMs: slowest,
    });
  }, 120_000);

  test("job PUTs that commit after the act deadline: no duplicate hire, metrics count what was accepted", async () => {
    const name = "drill-slow-put";
    const result = await runDrill({
      name,
      clusters: { east: 40, west: 40 },
      queueDepth: 100,
      // Jobs stay Preparing for a while, so the ramp (10 x (running + 1)) stays tight meanwhile.
      ticks: 10,
      onTick: (tick) => {
        if (tick === 3) arm.clearFaults();
      },
      seed: () =>
        arm.addFault({
          kind: "latency",
          ms: 2_500,
          operations: ["jobs.createOrUpdate"],
          workspaces: [`${name}-east`, `${name}-west`],
        }),
    });
    // Let the last slow PUTs land before the final count.
    const landBy = Date.now() + 30_000;
    while (arm.inFlight() > 0 && Date.now() < landBy) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(arm.inFlight(), "requests still in flight 30 s after the drill").toBe(0);
    const finalActive = activeJobs(result.workspaces);
    result.maxActive = Math.max(result.maxActive, finalActive);
    expectPromisesKept(result);
    expect(finalActive).toBeLessThanOrEqual(CAP);
    const hired = metricValue(result.metrics, "workforce_hired_total");
    const unknown = metricValue(result.metrics, "workforce_hire_unknown_total");
    // What the service accepted is counted exactly: never more than it created; the unknown ones apart.
    expect(hired).toBeLessThanOrEqual(result.created);
    expect(hired + unknown).toBeGreaterThanOrEqual(result.created);
    report("slow-put", {
      maxActive: result.maxActive,
      cap: CAP,
      created: result.created,
      hiredTotal: hired,
      hireUnknownTotal: unknown,
      duplicates: Math.max(0, result.created - CAP),
    });
  }, 120_000);

  test("Service Bus acknowledgements slower than the act deadline: drains never exceed the surplus", async () => {
    const name = "drill-slow-ack";
    const topic = `${name}-control`;
    const subscriptionEntity = `${topic}/Subscriptions/shutdown`;
    const RUNNING = 30;
    const DEPTH = 5;
    const sent = () =>
      sb.receivedLog().filter((r) => r.entity.toLowerCase() === subscriptionEntity.toLowerCase()).length;
    const surpluses: number[] = [];
    const result = await runDrill({
      name,
      clusters: { east: 40 },
      queueDepth: DEPTH,
      ticks: 8,
      // A 2 s act deadline: room for the first connection to the broker on a busy machine.
      env: { WORKFORCE_CALL_TIMEOUT_SECONDS: "2" },
      region: {
        backChannel: {
          connectionString: sb.connectionString,
          topic,
          adminEndpoint: `127.0.0.1:${sb.adminPort}`,
        },
      },
      seed: async () => {
        const ws = arm.findWorkspace(`${name}-east`)!;
        for (let i = 0; i < RUNNING; i++)
          ws.createJob(`seed-${i}`, seededJobProperties(ws, `${name}-east`, true));
        while (ws.byStatus("Running").length < RUNNING) await new Promise((r) => setTimeout(r, 20));
        sb.faults.ackDelayMs = 4_000;
      },
      onTick: (_tick, tickReport) => {
        surpluses.push(tickReport.plan.surplus);
      },
    });
    // Let the slow acknowledgements land.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    sb.faults.reset();
    expectPromisesKept(result);
    const surplus = RUNNING - DEPTH;
    expect(sent()).toBeLessThanOrEqual(surplus);
    expect(sent()).toBeGreaterThan(0);
    report("slow-ack", { controlMessages: sent(), surplus });
  }, 120_000);
});

describe("what must keep passing", () => {
  test("kill -9 in the middle of a large hire, then a restart: hired exactly up to the target", async () => {
    const name = "drill-kill";
    const TARGET = 100;
    const workspace = `${name}-east`;
    const ws = arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, workspace);
    ws.addCluster("cluster", 200);
    // 10 running workers: the ramp allows 10 x 11 = 110, the queue asks for 100.
    for (let i = 0; i < 10; i++) ws.createJob(`seed-${i}`, seededJobProperties(ws, workspace, true));
    while (ws.byStatus("Running").length < 10) await new Promise((r) => setTimeout(r, 20));
    await fillQueue(name, TARGET);
    // Each PUT takes 100 ms: the hire of 90 takes about 1.2 s at 8 at a time.
    arm.addFault({ kind: "latency", ms: 100, operations: ["jobs.createOrUpdate"], workspaces: [workspace] });
    const dir = mkdtempSync(join(tmpdir(), "wf-drill-kill-"));
    const caFile = join(dir, "ca.pem");
    writeFileSync(caFile, arm.ca);
    const env = {
      PATH: process.env.PATH,
      AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
      NODE_EXTRA_CA_CERTS: caFile,
      WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${name}`,
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_POLICY: "proportional",
      WORKFORCE_CONCURRENCY: "1",
      WORKFORCE_INTERVAL_SECONDS: "0.5",
      WORKFORCE_JITTER: "0",
      WORKFORCE_SCALE_DOWN_DELAY_SECONDS: "0",
      WORKFORCE_METRICS_PORT: "0",
      WORKFORCE_METRICS_HOST: "127.0.0.1",
      WORKFORCE_LOG_LEVEL: "warn",
      WORKFORCE_REGIONS: JSON.stringify([
        {
          kind: "azureml",
          name: "east",
          subscriptionId: SUBSCRIPTION,
          resourceGroup: RESOURCE_GROUP,
          workspace,
          experiment: workspace,
          compute: "cluster",
          template: CLI_TEMPLATE,
          armEndpoint: arm.url,
          credential: { type: "emulator" },
        },
      ]),
    };
    const created = () => ws.jobs.size - 10;
    const run = (): ChildProcess => {
      const [node, ...args] = workforceArgv("run");
      return spawn(node!, args, { env, stdio: ["ignore", "ignore", "inherit"] });
    };
    const waitFor = async (what: string, predicate: () => boolean, ms = 30_000) => {
      const until = Date.now() + ms;
      while (!predicate()) {
        if (Date.now() > until) throw new Error(`${what} not within ${ms} ms (created ${created()})`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const exited = (child: ChildProcess) =>
      new Promise<void>((resolve) =>
        child.exitCode !== null || child.signalCode !== null
          ? resolve()
          : child.once("exit", () => resolve()),
      );
    let child = run();
    try {
      await waitFor("a third of the hire", () => created() >= 30);
      child.kill("SIGKILL");
      await exited(child);
      const atKill = created();
      // PUTs in flight when it died still land: every request that reached the service is dealt with
      // before the restart lists the jobs (one landing after that listing would be hired again).
      await waitFor("the PUTs in flight at the kill to land", () => arm.inFlight() === 0);
      child = run();
      await waitFor("the whole target", () => created() >= TARGET - 10);
      // A few more ticks: nothing more is hired.
      await new Promise((r) => setTimeout(r, 2_000));
      child.kill("SIGTERM");
      await exited(child);
      expect(atKill).toBeLessThan(TARGET - 10);
      expect(created()).toBe(TARGET - 10);
      expect(activeJobs([workspace])).toBe(TARGET);
      report("kill-9", { createdAtKill: atKill, createdAfterRestart: created(), target: TARGET - 10 });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      arm.clearFaults();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]).finally(() => clearTimeout(timer));
}
