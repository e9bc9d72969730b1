import { afterAll, beforeAll, expect, test } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { SUBSCRIPTION, RESOURCE_GROUP, CLI_TEMPLATE } from "../emulators/azureml/fixtures.js";
import { REPO_ROOT, workforceArgv } from "../support/cli.js";

/**
 * Fault drill, leader rows: two real `workforce run` replicas with leader election, against Azurite (the
 * blob lease) and the ARM emulator. Each replica reaches ARM through its own entrance (port), so the
 * emulator's request log says who sent every PUT. Checked from the outside: the emulator's jobs.
 */

const CAP = 30;
const LEASE_SECONDS = 15;
const WORKSPACE = "drill";

let azurite: AzuriteInstance;
let emulator: ArmEmulator;
const children: ChildProcess[] = [];

beforeAll(async () => {
  [azurite, emulator] = await Promise.all([
    startAzurite(),
    startArmEmulator({ stepMs: 50, timing: { prepareMs: 200 } }),
  ]);
  emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE).addCluster("cluster", 200);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await emulator?.close();
  await azurite?.stop();
});

interface Replica {
  name: string;
  child: ChildProcess;
  /** Wall-clock time (this process) at which each log message was first seen. */
  seen: Map<string, number>;
  /** How many lines with this message were seen at or after `since` (this process's clock). */
  countSince(msg: string, since: number): number;
  waitForLog(msg: string, ms: number): Promise<number>;
}

async function startReplica(name: string, queueName: string): Promise<Replica> {
  const region = {
    kind: "azureml",
    name: "drill",
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    workspace: WORKSPACE,
    experiment: "drill",
    compute: "cluster",
    template: CLI_TEMPLATE,
    armEndpoint: await emulator.entrance(name),
    credential: { type: "emulator" },
    // One submit at a time, each slowed down below: a hire of 30 workers takes seconds, long enough to
    // pause the leader in the middle of it.
    submitConcurrency: 1,
    requestTimeoutSeconds: 5,
  };
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    NODE_EXTRA_CA_CERTS: join(REPO_ROOT, "test", "emulators", "tls", "ca.pem"),
    AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
    WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queueName}`,
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_STATE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_LEADER_ELECTION: "true",
    WORKFORCE_LEADER_LEASE_SECONDS: String(LEASE_SECONDS),
    WORKFORCE_MAX_WORKERS: String(CAP),
    WORKFORCE_RAMP_FACTOR: "100",
    WORKFORCE_INTERVAL_SECONDS: "1",
    WORKFORCE_JITTER: "0",
    WORKFORCE_SCALE_DOWN_DELAY_SECONDS: "3600",
    // The act deadline (this, as it is longer than the interval) outlasts the pause: a tick cut off by its
    // own deadline on waking would hide what the fence must stop.
    WORKFORCE_CALL_TIMEOUT_SECONDS: "60",
    WORKFORCE_METRICS_PORT: "0",
    WORKFORCE_METRICS_HOST: "127.0.0.1",
    WORKFORCE_LOG_LEVEL: "info",
    WORKFORCE_REGIONS: JSON.stringify([region]),
  };
  const [command, ...args] = workforceArgv("run");
  const child = spawn(command!, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const seen = new Map<string, number>();
  const all: Array<{ msg: string; at: number }> = [];
  const waiters: Array<() => void> = [];
  let buffer = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      try {
        const msg = (JSON.parse(line) as { msg?: string }).msg;
        if (msg && !seen.has(msg)) seen.set(msg, Date.now());
        if (msg) all.push({ msg, at: Date.now() });
      } catch {
        // not a log line
      }
    }
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    if (process.env.DRILL_DEBUG) process.stderr.write(`[${name}] ${chunk.toString("utf8")}`);
  });
  const waitForLog = async (msg: string, ms: number): Promise<number> => {
    const deadline = Date.now() + ms;
    while (!seen.has(msg)) {
      if (Date.now() > deadline) throw new Error(`replica ${name}: no "${msg}" log within ${ms} ms`);
      if (child.exitCode !== null) throw new Error(`replica ${name} exited (${child.exitCode})`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
    return seen.get(msg)!;
  };
  const countSince = (msg: string, since: number) =>
    all.filter((line) => line.msg === msg && line.at >= since).length;
  return { name, child, seen, countSince, waitForLog };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

const puts = (via: string, after = 0) =>
  emulator.requests.filter(
    (r) => r.via === via && r.operation === "jobs.createOrUpdate" && r.method === "PUT" && r.at >= after,
  ).length;
const armCalls = (via: string, after: number) =>
  emulator.requests.filter((r) => r.via === via && r.at >= after).length;
const active = () =>
  [...emulator.findWorkspace(WORKSPACE)!.jobs.values()].filter(
    (job) => !["Completed", "Failed", "Canceled", "CancelRequested"].includes(job.status),
  ).length;

test(
  "leader drill: a leader paused past its lease writes nothing on waking; a killed leader's standby takes over within the lease plus a few seconds",
  { timeout: 150_000 },
  async () => {
    const queueName = "drill-leader";
    const queue = new QueueClient(azurite.connectionString, queueName);
    await queue.create();
    // Every job PUT answers after 250 ms: a hire of 30 takes about 8 s, one submit at a time.
    emulator.addFault({ kind: "latency", ms: 250, operations: ["jobs.createOrUpdate"] });

    let maxActive = 0;
    const sampler = setInterval(() => (maxActive = Math.max(maxActive, active())), 50);
    try {
      const a = await startReplica("a", queueName);
      await a.waitForLog("became the leader", 30_000);
      const b = await startReplica("b", queueName);
      await b.waitForLog("workforce autoscaler started", 30_000);
      // The work arrives once both replicas are up: the leader's first hire starts now.
      await Promise.all(Array.from({ length: 200 }, (_, i) => queue.sendMessage(`task-${i}`)));

      // Pause the leader in the middle of its first hire, for longer than its lease.
      await until(() => puts("a") >= 8, 30_000, "the leader's first hires");
      a.child.kill("SIGSTOP");
      const pausedAt = Date.now();
      const hiredBeforePause = puts("a");
      expect(hiredBeforePause, "the leader was paused in the middle of its hire").toBeLessThan(CAP);
      await b.waitForLog("became the leader", (LEASE_SECONDS + 10) * 1000);
      const standbyTookOverAfterPauseS = (b.seen.get("became the leader")! - pausedAt) / 1000;
      // The standby completes the workforce up to the cap while the old leader sleeps.
      await until(() => active() >= CAP, 30_000, "the new leader fills the workforce to the cap");
      await sleep(Math.max(0, pausedAt + (LEASE_SECONDS + 5) * 1000 - Date.now()));
      const resumedAt = Date.now();
      a.child.kill("SIGCONT");
      await a.waitForLog("no longer the leader", 15_000);
      // The tick it was paused in has ended (its last chance to write) and every request it sent has
      // been dealt with by the service: what it wrote after waking is all there will be.
      await until(() => a.countSince("tick", resumedAt) >= 1, 30_000, "the woken replica's tick to end");
      await until(
        () => emulator.requests.every((r) => r.via !== "a" || r.status !== 0),
        30_000,
        "the woken replica's requests in flight to be answered",
      );
      const writesByPausedLeader = puts("a", resumedAt);

      // Kill the leader (no lease release): the standby must act within the lease plus a few seconds.
      const killedAt = Date.now();
      b.child.kill("SIGKILL");
      await until(() => armCalls("a", killedAt) > 0, (LEASE_SECONDS + 15) * 1000, "the standby's first tick");
      const firstCall = emulator.requests.find((r) => r.via === "a" && r.at >= killedAt)!;
      const takeoverSeconds = (firstCall.at - killedAt) / 1000;
      await sleep(2_000);

      const figures = {
        cap: CAP,
        maxActive,
        hiredBeforePause,
        standbyTookOverAfterPauseS,
        writesByPausedLeader,
        takeoverSeconds,
        leaseSeconds: LEASE_SECONDS,
      };
      console.log(`leader drill: ${JSON.stringify(figures)}`);
      expect(writesByPausedLeader, "job PUTs by the paused leader after waking").toBe(0);
      expect(maxActive, "active workers vs the cap").toBeLessThanOrEqual(CAP);
      expect(takeoverSeconds, "seconds from the leader's death to the standby's first tick").toBeLessThan(
        LEASE_SECONDS + 5,
      );
    } finally {
      clearInterval(sampler);
      emulator.clearFaults();
      for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    }
  },
);
