import pLimit from "p-limit";
import type { TokenCredential } from "@azure/core-auth";
import type { Logger } from "../logging/logger.js";
import { createQueueClient } from "./storage-queue.js";
import { describeQueueSpec, type StorageQueueSpec } from "./spec.js";
import { encodeTask, newTaskId, shellTask, type TaskMessage } from "./tasks.js";

export interface PushOptions {
  spec: StorageQueueSpec;
  connectionString?: string;
  credential?: () => TokenCredential;
  /** Shell commands, or JSON job specs (a line starting with "{"), one per item. Blank items are skipped. */
  commands: Iterable<string> | AsyncIterable<string>;
  /** Retries per task; upstream's `push` default is 0. */
  numRetries?: number;
  /** Extra environment for every task (upstream's `-e KEY=VALUE`). */
  env?: Record<string, string>;
  /** Working directory of every task (kwargs "cwd"). */
  cwd?: string;
  /** Messages sent at once (upstream's enqueue workers: 10). */
  parallelism?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

export interface PushResult {
  pushed: number;
  ids: string[];
}

/**
 * The task for one pushed line, as `ai4s-jobq push` builds it: a plain command becomes
 * {"cmd", "bg_dirsync_to": null, "env"}; a line starting with "{" is a JSON job spec whose env is merged
 * with the common one and whose bg_dirsync_to defaults to null.
 */
export function taskFromLine(
  line: string,
  options: Pick<PushOptions, "numRetries" | "env" | "cwd"> = {},
): TaskMessage {
  const env = options.env ?? {};
  if (line.startsWith("{")) {
    let spec: unknown;
    try {
      spec = JSON.parse(line);
    } catch (error) {
      throw new Error(`push: a line starting with "{" must be a JSON job spec: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (typeof spec !== "object" || spec === null || Array.isArray(spec))
      throw new Error("push: a JSON job spec must be an object");
    const kwargs = spec as Record<string, unknown>;
    const ownEnv = kwargs.env;
    if (ownEnv !== undefined && (typeof ownEnv !== "object" || ownEnv === null || Array.isArray(ownEnv))) {
      throw new Error(
        `push: field "env" of a JSON job spec must be an object, got ${JSON.stringify(ownEnv)}`,
      );
    }
    kwargs.env = { ...((ownEnv as Record<string, unknown> | undefined) ?? {}), ...env };
    if (!("bg_dirsync_to" in kwargs)) kwargs.bg_dirsync_to = null;
    if (options.cwd !== undefined && !("cwd" in kwargs)) kwargs.cwd = options.cwd;
    return { id: newTaskId(), kwargs, numRetries: options.numRetries ?? 0, replyRequested: false };
  }
  return shellTask({ cmd: line, env, cwd: options.cwd, numRetries: options.numRetries ?? 0 });
}

/** Enqueue shell tasks in ai4s-jobq's format; creates the queue when missing. */
export async function pushTasks(options: PushOptions): Promise<PushResult> {
  const numRetries = options.numRetries ?? 0;
  if (!Number.isInteger(numRetries) || numRetries < 0) {
    throw new Error(`push: num-retries must be an integer >= 0, got ${numRetries}`);
  }
  const client = createQueueClient(options.spec, {
    connectionString: options.connectionString,
    credential: options.credential,
  });
  await client.createIfNotExists({ abortSignal: options.signal });
  const limit = pLimit(options.parallelism ?? 10);
  const ids: string[] = [];
  const sends: Promise<void>[] = [];
  for await (const raw of options.commands) {
    const line = raw.replace(/\r?\n$/, "");
    if (line.trim() === "") continue;
    const task = taskFromLine(line, { numRetries, env: options.env, cwd: options.cwd });
    ids.push(task.id);
    // Plain JSON text, never expiring, as upstream sends it.
    const send = limit(
      async () =>
        void (await client.sendMessage(encodeTask(task), {
          messageTimeToLive: -1,
          abortSignal: options.signal,
        })),
    );
    // Handled below by Promise.all; the no-op keeps a failure while stdin is still being read from crashing.
    send.catch(() => undefined);
    sends.push(send);
  }
  await Promise.all(sends);
  options.logger?.info({ queue: describeQueueSpec(options.spec), pushed: ids.length }, "tasks pushed");
  return { pushed: ids.length, ids };
}
