/**
 * What each AzureML job status means for the workforce.
 * - running: executing tasks. `NotResponding` counts here: the job still holds its node and may come back,
 *   so hiring a replacement would double-book; it is never cancelled by the autoscaler.
 * - pending: hired, not running yet; cancelling loses no work.
 * - unknown: `Unknown` is counted as pending (it holds a slot in the target, so we do not over-hire), but
 *   it is never cancelled: it may be running.
 * - leaving: `Finalizing`, `CancelRequested`: not active, not finished; neither capacity nor surplus.
 * - finished: `Completed`, `Failed`, `Canceled`: retired from the listing (archived or untagged).
 */
export type StatusClass = "running" | "pending" | "unknown" | "leaving" | "finished";

const CLASSES: Record<string, StatusClass> = {
  Running: "running",
  NotResponding: "running",
  NotStarted: "pending",
  Queued: "pending",
  Waiting: "pending",
  Preparing: "pending",
  Provisioning: "pending",
  Starting: "pending",
  Paused: "pending",
  Unknown: "unknown",
  Finalizing: "leaving",
  CancelRequested: "leaving",
  Completed: "finished",
  Failed: "finished",
  Canceled: "finished",
};

export function classifyStatus(status: string | undefined): StatusClass {
  // A status this code does not know yet is treated like Unknown: counted, never cancelled.
  return (status && CLASSES[status]) || "unknown";
}

/**
 * Cancel order (first cancelled first): upstream's Paused, Queued, Waiting, Preparing, Starting, with the
 * ARM-only pending states in their natural place. Oldest first within a status.
 */
const CANCEL_ORDER = ["Paused", "NotStarted", "Queued", "Waiting", "Provisioning", "Preparing", "Starting"];

export function cancelRank(status: string | undefined): number {
  const index = CANCEL_ORDER.indexOf(status ?? "");
  return index === -1 ? Number.POSITIVE_INFINITY : index;
}
