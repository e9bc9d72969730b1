import { randomUUID } from "node:crypto";
import { z } from "zod";
import { pythonJsonDumps } from "./python-json.js";

/**
 * ai4s-jobq task messages (`ai4s.jobq.entities.Task`). Upstream writes
 *   {"version": 1, "reply_requested": false, "kwargs": "<JSON text>", "num_retries": N, "id": "<id>"}
 * with Python's json.dumps, and no other key (it has no `min_version`). Its readers look keys up by name
 * and ignore the rest, so a message with `min_version` is read too (we keep it on a retry). Version 0
 * messages (no reply_requested) are read too, as upstream does.
 */
export interface TaskMessage {
  id: string;
  /** The task's arguments; for shell tasks see ShellTaskKwargs. */
  kwargs: Record<string, unknown>;
  /**
   * The `kwargs` JSON text exactly as received. Re-encoding (a retry) writes it back unchanged, so a
   * Python-written float or key order survives the round trip.
   */
  kwargsText?: string;
  numRetries: number;
  replyRequested: boolean;
  /**
   * Upstream's package requirement, e.g. "my-package>=2.0.0". Undefined: the key is not written (the
   * reference format); null or a string: written as `min_version`, as current upstream does.
   */
  minVersion?: string | null;
  /** 0 or 1; we always write 1. */
  version?: 0 | 1;
}

export class TaskFormatError extends Error {
  readonly code = "InvalidTaskMessage";
  constructor(
    message: string,
    /** The offending field, e.g. "num_retries" or "kwargs.cmd". */
    readonly field?: string,
  ) {
    super(message);
    this.name = "TaskFormatError";
  }
}

const envelopeSchema = z.object({
  version: z.union([z.literal(0), z.literal(1)]),
  id: z.string().min(1),
  kwargs: z.string(),
  num_retries: z.number().int().min(0),
  reply_requested: z.boolean().optional(),
  min_version: z.string().nullable().optional(),
});

/** kwargs of a shell task, as `ai4s-jobq push -c` writes them: {"cmd", "bg_dirsync_to", "env"} (+ "cwd"). */
export const shellTaskKwargsSchema = z
  .object({
    cmd: z.string().min(1),
    // Upstream converts non-string values to str (with a warning); so do we.
    env: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String))
      .nullable()
      .optional(),
    cwd: z.string().min(1).nullable().optional(),
    bg_dirsync_to: z.string().nullable().optional(),
  })
  .passthrough();

export type ShellTaskKwargs = z.output<typeof shellTaskKwargsSchema>;

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function issueError(what: string, issues: z.core.$ZodIssue[], input: unknown, prefix = ""): TaskFormatError {
  const issue = issues[0]!;
  const path = issue.path.map(String);
  const field = prefix + path.join(".");
  let given: unknown = input;
  for (const key of path) given = (given as Record<string, unknown> | undefined)?.[key];
  return new TaskFormatError(
    `${what}: field "${field || "(root)"}": ${issue.message} (got ${describeValue(given)})`,
    field || undefined,
  );
}

/** Decode a message body; a malformed one throws TaskFormatError naming the field. */
export function decodeTask(body: string): TaskMessage {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch (error) {
    throw new TaskFormatError(`task message: not JSON (${(error as Error).message})`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new TaskFormatError(`task message: expected a JSON object, got ${describeValue(data)}`);
  }
  const parsed = envelopeSchema.safeParse(data);
  if (!parsed.success) throw issueError("task message", parsed.error.issues, data);
  const envelope = parsed.data;
  let kwargs: unknown;
  try {
    kwargs = JSON.parse(envelope.kwargs);
  } catch (error) {
    throw new TaskFormatError(
      `task message: field "kwargs": not JSON text (${(error as Error).message})`,
      "kwargs",
    );
  }
  if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) {
    throw new TaskFormatError(
      `task message: field "kwargs": expected JSON text of an object, got ${describeValue(kwargs)}`,
      "kwargs",
    );
  }
  const task: TaskMessage = {
    id: envelope.id,
    kwargs: kwargs as Record<string, unknown>,
    kwargsText: envelope.kwargs,
    numRetries: envelope.num_retries,
    replyRequested: envelope.version === 1 ? (envelope.reply_requested ?? false) : false,
    version: envelope.version,
  };
  if ("min_version" in data) task.minVersion = envelope.min_version ?? null;
  return task;
}

/** Read the shell-task arguments of a decoded task; throws TaskFormatError naming the field. */
export function shellTaskKwargs(task: TaskMessage): ShellTaskKwargs {
  const parsed = shellTaskKwargsSchema.safeParse(task.kwargs);
  if (!parsed.success) throw issueError(`task ${task.id}`, parsed.error.issues, task.kwargs, "kwargs.");
  return parsed.data;
}

/** Encode a task as the exact bytes Python's json.dumps writes for the same dict (upstream's key order). */
export function encodeTask(task: TaskMessage): string {
  const dict: Record<string, unknown> = {
    version: 1,
    reply_requested: task.replyRequested,
    kwargs: task.kwargsText ?? pythonJsonDumps(task.kwargs),
    num_retries: task.numRetries,
  };
  if (task.minVersion !== undefined) dict.min_version = task.minVersion;
  dict.id = task.id;
  return pythonJsonDumps(dict);
}

/** A new task id: 32 hex digits, like upstream's uuid4().hex. */
export function newTaskId(): string {
  return randomUUID().replaceAll("-", "");
}

export interface ShellTaskInput {
  cmd: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Upstream's default for `ai4s-jobq push` is 0. */
  numRetries?: number;
  id?: string;
}

/**
 * A shell task as `ai4s-jobq push -c CMD` builds it: kwargs {"cmd", "bg_dirsync_to": null, "env"}, plus
 * "cwd" when given (upstream's ShellCommandProcessor reads it).
 */
export function shellTask(input: ShellTaskInput): TaskMessage {
  const kwargs: Record<string, unknown> = { cmd: input.cmd, bg_dirsync_to: null, env: input.env ?? {} };
  if (input.cwd !== undefined) kwargs.cwd = input.cwd;
  return { id: input.id ?? newTaskId(), kwargs, numRetries: input.numRetries ?? 0, replyRequested: false };
}
