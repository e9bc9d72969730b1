import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { REPO_ROOT } from "../support/cli.js";
import { startCli, uniqueQueueName } from "./queue/helpers.js";

/**
 * ai4s-jobq v1 task messages exchanged with Python's azure-storage-queue (Debian's python3-azure) through
 * Azurite: tasks Python writes as upstream does run on `workforce worker` (failures land in `-failed`
 * with the bytes upstream would write), and what `workforce push -c` writes is, byte for byte, what
 * upstream's Task.serialize writes for the same task.
 */

const PYTHON = "/usr/bin/python3";
const SCRIPT = join(REPO_ROOT, "test", "python", "storage_tasks.py");
const hasPythonSdk =
  existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import azure.storage.queue"]).status === 0;

let azurite: AzuriteInstance;
let dir: string;
beforeAll(async () => {
  azurite = await startAzurite();
  dir = mkdtempSync(join(tmpdir(), "wf-py-storage-"));
});
afterAll(async () => {
  await azurite?.stop();
});

/** Asynchronously, so that the test process keeps serving meanwhile. */
function python(...args: string[]): Promise<string[]> {
  const child = spawn(PYTHON, [SCRIPT, ...args], {
    env: { ...process.env, STORAGE_CONNECTION_STRING: azurite.connectionString },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) =>
    child.once("close", (status) =>
      status === 0
        ? resolve(stdout.split("\n").filter(Boolean))
        : reject(new Error(`storage_tasks.py ${args[0]} exited ${status}: ${stderr}`)),
    ),
  );
}

const cli = (args: string[], input?: string) =>
  startCli(
    args,
    { WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString, JOBQ_PID_DIR: join(dir, "pids") },
    input,
  );

describe.skipIf(!hasPythonSdk)("ai4s-jobq task messages with Python's azure-storage-queue", () => {
  it("tasks Python pushes run on `workforce worker`; a failed one reaches -failed as upstream writes it", async () => {
    const queue = uniqueQueueName("pyq");
    const mark = join(dir, "ran-python-task");
    const [okText, failedText] = (
      await python("push", queue, "1", `echo "$JOBQ_TASK_ID" > ${mark}`, "exit 3")
    ).map((line) => JSON.parse(line) as string);
    const run = cli(["worker", queue, "--concurrency", "2"]);
    expect((await run.exit).code, run.output()).toBe(0);
    expect(readFileSync(mark, "utf8").trim()).toBe(JSON.parse(okText!).id);

    // Out of retries (1, then 0): moved to -failed with num_retries 0, everything else unchanged.
    const failed = (await python("read", `${queue}-failed`, "1")).map(
      (line) => JSON.parse(line) as { text: string; reserialized: string },
    );
    expect(failed).toHaveLength(1);
    const original = JSON.parse(failedText!) as { id: string };
    const [upstream] = await python("upstream", original.id, "0", "exit 3");
    expect(failed[0]!.text).toBe(JSON.parse(upstream!));
    expect(failed[0]!.reserialized).toBe(failed[0]!.text);
  }, 60_000);

  it("what `workforce push -c` writes is byte for byte what upstream writes for the same task", async () => {
    const queue = uniqueQueueName("pushq");
    const commands = ['echo "héllo wörld" && ls /tmp', "python train.py --lr 0.1 --name 'a b'"];
    const push = cli(["push", queue, ...commands.flatMap((cmd) => ["-c", cmd])]);
    expect((await push.exit).code, push.output()).toBe(0);
    const read = (await python("read", queue, String(commands.length))).map(
      (line) => JSON.parse(line) as { text: string; reserialized: string },
    );
    expect(read).toHaveLength(commands.length);
    for (const { text, reserialized } of read) {
      // Upstream reads it, and writing it back gives the same bytes.
      expect(reserialized).toBe(text);
      const { id, kwargs } = JSON.parse(text) as { id: string; kwargs: string };
      const { cmd } = JSON.parse(kwargs) as { cmd: string };
      expect(commands).toContain(cmd);
      const [upstream] = await python("upstream", id, "0", cmd);
      expect(text).toBe(JSON.parse(upstream!));
    }
  }, 60_000);
});
