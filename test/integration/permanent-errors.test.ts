import { afterAll, beforeAll, expect, test } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer, type Server as NetServer } from "node:net";
import { workforceArgv } from "../support/cli.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon } from "../../src/controller/daemon.js";
import { createLogger } from "../../src/logging/logger.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { logLines } from "../support/log-lines.js";
import { holdRefusedPort, type RefusedPort } from "../support/refused-port.js";

// Issue 11, findings 5 and 9: errors that will never heal are named as such (what to fix, host, network
// cause), counted with a permanent label and fail readiness; status prints them in one line, at once.

const KEY = "Zm9vYmFyc2VjcmV0a2V5MTIzNDU2Nzg5MA==";
const cs = (port: number) =>
  `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${KEY};QueueEndpoint=http://127.0.0.1:${port}/devstoreaccount1`;
const stateDir = mkdtempSync(join(tmpdir(), "wf-permanent-"));
const regions = JSON.stringify([{ kind: "local", name: "lab", capacity: 2, stateDir, command: ["true"] }]);

let forbidding: Server;
let forbiddingPort = 0;
let refused: RefusedPort | undefined;
let refusedPort = 0;
let hung: NetServer;
let hungPort = 0;
const hungSockets = new Set<import("node:net").Socket>();

beforeAll(async () => {
  // A wrong account key: Storage answers 403 AuthenticationFailed with a multi-line message.
  forbidding = createServer((_request, response) => {
    response
      .writeHead(403, { "content-type": "application/xml", "x-ms-error-code": "AuthenticationFailed" })
      .end(
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:0f0e\nTime:2026-12-01T10:00:00.0000000Z</Message></Error>',
      );
  });
  await new Promise<void>((resolve) => forbidding.listen(0, "127.0.0.1", resolve));
  forbiddingPort = (forbidding.address() as { port: number }).port;
  // A port nobody listens on (held, so that no other process takes it meanwhile).
  refused = await holdRefusedPort();
  refusedPort = refused.port;
  // Accepts connections and never answers.
  hung = createNetServer((socket) => void hungSockets.add(socket));
  await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
  hungPort = (hung.address() as { port: number }).port;
});

afterAll(async () => {
  await refused?.release();
  await new Promise<void>((resolve) => forbidding.close(() => resolve()));
  for (const socket of hungSockets) socket.destroy();
  await new Promise<void>((resolve) => hung.close(() => resolve()));
  rmSync(stateDir, { recursive: true, force: true });
});

function runCli(args: string[], env: NodeJS.ProcessEnv) {
  const [command, ...rest] = workforceArgv(...args);
  const child = spawn(command!, rest, {
    env: { PATH: process.env.PATH, AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, stdout, stderr })),
  );
}

test("status names a wrong key as permanent, in one line, with what to fix", async () => {
  const result = await runCli(["status"], {
    WORKFORCE_QUEUE: "tasks",
    WORKFORCE_QUEUE_CONNECTION_STRING: cs(forbiddingPort),
    WORKFORCE_REGIONS: regions,
  });
  expect(result.code).toBe(1);
  const line = result.stdout.split("\n").find((l) => l.startsWith("queue depth:"))!;
  expect(line).toMatch(
    /^queue depth: UNKNOWN \(permanent: AuthenticationFailed: .*check the key or connection string, or the identity's role\)\)$/,
  );
  expect(result.stdout).not.toMatch(/RequestId|Time:/);
  expect(result.stdout + result.stderr).not.toContain(KEY);
});

test("with nothing listening, the error says connection refused and the host, not only a timeout", async () => {
  const started = Date.now();
  const result = await runCli(["once", "--dry-run"], {
    WORKFORCE_QUEUE: "tasks",
    WORKFORCE_QUEUE_CONNECTION_STRING: cs(refusedPort),
    WORKFORCE_REGIONS: regions,
    WORKFORCE_CALL_TIMEOUT_SECONDS: "20",
  });
  expect(result.code).toBe(1);
  expect(result.stdout + result.stderr).toContain(`connection refused (127.0.0.1:${refusedPort})`);
  // The SDK's own retries do not hide the cause behind the whole call timeout.
  expect(Date.now() - started).toBeLessThan(19_000);
});

test("the daemon counts a permanent queue error as such and is not ready", async () => {
  const { lines, destination: sink } = logLines();
  const reports: TickReport[] = [];
  const daemon = await startDaemon({
    config: loadConfig({
      env: {
        WORKFORCE_QUEUE: "tasks",
        WORKFORCE_QUEUE_CONNECTION_STRING: cs(forbiddingPort),
        WORKFORCE_REGIONS: regions,
        WORKFORCE_INTERVAL_SECONDS: "1",
        WORKFORCE_METRICS_PORT: "0",
        WORKFORCE_METRICS_HOST: "127.0.0.1",
      },
    }),
    logger: createLogger({ level: "info", destination: sink }),
    onTick: (report) => reports.push(report),
  });
  try {
    const deadline = Date.now() + 20_000;
    while (reports.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const ready = await fetch(`http://127.0.0.1:${daemon.metricsPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toMatch(
      /^not ready: permanent error: queue .*check the key or connection string/,
    );
    const text = await daemon.metrics.registry.metrics();
    expect(text).toMatch(/^workforce_queue_read_errors_total\{permanent="true"\} [1-9]/m);
    const errors = lines.filter(
      (line) => line.level === "error" && String(line.msg).startsWith("permanent error"),
    );
    // Once, not once per tick.
    expect(errors).toHaveLength(1);
    expect(String(errors[0]!.msg)).toMatch(/permanent error: queue .*: check the key or connection string/);
  } finally {
    await daemon.stop();
  }
});

test("status against an endpoint that never answers says what it waits for, on a terminal", async () => {
  // `script` gives the command a real terminal, as an operator's shell would.
  const argv = workforceArgv("status")
    .map((word) => `'${word}'`)
    .join(" ");
  const [command, ...rest] = ["script", "-qec", argv, "/dev/null"];
  const child = spawn(command!, rest, {
    env: {
      PATH: process.env.PATH,
      AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
      WORKFORCE_QUEUE: "tasks",
      WORKFORCE_QUEUE_CONNECTION_STRING: cs(hungPort),
      WORKFORCE_REGIONS: regions,
      WORKFORCE_CALL_TIMEOUT_SECONDS: "4",
    },
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  // Other calls still waiting at that moment (on a loaded machine, even the local region's read) are named
  // beside it.
  expect(output).toMatch(
    /workforce: waiting for (?:[^\r\n]*, )?queue [^\r\n]*tasks(?:, [^\r\n]*)? \(up to 4 s; \d+ s so far\)/,
  );
  expect(output).toMatch(/queue depth: UNKNOWN \(queue .*tasks did not answer within 4000 ms\)/);
  expect(code).toBe(1);
});
