// One "agent" of the node, reduced to what it does once the broker has confirmed a control message: the
// built signalOnce, with a delay (RACER_HOLD_MS) between its last look at the PID files and the signal, so
// that a test can make two of them overlap. Prints the result as one JSON line.
// Env: RACER_DIST (the built dist/agent/signal-once.js), RACER_PID_DIR, RACER_TARGETS (PIDs, comma-separated),
// RACER_HOLD_MS (default 0), RACER_LOCK_TIMEOUT_MS (optional), RACER_READY (file written once started).
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const { signalOnce } = await import(pathToFileURL(process.env.RACER_DIST).href);
const holdMs = Number(process.env.RACER_HOLD_MS ?? 0);
const lines = [];
const logger = Object.fromEntries(
  ["info", "warn", "error", "debug"].map((level) => [
    level,
    (fields, message) => lines.push({ level, message, ...fields }),
  ]),
);
if (process.env.RACER_READY) writeFileSync(process.env.RACER_READY, String(process.pid));
// Start together: wait for the go file.
const go = process.env.RACER_GO;
const { existsSync } = await import("node:fs");
while (go && !existsSync(go)) await new Promise((resolve) => setTimeout(resolve, 5));
const result = signalOnce({
  pidDir: process.env.RACER_PID_DIR,
  targets: process.env.RACER_TARGETS.split(",").map(Number),
  signal: "SIGINT",
  logger,
  ...(process.env.RACER_LOCK_TIMEOUT_MS ? { lockTimeoutMs: Number(process.env.RACER_LOCK_TIMEOUT_MS) } : {}),
  afterLook: () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, holdMs),
});
process.stdout.write(`${JSON.stringify({ result, lines })}\n`);
