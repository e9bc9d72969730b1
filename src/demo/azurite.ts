import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { tmpdir } from "node:os";

/** Azurite's published development account (documented, not a secret). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteInstance {
  blobPort: number;
  queuePort: number;
  /** Connection string with both endpoints, bound to 127.0.0.1. */
  connectionString: string;
  queueEndpoint: string;
  blobEndpoint: string;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Keep data on disk in this folder instead of memory. */
  location?: string;
  /** Fixed ports (default: any free port). */
  blobPort?: number;
  queuePort?: number;
  startTimeoutMs?: number;
}

function azuriteBin(): string {
  // Resolve through the package so it works from any working directory.
  const require = createRequire(import.meta.url);
  const packageJson = require.resolve("azurite/package.json");
  return join(dirname(packageJson), "dist", "src", "azurite.js");
}

/**
 * Start Azurite (blob + queue) on 127.0.0.1 as a child process and wait until both services listen.
 * Pinned to 3.35.0 (newer ones need Node 22); started with --skipApiVersionCheck because the current
 * storage SDKs send an API version it does not know.
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteInstance> {
  const args = [
    azuriteBin(),
    "--disableTelemetry",
    "--skipApiVersionCheck",
    "--silent",
    "--blobHost",
    "127.0.0.1",
    "--blobPort",
    String(options.blobPort ?? 0),
    "--queueHost",
    "127.0.0.1",
    "--queuePort",
    String(options.queuePort ?? 0),
    "--tableHost",
    "127.0.0.1",
    "--tablePort",
    "0",
    // --inMemoryPersistence cannot be combined with --location.
    ...(options.location ? ["--location", options.location] : ["--inMemoryPersistence"]),
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], cwd: tmpdir() });
  const ports = await waitForPorts(child, options.startTimeoutMs ?? 20_000);
  const blobEndpoint = `http://127.0.0.1:${ports.blob}/${AZURITE_ACCOUNT}`;
  const queueEndpoint = `http://127.0.0.1:${ports.queue}/${AZURITE_ACCOUNT}`;
  return {
    blobPort: ports.blob,
    queuePort: ports.queue,
    blobEndpoint,
    queueEndpoint,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
      `BlobEndpoint=${blobEndpoint};QueueEndpoint=${queueEndpoint};`,
    stop: () => stopChild(child),
  };
}

function waitForPorts(child: ChildProcess, timeoutMs: number): Promise<{ blob: number; queue: number }> {
  return new Promise((resolve, reject) => {
    let output = "";
    const found: { blob?: number; queue?: number } = {};
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`Azurite did not start within ${timeoutMs} ms; output: ${output.slice(-500)}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      for (const match of output.matchAll(
        /Azurite (Blob|Queue) service is successfully listening at http:\/\/[^:]+:(\d+)/g,
      )) {
        found[match[1] === "Blob" ? "blob" : "queue"] = Number(match[2]);
      }
      if (found.blob && found.queue) {
        clearTimeout(timer);
        // Keep draining its output so the child never blocks on a full pipe.
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve({ blob: found.blob, queue: found.queue });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with code ${code} before listening; output: ${output.slice(-500)}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const cleanup = () => resolve();
    if (child.exitCode !== null || child.signalCode !== null) return cleanup();
    const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(kill);
      cleanup();
    });
    child.kill("SIGTERM");
  });
}
