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
