import type { CallOptions } from "../regions/types.js";

/**
 * Reads how much work waits in a task queue. Depth counts tasks in flight too (Storage Queue's
 * approximateMessagesCount, Service Bus' activeMessageCount), so it never reads lower than the truth.
 */
export interface QueueProbe {
  /** Human-readable and secret-free, e.g. "storage:devstoreaccount1/tasks". */
  readonly description: string;
  depth(options?: CallOptions): Promise<number>;
  close?(): Promise<void>;
}

/** A depth the SDK answered, checked: a missing or negative count is an error naming the queue, never 0. */
export function checkedDepth(description: string, field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new Error(`queue ${description}: the answer had no usable ${field} (got ${String(value)})`);
  }
  return value;
}
