import { afterAll, beforeAll, expect, test } from "vitest";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { loadConfig } from "../../src/config/load.js";
import { startLeaderElection } from "../../src/controller/leader.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics } from "../../src/metrics/registry.js";
import { startAzuriteProxy } from "../support/azurite-proxy.js";
import type { IncomingMessage } from "node:http";

let azurite: AzuriteInstance;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

async function waitFor(predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("only one replica holds the blob lease; a standby takes over when the leader steps down", async () => {
  // A's calls go through a proxy that counts them: renewals and B's refused acquires are seen to happen,
  // rather than assumed from a sleep.
  const leaseCalls = { renew: 0, acquire: 0 };
  const proxy = await startAzuriteProxy(azurite, azurite.blobEndpoint, (incoming) => {
    const action = incoming.headers["x-ms-lease-action"];
    if (action === "renew" || action === "acquire") leaseCalls[action] += 1;
    return false;
  });
  const config = (connectionString: string) =>
    loadConfig({
      env: { WORKFORCE_STATE_CONNECTION_STRING: connectionString, WORKFORCE_STATE_CONTAINER: "leases" },
      regionsOptional: true,
    });
  const logger = createLogger({ level: "silent" });
  const metricsA = createMetrics({ processMetrics: false });
  const a = await startLeaderElection(config(proxy.connectionString), {
    logger,
    metrics: metricsA,
    leaseSeconds: 15,
    renewEveryMs: 200,
  });
  const b = await startLeaderElection(config(proxy.connectionString), {
    logger,
    leaseSeconds: 15,
    renewEveryMs: 200,
    standbyRetryMs: 100,
  });
  try {
    expect(a.isLeader()).toBe(true);
    expect(b.isLeader()).toBe(false);
    // Renewals keep the lease with A while B keeps trying (its first acquire, at start, was refused).
    const acquiresBefore = leaseCalls.acquire;
    await waitFor(() => leaseCalls.renew >= 3 && leaseCalls.acquire >= acquiresBefore + 3, 20_000);
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    expect((await metricsA.registry.getSingleMetric("workforce_leader")?.get())?.values[0]?.value).toBe(1);
    await a.stop(); // releases the lease
    // Well within the 15 s a lease that was not released would keep B waiting.
    await waitFor(() => b.isLeader(), 10_000);
    expect(a.isLeader()).toBe(false);
  } finally {
    await a.stop();
    await b.stop();
    await proxy.close();
  }
});

/**
 * A proxy in front of Azurite's blob endpoint that, once armed, holds back the answer to the next lease call
 * of the given action: the service has acted on it, the client does not know yet.
 */
async function leaseAnswerHold(action: "acquire" | "renew") {
  let armed = false;
  let onHeld: () => void = () => undefined;
  let letGo: () => void = () => undefined;
  const proxy = await startAzuriteProxy(
    azurite,
    azurite.blobEndpoint,
    () => false,
    (incoming: IncomingMessage) => {
      if (!armed || incoming.headers["x-ms-lease-action"] !== action) return;
      armed = false;
      onHeld();
      return new Promise<void>((resolve) => (letGo = resolve));
    },
  );
  return {
    proxy,
    /** Resolves once an answer is held. */
    arm: () =>
      new Promise<void>((resolve) => {
        armed = true;
        onHeld = resolve;
      }),
    release: () => letGo(),
  };
}

const quiet = createLogger({ level: "silent" });
const stateEnv = (connectionString: string, container: string) =>
  loadConfig({
    env: { WORKFORCE_STATE_CONNECTION_STRING: connectionString, WORKFORCE_STATE_CONTAINER: container },
    regionsOptional: true,
  });

test("a renewal the service granted but whose answer comes after stop() leaves the stopped replica not the leader", async () => {
  const hold = await leaseAnswerHold("renew");
  const metrics = createMetrics({ processMetrics: false });
  const a = await startLeaderElection(stateEnv(hold.proxy.connectionString, "late-renew"), {
    logger: quiet,
    metrics,
    leaseSeconds: 15,
    renewEveryMs: 200,
  });
  const b = await startLeaderElection(stateEnv(azurite.connectionString, "late-renew"), {
    logger: quiet,
    leaseSeconds: 15,
    renewEveryMs: 200,
    standbyRetryMs: 100,
  });
  try {
    expect(a.isLeader()).toBe(true);
    await hold.arm(); // a renewal is granted by the service, its answer held
    const stopping = a.stop();
    setTimeout(() => hold.release(), 300);
    await stopping;
    await new Promise((resolve) => setTimeout(resolve, 300)); // the renewal's answer is in by now
    expect(a.isLeader()).toBe(false);
    expect(() => a.fence.check("hire")).toThrow(/hire not sent/);
    expect((await metrics.registry.getSingleMetric("workforce_leader")?.get())?.values[0]?.value).toBe(0);
    // The lease was given up, not kept by the late renewal (which would keep B out for 15 s).
    await waitFor(() => b.isLeader(), 10_000);
  } finally {
    hold.release();
    await a.stop();
    await b.stop();
    await hold.proxy.close();
  }
});

test("a standby stopped while its acquire is in flight gives the lease up once the acquire lands", async () => {
  const hold = await leaseAnswerHold("acquire");
  const a = await startLeaderElection(stateEnv(azurite.connectionString, "late-acquire"), {
    logger: quiet,
    leaseSeconds: 15,
    renewEveryMs: 200,
  });
  const b = await startLeaderElection(stateEnv(hold.proxy.connectionString, "late-acquire"), {
    logger: quiet,
    leaseSeconds: 15,
    renewEveryMs: 200,
    standbyRetryMs: 100,
  });
  let c: Awaited<ReturnType<typeof startLeaderElection>> | undefined;
  try {
    expect(b.isLeader()).toBe(false);
    const held = hold.arm();
    await a.stop(); // the lease is free: B's next acquire wins it at the service
    await held;
    const stopping = b.stop();
    setTimeout(() => hold.release(), 300);
    await stopping;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(b.isLeader()).toBe(false);
    c = await startLeaderElection(stateEnv(azurite.connectionString, "late-acquire"), {
      logger: quiet,
      leaseSeconds: 15,
      standbyRetryMs: 100,
    });
    // Not after 15 s: B released what its late acquire took.
    await waitFor(() => c!.isLeader(), 10_000);
  } finally {
    hold.release();
    await a.stop();
    await b.stop();
    await c?.stop();
    await hold.proxy.close();
  }
});

test("leader election without a Storage account is a configuration error naming the variable", async () => {
  const config = loadConfig({ env: {}, regionsOptional: true });
  await expect(startLeaderElection(config, { logger: createLogger({ level: "silent" }) })).rejects.toThrow(
    /WORKFORCE_STATE_CONNECTION_STRING/,
  );
});

test("a lease length outside what Azure blob leases allow (15-60 s) is refused, naming the variable", () => {
  for (const value of ["10", "61", "20.5"]) {
    expect(() =>
      loadConfig({
        env: { WORKFORCE_LEADER_ELECTION: "true", WORKFORCE_LEADER_LEASE_SECONDS: value },
        regionsOptional: true,
      }),
    ).toThrow(/WORKFORCE_LEADER_LEASE_SECONDS/);
  }
  const config = loadConfig({ env: { WORKFORCE_LEADER_LEASE_SECONDS: "60" }, regionsOptional: true });
  expect(config.leaderLeaseSeconds).toBe(60);
});

test("a leader whose own clock passes the end of its lease (less the safety margin) stops acting, lease or not", async () => {
  const config = loadConfig({
    env: { WORKFORCE_STATE_CONNECTION_STRING: azurite.connectionString, WORKFORCE_STATE_CONTAINER: "paused" },
    regionsOptional: true,
  });
  let clock = 0;
  // Renewals only when the test says (a paused process renews nothing).
  const a = await startLeaderElection(config, {
    logger: createLogger({ level: "silent" }),
    leaseSeconds: 15,
    renewEveryMs: 3_600_000,
    now: () => clock,
  });
  try {
    expect(a.isLeader()).toBe(true);
    expect(() => a.fence.check("hire")).not.toThrow();
    clock = 12_000; // a fifth of the lease before its end: the safety margin
    expect(a.isLeader()).toBe(false);
    expect(() => a.fence.check("hire")).toThrow(/hire not sent: .*not renewed yet/);
    let woke = false;
    void a.whenLeader().then(() => (woke = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(woke).toBe(false);
  } finally {
    await a.stop();
  }
});
