// A stand-in worker for the local region's tests: a real process that behaves like `workforce worker`
// around PID files and signals, with knobs. Env: WORKFORCE_WORKER_ID, JOBQ_PID_DIR (from the region),
// FAKE_DIR (signal log), FAKE_GO (wait for this file before "starting work"), FAKE_TASK_MS (how long a
// drained worker takes to finish its task), FAKE_IGNORE_TERM=1 (survive SIGTERM: only SIGKILL stops it).
// SIGUSR2: leave on its own, as on an empty queue (remove the PID file, exit FAKE_LINGER_MS later).
import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const id = process.env.WORKFORCE_WORKER_ID;
const pidFile = join(process.env.JOBQ_PID_DIR, `${id}.pid`);
let started = false;
const record = (what) => appendFileSync(join(process.env.FAKE_DIR, `${id}.signals`), `${what}\n`);
const leave = () => {
  if (started) rmSync(pidFile, { force: true });
  process.exit(0);
};

const start = () => {
  mkdirSync(process.env.JOBQ_PID_DIR, { recursive: true });
  writeFileSync(pidFile, String(process.pid));
  started = true;
};
if (process.env.FAKE_GO) {
  const poll = setInterval(() => {
    if (existsSync(process.env.FAKE_GO)) {
      clearInterval(poll);
      start();
    }
  }, 50);
} else {
  start();
}

process.on("SIGINT", () => {
  record("SIGINT");
  // Like our worker: nothing in hand -> leave now; a task in hand -> finish it first.
  if (!started) leave();
  setTimeout(leave, Number(process.env.FAKE_TASK_MS ?? 60_000));
});
process.on("SIGTERM", () => {
  record("SIGTERM");
  if (process.env.FAKE_IGNORE_TERM !== "1") leave();
});
process.on("SIGUSR2", () => {
  record("SIGUSR2");
  if (started) rmSync(pidFile, { force: true });
  setTimeout(() => process.exit(0), Number(process.env.FAKE_LINGER_MS ?? 0));
});
setInterval(() => {}, 1_000);
