import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { daemonEnv, workforceArgv } from "../support/cli.js";
import { loadConfig } from "../../src/config/load.js";
import { LocalRegion } from "../../src/regions/local/index.js";
import { createLogger } from "../../src/logging/logger.js";

let azurite: AzuriteInstance;
let workDir: string;
let env: NodeJS.ProcessEnv;
const QUEUE = "cli-tasks";

beforeAll(async () => {
  azurite = await startAzurite();
  workDir = mkdtempSync(join(tmpdir(), "wf-cli-"));
  const queue = new QueueClient(azurite.connectionString, QUEUE);
  await queue.create();
  for (let i = 0; i < 50; i++) await queue.sendMessage(JSON.stringify({ i }));
  env = daemonEnv(azurite, QUEUE, [
    {
      kind: "local",
      name: "here",
      capacity: 3,
      stateDir: join(workDir, "state"),
      // Workers that start and wait: enough to see pending and running without doing the work.
      startupDelaySeconds: 60,
      command: ["{node}", "-e", "setTimeout(() => {}, 60000)"],
    },
  ]);
});

afterAll(async () => {
  const config = loadConfig({ env });
  const region = new LocalRegion(config.regions[0] as never, {
    logger: createLogger({ level: "silent" }),
    settings: config,
    credential: () => {
      throw new Error("no credential in tests");
    },
  });
  await region.stopAll(1_000);
  await region.close();
  await azurite?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

function run(...args: string[]) {
  const [command, ...rest] = workforceArgv(...args);
  return spawnSync(command!, rest, { env, encoding: "utf8", timeout: 30_000 });
}

describe("the workforce CLI against Azurite and a local region", () => {
  test("status --json shows the queue, the region and what the next tick would do, acting on nothing", () => {
    const result = run("status", "--json");
    expect(result.status, result.stderr).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status.queue.depth).toBe(50);
    expect(status.regions[0]).toMatchObject({
      name: "here",
      fresh: true,
      observation: { running: 0, pending: 0, capacity: 3 },
    });
    expect(status.plan.regions[0]).toMatchObject({ region: "here", hire: 3 }); // ramp 10, capacity 3
    const table = run("status");
    expect(table.stdout).toMatch(/queue depth: 50/);
    expect(table.stdout).toMatch(/here\s+0\s+0\s+0\s+3\s+hire 3/);
  });

  test("once --dry-run plans but hires nobody", () => {
    const result = run("once", "--dry-run", "--json");
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).plan.hire).toBe(10);
    expect(JSON.parse(run("status", "--json").stdout).regions[0].observation.pending).toBe(0);
  });

  test("hire, then lay-off cancels pending workers first", () => {
    const hired = run("hire", "2", "--region", "here");
    expect(hired.status, hired.stderr).toBe(0);
    expect(JSON.parse(hired.stdout).hired).toBe(2);
    expect(JSON.parse(run("status", "--json").stdout).regions[0].observation.pending).toBe(2);
    const laidOff = run("lay-off", "1", "--region", "here");
    expect(laidOff.status, laidOff.stderr).toBe(0);
    expect(JSON.parse(laidOff.stdout)).toMatchObject({ cancelled: 1, drained: 0 });
    expect(JSON.parse(run("status", "--json").stdout).regions[0].observation.pending).toBe(1);
  });

  test("scale-to hires up to the target, and shrinks only with --with-layoffs (pending first)", () => {
    const before = JSON.parse(run("status", "--json").stdout).regions[0].observation;
    const active = before.running + before.pending;
    const up = run("scale-to", "3");
    expect(up.status, up.stderr).toBe(0);
    expect(JSON.parse(up.stdout).hired).toEqual({ here: 3 - active });
    const noShrink = run("scale-to", "0");
    expect(JSON.parse(noShrink.stdout)).toMatchObject({ cancelled: {}, drained: {} });
    expect(JSON.parse(run("status", "--json").stdout).regions[0].observation.pending).toBe(3);
    const down = run("scale-to", "1", "--with-layoffs");
    expect(down.status, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ cancelled: { here: 2 }, drained: {} });
    expect(JSON.parse(run("status", "--json").stdout).regions[0].observation.pending).toBe(1);
  });

  test("an unknown region is a usage error (exit 2) that names the configured ones", () => {
    const result = run("hire", "1", "--region", "nowhere");
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/--region: no region named "nowhere"; configured: here/);
  });

  test("plan needs no configuration at all", () => {
    const [command, ...rest] = workforceArgv(
      "plan",
      "--queue",
      "1600",
      "--concurrency",
      "4",
      "--running",
      "3",
      "--json",
    );
    const result = spawnSync(command!, rest, { env: { PATH: process.env.PATH }, encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ target: 40, delta: 37 });
  });

  test("run stops on SIGTERM after the tick in flight and exits 0", async () => {
    const [command, ...rest] = workforceArgv("run", "--dry-run");
    const child = spawn(command!, rest, { env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no tick logged: ${output}`)), 20_000);
      child.stdout.on("data", () => {
        if (output.includes('"msg":"tick"')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(0);
    expect(output).toContain("workforce autoscaler stopped");
    const tick = JSON.parse(output.split("\n").find((line) => line.includes('"msg":"tick"'))!);
    expect(tick).toMatchObject({ dryRun: true, queueDepth: 50, want: 10, hired: 0 });
  });
});
