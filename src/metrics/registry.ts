import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { WORKER_EXIT_OUTCOMES } from "../regions/types.js";
import { CALL_KINDS } from "../azure/backoff.js";

/**
 * The daemon's metrics. Names and labels are a contract with the Grafana dashboard and the alerts in
 * deploy/: change them only together. One instance per process, passed in (never a global), so tests can
 * read it.
 */
export interface WorkforceMetrics {
  registry: Registry;
  queueDepth: Gauge;
  queueReadErrors: Counter<"permanent">;
  targetWorkers: Gauge;
  /** Target before scale-down stabilization: shows what the policy wants right now. */
  desiredWorkers: Gauge;
  workers: Gauge<"region" | "state">;
  regionCapacity: Gauge<"region">;
  /** Seconds since the region's observation was read (0 when fresh; grows while a stale one stands in). */
  regionObservationAge: Gauge<"region">;
  hired: Counter<"region">;
  /** Submissions whose outcome is unknown (they may exist; counted in flight, not in `hired`). */
  hireUnknown: Counter<"region">;
  cancelled: Counter<"region">;
  drainRequests: Counter<"region">;
  /** Paused workers swept, by outcome (resumed, cancelled past their execution limit, refused, failed). */
  resumed: Counter<"region" | "outcome">;
  /** Drain requests cut off before the broker answered (counted as sent). */
  drainUnknown: Counter<"region">;
  /** Seconds left of a region's back-off, per kind of call (0 when none). */
  regionBackoff: Gauge<"region" | "call">;
  regionErrors: Counter<"region" | "operation" | "permanent">;
  reconcileDuration: Histogram;
  reconcilePhaseDuration: Histogram<"phase">;
  reconcileTotal: Counter<"outcome">;
  lastReconcileSuccess: Gauge;
  /** The configured interval: alerts say "3 intervals" with it instead of a fixed number. */
  reconcileInterval: Gauge;
  dryRun: Gauge;
  /** What the controller has learned (the predictive policy sizes with these; hints until measured). */
  estimatedTaskSeconds: Gauge;
  estimatedStartupSeconds: Gauge<"region">;
  isLeader: Gauge;
  info: Gauge<"version" | "policy" | "queue" | "storage_account">;
  /** Workers the plan wanted this tick that no region took (no room, failed hires, backoff). */
  unplacedWorkers: Gauge;
  workerExits: Counter<"region" | "outcome">;
  /** 1 while the region backs off after failed starts (no hires there). */
  regionStartBackoff: Gauge<"region">;
  drainDuration: Histogram<"region">;
  drainsExpired: Counter<"region">;
  lastScaleUp: Gauge;
  lastScaleDown: Gauge;
  failedScaleUps: Counter<"region" | "reason">;
  regionMaxWorkers: Gauge<"region">;
  maxWorkers: Gauge;
}

/** Why a hire placed fewer workers than planned. */
export const SCALE_UP_FAILURE_REASONS = [
  "no_capacity",
  "throttled",
  "timeout",
  "permanent",
  "error",
] as const;
export type ScaleUpFailureReason = (typeof SCALE_UP_FAILURE_REASONS)[number];

export const WORKER_STATES = ["running", "pending", "draining"] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

/** Operations a region error is counted under. */
export const REGION_OPERATIONS = ["observe", "hire", "cancel", "drain", "resume"] as const;
export type RegionOperation = (typeof REGION_OPERATIONS)[number];

/** Outcomes of resuming a paused worker (`workforce_resumed_total`). */
export const RESUME_OUTCOMES = ["resumed", "cancelled", "refused", "failed"] as const;
export type ResumeOutcome = (typeof RESUME_OUTCOMES)[number];

/** Outcomes of a tick: ok, degraded (some region failed or held), held (queue unreadable), error. */
export const RECONCILE_OUTCOMES = ["ok", "degraded", "held", "error"] as const;
export type ReconcileOutcome = (typeof RECONCILE_OUTCOMES)[number];

export interface MetricsOptions {
  registry?: Registry;
  /** Node process metrics (CPU, memory, event loop); on by default. */
  processMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): WorkforceMetrics {
  const registry = options.registry ?? new Registry();
  if (options.processMetrics ?? true) {
    // No prefix: process_cpu_seconds_total, nodejs_eventloop_lag_seconds... are the names stock Node.js
    // dashboards and alerts query.
    collectDefaultMetrics({ register: registry });
    // prom-client's gauges named *_total break Prometheus naming rules (`promtool check metrics` rejects
    // them); the per-type gauges without the suffix carry the same counts.
    for (const kind of ["handles", "requests", "resources"]) {
      registry.removeSingleMetric(`nodejs_active_${kind}_total`);
    }
  }
  const registers = [registry];

  const metrics: WorkforceMetrics = {
    registry,
    queueDepth: new Gauge({
      name: "workforce_queue_depth",
      help: "Tasks waiting or in flight in the task queue, at the last successful read.",
      registers,
    }),
    queueReadErrors: new Counter({
      name: "workforce_queue_read_errors_total",
      help: "Failed reads of the queue depth (the tick then holds: no hire, no shrink); permanent=true for errors that will not heal by themselves.",
      labelNames: ["permanent"] as const,
      registers,
    }),
    targetWorkers: new Gauge({
      name: "workforce_target_workers",
      help: "Active workers (running + pending) the controller aims for, after stabilization.",
      registers,
    }),
    desiredWorkers: new Gauge({
      name: "workforce_desired_workers",
      help: "Active workers the policy asks for this tick, before scale-down stabilization.",
      registers,
    }),
    workers: new Gauge({
      name: "workforce_workers",
      help: "Workers by region and state (running, pending, draining).",
      labelNames: ["region", "state"] as const,
      registers,
    }),
    regionCapacity: new Gauge({
      name: "workforce_region_capacity",
      help: "Workers the region can still place (may be negative when over-committed).",
      labelNames: ["region"] as const,
      registers,
    }),
    regionObservationAge: new Gauge({
      name: "workforce_region_observation_age_seconds",
      help: "Age of the region observation used by the last tick (0 when read fresh).",
      labelNames: ["region"] as const,
      registers,
    }),
    hired: new Counter({
      name: "workforce_hired_total",
      help: "Workers hired: submissions the service accepted (jobs created or processes started).",
      labelNames: ["region"] as const,
      registers,
    }),
    hireUnknown: new Counter({
      name: "workforce_hire_unknown_total",
      help: "Submissions with an unknown outcome (timed out, cut off, reset): they may exist, and count as pending until listed or the hire grace period passes.",
      labelNames: ["region"] as const,
      registers,
    }),
    drainUnknown: new Counter({
      name: "workforce_drain_unknown_total",
      help: "Drain requests whose send was cut off before the broker answered: counted as sent until the drain timeout.",
      labelNames: ["region"] as const,
      registers,
    }),
    regionBackoff: new Gauge({
      name: "workforce_region_backoff_seconds",
      help: "Seconds before calls of a kind (ARM read, write; ml.azure.com index-list, resume) may go to the region again, as its service asked with Retry-After (0: none).",
      labelNames: ["region", "call"] as const,
      registers,
    }),
    cancelled: new Counter({
      name: "workforce_cancelled_total",
      help: "Pending workers cancelled.",
      labelNames: ["region"] as const,
      registers,
    }),
    drainRequests: new Counter({
      name: "workforce_drain_requests_total",
      help: "Running workers asked to finish their task and leave.",
      labelNames: ["region"] as const,
      registers,
    }),
    resumed: new Counter({
      name: "workforce_resumed_total",
      help: "Paused workers swept by outcome: resumed, cancelled (past their max execution time), refused (4xx for that job), failed.",
      labelNames: ["region", "outcome"] as const,
      registers,
    }),
    regionErrors: new Counter({
      name: "workforce_region_errors_total",
      help: "Failed region calls by operation (observe, hire, cancel, drain, resume); permanent=true for errors that will not heal by themselves.",
      labelNames: ["region", "operation", "permanent"] as const,
      registers,
    }),
    reconcileDuration: new Histogram({
      name: "workforce_reconcile_duration_seconds",
      help: "Duration of a whole reconcile tick.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    reconcilePhaseDuration: new Histogram({
      name: "workforce_reconcile_phase_duration_seconds",
      help: "Duration of each tick phase (observe, decide, act).",
      labelNames: ["phase"] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    reconcileTotal: new Counter({
      name: "workforce_reconcile_total",
      help: "Reconcile ticks by outcome (ok, degraded, held, error).",
      labelNames: ["outcome"] as const,
      registers,
    }),
    lastReconcileSuccess: new Gauge({
      name: "workforce_last_reconcile_success_timestamp_seconds",
      help: "Unix time of the last tick that read the queue and acted (or planned, in dry-run).",
      registers,
    }),
    reconcileInterval: new Gauge({
      name: "workforce_reconcile_interval_seconds",
      help: "The configured time between ticks (WORKFORCE_INTERVAL_SECONDS).",
      registers,
    }),
    dryRun: new Gauge({
      name: "workforce_dry_run",
      help: "1 when the daemon plans but does not act.",
      registers,
    }),
    estimatedTaskSeconds: new Gauge({
      name: "workforce_estimated_task_seconds",
      help: "Median task time learned from the queue depth and busy workers (the hint until measured).",
      registers,
    }),
    estimatedStartupSeconds: new Gauge({
      name: "workforce_estimated_startup_seconds",
      help: "Median worker start-up (hired to running) learned per region (the hint until measured).",
      labelNames: ["region"] as const,
      registers,
    }),
    isLeader: new Gauge({
      name: "workforce_leader",
      help: "1 when this replica holds the leader lease (always 1 without leader election).",
      registers,
    }),
    info: new Gauge({
      name: "workforce_info",
      help: "Build and configuration facts, value 1.",
      labelNames: ["version", "policy", "queue", "storage_account"] as const,
      registers,
    }),
    unplacedWorkers: new Gauge({
      name: "workforce_unplaced_workers",
      help: "Workers the last tick wanted to hire that no region took (no room, failed hires, start backoff).",
      registers,
    }),
    workerExits: new Counter({
      name: "workforce_worker_exits_total",
      help: "Workers that ended, by outcome (succeeded, failed, failed_start, drained, stopped, unknown).",
      labelNames: ["region", "outcome"] as const,
      registers,
    }),
    regionStartBackoff: new Gauge({
      name: "workforce_region_start_backoff",
      help: "1 while the region gets no hires because its workers keep failing to start.",
      labelNames: ["region"] as const,
      registers,
    }),
    drainDuration: new Histogram({
      name: "workforce_drain_duration_seconds",
      help: "Time from a drain (or cancel) request to the worker's exit.",
      labelNames: ["region"] as const,
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
      registers,
    }),
    drainsExpired: new Counter({
      name: "workforce_drains_expired_total",
      help: "Drain requests that reached the drain timeout with no worker leaving for them.",
      labelNames: ["region"] as const,
      registers,
    }),
    lastScaleUp: new Gauge({
      name: "workforce_last_scale_up_timestamp_seconds",
      help: "Unix time of the last tick that hired at least one worker.",
      registers,
    }),
    lastScaleDown: new Gauge({
      name: "workforce_last_scale_down_timestamp_seconds",
      help: "Unix time of the last tick that cancelled or drained at least one worker.",
      registers,
    }),
    failedScaleUps: new Counter({
      name: "workforce_failed_scale_ups_total",
      help: "Workers a region was asked to hire and did not, by reason (no_capacity, throttled, timeout, permanent, error).",
      labelNames: ["region", "reason"] as const,
      registers,
    }),
    regionMaxWorkers: new Gauge({
      name: "workforce_region_max_workers",
      help: "The region's own ceiling on active workers (only for regions that set maxWorkers).",
      labelNames: ["region"] as const,
      registers,
    }),
    maxWorkers: new Gauge({
      name: "workforce_max_workers",
      help: "The ceiling on active workers over all regions (WORKFORCE_MAX_WORKERS).",
      registers,
    }),
  };
  // Counters that dashboards rate() must exist from the start, even at zero.
  for (const outcome of RECONCILE_OUTCOMES) metrics.reconcileTotal.inc({ outcome }, 0);
  for (const permanent of ["true", "false"]) metrics.queueReadErrors.inc({ permanent }, 0);
  return metrics;
}

/** Make every per-region series exist at zero, so rate() and absent() behave from the first scrape. */
export function initRegionSeries(metrics: WorkforceMetrics, region: string): void {
  for (const state of WORKER_STATES) metrics.workers.set({ region, state }, 0);
  metrics.hired.inc({ region }, 0);
  metrics.hireUnknown.inc({ region }, 0);
  metrics.cancelled.inc({ region }, 0);
  metrics.drainRequests.inc({ region }, 0);
  for (const outcome of RESUME_OUTCOMES) metrics.resumed.inc({ region, outcome }, 0);
  metrics.drainUnknown.inc({ region }, 0);
  for (const call of CALL_KINDS) metrics.regionBackoff.set({ region, call }, 0);
  for (const operation of REGION_OPERATIONS)
    for (const permanent of ["true", "false"]) metrics.regionErrors.inc({ region, operation, permanent }, 0);
  for (const outcome of WORKER_EXIT_OUTCOMES) metrics.workerExits.inc({ region, outcome }, 0);
  for (const reason of SCALE_UP_FAILURE_REASONS) metrics.failedScaleUps.inc({ region, reason }, 0);
  metrics.drainsExpired.inc({ region }, 0);
  metrics.drainDuration.zero({ region });
  metrics.regionStartBackoff.set({ region }, 0);
}
