import type { CallOptions, DrainResult, ExpiredDrain } from "../regions/types.js";

/**
 * How a region asks running workers to finish their task and leave when it cannot signal them itself
 * (AzureML jobs, or local workers wrapped by `workforce agent`): control messages on a Service Bus topic,
 * plus a ledger of drains in flight so that no worker is asked twice and a restart does not over-drain.
 */
export interface DrainChannel {
  /**
   * Drain requests still in flight, given the ids of the workers running now: sent, not expired, and
   * whose worker has not left yet. Never more than running.length.
   */
  inFlight(running: readonly string[], options?: CallOptions): Promise<number>;
  /**
   * Drain requests that reached the drain timeout with no worker leaving for them, as of the last
   * inFlight() call (no I/O of its own).
   */
  expiredDrains?(): ExpiredDrain[];
  /** Send `count` drain requests and record them against the workers running now. */
  requestDrain(count: number, running: readonly string[], options?: CallOptions): Promise<DrainResult>;
  close?(): Promise<void>;
}
