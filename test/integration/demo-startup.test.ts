import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { workforceArgv } from "../support/cli.js";

// `npm start` on a machine where port 9464 is taken: the operator must learn which setting to change, and
// the Azurite the demo started must not outlive it.

let busy: Server;
let busyPort: number;

beforeAll(async () => {
  busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  busyPort = (busy.address() as { port: number }).port;
});

afterAll(() => new Promise<void>((resolve) => busy.close(() => resolve())));

/** Processes whose environment carries `marker` (children inherit it, even once orphaned). */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "latin1").includes(marker)) found.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

describe("workforce demo when its metrics port is taken", () => {
  test("exits 1 naming the port and --metrics-port, before starting Azurite or pushing anything", () => {
    const marker = `WF_DEMO_STARTUP_TEST=${randomUUID()}`;
    const [command, ...args] = workforceArgv("demo", "--tasks", "1", "--metrics-port", String(busyPort));
    const result = spawnSync(command!, args, {
      env: {
        PATH: process.env.PATH,
        AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
        [marker.split("=")[0]!]: marker.split("=")[1],
      },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain(
      `--metrics-port ${busyPort}: cannot listen on 127.0.0.1:${busyPort} (EADDRINUSE); pick a free port with --metrics-port, or 0 for any free port`,
    );
    // The option is to blame, not a variable the operator never set; and nothing had started.
    expect(result.stderr).not.toContain("WORKFORCE_METRICS_PORT");
    expect(result.stdout + result.stderr).not.toContain("Azurite started");
    expect(result.stdout + result.stderr).not.toContain("workload pushed");
    expect(processesWith(marker)).toEqual([]);
  });

  test("a bad option is a usage error (exit 2) before anything starts", () => {
    for (const args of [
      ["--metrics-port", "70000"],
      ["--interval", "0"],
      ["--task-seconds", "9-2"],
    ]) {
      const [command, ...rest] = workforceArgv("demo", ...args);
      const result = spawnSync(command!, rest, {
        env: { PATH: process.env.PATH, AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential" },
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(result.status, `${args.join(" ")}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(args[0]!);
      expect(result.stdout + result.stderr).not.toContain("Azurite started");
    }
  });
});
