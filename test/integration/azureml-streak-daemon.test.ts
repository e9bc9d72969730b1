import { describe, expect, it } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import type { AzuriteInstance } from "../support/azurite.js";
import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { CLI_TEMPLATE, RESOURCE_GROUP, SUBSCRIPTION, regionInput } from "../emulators/azureml/fixtures.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { workforceStatus } from "../support/cli.js";
import { azuriteAndAzuremlPerFile } from "../support/azureml-emulators.js";
import { azuremlDaemonEnv, hiredIn, startAzuremlDaemon } from "../support/azureml-daemon.js";

// A daemon restarted while its AzureML region backs off after failed starts goes on backing off: it
// does not hire again at its first tick (failed starts cost money and quota), in the two modes where
// finished jobs are not retired (`retireFinished: keep`, `listing: index`) as in the default one.
let azurite: AzuriteInstance;
let arm: ArmEmulator;
let ml: MlApiEmulator;

azuriteAndAzuremlPerFile((started) => ({ azurite, arm, ml } = started));

const modes: Array<[string, string, () => Record<string, unknown>]> = [
  ["retireFinished: keep", "keep", () => ({ retireFinished: "keep" })],
  ["listing: index", "index", () => ({ listing: "index", mlEndpoint: ml.url })],
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(modes)("a daemon restarted during a start backoff (%s)", (_, id, modeOf) => {
  it("does not hire again: the backoff goes on, with the streak where it was", async () => {
    const queueName = `streak-${id}`;
    const queue = new QueueClient(azurite.connectionString, queueName);
    await queue.create();
    await queue.sendMessage("work");
    await queue.sendMessage("more work");
    const workspace = arm.workspace(SUBSCRIPTION, RESOURCE_GROUP, `streak-${id}`);
    workspace.addCluster("cluster", 4);
    const env = azuremlDaemonEnv(azurite, queueName, [
      regionInput(arm, `streak-${id}`, {
        name: "east",
        experiment: `exp-${id}`,
        // The docs' old command: exits 2 soon after it starts (seen Running first: the index lists it).
        template: { ...CLI_TEMPLATE, command: "workforce worker --queue $QUEUE # emulator-exit=2@1500" },
        requestTimeoutSeconds: 5,
        credential: { type: "emulator" },
        ...modeOf(),
      }),
    ]);
    const run = async (until: (reports: TickReport[]) => boolean, limitMs: number) => {
      const { daemon, reports } = await startAzuremlDaemon(env, arm);
      try {
        const deadline = Date.now() + limitMs;
        while (Date.now() < deadline && !until(reports)) await sleep(100);
      } finally {
        await daemon.stop();
      }
      return reports;
    };
    const backoffOf = (report: TickReport | undefined) => report?.backoff.find((b) => b.region === "east");

    const first = await run((reports) => backoffOf(reports.at(-1)) !== undefined, 30_000);
    const failures = backoffOf(first.at(-1))?.failures;
    expect(failures, "every worker hired failed to start").toBe(hiredIn(first));
    const jobs = workspace.jobs.size;
    expect(jobs).toBe(failures);

    // The restart: a new daemon, its first ticks.
    const second = await run((reports) => reports.length >= 6, 30_000);
    expect(second.length).toBeGreaterThanOrEqual(6);
    expect(hiredIn(second), "no hire while the backoff of the streak runs").toBe(0);
    expect(workspace.jobs.size).toBe(jobs);
    // A one-shot `workforce status` (another process, one listing) shows the same backoff.
    const stdout = await workforceStatus(env, arm.ca);
    expect(stdout).toMatch(
      new RegExp(`^east .*\\[backing off: ${failures} failed start\\(s\\) in a row \\(last: Failed `, "m"),
    );
    for (const report of second) {
      expect(backoffOf(report)?.failures).toBe(failures);
      expect(backoffOf(report)?.reason).toMatch(
        new RegExp(`^${failures} failed start\\(s\\) in a row \\(last: Failed `),
      );
    }
  });
});
