import type { QueueProbe } from "../queue/types.js";
import type { Region } from "../regions/types.js";
import type { Logger } from "../logging/logger.js";
import type { PolicyFunction } from "../policy/types.js";
import { decide, type DecideParameters, type Plan } from "../policy/decide.js";
import type { TargetSample } from "../policy/stabilize.js";
import {
  initRegionSeries,
  RESUME_OUTCOMES,
  type ReconcileOutcome,
  type WorkforceMetrics,
} from "../metrics/registry.js";
import { CALL_KINDS, type BackoffState } from "../azure/backoff.js";
import { takeSnapshot, describeError, type LastGood, type Snapshot } from "./snapshot.js";
import { WorkloadLearner } from "./learner.js";
import type { Estimates, Hints } from "../policy/estimate.js";
import { carryOut, type CallResult, type RegionOutcome } from "./act.js";
import { InFlightHires } from "./in-flight.js";
import type { RegionOperation } from "../metrics/registry.js";
import { ExitTracker, type RegionBackoff } from "./exits.js";
import { defaultStartBackoff, type StartBackoffParameters } from "../policy/start-backoff.js";
import type { WriteFence } from "../regions/fence.js";

export interface ReconcilerOptions {
  queue: QueueProbe;
  regions: readonly Region[];
  policy: PolicyFunction;
  parameters: DecideParameters;
  callTimeoutMs: number;
  /** Deadline of one region's actions in a tick. */
  actTimeoutMs: number;
  readConcurrency: number;
  staleTicks: number;
  /**
   * How long a submission whose outcome is unknown counts as in flight while the region's listing does not
   * show it (WORKFORCE_HIRE_GRACE_SECONDS; default 300 s).
   */
  hireGraceMs?: number;
  dryRun: boolean;
  /**
   * Start the scale-down window at the workforce found on the first tick, as if it had been the target
   * until now: a restarted daemon then shrinks no sooner than the old process would have. The daemon sets
   * it; one-shot commands do not (they would never shrink).
   */
  windowFromFirstSight?: boolean;
  logger: Logger;
  metrics?: WorkforceMetrics;
  /** Leader election's fence, checked by the act phase before each region's every step. */
  fence?: WriteFence;
  now?: () => number;
  /** Backoff of regions whose workers fail to start (default: from a 60 s interval). */
  startBackoff?: StartBackoffParameters;
  /** Task and start-up times to assume until measured (WORKFORCE_TASK_SECONDS, WORKFORCE_STARTUP_SECONDS). */
  hints?: Hints;
}

/** What one tick saw, decided and did: a plain object to log, test and print. */
export interface TickReport {
  snapshot: Snapshot;
  plan: Plan;
  /** Learned task and start-up times the tick decided with. */
  estimates: Estimates;
  outcomes: RegionOutcome[];
  result: ReconcileOutcome;
  dryRun: boolean;
  durations: { observeMs: number; decideMs: number; actMs: number; totalMs: number };
  /** Set when the tick failed as a whole (e.g. the policy threw). */
  error?: string;
  /** Regions that get no hires because their workers keep failing to start. */
  backoff: RegionBackoff[];
}

/**
 * The level-triggered reconcile: read the world, compare with the wish, act. It can run at any moment,
 * twice in a row or after a crash, without harm. What it keeps between ticks is only an optimisation or a
 * damper (the stabilization window, the last good region readings), never needed for correctness.
 */
export class Reconciler {
  private history: TargetSample[] = [];
  private sawWorkforce = false;
  private readonly lastGood = new Map<string, LastGood>();
  private readonly inFlight: InFlightHires;
  /** Regions that name each submission before sending it (their hires are counted by name). */
  private readonly naming = new Set<string>();
  private readonly now: () => number;
  private readonly exits: ExitTracker;
  /** The permanent errors of the last committed tick: readiness fails while there is one. */
  private permanent: string[] = [];
  private readonly learner: WorkloadLearner;

  constructor(private readonly options: ReconcilerOptions) {
    this.now = options.now ?? Date.now;
    this.learner = new WorkloadLearner(options.hints ?? { taskSeconds: 600, startupSeconds: 300 });
    this.inFlight = new InFlightHires(options.hireGraceMs ?? 300_000, this.now);
    this.exits = new ExitTracker(options.startBackoff ?? defaultStartBackoff(60), this.now());
    if (options.metrics) {
      options.metrics.maxWorkers.set(options.parameters.maxWorkers);
      for (const region of options.regions)
        if (region.maxWorkers !== undefined)
          options.metrics.regionMaxWorkers.set({ region: region.name }, region.maxWorkers);
    }
    if (options.metrics) for (const region of options.regions) initRegionSeries(options.metrics, region.name);
    options.metrics?.dryRun.set(options.dryRun ? 1 : 0);
  }

  get regions(): readonly Region[] {
    return this.options.regions;
  }

  /** Errors of the last tick that will not heal by themselves, one line each (empty when none). */
  permanentProblems(): readonly string[] {
    return this.permanent;
  }

  /** One full tick. Never throws: failures become the report's result and error. */
  async tick(signal?: AbortSignal): Promise<TickReport> {
    return this.run({ act: !this.options.dryRun, commit: true, signal });
  }

  /** Observe and plan, but act on nothing and keep no state: for `workforce status`. */
  async preview(
    signal?: AbortSignal,
    onCall?: (what: string, state: "start" | "end") => void,
  ): Promise<TickReport> {
    return this.run({ act: false, commit: false, signal, ...(onCall ? { onCall } : {}) });
  }

  private async run(mode: {
    act: boolean;
    commit: boolean;
    signal?: AbortSignal;
    onCall?: (what: string, state: "start" | "end") => void;
  }): Promise<TickReport> {
    const { options } = this;
    const started = this.now();
    const lastGood = mode.commit ? this.lastGood : new Map([...this.lastGood].map(([k, v]) => [k, { ...v }]));
    const snapshot = await takeSnapshot(options.queue, options.regions, {
      callTimeoutMs: options.callTimeoutMs,
      readConcurrency: options.readConcurrency,
      lastGood,
      inFlight: mode.commit ? this.inFlight : this.inFlight.clone(),
      signal: mode.signal,
      now: this.now,
      ...(mode.onCall ? { onCall: mode.onCall } : {}),
    });
    const observed = this.now();
    const backoffs = this.exits.backoffs(snapshot, observed);
    if (mode.commit) this.exits.record(snapshot, backoffs, observed, options.logger, options.metrics);

    let history = this.history;
    if (options.windowFromFirstSight && !this.sawWorkforce && snapshot.queue.depth !== undefined) {
      const active = snapshot.regions.reduce(
        (sum, reading) =>
          sum + (reading.observation ? reading.observation.running + reading.observation.pending : 0),
        0,
      );
      history = [{ at: observed, target: active }];
      if (mode.commit) this.sawWorkforce = true;
    }

    // The learner sees every committed tick; a preview only reads what it knows.
    if (mode.commit) {
      this.learner.observe({
        at: observed / 1000,
        queueDepth: snapshot.queue.depth,
        concurrency: options.parameters.concurrency,
        regions: snapshot.regions,
      });
    }
    const estimates = this.learner.estimates(
      observed / 1000,
      Object.fromEntries(
        snapshot.regions.map((reading) => [reading.name, reading.observation?.capacity ?? 0]),
      ),
    );

    let plan: Plan;
    let error: string | undefined;
    try {
      const decision = decide({
        queueDepth: snapshot.queue.depth,
        regions: snapshot.regions.map((reading) => {
          const region = options.regions.find((candidate) => candidate.name === reading.name);
          // A region backing off after failed starts gets no hires: it offers no room this tick.
          const observation =
            reading.observation && backoffs.has(reading.name)
              ? { ...reading.observation, capacity: Math.min(0, reading.observation.capacity) }
              : reading.observation;
          return {
            name: reading.name,
            observation,
            fresh: reading.fresh,
            ageTicks: reading.ageTicks,
            weight: region?.weight ?? 1,
            maxWorkers: region?.maxWorkers,
            canDrain: region?.canDrain,
          };
        }),
        policy: options.policy,
        parameters: options.parameters,
        history,
        now: observed,
        estimates: { taskSeconds: estimates.taskSeconds, startupSeconds: estimates.startupSeconds },
        staleTicks: options.staleTicks,
      });
      plan = decision.plan;
      if (mode.commit) this.history = decision.history;
    } catch (failure) {
      error = describeError(failure);
      plan = {
        hold: `decision failed: ${error}`,
        desired: 0,
        target: 0,
        totals: { running: 0, pending: 0, draining: 0, capacity: 0 },
        hire: 0,
        surplus: 0,
        busyWorkers: 0,
        regions: options.regions.map((region) => ({ region: region.name, hire: 0, cancel: 0, drain: 0 })),
      };
    }
    const decided = this.now();

    const outcomes = await carryOut(plan, options.regions, {
      actTimeoutMs: options.actTimeoutMs,
      // Every region acts at once: a region's own writes are bounded by its submit concurrency and the
      // subscription's write budget, so sharing the read limit only added rounds (above 100 regions the
      // tick doubled).
      concurrency: Math.max(1, options.regions.length),
      dryRun: !mode.act,
      logger: options.logger,
      signal: mode.signal,
      ...(options.fence ? { fence: options.fence } : {}),
      hireOptions: (region) => ({
        onSubmit: (name) => {
          this.naming.add(region);
          this.inFlight.submitted(region, name);
        },
        onOutcome: (name, outcome) => {
          this.inFlight.settled(region, name, outcome);
          if (outcome === "accepted") options.metrics?.hired.inc({ region });
          if (outcome === "unknown") options.metrics?.hireUnknown.inc({ region });
        },
      }),
      onLate: (region, operation, result) => this.late(region, operation, result),
    });
    if (mode.act) this.afterActions(outcomes);
    const finished = this.now();
    if (mode.commit) {
      this.learner.acted(
        decided / 1000,
        outcomes.map((o) => ({ region: o.region, hired: o.hired, cancelled: o.cancelled })),
      );
    }

    const result = this.classify(snapshot, outcomes, error);
    const report: TickReport = {
      snapshot,
      plan,
      estimates,
      outcomes,
      result,
      dryRun: !mode.act,
      durations: {
        observeMs: observed - started,
        decideMs: decided - observed,
        actMs: finished - decided,
        totalMs: finished - started,
      },
      ...(error ? { error } : {}),
      backoff: this.exits.describe(backoffs, observed),
    };
    if (mode.commit) {
      this.record(report);
      this.notePermanent(report);
      this.logSummary(report);
    }
    return report;
  }

  /**
   * The last good reading becomes the one after this tick's actions: cancelled workers are gone, drained
   * ones are draining. Hires of regions that do not name them are counted in flight until listed.
   */
  private afterActions(outcomes: RegionOutcome[]): void {
    for (const outcome of outcomes) {
      const last = this.lastGood.get(outcome.region);
      if (last && last.ageTicks === 0) {
        const o = last.observation;
        const cancelled = Math.min(outcome.cancelled, o.pending);
        const drained = Math.min(outcome.drained + outcome.drainUnknown, o.running);
        last.observation = {
          ...o,
          pending: o.pending - cancelled,
          running: o.running - drained,
          draining: o.draining + drained,
        };
      }
      if (!this.naming.has(outcome.region)) {
        this.inFlight.hiredUnnamed(outcome.region, outcome.hired);
        if (outcome.hired) this.options.metrics?.hired.inc({ region: outcome.region }, outcome.hired);
        if (outcome.hireUnknown)
          this.options.metrics?.hireUnknown.inc({ region: outcome.region }, outcome.hireUnknown);
      }
    }
  }

  /** A region call abandoned at its deadline answered after all: count what it did. */
  private late(region: string, operation: RegionOperation, result: CallResult): void {
    const metrics = this.options.metrics;
    this.options.logger.warn(
      { region, operation, ...result, errors: result.errors?.map(describeError) },
      `${operation} answered after its deadline`,
    );
    if (operation === "hire" && !this.naming.has(region)) {
      this.inFlight.hiredUnnamed(region, result.hired ?? 0);
      if (result.hired) metrics?.hired.inc({ region }, result.hired);
    }
    if (operation === "cancel" && result.cancelled) metrics?.cancelled.inc({ region }, result.cancelled);
    if (operation === "drain" && result.drained) metrics?.drainRequests.inc({ region }, result.drained);
  }

  private classify(
    snapshot: Snapshot,
    outcomes: RegionOutcome[],
    error: string | undefined,
  ): ReconcileOutcome {
    if (error) return "error";
    if (snapshot.queue.depth === undefined) return "held";
    const regionTrouble =
      snapshot.regions.some((reading) => !reading.fresh) ||
      outcomes.some((outcome) => outcome.errors.length > 0);
    return regionTrouble ? "degraded" : "ok";
  }

  private record(report: TickReport): void {
    const metrics = this.options.metrics;
    if (!metrics) return;
    const { snapshot, plan } = report;
    if (snapshot.queue.depth !== undefined) metrics.queueDepth.set(snapshot.queue.depth);
    else metrics.queueReadErrors.inc({ permanent: String(snapshot.queue.permanent === true) });
    if (!plan.hold) {
      metrics.targetWorkers.set(plan.target);
      metrics.desiredWorkers.set(plan.desired);
    }
    metrics.estimatedTaskSeconds.set(report.estimates.taskSeconds);
    for (const [region, estimate] of Object.entries(report.estimates.startup)) {
      metrics.estimatedStartupSeconds.set({ region }, estimate.seconds);
    }
    for (const reading of snapshot.regions) {
      const region = reading.name;
      if (reading.error)
        metrics.regionErrors.inc({
          region,
          operation: "observe",
          permanent: String(reading.permanent === true),
        });
      metrics.regionObservationAge.set({ region }, reading.ageMs / 1000);
      const backoff = this.backoffNow(reading.name, reading.backoff);
      for (const call of CALL_KINDS) {
        const state = backoff.find((b) => b.call === call);
        metrics.regionBackoff.set({ region, call }, state ? Math.max(0, state.until - this.now()) / 1000 : 0);
      }
      const observation = reading.observation;
      if (!observation) continue;
      metrics.workers.set({ region, state: "running" }, observation.running);
      metrics.workers.set({ region, state: "pending" }, observation.pending);
      metrics.workers.set({ region, state: "draining" }, observation.draining);
      metrics.regionCapacity.set({ region }, observation.capacity);
    }
    for (const outcome of report.outcomes) {
      const region = outcome.region;
      // Hires are counted as the service answers each one (see run), not here.
      if (outcome.cancelled) metrics.cancelled.inc({ region }, outcome.cancelled);
      if (outcome.drained) metrics.drainRequests.inc({ region }, outcome.drained);
      // Workers held back by a back-off are not swept: the back-off gauge shows them, not this counter;
      // nor are those a lost lease held back (fenced): the resume error counter shows those.
      for (const state of RESUME_OUTCOMES) {
        const count = outcome.resume?.[state] ?? 0;
        if (count > 0) metrics.resumed.inc({ region, outcome: state }, count);
      }
      if (outcome.drainUnknown) metrics.drainUnknown.inc({ region }, outcome.drainUnknown);
      for (const failure of outcome.errors)
        metrics.regionErrors.inc({
          region,
          operation: failure.operation,
          permanent: String(failure.permanent),
        });
    }
    const hired = report.outcomes.reduce((total, outcome) => total + outcome.hired, 0);
    const shrunk = report.outcomes.reduce((total, outcome) => total + outcome.cancelled + outcome.drained, 0);
    const placed = report.dryRun ? sumPlan(plan, "hire") : hired;
    metrics.unplacedWorkers.set(plan.hold ? 0 : Math.max(0, plan.hire - placed));
    if (hired > 0) metrics.lastScaleUp.set(this.now() / 1000);
    if (shrunk > 0) metrics.lastScaleDown.set(this.now() / 1000);
    for (const outcome of report.outcomes) {
      const planned = plan.regions.find((regionPlan) => regionPlan.region === outcome.region)?.hire ?? 0;
      const missing = planned - outcome.hired;
      if (report.dryRun || missing <= 0) continue;
      const failure = outcome.errors.find((candidate) => candidate.operation === "hire");
      metrics.failedScaleUps.inc({ region: outcome.region, reason: failure?.reason ?? "error" }, missing);
    }
    metrics.reconcileDuration.observe(report.durations.totalMs / 1000);
    metrics.reconcilePhaseDuration.observe({ phase: "observe" }, report.durations.observeMs / 1000);
    metrics.reconcilePhaseDuration.observe({ phase: "decide" }, report.durations.decideMs / 1000);
    metrics.reconcilePhaseDuration.observe({ phase: "act" }, report.durations.actMs / 1000);
    metrics.reconcileTotal.inc({ outcome: report.result });
    // A tick succeeds when it read the queue and could decide; a degraded region does not make it fail.
    if (report.result === "ok" || report.result === "degraded") {
      metrics.lastReconcileSuccess.set(this.now() / 1000);
    }
  }

  /** Log each permanent error at error once, when it appears (the tick line repeats it every tick). */
  private notePermanent(report: TickReport): void {
    const problems = [
      ...(report.snapshot.queue.permanent
        ? [`queue ${this.options.queue.description}: ${report.snapshot.queue.error}`]
        : []),
      ...report.snapshot.regions
        .filter((reading) => reading.permanent)
        .map((reading) => `region ${reading.name}: ${reading.error}`),
      ...report.outcomes.flatMap((outcome) =>
        outcome.errors
          .filter((failure) => failure.permanent)
          .map((failure) => `region ${outcome.region} ${failure.operation}: ${failure.message}`),
      ),
    ];
    for (const problem of problems)
      if (!this.permanent.includes(problem))
        this.options.logger.error({ problem }, `permanent error: ${problem} (it will not heal by itself)`);
    this.permanent = problems;
  }

  private logSummary(report: TickReport): void {
    const { plan, snapshot, outcomes } = report;
    const sum = (
      field: "hired" | "hireUnknown" | "cancelled" | "cancelUnknown" | "drained" | "drainUnknown",
    ) => outcomes.reduce((total, o) => total + o[field], 0);
    const backoff = snapshot.regions.flatMap((reading) =>
      this.backoffNow(reading.name, reading.backoff).map((state) => ({
        region: reading.name,
        call: state.call,
        seconds: Math.max(0, Math.ceil((state.until - this.now()) / 1000)),
        reason: state.reason,
      })),
    );
    const line = {
      result: report.result,
      dryRun: report.dryRun,
      queueDepth: snapshot.queue.depth ?? null,
      want: plan.desired,
      target: plan.target,
      have: plan.totals.running + plan.totals.pending,
      running: plan.totals.running,
      pending: plan.totals.pending,
      draining: plan.totals.draining,
      capacity: plan.totals.capacity,
      surplus: plan.surplus,
      planned: { hire: plan.hire, cancel: sumPlan(plan, "cancel"), drain: sumPlan(plan, "drain") },
      hired: sum("hired"),
      hireUnknown: sum("hireUnknown"),
      inFlight: snapshot.regions.reduce((total, reading) => total + reading.inFlight, 0),
      cancelled: sum("cancelled"),
      ...(sum("cancelUnknown") ? { cancelUnknown: sum("cancelUnknown") } : {}),
      drained: sum("drained"),
      resumed: outcomes.reduce((total, o) => total + (o.resume?.resumed ?? 0), 0),
      ...(resumeTotals(outcomes) ? { resume: resumeTotals(outcomes) } : {}),
      drainUnknown: sum("drainUnknown"),
      durationsMs: report.durations,
      ...(plan.hold ? { hold: plan.hold } : {}),
      ...(plan.hireHold ? { hireHold: plan.hireHold } : {}),
      ...(backoff.length ? { backoff } : {}),
      ...(snapshot.queue.error ? { queueError: snapshot.queue.error } : {}),
      ...(this.regionProblems(report).length ? { regionProblems: this.regionProblems(report) } : {}),
    };
    const level = report.result === "ok" ? "info" : report.result === "degraded" ? "warn" : "error";
    this.options.logger[level](line, "tick");
  }

  /**
   * A region's back-offs at the end of the tick (a resume may have been throttled after the reading),
   * else as the reading saw them.
   */
  private backoffNow(name: string, read: BackoffState[] | undefined): BackoffState[] {
    const region = this.options.regions.find((candidate) => candidate.name === name);
    return region?.backoffs?.() ?? read ?? [];
  }

  private regionProblems(report: TickReport): Array<Record<string, unknown>> {
    const problems: Array<Record<string, unknown>> = [];
    for (const reading of report.snapshot.regions) {
      if (reading.error) {
        problems.push({
          region: reading.name,
          operation: "observe",
          error: reading.error,
          using: reading.observation
            ? `last good reading, ${reading.ageTicks} tick(s) old, plus ${reading.inFlight} hire(s) since`
            : "nothing: its workers are unknown (no hires)",
        });
      }
    }
    for (const outcome of report.outcomes) {
      for (const failure of outcome.errors) problems.push({ region: outcome.region, ...failure });
    }
    return problems;
  }
}

function sumPlan(plan: Plan, field: "hire" | "cancel" | "drain"): number {
  return plan.regions.reduce((total, region) => total + region[field], 0);
}

/** The resume sweep's counts over all regions, when it did anything at all. */
function resumeTotals(outcomes: RegionOutcome[]): Record<string, number> | undefined {
  const totals = { resumed: 0, cancelled: 0, refused: 0, failed: 0, backedOff: 0, fenced: 0 };
  for (const outcome of outcomes)
    for (const key of Object.keys(totals) as Array<keyof typeof totals>)
      totals[key] += outcome.resume?.[key] ?? 0;
  return Object.values(totals).some((count) => count > 0) ? totals : undefined;
}
