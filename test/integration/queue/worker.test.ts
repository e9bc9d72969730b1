import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteInstance } from "../../support/azurite.js";
import { encodeTask, decodeTask, shellTask } from "../../../src/queue/tasks.js";
import { alive } from "../../support/processes.js";
import { depth, drainMessages, startCli, uniqueQueueName, waitFor } from "./helpers.js";

let azurite: AzuriteInstance;
let dir: string;

beforeAll(async () => {
  azurite = await startAzurite();
  dir = mkdtempSync(join(tmpdir(), "wf-worker-"));
});
afterAll(async () => {
  await azurite?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function queueWith(
  prefix: string,
  bodies: string[],
): Promise<{ name: string; client: QueueClient; failed: QueueClient }> {
  const name = uniqueQueueName(prefix);
  const client = new QueueClient(azurite.connectionString, name);
  await client.create();
  for (const body of bodies) await client.sendMessage(body, { messageTimeToLive: -1 });
  return { name, client, failed: new QueueClient(azurite.connectionString, `${name}-failed`) };
}

function worker(queue: string, args: string[] = [], pidDir = join(dir, "pids")) {
  return startCli(["worker", queue, ...args], {
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    JOBQ_PID_DIR: pidDir,
  });
}

const task = (cmd: string, numRetries = 0) => encodeTask(shellTask({ cmd, numRetries }));

describe("workforce worker", () => {
  it("runs tasks, deletes them on success and exits 0 when the queue is empty", async () => {
    const out = join(dir, "success");
    const { name, client } = await queueWith(
      "ok",
      [1, 2, 3].map((i) => task(`echo $GREETING-${i} > ${out}-${i}`)),
    );
    const env = {
      ...shellTask({ cmd: `echo "$GREETING $JOBQ_TASK_ID" > ${out}-env`, env: { GREETING: "hello" } }),
    };
    await client.sendMessage(encodeTask(env));
    const run = worker(name, ["--concurrency", "2"]);
    expect((await run.exit).code, run.output()).toBe(0);
    expect([1, 2, 3].map((i) => existsSync(`${out}-${i}`))).toEqual([true, true, true]);
    expect(readFileSync(`${out}-env`, "utf8")).toBe(`hello ${env.id}\n`);
    expect(await depth(client)).toBe(0);
  });

  it("runs a task message written by Python exactly as ai4s-jobq builds it", async () => {
    const out = join(dir, "from-python");
    const body = execFileSync(
      "python3",
      [
        "-c",
        `import json, sys
kwargs = dict(cmd='printf "%s" "$WORD" > ' + sys.argv[1], bg_dirsync_to=None, env={"WORD": "gr\u00fc\u00dfe"})
print(json.dumps({"version": 1, "reply_requested": False, "kwargs": json.dumps(kwargs), "num_retries": 0, "min_version": None, "id": "py-1"}))`,
        out,
      ],
      { encoding: "utf8" },
    ).trim();
    const { name, client } = await queueWith("py", [body]);
    const run = worker(name);
    expect((await run.exit).code, run.output()).toBe(0);
    expect(readFileSync(out, "utf8")).toBe("grüße");
    expect(await depth(client)).toBe(0);
  });

  it("keeps a task longer than the visibility timeout invisible (heartbeat): it runs once", async () => {
    const count = join(dir, "heartbeat-count");
    const { name, client } = await queueWith("hb", [task(`echo run >> ${count}; sleep 4`)]);
    // A second slot keeps polling; without the heartbeat it would get the message again after 2 s.
    const run = worker(name, ["--concurrency", "2", "--visibility-timeout", "2", "--idle-timeout", "6"]);
    expect((await run.exit).code, run.output()).toBe(0);
    expect(readFileSync(count, "utf8")).toBe("run\n");
    expect(await depth(client)).toBe(0);
  });

  it("retries a failing task with num_retries - 1, then moves it to the -failed queue", async () => {
    const count = join(dir, "retry-count");
    const { name, client, failed } = await queueWith("retry", [task(`echo run >> ${count}; exit 3`, 2)]);
    const run = worker(name);
    expect((await run.exit).code, run.output()).toBe(0);
    // Two retries: three runs in all.
    expect(readFileSync(count, "utf8")).toBe("run\nrun\nrun\n");
    expect(await depth(client)).toBe(0);
    const parked = await drainMessages(failed);
    expect(parked).toHaveLength(1);
    expect(decodeTask(parked[0]!)).toMatchObject({
      numRetries: 0,
      kwargs: { cmd: `echo run >> ${count}; exit 3` },
    });
  });

  it("a task that fails once and then succeeds is not parked", async () => {
    const flag = join(dir, "flaky-flag");
    const { name, client, failed } = await queueWith("flaky", [
      task(`if [ -f ${flag} ]; then exit 0; fi; touch ${flag}; exit 1`, 1),
    ]);
    const run = worker(name);
    expect((await run.exit).code, run.output()).toBe(0);
    expect(await depth(client)).toBe(0);
    expect(await failed.exists()).toBe(false);
  });

  it("survives malformed messages: parks them in -failed unchanged and runs the rest", async () => {
    const out = join(dir, "after-malformed");
    const bad = ["not json", '{"version": 1, "kwargs": "{}", "num_retries": 0, "id": "no-cmd"}'];
    const { name, client, failed } = await queueWith("bad", [...bad, task(`touch ${out}`)]);
    const run = worker(name);
    expect((await run.exit).code, run.output()).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(await depth(client)).toBe(0);
    expect((await drainMessages(failed)).sort()).toEqual([...bad].sort());
    expect(run.output()).toMatch(/malformed message moved to the failed queue/);
  });

  it("on Ctrl-C (SIGINT to its process group) finishes the task in hand, takes no new one, exits 0", async () => {
    const started = join(dir, "sigint-started");
    const done = join(dir, "sigint-done");
    const second = join(dir, "sigint-second");
    const pidDir = join(dir, "sigint-pids");
    const { name, client } = await queueWith("sigint", [
      task(`touch ${started}; sleep 2; touch ${done}`),
      task(`touch ${second}`),
    ]);
    const run = startCli(["worker", name, "--worker-id", "w-1"], {
      WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
      JOBQ_PID_DIR: pidDir,
    });
    await waitFor(() => existsSync(started), 20_000, "the task to start");
    // The PID file: PID as decimal text, no newline.
    expect(readFileSync(join(pidDir, "w-1.pid"), "utf8")).toBe(String(run.child.pid));
    process.kill(-run.child.pid!, "SIGINT");
    expect((await run.exit).code, run.output()).toBe(0);
    expect(existsSync(done)).toBe(true);
    expect(existsSync(second)).toBe(false);
    expect(existsSync(join(pidDir, "w-1.pid"))).toBe(false);
    // The finished task is gone; the untouched one waits for the next worker.
    expect(await depth(client)).toBe(1);
  });

  it("with --idle-timeout waits for work instead of leaving at the first empty receive", async () => {
    const out = join(dir, "idle-late");
    const { name, client } = await queueWith("idle", []);
    const run = worker(name, ["--idle-timeout", "5"]);
    await waitFor(() => run.output().includes("worker started"), 20_000, "the worker to start");
    await client.sendMessage(task(`touch ${out}`));
    expect((await run.exit).code, run.output()).toBe(0);
    expect(existsSync(out)).toBe(true);
  });

  it("rejects a bad queue spec with exit code 2", async () => {
    const run = worker("Not_A_Queue/x");
    expect((await run.exit).code).toBe(2);
    expect(run.output()).toMatch(/queue spec "Not_A_Queue\/x"/);
  });
});

describe("workforce worker, aborted", () => {
  it("on SIGUSR2 stops the task and puts its message back untouched, exiting 130", async () => {
    const started = join(dir, "abort-started");
    const done = join(dir, "abort-done");
    const body = task(`echo $$ > ${started}; sleep 30; touch ${done}`, 2);
    const { name, client } = await queueWith("abort", [body]);
    const run = worker(name);
    await waitFor(
      () => existsSync(started) && readFileSync(started, "utf8").trim() !== "",
      20_000,
      "the task to start",
    );
    const taskPid = Number(readFileSync(started, "utf8"));
    process.kill(run.child.pid!, "SIGUSR2");
    expect((await run.exit).code, run.output()).toBe(130);
    expect(existsSync(done)).toBe(false);
    expect(() => process.kill(taskPid, 0)).toThrow();
    // Back in the queue at once, with its retries intact (an interruption is not a failure).
    const { receivedMessageItems } = await client.receiveMessages();
    expect(receivedMessageItems[0]?.messageText).toBe(body);
  });

  it("a task whose command ended (exit 0) before SIGUSR2 is done, not put back, though it left a process holding its output", async () => {
    const done = join(dir, "abort-after-exit-done");
    const leftover = join(dir, "abort-after-exit-leftover");
    // The command ends at once; what it started in the background keeps its output open for 30 s.
    const body = task(`(sleep 30; touch ${leftover}) & echo $! > ${done}`);
    const { name, client } = await queueWith("abort-after-exit", [body]);
    const run = worker(name);
    await waitFor(
      () => existsSync(done) && readFileSync(done, "utf8").trim() !== "",
      20_000,
      "the task's command to end",
    );
    const backgroundPid = Number(readFileSync(done, "utf8"));
    // Well after the command's exit: the worker waits only for its output to close.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    process.kill(run.child.pid!, "SIGUSR2");
    expect((await run.exit).code, run.output()).toBe(130);
    // The task had succeeded: it is not run again. What it left behind is stopped with the worker.
    expect(run.output()).toMatch(/task succeeded/);
    expect(await depth(client)).toBe(0);
    await waitFor(() => !alive(backgroundPid), 10_000, "the leftover process to be stopped");
    expect(existsSync(leftover)).toBe(false);
  });
});
