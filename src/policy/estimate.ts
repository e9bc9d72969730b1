import type { RegionObservation } from "../regions/types.js";
import {
  emptyFlow,
  enter,
  estimateFlow,
  leave,
  reconcile,
  removeNewest,
  type FlowEstimate,
  type FlowState,
} from "./flow.js";

/**
 * What the controller learns about the workload from what it observes, tick by tick: per region the
 * start-up time (hired to first seen running), and the task time (how long a busy slot stays busy). The
 * controller keeps the state, as it keeps the stabilization window; losing it (a restart) only means a
 * cold start on the hints. Pure functions: state in, state out.
 */
export interface EstimatorState {
  /** When the queue depth was last read, and what it was. */
  lastDepthAt?: number;
  lastDepth?: number;
  /** Busy slots (tasks in flight). */
  tasks: FlowState;
  /** Pending workers per region, and when each region was last read. */
  startup: Record<string, FlowState>;
  lastSeen: Record<string, number>;
}

export interface Hints {
  taskSeconds: number;
  startupSeconds: number;
}

/** Per region and for the workforce: what the predictive policy sizes with. */
export interface Estimates {
  task: FlowEstimate;
  startup: Record<string, FlowEstimate>;
  /** Start-up of the next hire: regions weighted by the room they have (all regions when none has room). */
  startupSeconds: number;
  taskSeconds: number;
}

/** Observations kept per flow: enough for a stable median, few enough to follow a new batch. */
const TASK_WINDOW = 2000;
const STARTUP_WINDOW = 200;

export const emptyEstimator = (): EstimatorState => ({ tasks: emptyFlow(), startup: {}, lastSeen: {} });

/** What the act step did in a region, at `at`. */
export interface RegionActions {
  region: string;
  hired: number;
  cancelled: number;
}

/** Hires enter a region's pending flow when they are made; cancels leave it, newest first. */
export function recordActions(
  state: EstimatorState,
  at: number,
  actions: readonly RegionActions[],
): EstimatorState {
  const startup = { ...state.startup };
  for (const { region, hired, cancelled } of actions) {
    let flow = startup[region] ?? emptyFlow();
    if (cancelled > 0) flow = removeNewest(flow, cancelled);
    if (hired > 0) flow = enter(flow, at, hired);
    startup[region] = flow;
  }
  return { ...state, startup };
}

export interface TickObservation {
  at: number;
  queueDepth: number | undefined;
  concurrency: number;
  regions: ReadonlyArray<{ name: string; observation?: RegionObservation; fresh: boolean }>;
}

/**
 * One tick's observation. Start-up: pending workers beyond what a fresh reading shows have started (the
 * oldest first); the exit is seen up to a tick late, so half the time since the last reading is taken off.
 * Tasks: busy slots = min((running + draining) x concurrency, depth); the depth's fall since the last read
 * is the tasks that finished (oldest busy slots first). Arrivals hide completions: a tick whose depth rose
 * records nothing, and the busy count is simply made to agree.
 */
export function observeTick(state: EstimatorState, tick: TickObservation): EstimatorState {
  const startup = { ...state.startup };
  const lastSeen = { ...state.lastSeen };
  let slots = 0;
  for (const region of tick.regions) {
    const observation = region.observation;
    if (!observation) continue;
    slots += (observation.running + observation.draining) * tick.concurrency;
    if (!region.fresh) continue;
    let flow = startup[region.name] ?? emptyFlow();
    const previous = lastSeen[region.name];
    const inside = flow.inside.reduce((sum, cohort) => sum + cohort.count, 0);
    if (inside > observation.pending) {
      const correction = previous === undefined ? 0 : (tick.at - previous) / 2;
      flow = leave(flow, tick.at, inside - observation.pending, {
        record: true,
        correction,
        window: STARTUP_WINDOW,
      });
    }
    // On a first look (a new or restarted daemon), the pending workers were hired at an unknown time.
    startup[region.name] = reconcile(
      flow,
      tick.at,
      observation.pending,
      STARTUP_WINDOW,
      previous === undefined,
    );
    lastSeen[region.name] = tick.at;
  }

  if (tick.queueDepth === undefined) return { ...state, startup, lastSeen };
  let tasks = state.tasks;
  if (state.lastDepth !== undefined && tick.queueDepth < state.lastDepth) {
    tasks = leave(tasks, tick.at, state.lastDepth - tick.queueDepth, { record: true, window: TASK_WINDOW });
  }
  tasks = reconcile(
    tasks,
    tick.at,
    Math.min(slots, tick.queueDepth),
    TASK_WINDOW,
    state.lastDepth === undefined,
  );
  return { tasks, startup, lastSeen, lastDepth: tick.queueDepth, lastDepthAt: tick.at };
}

/** The estimates at `now`, with `room` per region (free capacity) to weigh the next hire's start-up. */
export function currentEstimates(
  state: EstimatorState,
  now: number,
  hints: Hints,
  room: Readonly<Record<string, number>> = {},
): Estimates {
  const task = estimateFlow(state.tasks, now, {
    hint: hints.taskSeconds,
    trustBelowHint: Math.min(
      TASK_WINDOW / 2,
      state.tasks.inside.reduce((sum, c) => sum + c.count, 0),
    ),
  });
  const startup: Record<string, FlowEstimate> = {};
  const names = new Set([...Object.keys(state.startup), ...Object.keys(room)]);
  for (const name of names) {
    const flow = state.startup[name] ?? emptyFlow();
    startup[name] = estimateFlow(flow, now, {
      hint: hints.startupSeconds,
      trustBelowHint: Math.min(
        STARTUP_WINDOW / 2,
        flow.inside.reduce((sum, c) => sum + c.count, 0),
      ),
    });
  }
  const weighted = [...names].map((name) => ({
    seconds: startup[name]!.seconds,
    weight: Math.max(0, room[name] ?? 0),
  }));
  const weightSum = weighted.reduce((sum, w) => sum + w.weight, 0);
  const startupSeconds =
    weighted.length === 0
      ? hints.startupSeconds
      : weightSum > 0
        ? weighted.reduce((sum, w) => sum + w.seconds * w.weight, 0) / weightSum
        : weighted.reduce((sum, w) => sum + w.seconds, 0) / weighted.length;
  return { task, startup, startupSeconds, taskSeconds: task.seconds };
}
