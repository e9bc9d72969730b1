import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { AzuriteInstance } from "./azurite.js";

/** Root of the repository. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The built CLI; `npm test` builds before running tests. */
export const CLI_PATH = join(REPO_ROOT, "dist", "src", "cli", "main.js");

/** argv that runs the built `workforce` CLI with the given arguments. */
export function workforceArgv(...args: string[]): string[] {
  return [process.execPath, CLI_PATH, ...args];
}

/**
 * The environment of a `workforce run` child reading Azurite's queue `queue`: nothing of the test runner's
 * but PATH, no credential but the environment's (nothing probes 169.254.169.254), metrics on a free
 * loopback port, a tick a second.
 */
export function daemonEnv(azurite: AzuriteInstance, queue: string, regions: unknown[]): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
    WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queue}`,
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_METRICS_PORT: "0",
    WORKFORCE_METRICS_HOST: "127.0.0.1",
    WORKFORCE_INTERVAL_SECONDS: "1",
    WORKFORCE_REGIONS: JSON.stringify(regions),
  };
}

/**
 * The standard output of a one-shot `workforce status` in another process, on the settings of `env`,
 * trusting the certificate `ca` (the ARM emulator's), with no credential but the environment's.
 */
export async function workforceStatus(env: Record<string, string>, ca: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "wf-status-"));
  try {
    writeFileSync(join(dir, "ca.pem"), ca);
    // Not spawnSync: emulators in the test's process answer from its event loop.
    const [command, ...args] = workforceArgv("status");
    const child = spawn(command!, args, {
      env: {
        PATH: process.env.PATH,
        AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
        NODE_EXTRA_CA_CERTS: join(dir, "ca.pem"),
        ...env,
      },
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    await new Promise((resolve) => child.on("close", resolve));
    return stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
