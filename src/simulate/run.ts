import { decide, type DecideParameters, type Plan } from "../policy/decide.js";
import type { Estimates, Hints } from "../policy/estimate.js";
import type { TargetSample } from "../policy/stabilize.js";
import type { PolicyFunction } from "../policy/types.js";
import { WorkloadLearner } from "../controller/learner.js";
import type { Cluster, Task } from "./input.js";
import { World } from "./model.js";
import { seededRandom } from "./random.js";

export interface SimulationOptions {
  policy: PolicyFunction;
  /** The daemon's policy settings; concurrency comes from the cluster. */
  parameters: Omit<DecideParameters, "concurrency">;
  hints: Hints;
  seed?: number;
  /** Stop after this much simulated time even if work is left (default one week). */
  maxSeconds?: number;
  /**
   * What-if experiments only (the bench's "drain down to the target"): change the plan before it is
   * carried out. The CLI never sets it: `simulate` shows what the daemon would do.
   */
  revisePlan?: (plan: Plan) => Plan;
  /** Called after every tick: the invariant tests look at each one. */
  onTick?: (tick: SimulatedTick) => void;
}

/** One tick as the controller saw and did it. */
export interface SimulatedTick {
  at: number;
  queueDepth: number;
  running: number;
  pending: number;
  draining: number;
  plan: Plan;
  hired: number;
  cancelled: number;
  drained: number;
  estimates: Estimates;
}

export interface SimulationResult {
  makespanSeconds: number;
  nodeHours: number;
  /** Busy slot-seconds over billed slot-seconds. */
  utilization: number;
  tasks: number;
  tasksFinished: number;
  tasksInterrupted: number;
  hires: number;
  drains: number;
  cancels: number;
  maxActive: number;
  /** Mean time from enqueue to start. */
  meanWaitSeconds: number;
  /** The estimates at the end of the run (the predictive policy's view). */
  estimates: { taskSeconds: number; startupSeconds: Record<string, number> };
  /** Ticks as series, for charts. */
  series: {
    at: number[];
    queueDepth: number[];
    target: number[];
    running: number[];
    pending: number[];
    draining: number[];
  };
}

const WEEK = 7 * 24 * 3600;

/**
 * Replays a trace through the daemon's decision code (`decide`: the policy, the stabilization window,
 * the spread over regions, the shrink plan with surplus-only drains) against the model in model.ts, one
 * tick every `intervalSeconds` of simulated time. The controller sees only what the daemon would: the
 * queue depth (waiting + in flight) and per region running, pending, draining and capacity. It learns
 * task and start-up times the way the daemon does (WorkloadLearner), never from the trace.
 */
export function simulate(
  cluster: Cluster,
  tasks: readonly Task[],
  options: SimulationOptions,
): SimulationResult {
  const random = seededRandom(options.seed ?? 1);
  const world = new World(cluster, tasks, random);
  const learner = new WorkloadLearner(options.hints);
  const parameters: DecideParameters = { ...options.parameters, concurrency: cluster.concurrency };
  const maxSeconds = options.maxSeconds ?? WEEK;
  const series: SimulationResult["series"] = {
    at: [],
    queueDepth: [],
    target: [],
    running: [],
    pending: [],
    draining: [],
  };
  let history: TargetSample[] = [];
  let estimates = learner.estimates(0);

  for (let at = 0; at <= maxSeconds; at += cluster.intervalSeconds) {
    world.advanceTo(at);
    if (world.finished) break;
    const queueDepth = world.queueDepth();
    const readings = world.observe();
    learner.observe({
      at,
      queueDepth,
      concurrency: cluster.concurrency,
      regions: readings.map((r) => ({ ...r, fresh: true })),
    });
    estimates = learner.estimates(
      at,
      Object.fromEntries(readings.map((r) => [r.name, r.observation.capacity])),
    );
    const decision = decide({
      queueDepth,
      regions: readings.map((reading) => {
        const region = cluster.regions.find((candidate) => candidate.name === reading.name);
        return {
          name: reading.name,
          observation: reading.observation,
          fresh: true,
          weight: region?.weight ?? 1,
        };
      }),
      policy: options.policy,
      parameters,
      history,
      now: at * 1000,
      estimates: { taskSeconds: estimates.taskSeconds, startupSeconds: estimates.startupSeconds },
    });
    history = decision.history;
    const plan = options.revisePlan ? options.revisePlan(decision.plan) : decision.plan;

    // As the daemon acts: per region, cancel, then drain, then hire.
    let hired = 0;
    let cancelled = 0;
    let drained = 0;
    const actions = plan.regions.map((regionPlan) => {
      const c = world.cancelPending(regionPlan.region, regionPlan.cancel);
      drained += world.drain(regionPlan.region, regionPlan.drain);
      const h = world.hire(regionPlan.region, regionPlan.hire);
      hired += h;
      cancelled += c;
      return { region: regionPlan.region, hired: h, cancelled: c };
    });
    learner.acted(at, actions);

    const totals = plan.totals;
    series.at.push(at);
    series.queueDepth.push(queueDepth);
    series.target.push(plan.target);
    series.running.push(totals.running);
    series.pending.push(totals.pending);
    series.draining.push(totals.draining);
    options.onTick?.({
      at,
      queueDepth,
      running: totals.running,
      pending: totals.pending,
      draining: totals.draining,
      plan,
      hired,
      cancelled,
      drained,
      estimates,
    });
  }

  const t = world.totals;
  const billedSlotSeconds = t.nodeSeconds * cluster.concurrency;
  return {
    makespanSeconds: t.lastFinishAt,
    nodeHours: t.nodeSeconds / 3600,
    utilization: billedSlotSeconds > 0 ? t.busySlotSeconds / billedSlotSeconds : 0,
    tasks: world.taskCount,
    tasksFinished: t.tasksFinished,
    tasksInterrupted: t.tasksInterrupted,
    hires: t.hires,
    drains: t.drains,
    cancels: t.cancels,
    maxActive: t.maxActive,
    meanWaitSeconds: t.tasksStarted > 0 ? t.waitSecondsTotal / t.tasksStarted : 0,
    estimates: {
      taskSeconds: estimates.taskSeconds,
      startupSeconds: Object.fromEntries(
        Object.entries(estimates.startup).map(([name, e]) => [name, e.seconds]),
      ),
    },
    series,
  };
}
