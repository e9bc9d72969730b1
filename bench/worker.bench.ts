import { QueueClient } from "@azure/storage-queue";
import { startAzurite } from "../src/demo/azurite.js";
import { createLogger } from "../src/logging/logger.js";
import { parseQueueSpec, type StorageQueueSpec } from "../src/queue/spec.js";
import { runShellTask } from "../src/queue/shell-task.js";
import { encodeTask, shellTask } from "../src/queue/tasks.js";
import { runWorker } from "../src/queue/worker.js";

/**
 * `workforce worker` throughput against Azurite, trivial tasks (`true`), in one run:
 * 1. spawning the same commands, CONCURRENCY at a time, with nothing else (the process limit);
 * 2. a plain receive-and-delete loop with batches of CONCURRENCY messages (the queue limit);
 * 3. the worker at concurrency 4 and CONCURRENCY: tasks per second, queue calls per task, and the ratio
 *    to the slower of the two limits. Goals: <= 1.1 calls per task, >= 0.8x the slower limit.
 * TASKS (env BENCH_WORKER_TASKS) tasks per phase.
 */
const TASKS = Number(process.env.BENCH_WORKER_TASKS ?? 2000);
const CONCURRENCY = 16;
const COMMAND = "true";
const logger = createLogger({ level: "silent" });

async function fill(client: QueueClient, count: number): Promise<void> {
  await client.createIfNotExists();
  let next = 0;
  const sender = async () => {
    while (next < count) {
      next++;
      await client.sendMessage(encodeTask(shellTask({ cmd: COMMAND })), { messageTimeToLive: -1 });
    }
  };
  await Promise.all(Array.from({ length: 32 }, sender));
}

async function spawnOnly(count: number, concurrency: number): Promise<void> {
  let next = 0;
  const slot = async () => {
    while (next < count) {
      next++;
      await runShellTask({ cmd: COMMAND }, { taskId: `bench-${next}`, logger });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, slot));
}

async function receiveAndDelete(client: QueueClient, count: number, batch: number): Promise<number> {
  let done = 0;
  while (done < count) {
    const { receivedMessageItems } = await client.receiveMessages({
      numberOfMessages: batch,
      visibilityTimeout: 600,
    });
    if (receivedMessageItems.length === 0) break;
    await Promise.all(receivedMessageItems.map((m) => client.deleteMessage(m.messageId, m.popReceipt)));
    done += receivedMessageItems.length;
  }
  return done;
}

/** Phases run in turns (ROUNDS of TASKS / ROUNDS each), so a change in the machine's load hits them all alike. */
const ROUNDS = 4;

export default async function bench(): Promise<void> {
  const azurite = await startAzurite();
  try {
    const cs = azurite.connectionString;
    const queue = (name: string) => new QueueClient(cs, name);
    const chunk = Math.ceil(TASKS / ROUNDS);
    console.log(`${chunk * ROUNDS} tasks \`${COMMAND}\` per phase in ${ROUNDS} turns, Azurite on 127.0.0.1`);
    const seconds = { spawn: 0, plain: 0, worker4: 0, worker16: 0 };
    const calls = { worker4: 0, worker16: 0 };
    const timed = async <T>(phase: keyof typeof seconds, run: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      const result = await run();
      seconds[phase] += (performance.now() - started) / 1000;
      return result;
    };
    for (let round = 0; round < ROUNDS; round++) {
      await timed("spawn", () => spawnOnly(chunk, CONCURRENCY));
      const plain = queue(`bench-plain-${round}`);
      await fill(plain, chunk);
      const done = await timed("plain", () => receiveAndDelete(plain, chunk, CONCURRENCY));
      if (done !== chunk) throw new Error(`receive-and-delete took ${done} of ${chunk} messages`);
      for (const concurrency of [4, CONCURRENCY] as const) {
        const name = `bench-worker-${concurrency}-${round}`;
        await fill(queue(name), chunk);
        const spec = parseQueueSpec(name, { connectionString: cs }) as StorageQueueSpec;
        const summary = await timed(concurrency === 4 ? "worker4" : "worker16", () =>
          runWorker({ spec, connectionString: cs, concurrency, logger }),
        );
        if (summary.succeeded !== chunk)
          throw new Error(`worker ran ${summary.succeeded} of ${chunk} tasks at concurrency ${concurrency}`);
        calls[concurrency === 4 ? "worker4" : "worker16"] += summary.queueCalls;
      }
    }
    const total = chunk * ROUNDS;
    const rate = (phase: keyof typeof seconds) => total / seconds[phase];
    const limit = Math.min(rate("spawn"), rate("plain"));
    console.log(`spawning alone, ${CONCURRENCY} at a time: ${rate("spawn").toFixed(0)} tasks/s`);
    console.log(`receive-and-delete loop, batches of ${CONCURRENCY}: ${rate("plain").toFixed(0)} messages/s`);
    for (const [concurrency, phase] of [
      [4, "worker4"],
      [CONCURRENCY, "worker16"],
    ] as const) {
      console.log(
        `worker, concurrency ${concurrency}: ${rate(phase).toFixed(0)} tasks/s, ` +
          `${(calls[phase] / total).toFixed(3)} queue calls per task` +
          (concurrency === CONCURRENCY ? " (goal <= 1.1)" : "") +
          `, ${(rate(phase) / limit).toFixed(2)}x the slower limit (${limit.toFixed(0)}/s)` +
          (concurrency === CONCURRENCY ? " (goal >= 0.8x)" : ""),
      );
    }
  } finally {
    await azurite.stop();
  }
}
