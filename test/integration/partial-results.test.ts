import { afterAll, expect, test } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { workforceArgv } from "../support/cli.js";

// Issue 11, finding 6: one-shot commands that did less than asked exit 3 and say how much and why.

const stateDir = mkdtempSync(join(tmpdir(), "wf-partial-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

const env = {
  PATH: process.env.PATH,
  AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
  WORKFORCE_QUEUE: "tasks",
  // Never called by these commands (the queue is read lazily).
  WORKFORCE_QUEUE_CONNECTION_STRING:
    "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:1/a",
  // A worker that never writes its PID file stays pending; SIGINT (the drain signal) ends it.
  WORKFORCE_REGIONS: JSON.stringify([
    { kind: "local", name: "lab", capacity: 3, stateDir, command: ["sleep", "60"] },
  ]),
};

function cli(...args: string[]) {
  const [command, ...rest] = workforceArgv(...args);
  return spawnSync(command!, rest, { env, encoding: "utf8", timeout: 30_000 });
}

test("scale-to, lay-off and plan say when they did less than asked", () => {
  const up = cli("scale-to", "50");
  expect(JSON.parse(up.stdout).hired).toEqual({ lab: 3 });
  expect(up.stderr).toContain(
    "workforce: scale-to: 3 active of the 50 asked: hired 3 of 50 (room before: lab 3)",
  );
  expect(up.status).toBe(3);

  const down = cli("scale-to", "2");
  expect(down.stderr).toContain(
    "workforce: scale-to: 3 active, more than 2: nothing done; shrinking needs --with-layoffs",
  );
  expect(down.status).toBe(3);

  const huge = cli("lay-off", "1e9", "--region", "lab");
  expect(huge.stderr).toContain('count must be a whole number >= 0; given "1e9"');
  expect(huge.status).toBe(2);

  const layOff = cli("lay-off", "5", "--region", "lab");
  expect(JSON.parse(layOff.stdout)).toMatchObject({ cancelled: 3, drained: 0 });
  expect(layOff.stderr).toContain(
    "workforce: lay-off: laid off 3 of 5 in lab (cancelled 3 pending, drained 0 running)",
  );
  expect(layOff.status).toBe(3);

  const all = cli("hire", "0", "--region", "lab");
  expect(all.status).toBe(0);
});

test("plan applies the daemon's surplus rule and says so", () => {
  const plan = cli("plan", "--queue", "30", "--running", "20");
  expect(plan.status).toBe(0);
  expect(plan.stdout).toContain(
    "active 20 (running 20, pending 0) -> none; 5 running worker(s) kept: the queue keeps 30 busy (surplus-only draining)",
  );
});
