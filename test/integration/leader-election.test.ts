import { afterAll, beforeAll, expect, test } from "vitest";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { loadConfig } from "../../src/config/load.js";
import { startLeaderElection } from "../../src/controller/leader.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics } from "../../src/metrics/registry.js";

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
  const config = loadConfig({
    env: { WORKFORCE_STATE_CONNECTION_STRING: azurite.connectionString, WORKFORCE_STATE_CONTAINER: "leases" },
    regionsOptional: true,
  });
  const logger = createLogger({ level: "silent" });
  const metricsA = createMetrics({ processMetrics: false });
  const a = await startLeaderElection(config, {
    logger,
    metrics: metricsA,
    leaseSeconds: 15,
    renewEveryMs: 200,
  });
  const b = await startLeaderElection(config, { logger, leaseSeconds: 15, renewEveryMs: 200 });
  try {
    expect(a.isLeader()).toBe(true);
    expect(b.isLeader()).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 600)); // renewals keep the lease with A
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    expect((await metricsA.registry.getSingleMetric("workforce_leader")?.get())?.values[0]?.value).toBe(1);
    await a.stop(); // releases the lease
    await waitFor(() => b.isLeader(), 5_000);
    expect(a.isLeader()).toBe(false);
  } finally {
    await a.stop();
    await b.stop();
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
