import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { startMlApiEmulator, type MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { CLI_TEMPLATE, RESOURCE_GROUP, SUBSCRIPTION } from "../emulators/azureml/fixtures.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { StaticTokenCredential } from "../../src/azure/credentials.js";
import { workforceArgv } from "../support/cli.js";

// A daemon restarted while its AzureML region backs off after failed starts goes on backing off: it
// does not hire again at its first tick (failed starts cost money and quota), in the two modes where
// finished jobs are not retired (`retireFinished: keep`, `listing: index`) as in the default one.
let azurite: AzuriteInstance;
let arm: ArmEmulator;
let ml: MlApiEmulator;

beforeAll(async () => {
  [azurite, arm] = await Promise.all([
    startAzurite(),
    startArmEmulator({ stepMs: 20, timing: { prepareMs: 100 } }),
  ]);
  ml = await startMlApiEmulator({ arm });
});

afterAll(async () => {
  await ml?.close();
  await arm?.close();
  await azurite?.stop();
});

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
    const env = {
      WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queueName}`,
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      WORKFORCE_INTERVAL_SECONDS: "0.5",
      WORKFORCE_JITTER: "0",
      WORKFORCE_METRICS_PORT: "0",
      WORKFORCE_METRICS_HOST: "127.0.0.1",
      WORKFORCE_REGIONS: JSON.stringify([
        {
          kind: "azureml",
          name: "east",
          subscriptionId: SUBSCRIPTION,
          resourceGroup: RESOURCE_GROUP,
          workspace: `streak-${id}`,
          experiment: `exp-${id}`,
          compute: "cluster",
          // The docs' old command: exits 2 soon after it starts (seen Running first: the index lists it).
          template: { ...CLI_TEMPLATE, command: "workforce worker --queue $QUEUE # emulator-exit=2@1500" },
          armEndpoint: arm.url,
          requestTimeoutSeconds: 5,
          credential: { type: "emulator" },
          ...modeOf(),
        },
      ]),
    };
    const run = async (until: (reports: TickReport[]) => boolean, limitMs: number) => {
      const reports: TickReport[] = [];
      const daemon = await startDaemon({
        config: loadConfig({ env }),
        logger: createLogger({ level: "silent" }),
        credential: new StaticTokenCredential(),
        tlsCa: arm.ca,
        onTick: (report) => reports.push(report),
      });
      try {
        const deadline = Date.now() + limitMs;
        while (Date.now() < deadline && !until(reports)) await sleep(100);
      } finally {
        await daemon.stop();
      }
      return reports;
    };
    const hired = (reports: TickReport[]) =>
      reports.reduce((sum, report) => sum + report.outcomes.reduce((s, o) => s + o.hired, 0), 0);
    const backoffOf = (report: TickReport | undefined) => report?.backoff.find((b) => b.region === "east");

    const first = await run((reports) => backoffOf(reports.at(-1)) !== undefined, 30_000);
    const failures = backoffOf(first.at(-1))?.failures;
    expect(failures, "every worker hired failed to start").toBe(hired(first));
    const jobs = workspace.jobs.size;
    expect(jobs).toBe(failures);

    // The restart: a new daemon, its first ticks.
    const second = await run((reports) => reports.length >= 6, 30_000);
    expect(second.length).toBeGreaterThanOrEqual(6);
    expect(hired(second), "no hire while the backoff of the streak runs").toBe(0);
    expect(workspace.jobs.size).toBe(jobs);
    // A one-shot `workforce status` (another process, one listing) shows the same backoff.
    const dir = mkdtempSync(join(tmpdir(), "wf-streak-"));
    let stdout = "";
    try {
      writeFileSync(join(dir, "ca.pem"), arm.ca);
      // Not spawnSync: the emulators answer from this process's event loop.
      const [command, ...args] = workforceArgv("status");
      const child = spawn(command!, args, {
        env: {
          PATH: process.env.PATH,
          AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
          NODE_EXTRA_CA_CERTS: join(dir, "ca.pem"),
          ...env,
        },
      });
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      await new Promise((resolve) => child.on("close", resolve));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
