import { afterAll, beforeAll, expect, test } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import {
  CLI_TEMPLATE,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  seededJobProperties,
} from "../emulators/azureml/fixtures.js";
import { createLogger } from "../../src/logging/logger.js";
import { workforceStatus } from "../support/cli.js";
import { logLines } from "../support/log-lines.js";
import { azuremlDaemonEnv, startAzuremlDaemon } from "../support/azureml-daemon.js";

// Issue 11, finding 3, AzureML: the docs' old job command (`workforce worker --queue ...`) exits 2 at
// once, so every job Failed seconds after it started, and the region was re-hired every tick, with no
// metric and no warning. Now each finished job is recorded once as a worker exit; a job that Failed
// before it had run is a failed start, and the region backs off as a local one does.

let azurite: AzuriteInstance;
let emulator: ArmEmulator;

beforeAll(async () => {
  [azurite, emulator] = await Promise.all([
    startAzurite(),
    startArmEmulator({ stepMs: 20, timing: { prepareMs: 100 } }),
  ]);
});

afterAll(async () => {
  await emulator?.close();
  await azurite?.stop();
});

test("AzureML jobs that fail at once are failed starts: the region backs off; a completed job counts once", async () => {
  const queueName = "aml-crash-loop";
  const queue = new QueueClient(azurite.connectionString, queueName);
  await queue.create();
  // Two workers wanted; west's running job is one of them.
  await queue.sendMessage("work");
  await queue.sendMessage("more work");

  const east = emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, "crash-east");
  east.addCluster("cluster", 4);
  // west: one node, busy with a job of ours that completes while the daemon watches; then idle nodes
  // there take the hires east cannot (west's command runs until told).
  const west = emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, "crash-west");
  west.addCluster("cluster", 1);
  west.createJob("west-old", seededJobProperties(west, "exp-west", true), 2_500);
  west.schedule();

  const region = (name: string, command: string) => ({
    kind: "azureml",
    name,
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    workspace: `crash-${name}`,
    experiment: `exp-${name}`,
    compute: "cluster",
    template: { ...CLI_TEMPLATE, command },
    armEndpoint: emulator.url,
    requestTimeoutSeconds: 5,
    credential: { type: "emulator" },
  });
  const env = azuremlDaemonEnv(azurite, queueName, [
    // The old example's command: exits 2 (`unknown option '--queue'`) 200 ms after it starts.
    region("east", "workforce worker --queue $QUEUE --concurrency 4 # emulator-exit=2@200"),
    // Finished jobs stay listed in west: its completed job is seen on every tick, and counts once.
    { ...region("west", "sleep infinity"), weight: 0.001, retireFinished: "keep" },
  ]);
  const { lines, destination: sink } = logLines();
  const { daemon, reports } = await startAzuremlDaemon(
    env,
    emulator,
    createLogger({ level: "info", destination: sink }),
  );
  let text: string;
  try {
    const deadline = Date.now() + 40_000;
    const westDone = () => west.jobs.get("west-old")?.status === "Completed";
    // Enough ticks for the failure to be seen, and a few more after west's job completed.
    let ticksAfterWest: number | undefined;
    while (Date.now() < deadline) {
      if (westDone() && ticksAfterWest === undefined) ticksAfterWest = reports.length + 4;
      if (ticksAfterWest !== undefined && reports.length >= Math.max(ticksAfterWest, 10)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    text = await daemon.metrics.registry.metrics();
  } finally {
    await daemon.stop();
  }

  const eastJobs = [...east.jobs.values()];
  expect(
    eastJobs.map((job) => [job.status, job.properties.isArchived]),
    "east was hired once, then backed off; its failed job archived",
  ).toEqual([["Failed", false]]);
  // Kept listed, marked: the streak survives the daemon (a restart, or `status` from another process).
  expect(eastJobs[0]!.properties.tags).toMatchObject({
    "workforce.exp-east.exit": expect.stringMatching(/^failed_start@/),
  });
  const hiredEast = reports.reduce(
    (sum, report) =>
      sum + report.outcomes.filter((o) => o.region === "east").reduce((s, o) => s + o.hired, 0),
    0,
  );
  expect(hiredEast).toBe(1);
  expect(reports.filter((report) => report.backoff.some((b) => b.region === "east")).length).toBeGreaterThan(
    3,
  );
  expect(reports.at(-1)!.backoff.find((b) => b.region === "east")?.reason).toMatch(
    /^1 failed start\(s\) in a row \(last: Failed .*\); no hires for \d+ s$/,
  );

  const failedStart = lines.find(
    (line) => line.region === "east" && String(line.msg).startsWith("worker failed to start"),
  );
  expect(failedStart, "a warn line for the failed start").toMatchObject({
    level: "warn",
    workerId: eastJobs[0]!.name,
    outcome: "failed_start",
  });
  const warning = lines.find((line) => String(line.msg).startsWith("region east: workers fail to start"));
  expect(warning?.level).toBe("warn");

  // Each finished job once, though each was listed on every tick after it finished.
  expect(text).toMatch(/^workforce_worker_exits_total\{region="east",outcome="failed_start"\} 1$/m);
  expect(text).toMatch(/^workforce_worker_exits_total\{region="west",outcome="succeeded"\} 1$/m);
  for (const outcome of ["failed", "failed_start", "unknown"])
    expect(text).toContain(`workforce_worker_exits_total{region="west",outcome="${outcome}"} 0\n`);
  expect(text).toMatch(/^workforce_region_start_backoff\{region="east"\} 1$/m);
  expect(text).toMatch(/^workforce_region_start_backoff\{region="west"\} 0$/m);

  // A one-shot status in another process finds the marked job and says the same.
  const stdout = await workforceStatus(env, emulator.ca);
  expect(stdout).toMatch(
    /^east .*\[backing off: 1 failed start\(s\) in a row \(last: Failed \d+ s after it was submitted.*\); no hires for \d+ s\]$/m,
  );
});
