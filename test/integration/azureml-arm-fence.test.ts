import { expect, it } from "vitest";
import type { TokenCredential } from "@azure/core-auth";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import { azuremlEmulatorsPerTest } from "../support/azureml-emulators.js";
import { regionInput, RESOURCE_GROUP, SUBSCRIPTION, testContext } from "../emulators/azureml/fixtures.js";
import { azuremlRegionSchema, createAzuremlRegion } from "../../src/regions/azureml/index.js";
import { WriteLimiterPool } from "../../src/azure/rate-limiter.js";
import { LeaseFence } from "../../src/controller/leader.js";
import { createLogger } from "../../src/logging/logger.js";

// "One replica acts at a time" for ARM writes: the lease is checked right before the request goes, after
// the bearer token is there. Fetching a token (AAD, the node's identity endpoint, with their retries) can
// take longer than the lease has left; a check before it would let the write go after the lease's end.
let arm: ArmEmulator;
azuremlEmulatorsPerTest((started) => ({ arm } = started));

it("the lease running out while the ARM token is fetched stops the hire: no job PUT after it", async () => {
  const clock = { now: 0 };
  const fence = new LeaseFence(() => clock.now);
  fence.grant(0, 15_000);
  const logger = createLogger({ level: "silent" });
  const base = testContext(arm, logger);
  const slowToken: TokenCredential = {
    getToken: async (scopes, options) => {
      clock.now = 20_000; // the token came after the lease's end (by this replica's clock)
      return base.credential().getToken(scopes, options);
    },
  };
  arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, "ws1").addCluster("cluster", 4);
  const config = azuremlRegionSchema.parse(regionInput(arm, "ws1", { submitConcurrency: 1 }));
  const pool = () => new WriteLimiterPool({ burst: 10_000, perSecond: 10_000 });
  const region = createAzuremlRegion(
    config,
    { ...base, credential: () => slowToken, fence },
    { writeLimiters: pool(), readLimiters: pool() },
  );
  const result = await region.hire(2);
  expect(arm.requests.filter((request) => request.operation === "jobs.createOrUpdate")).toEqual([]);
  expect(result.hired).toBe(0);
  expect(result.unknown ?? 0).toBe(0); // not sent, so it cannot exist
  expect(result.errors.map((error) => error.message).join("\n")).toMatch(
    /ARM jobs\.createOrUpdate not sent: this replica's leader lease ran out/,
  );
});
