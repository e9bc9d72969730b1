import { afterAll, beforeAll, expect, test } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { workforceArgv } from "../support/cli.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger } from "../../src/logging/logger.js";
import { logLines } from "../support/log-lines.js";

// Issue 11, finding 3: a local region whose command exits 7 at once was re-hired every tick for as long
// as the daemon ran, with an info line and no metric. Now the exit is recorded with its code and output,
// counts as a failed start, and the region backs off (no hires), says so at warn, in status and metrics.

let azurite: AzuriteInstance;
let workDir: string;

beforeAll(async () => {
  azurite = await startAzurite();
  workDir = mkdtempSync(join(tmpdir(), "wf-crash-"));
});

afterAll(async () => {
  await azurite?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

test("a worker command that exits 7 at once is a failed start: the region backs off and says why", async () => {
  const queueName = "crash-loop";
  await new QueueClient(azurite.connectionString, queueName).create();
  await new QueueClient(azurite.connectionString, queueName).sendMessage("work");
  const stateDir = join(workDir, "state");
  const region = {
    kind: "local",
    name: "lab",
    capacity: 4,
    stateDir,
    command: ["sh", "-c", "echo 'error: unknown option --queue' >&2; exit 7"],
  };
  const env = {
    WORKFORCE_QUEUE: queueName,
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_REGIONS: JSON.stringify([region]),
    WORKFORCE_INTERVAL_SECONDS: "1",
    WORKFORCE_JITTER: "0",
    WORKFORCE_METRICS_PORT: "0",
    WORKFORCE_METRICS_HOST: "127.0.0.1",
  };
  const { lines, destination: sink } = logLines();
  const reports: TickReport[] = [];
  const daemon = await startDaemon({
    config: loadConfig({ env }),
    logger: createLogger({ level: "info", destination: sink }),
    onTick: (report) => reports.push(report),
  });
  try {
    const deadline = Date.now() + 30_000;
    while (reports.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  } finally {
    await daemon.stop();
  }
  const hires = reports.reduce((sum, report) => sum + report.outcomes.reduce((s, o) => s + o.hired, 0), 0);
  // Once, not once per tick: the backoff (30 s at a 1 s interval) holds the other five ticks.
  expect(hires).toBe(1);
  const backedOff = reports.filter((report) => report.backoff.some((b) => b.region === "lab"));
  expect(backedOff.length).toBeGreaterThanOrEqual(4);

  const failedStart = lines.find((line) => String(line.msg).startsWith("worker failed to start"));
  expect(failedStart, "a warn line for the failed start").toMatchObject({
    level: "warn",
    outcome: "failed_start",
    detail: "exit code 7",
    lastOutput: "error: unknown option --queue",
  });
  const warning = lines.find((line) => String(line.msg).startsWith("region lab: workers fail to start"));
  expect(warning?.level).toBe("warn");
  expect(String(warning?.msg)).toMatch(
    /1 failed start\(s\) in a row \(last: exit code 7 after \d+\.\d s; last output: "error: unknown option --queue"\); no hires for \d+ s/,
  );

  const text = await daemon.metrics.registry.metrics();
  expect(text).toMatch(/^workforce_worker_exits_total\{region="lab",outcome="failed_start"\} 1$/m);
  expect(text).toMatch(/^workforce_region_start_backoff\{region="lab"\} 1$/m);
  // The queue still wants a worker, and no region takes it.
  expect(text).toMatch(/^workforce_unplaced_workers 1$/m);
  // Finding 7 too: the storage account is named, process metrics have their standard names.
  expect(text).toMatch(/^workforce_info\{.*storage_account="devstoreaccount1".*\} 1$/m);
  expect(text).toMatch(/^process_cpu_seconds_total /m);
  expect(text).not.toContain("workforce_process_");

  // A one-shot status in another process reads the same history and says the same.
  const [command, ...args] = workforceArgv("status");
  const status = spawnSync(command!, args, { env: { PATH: process.env.PATH, ...env }, encoding: "utf8" });
  expect(status.stdout).toMatch(
    /^lab .*\[backing off: 1 failed start\(s\) in a row \(last: exit code 7 .*unknown option --queue.*\); no hires for \d+ s\]$/m,
  );
});
