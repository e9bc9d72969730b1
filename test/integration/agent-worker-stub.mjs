// A stand-in for a jobq worker in agent tests: runs "tasks" back to back (each STUB_TASK_MS long) and, on a
// trapped signal, finishes the task in hand and exits with STUB_EXIT_CODE. Every event is appended to
// STUB_LOG as one line ("ready PID", "topic NAME|-", "start N", "done N", "signal NAME", "exit CODE"), so a test can tell
// whether a task was interrupted.
//
// Env: STUB_LOG (required), STUB_TASK_MS (default 300), STUB_TRAP (signals to trap, comma-separated,
// default SIGINT), STUB_EXIT_CODE (default 0), STUB_WORKER_ID + JOBQ_PID_DIR (write our own PID file, as
// a jobq worker does), STUB_EXIT_DELAY_MS (default 0: how long it takes to leave after its last task, as a
// worker that cleans up does; a test that looks at the node while the worker leaves gets that long).
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

const log = process.env.STUB_LOG;
if (!log) throw new Error("STUB_LOG is required");
const taskMs = Number(process.env.STUB_TASK_MS ?? 300);
const exitCode = Number(process.env.STUB_EXIT_CODE ?? 0);
const exitDelayMs = Number(process.env.STUB_EXIT_DELAY_MS ?? 0);
const trapped = (process.env.STUB_TRAP ?? "SIGINT").split(",").filter(Boolean);
const note = (line) => appendFileSync(log, `${line}\n`);

let pidFile;
if (process.env.STUB_WORKER_ID && process.env.JOBQ_PID_DIR) {
  mkdirSync(process.env.JOBQ_PID_DIR, { recursive: true });
  pidFile = join(process.env.JOBQ_PID_DIR, `${process.env.STUB_WORKER_ID}.pid`);
  writeFileSync(pidFile, String(process.pid));
}

let stopping = false;
for (const signal of trapped) {
  process.on(signal, () => {
    note(`signal ${signal}`);
    stopping = true;
  });
}

note(`ready ${process.pid}`);
// Whether a back channel reached us (a jobq worker would start its own listener on it).
note(`topic ${process.env.WORKFORCE_CONTROL_TOPIC_NAME ?? "-"}`);
for (let task = 1; !stopping; task += 1) {
  note(`start ${task}`);
  await sleep(taskMs);
  note(`done ${task}`);
}
if (exitDelayMs > 0) await sleep(exitDelayMs);
if (pidFile) rmSync(pidFile, { force: true });
note(`exit ${exitCode}`);
process.exit(exitCode);
