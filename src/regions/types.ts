/**
 * A region is one place where workers run: an AzureML workspace + cluster + experiment, or this machine.
 * Adapters translate; they never decide how many workers there should be (that is src/policy's job).
 */

import type { BackoffState } from "../azure/backoff.js";

export type { BackoffState } from "../azure/backoff.js";

/** What a region looks like right now. */
export interface RegionObservation {
  /** Workers executing, not asked to leave. These are the ones a drain may target. */
  running: number;
  /** Workers hired but not yet running (queued, preparing, starting...). Cancelling one loses no work. */
  pending: number;
  /** Running workers already asked to finish their task and leave. Neither capacity nor surplus. */
  draining: number;
  /** How many more workers the region can place now (may be negative when over-committed). */
  capacity: number;
  /**
   * The region's recent worker exits, oldest first (adapters that know them: a bounded history that
   * survives a restart). The controller counts the new ones and backs off a region whose starts fail.
   */
  exits?: WorkerExit[];
  /** Drain requests that expired unanswered and are still remembered (counted once each, by id). */
  expiredDrains?: ExpiredDrain[];
}

/**
 * How a worker ended: `succeeded` (exit 0), `failed` (failed after it had started work), `failed_start`
 * (failed before doing any work: a bad command, image or option), `drained` (left after a drain or cancel
 * request), `stopped` (stopped by an operator), `unknown` (gone while nobody watched).
 */
export const WORKER_EXIT_OUTCOMES = [
  "succeeded",
  "failed",
  "failed_start",
  "drained",
  "stopped",
  "unknown",
] as const;
export type WorkerExitOutcome = (typeof WORKER_EXIT_OUTCOMES)[number];

/** Drain requests that reached the drain timeout unanswered: `count` of them, expired at `at`. */
export interface ExpiredDrain {
  id: string;
  count: number;
  at: number;
}

export interface WorkerExit {
  workerId: string;
  outcome: WorkerExitOutcome;
  /** When the exit was seen (epoch ms). */
  at: number;
  /** "exit code 7", "signal SIGKILL", "Failed" (AzureML)... */
  detail: string;
  /** Seconds from its start to its exit, when known. */
  ranSeconds?: number;
  /** Seconds from the drain (or cancel) request to the exit, for a drained worker. */
  drainSeconds?: number;
  /** The last lines of its output (redacted), or the job's error. */
  lastOutput?: string;
}

/** Every call takes a signal: the controller time-boxes each one. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** Progress of a long hire (thousands of submits at ARM's write rate take minutes). */
export interface HireProgress {
  done: number;
  failed: number;
  total: number;
}

/**
 * What became of one submission: the service took it, said no, or nobody knows (timed out, cut off, reset:
 * it may exist or appear later, and must be counted as if it did).
 */
export type SubmitOutcome = "accepted" | "refused" | "unknown";

export interface HireOptions extends CallOptions {
  /** Called as workers are submitted; the interactive CLI draws a bar with it. */
  onProgress?: (progress: HireProgress) => void;
  /**
   * Told the name of each worker just before its submission goes out, then what became of it: so that the
   * controller counts a submission in flight even when the call is abandoned at its deadline. Regions that
   * name workers before submitting call both; the outcome may come after the hire call was abandoned.
   */
  onSubmit?: (name: string) => void;
  onOutcome?: (name: string, outcome: SubmitOutcome) => void;
}

export interface HireResult {
  /** Workers the service accepted. */
  hired: number;
  /** Submissions whose outcome is unknown (they may exist): not in `hired`. */
  unknown?: number;
  /** Errors met on the way (the rest of the batch may have gone through). */
  errors: Error[];
}

export interface CancelResult {
  cancelled: number;
  errors: Error[];
}

/**
 * What became of one cancel request: the service took it, said no, or nobody knows (cut off, timed out:
 * the job may be cancelling).
 */
export type CancelOutcome = "cancelled" | "refused" | "unknown";

export interface CancelOptions extends CallOptions {
  /**
   * Told the name of each worker just before its cancel goes out, then what became of it: so that the
   * controller reports the cancels that went through even when the call is abandoned at its deadline.
   */
  onSubmit?: (name: string) => void;
  onOutcome?: (name: string, outcome: CancelOutcome) => void;
}

export interface DrainResult {
  /** Drain requests delivered (signals sent, or control messages accepted by the broker). */
  drained: number;
  /** Drain requests that may have gone out (a send cut off before the broker answered): not in `drained`. */
  unknown?: number;
  errors: Error[];
}

/** What a sweep over Paused workers did (AzureML regions; see docs/azureml.md, "Resuming paused workers"). */
export interface ResumeResult {
  /** Resume accepted: the worker is queued again for a node. */
  resumed: number;
  /** Refused because the job is past its maximum execution time: cancelled instead (its slot is dead). */
  cancelled: number;
  /** Refused for this job only (gone, no longer Paused, ...): logged and skipped. */
  refused: number;
  /** Not resumed for a failure of the call (5xx after retries, network, deadline, 401/403). */
  failed: number;
  /**
   * Not tried (or throttled): the region's resumes are in back-off (a 429, or a 5xx with Retry-After);
   * tried again once it ends. Neither a failure nor an error.
   */
  backedOff?: number;
  /**
   * Not resumed (nor cancelled): this replica lost its leader lease (by its own clock) during the sweep,
   * which stopped at the first write the fence refused. Not a failure of the region: another replica may
   * be the leader now.
   */
  fenced?: number;
  errors: Error[];
}

/** Names of workers, asked one at a time (a region answers from what it keeps, without building a set). */
export interface WorkerNames {
  has(name: string): boolean;
}

export interface Region {
  readonly name: string;
  /** The adapter's kind, e.g. "local" or "azureml". */
  readonly kind: string;
  /** Relative share when spreading hires (default 1). */
  readonly weight: number;
  /** Optional per-region ceiling on active workers. */
  readonly maxWorkers?: number;
  /**
   * False when the region has no way to ask a running worker to leave (an AzureML region without a back
   * channel, like upstream ai4s-jobq): the controller then plans no drains there. Default true.
   */
  readonly canDrain?: boolean;

  observe(options?: CallOptions): Promise<RegionObservation>;
  /**
   * Names of every worker the last successful observe() listed, in any state. Optional: with it, a
   * submission whose outcome was unknown stops counting as in flight as soon as a listing shows it.
   */
  observedWorkers?(): WorkerNames;
  /** Start `count` new workers. */
  hire(count: number, options?: HireOptions): Promise<HireResult>;
  /** Cancel up to `count` workers that have not started work (oldest / least advanced first). */
  cancelPending(count: number, options?: CancelOptions): Promise<CancelResult>;
  /** Ask up to `count` running workers to finish the task in hand and leave. Never the same worker twice. */
  drain(count: number, options?: CallOptions): Promise<DrainResult>;
  /**
   * Stop up to `count` running workers at once, losing the task in hand. Only for an operator's explicit
   * `lay-off --cancel-running`; the controller never calls it.
   */
  cancelRunning?(count: number, options?: CancelOptions): Promise<CancelResult>;
  /**
   * Resume workers a preemption paused (oldest first), every acting tick; a region without pausing jobs
   * has no such method. Not a scaling decision: a paused worker already counts as pending.
   */
  resumePaused?(options?: CallOptions): Promise<ResumeResult>;
  /**
   * Kinds of call (reads, writes) the region's service asked us to hold back (429/503 with Retry-After),
   * and until when: no call of that kind goes to it before then. For status, metrics and the tick log.
   */
  backoffs?(): BackoffState[];
  /** Release connections, timers, child handles. */
  close?(): Promise<void>;
}
