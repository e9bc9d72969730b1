import { loadConfig } from "../../../src/config/load.js";
import { createLogger, type Logger } from "../../../src/logging/logger.js";
import { StaticTokenCredential } from "../../../src/azure/credentials.js";
import { WriteLimiterPool } from "../../../src/azure/rate-limiter.js";
import {
  azuremlRegionSchema,
  createAzuremlRegion,
  type AzuremlRegion,
  type AzuremlRegionInput,
} from "../../../src/regions/azureml/index.js";
import type { RegionContext } from "../../../src/regions/context.js";
import type { ArmEmulator } from "./server.js";
import type { VirtualWorkspace } from "./workspace.js";
import type { ClusterOptions } from "./cluster.js";

export const SUBSCRIPTION = "00000000-0000-4000-8000-000000000001";
export const RESOURCE_GROUP = "rg-workforce";

/** A CLI v2 command job, as users write it for `az ml job create`. */
export const CLI_TEMPLATE = {
  $schema: "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
  type: "command",
  command: "workforce worker --queue $QUEUE",
  environment: "azureml:jobq-worker:3",
  compute: "azureml:ignored-the-region-sets-it",
  environment_variables: { QUEUE: "tasks" },
  identity: { type: "managed" },
  resources: { instance_count: 1, shm_size: "8g" },
  limits: { timeout: 7200 },
  tags: { team: "science" },
};

export function testContext(
  emulator: ArmEmulator,
  logger: Logger = createLogger({ level: "silent" }),
): RegionContext {
  const settings = loadConfig({ env: { WORKFORCE_QUEUE: "acct/tasks" }, regionsOptional: true });
  const credential = new StaticTokenCredential();
  return { logger, settings, credential: () => credential, tlsCa: emulator.ca };
}

/**
 * A region config for workspace `ws` of the emulator, with cluster `cluster`. Each ARM attempt gets 60 s:
 * tests count requests, and an answer slowed by a loaded machine (a TLS handshake, the emulator in the
 * test's own process) must not be abandoned and retried, which adds a request the region did not need
 * (seen: a hire of 2 sent 3 PUTs). Tests about abandoned attempts set their own, shorter, timeout.
 */
export function regionInput(
  emulator: ArmEmulator,
  ws: string,
  overrides: Partial<AzuremlRegionInput> = {},
): AzuremlRegionInput {
  return {
    name: ws,
    kind: "azureml",
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    workspace: ws,
    experiment: `exp-${ws}`,
    compute: "cluster",
    template: CLI_TEMPLATE,
    armEndpoint: emulator.url,
    requestTimeoutSeconds: 60,
    ...overrides,
  };
}

/** Workspace + cluster in the emulator, and the region that drives it. */
export function makeRegion(
  emulator: ArmEmulator,
  ws: string,
  maxNodeCount: number,
  overrides: Partial<AzuremlRegionInput> = {},
  limiters?: WriteLimiterPool,
  readLimiters?: WriteLimiterPool,
  cluster: ClusterOptions = {},
): AzuremlRegion {
  emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, ws).addCluster("cluster", maxNodeCount, cluster);
  return regionFor(emulator, ws, overrides, {}, limiters, readLimiters);
}

/**
 * The region that drives workspace `ws` of the emulator, built as a new process builds it (a restarted
 * daemon, a one-shot `workforce status`): nothing is made in the emulator. `context` replaces parts of
 * {@link testContext} (logger, settings, fence, credential); write and read budgets too large to matter
 * unless given.
 */
export function regionFor(
  emulator: ArmEmulator,
  ws: string,
  overrides: Partial<AzuremlRegionInput> = {},
  context: Partial<RegionContext> = {},
  limiters = new WriteLimiterPool({ burst: 10_000, perSecond: 10_000 }),
  readLimiters = new WriteLimiterPool({ burst: 10_000, perSecond: 10_000 }),
): AzuremlRegion {
  const config = azuremlRegionSchema.parse(regionInput(emulator, ws, overrides));
  return createAzuremlRegion(
    config,
    { ...testContext(emulator), ...context },
    { writeLimiters: limiters, readLimiters },
  );
}

/**
 * Properties of a command job as the region submits it: in `experiment`, tagged with the workforce's tag
 * key when `tagged` (else with an unrelated team tag), archived or not. For seeding workspaces.
 */
export function seededJobProperties(
  ws: VirtualWorkspace,
  experiment: string,
  tagged: boolean,
  archived = false,
): Record<string, unknown> {
  return {
    jobType: "Command",
    command: "run",
    experimentName: experiment,
    computeId: `${ws.armId}/computes/cluster`,
    environmentId: `${ws.armId}/environments/env/versions/1`,
    isArchived: archived,
    tags: tagged ? { [`workforce.${experiment}`]: experiment } : { team: "x" },
  };
}
