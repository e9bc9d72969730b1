import { expect, test } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import type { AzuriteInstance } from "../support/azurite.js";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { CLI_TEMPLATE, RESOURCE_GROUP, SUBSCRIPTION, regionInput } from "../emulators/azureml/fixtures.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { azuriteAndAzuremlPerFile } from "../support/azureml-emulators.js";
import { azuremlDaemonEnv, hiredIn, startAzuremlDaemon } from "../support/azureml-daemon.js";

// A crash-looping template under `listing: index`: every job fails within a fraction of the interval, so
// no index listing ever shows it active. The region used to learn nothing of them (no exit, no failed
// start) and the daemon hired again as soon as the hires left its in-flight count (the hire grace), at
// full speed, for ever. Now the hires are read through ARM when a listing after them does not show them:
// failed starts, and the region backs off as under `listing: arm`.
let azurite: AzuriteInstance;
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuriteAndAzuremlPerFile((started) => ({ azurite, arm, ml } = started));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("listing: index, jobs that fail before the index shows them: failed starts, and the daemon backs off", async () => {
  const queueName = "index-crash-loop";
  const queue = new QueueClient(azurite.connectionString, queueName);
  await queue.create();
  await queue.sendMessage("work");
  await queue.sendMessage("more work");
  const workspace = arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, "index-crash");
  workspace.addCluster("cluster", 4);
  const env = azuremlDaemonEnv(
    azurite,
    queueName,
    [
      regionInput(arm, "index-crash", {
        name: "east",
        // The docs' old command: exits 2 as soon as it runs, about 150 ms after its submit.
        template: { ...CLI_TEMPLATE, command: "workforce worker --queue $QUEUE # emulator-exit=2@0" },
        requestTimeoutSeconds: 5,
        credential: { type: "emulator" },
        listing: "index",
        mlEndpoint: ml.url,
      }),
    ],
    // Short, so that hires the region never accounts for leave the in-flight count within the test.
    { WORKFORCE_HIRE_GRACE_SECONDS: "2" },
  );
  const { daemon, reports } = await startAzuremlDaemon(env, arm);
  const backoffOf = (report: TickReport | undefined) => report?.backoff.find((b) => b.region === "east");
  let text: string;
  try {
    // Until the backoff, then 10 more ticks (5 s: more than twice the hire grace).
    const deadline = Date.now() + 30_000;
    let until: number | undefined;
    while (Date.now() < deadline && (until === undefined || reports.length < until)) {
      if (until === undefined && backoffOf(reports.at(-1))) until = reports.length + 10;
      await sleep(100);
    }
    text = await daemon.metrics.registry.metrics();
  } finally {
    await daemon.stop();
  }
  const hired = hiredIn(reports);
  const statuses = [...workspace.jobs.values()].map((job) => job.status);
  expect(statuses.length, "jobs submitted").toBe(hired);
  expect(new Set(statuses), "every job failed").toEqual(new Set(["Failed"]));
  const backoff = backoffOf(reports.at(-1));
  expect(backoff, `backing off after ${hired} hires in ${reports.length} ticks`).toBeDefined();
  expect(backoff!.failures, "every hire is one failed start").toBe(hired);
  expect(backoff!.reason).toMatch(/^\d+ failed start\(s\) in a row \(last: Failed .*never seen Running\)/);
  // Nothing hired while the backoff runs (10 ticks, past the hire grace twice).
  const first = reports.findIndex((report) => backoffOf(report));
  expect(hiredIn(reports.slice(first))).toBe(0);
  expect(reports.length - first).toBeGreaterThanOrEqual(10);
  expect(text).toMatch(
    new RegExp(`^workforce_worker_exits_total\\{region="east",outcome="failed_start"\\} ${hired}$`, "m"),
  );
  expect(text).toMatch(/^workforce_region_start_backoff\{region="east"\} 1$/m);
});
