import { setMaxListeners } from "node:events";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { QueueClient, DequeuedMessageItem } from "@azure/storage-queue";
import type { TokenCredential } from "@azure/core-auth";
import type { Logger } from "../logging/logger.js";
import { createQueueClient } from "./storage-queue.js";
import { describeQueueSpec, type StorageQueueSpec } from "./spec.js";
import { decodeTask, encodeTask, shellTaskKwargs, TaskFormatError, type TaskMessage } from "./tasks.js";
import { runShellTask } from "./shell-task.js";
import { removePidFile, writePidFile } from "./pid-file.js";

/**
 * An ai4s-jobq compatible worker: pulls task messages from a Storage queue and runs them as shell commands,
 * `concurrency` at a time.
 *
 * - Receive as many messages as there are free slots (at most 32) with a visibility timeout; extend each
 *   one's every timeout/2 from the moment it is received until it is settled (heartbeat).
 * - Exit code 0: delete. Failure with retries left: update with num_retries - 1, visible again at once.
 *   Out of retries: copy to `{queue}-failed` (created when missing), then delete.
 * - A malformed message (not an ai4s-jobq shell task) is moved to `{queue}-failed` as it is, then deleted,
 *   and the worker carries on. (Upstream's worker stops with exit 1 and leaves it in the queue.)
 * - `stop` (SIGINT/SIGTERM in the CLI): take no new task, finish the ones in hand, resolve.
 *   `abort` (a second signal, or SIGUSR2): stop the tasks and put their messages back at once, untouched.
 */
export interface WorkerOptions {
  spec: StorageQueueSpec;
  connectionString?: string;
  /** Built only without a connection string. */
  credential?: () => TokenCredential;
  /** Tasks run at once (upstream's --num-workers). */
  concurrency: number;
  /** Default 600 (upstream's 10 minutes). */
  visibilityTimeoutSeconds?: number;
  /** Exit once the queue has been empty this long; 0 (default) = as soon as a receive finds nothing. */
  idleTimeoutSeconds?: number;
  /** How often an idle slot asks again while waiting out idleTimeoutSeconds (default 1 s). */
  pollIntervalSeconds?: number;
  /** Names the PID file (default `{hostname}-{pid}`). */
  workerId?: string;
  /** Folder of the PID file (JOBQ_PID_DIR; default ~/.cache/jobq/{account}/{queue}). Undefined: no PID file. */
  pidDir?: string;
  logger: Logger;
  stop?: AbortSignal;
  abort?: AbortSignal;
  /** Deadline of each queue call (default 30 s). */
  callTimeoutMs?: number;
  /** After abort, SIGKILL tasks still alive after this long (default 10 s). */
  killGraceMs?: number;
}

export interface WorkerSummary {
  succeeded: number;
  /** Failed and put back with one retry fewer. */
  retried: number;
  /** Out of retries, moved to `{queue}-failed`. */
  failed: number;
  /** Not a readable task, moved to `{queue}-failed`. */
  malformed: number;
  /** Stopped by abort and put back unchanged. */
  released: number;
  /** Why the worker left. */
  reason: "idle" | "stopped" | "aborted";
  /** Calls made to the Storage queue service (receive, update, delete, send, create). */
  queueCalls: number;
}

/** Consecutive failed receives before the worker gives up (it exits 1; its job can be hired again). */
const MAX_RECEIVE_ERRORS = 5;
/** Storage's limit on messages per receive. */
const MAX_BATCH = 32;
/**
 * How long a free slot waits for others to free up before the worker receives for it: half the recent
 * task duration, within these bounds (short next to any real task, long enough for trivial ones).
 */
const GATHER_MIN_MS = 25;
const GATHER_MAX_MS = 250;

export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}`;
}

export async function runWorker(options: WorkerOptions): Promise<WorkerSummary> {
  const visibility = Math.max(2, Math.round(options.visibilityTimeoutSeconds ?? 600));
  const idleMs = (options.idleTimeoutSeconds ?? 0) * 1000;
  const pollMs = (options.pollIntervalSeconds ?? 1) * 1000;
  const callTimeoutMs = options.callTimeoutMs ?? 30_000;
  const workerId = options.workerId ?? defaultWorkerId();
  const log = options.logger.child({ queue: describeQueueSpec(options.spec), workerId });
  const clientOptions = { connectionString: options.connectionString, credential: options.credential };
  const client = createQueueClient(options.spec, clientOptions);
  const failedQueueName = `${options.spec.queueName}-failed`;
  const failedClient = createQueueClient(options.spec, clientOptions, failedQueueName);
  const summary: WorkerSummary = {
    succeeded: 0,
    retried: 0,
    failed: 0,
    malformed: 0,
    released: 0,
    reason: "idle",
    queueCalls: 0,
  };
  const countCall = () => void summary.queueCalls++;
  const stop = options.stop ?? new AbortController().signal;
  const abort = options.abort ?? new AbortController().signal;
  // Every task in hand listens on these (its process is stopped on abort).
  setMaxListeners(Math.max(1, options.concurrency) + 10, stop, abort);
  const leaving = () => stop.aborted || abort.aborted;
  const timeout = () => AbortSignal.timeout(callTimeoutMs);

  let failedQueueReady: Promise<unknown> | undefined;
  const sendToFailedQueue = async (body: string) => {
    if (!failedQueueReady) countCall();
    failedQueueReady ??= failedClient
      .createIfNotExists({ abortSignal: timeout() })
      .catch((error: unknown) => {
        failedQueueReady = undefined;
        throw error;
      });
    await failedQueueReady;
    countCall();
    await failedClient.sendMessage(body, { messageTimeToLive: -1, abortSignal: timeout() });
  };

  // Upstream creates the queue when missing (exist_ok); a credential without that right may still read it.
  try {
    countCall();
    await client.createIfNotExists({ abortSignal: timeout() });
  } catch (error) {
    log.warn({ err: error }, "could not make sure the queue exists; trying to read it anyway");
  }

  // Told to leave while starting (a cancelled pending worker): no PID file, or a node agent would take a
  // control message on behalf of a worker that is leaving anyway, and the worker it was meant for would stay.
  const pidFile = options.pidDir && !leaving() ? await writePidFile(options.pidDir, workerId) : undefined;
  log.info(
    { pid: process.pid, pidFile, concurrency: options.concurrency, visibility, idleSeconds: idleMs / 1000 },
    "worker started",
  );

  const handle = async (message: DequeuedMessageItem) => {
    const lease = new Lease(client, message, visibility, callTimeoutMs, log, countCall);
    lease.startHeartbeat();
    let task: TaskMessage;
    try {
      task = decodeTask(message.messageText);
      const kwargs = shellTaskKwargs(task);
      if (task.minVersion)
        log.warn(
          { taskId: task.id, minVersion: task.minVersion },
          "min_version is a Python package requirement; running the task anyway",
        );
      if (kwargs.bg_dirsync_to) log.warn({ taskId: task.id }, "bg_dirsync_to is not supported; ignored");
      log.info(
        { taskId: task.id, messageId: message.messageId, numRetries: task.numRetries },
        "task started",
      );
      const started = Date.now();
      const result = await runShellTask(kwargs, {
        taskId: task.id,
        logger: log,
        abort,
        killGraceMs: options.killGraceMs,
      });
      await lease.stopHeartbeat();
      const seconds = (Date.now() - started) / 1000;
      if (result.aborted) {
        await lease.update(undefined, 0);
        summary.released++;
        log.warn({ taskId: task.id, seconds }, "task stopped and put back (worker aborted)");
      } else if (result.code === 0) {
        await lease.delete();
        summary.succeeded++;
        log.info({ taskId: task.id, seconds }, "task succeeded");
      } else {
        const why = result.startError
          ? `could not start: ${result.startError.message}`
          : result.signal
            ? `killed by ${result.signal}`
            : `exit code ${result.code}`;
        if (task.numRetries > 0) {
          await lease.update(encodeTask({ ...task, numRetries: task.numRetries - 1 }), 0);
          summary.retried++;
          log.warn(
            { taskId: task.id, seconds, why, retriesLeft: task.numRetries - 1 },
            "task failed; put back for a retry",
          );
        } else {
          await sendToFailedQueue(encodeTask(task));
          await lease.delete();
          summary.failed++;
          log.error(
            { taskId: task.id, seconds, why, failedQueue: failedQueueName },
            "task failed, no retries left; moved to the failed queue",
          );
        }
      }
    } catch (error) {
      await lease.stopHeartbeat();
      if (error instanceof TaskFormatError) {
        // Never crash on a bad message, never lose it: park it as it is.
        try {
          await sendToFailedQueue(message.messageText);
          await lease.delete();
          summary.malformed++;
          log.error(
            { messageId: message.messageId, reason: error.message, failedQueue: failedQueueName },
            "malformed message moved to the failed queue",
          );
        } catch (moveError) {
          log.error(
            { err: moveError, messageId: message.messageId, reason: error.message },
            "malformed message could not be moved; it will reappear",
          );
        }
        return;
      }
      // A failed delete/update: the message reappears after its visibility timeout and runs again.
      log.error(
        { err: error, messageId: message.messageId },
        "could not settle the message; it will reappear after its visibility timeout",
      );
    }
  };

  /** Tasks in hand; a task's entry goes when its message is settled. */
  const running = new Set<Promise<void>>();
  /** Recent task duration (moving average, ms): how long slots are worth waiting for. */
  let taskMsAverage = 0;
  const startTask = (message: DequeuedMessageItem) => {
    const started = Date.now();
    const task: Promise<void> = handle(message)
      .then(() => {
        const ms = Date.now() - started;
        taskMsAverage = taskMsAverage === 0 ? ms : 0.8 * taskMsAverage + 0.2 * ms;
      })
      .catch((error: unknown) => log.error({ err: error, messageId: message.messageId }, "task failed"))
      .finally(() => running.delete(task));
    running.add(task);
  };
  const concurrency = Math.max(1, options.concurrency);
  /** Resolves after `ms`, when a task in `tasks` ends, or on stop, whichever comes first. */
  const pause = (ms: number, tasks: Iterable<Promise<void>>): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stop.addEventListener("abort", done, { once: true });
      for (const task of tasks) void task.then(done);
    });

  // One receive loop feeds every slot: each receive asks for as many messages as there are free slots (at
  // most 32, the service's limit), so a busy worker pays about one receive per batch rather than per task.
  // A message's heartbeat starts as it is received, so it stays invisible for as long as this worker has it.
  const receiveLoop = async () => {
    let receiveErrors = 0;
    let emptySince: number | undefined;
    while (!leaving()) {
      if (running.size >= concurrency) {
        await Promise.race(running);
        continue;
      }
      // Slots free up one by one; a receive for each would cost a call per task. Wait a moment for more of
      // them (short next to any real task, long next to a trivial one) and fetch them together.
      const target = Math.min(concurrency, MAX_BATCH);
      const gatherUntil = Date.now() + Math.min(GATHER_MAX_MS, Math.max(GATHER_MIN_MS, taskMsAverage / 2));
      while (running.size > 0 && concurrency - running.size < target && !leaving()) {
        const left = gatherUntil - Date.now();
        if (left <= 0) break;
        await pause(left, running);
      }
      let messages: DequeuedMessageItem[];
      try {
        // A deadline only, never the stop signal: a receive cut short by Ctrl-C may still have hidden
        // messages for the whole visibility timeout. Messages that arrive after stop are handed back below.
        summary.queueCalls++;
        const response = await client.receiveMessages({
          numberOfMessages: Math.min(concurrency - running.size, MAX_BATCH),
          visibilityTimeout: visibility,
          abortSignal: timeout(),
        });
        messages = response.receivedMessageItems;
        receiveErrors = 0;
      } catch (error) {
        receiveErrors++;
        log.warn({ err: error, attempt: receiveErrors }, "receive failed");
        if (receiveErrors >= MAX_RECEIVE_ERRORS)
          throw new Error(`worker: ${receiveErrors} receives in a row failed; giving up`, { cause: error });
        await sleep(Math.min(2 ** receiveErrors, 30) * 1000, undefined, { signal: stop }).catch(
          () => undefined,
        );
        continue;
      }
      if (messages.length === 0) {
        emptySince ??= Date.now();
        if (running.size === 0 && Date.now() - emptySince >= idleMs) return;
        // Ask again after the poll interval (a task in hand may put its message back for a retry), or as
        // soon as the last task in hand ends, to leave at once if the queue is still empty.
        await pause(pollMs, running.size > 0 ? [Promise.all(running).then(() => undefined)] : []);
        continue;
      }
      emptySince = undefined;
      for (const message of messages) {
        if (!leaving()) {
          startTask(message);
          continue;
        }
        // Received just as we were told to leave: hand it straight back.
        await new Lease(client, message, visibility, callTimeoutMs, log, countCall)
          .update(undefined, 0)
          .catch(() => undefined);
        summary.released++;
      }
    }
  };

  try {
    try {
      await receiveLoop();
    } finally {
      // Finish (or, on abort, put back) the tasks in hand before leaving, whatever ended the loop.
      while (running.size > 0) await Promise.all(running);
    }
    summary.reason = abort.aborted ? "aborted" : stop.aborted ? "stopped" : "idle";
    log.info({ ...summary }, "worker finished");
    return summary;
  } finally {
    if (pidFile) await removePidFile(pidFile).catch(() => undefined);
  }
}

/**
 * One received message: its pop receipt changes with every update, so updates (heartbeat, retry, release)
 * and the final delete run one after another through a chain, never in parallel.
 */
class Lease {
  private popReceipt: string;
  private chain: Promise<unknown> = Promise.resolve();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: QueueClient,
    private readonly message: DequeuedMessageItem,
    private readonly visibility: number,
    private readonly callTimeoutMs: number,
    private readonly log: Logger,
    private readonly countCall: () => void,
  ) {
    this.popReceipt = message.popReceipt;
  }

  /** Extend the visibility every timeout/2 until stopHeartbeat (upstream's heartbeat). */
  startHeartbeat(): void {
    const intervalMs = (this.visibility / 2) * 1000;
    this.heartbeat = setInterval(() => {
      this.enqueue(() => this.extend(intervalMs)).catch((error: unknown) =>
        this.log.warn({ err: error, messageId: this.message.messageId }, "heartbeat failed"),
      );
    }, intervalMs);
  }

  private enqueue<T>(step: () => Promise<T>): Promise<T> {
    const next = this.chain.then(step, step);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async extend(timeoutMs: number): Promise<void> {
    if (!this.heartbeat) return;
    this.countCall();
    const response = await this.client.updateMessage(
      this.message.messageId,
      this.popReceipt,
      undefined,
      this.visibility,
      {
        abortSignal: AbortSignal.timeout(Math.min(timeoutMs, this.callTimeoutMs)),
      },
    );
    if (response.popReceipt) this.popReceipt = response.popReceipt;
    this.log.debug({ messageId: this.message.messageId }, "heartbeat");
  }

  async stopHeartbeat(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    await this.chain;
  }

  /** New content (undefined keeps it) and visibility; visibility 0 puts it back at once. */
  update(content: string | undefined, visibility: number): Promise<void> {
    return this.enqueue(async () => {
      this.countCall();
      const response = await this.client.updateMessage(
        this.message.messageId,
        this.popReceipt,
        content,
        visibility,
        {
          abortSignal: AbortSignal.timeout(this.callTimeoutMs),
        },
      );
      if (response.popReceipt) this.popReceipt = response.popReceipt;
    });
  }

  delete(): Promise<void> {
    return this.enqueue(async () => {
      this.countCall();
      await this.client.deleteMessage(this.message.messageId, this.popReceipt, {
        abortSignal: AbortSignal.timeout(this.callTimeoutMs),
      });
    });
  }
}
