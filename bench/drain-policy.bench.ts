import { decide, type RegionView } from "../src/policy/decide.js";
import { stepPolicy } from "../src/policy/step.js";
import type { TargetSample } from "../src/policy/stabilize.js";

/**
 * Simulates a batch run minute by minute with the real policy (`decide`) to compare shrink strategies:
 * draining running workers down to the step target, versus draining only surplus workers (ours), with
 * workers that exit on an empty queue or wait on it. Prints makespan, billed node-hours and ratios.
 * Scenario from the foundation issue: 10,000 ten-minute tasks, concurrency 4, 500 nodes, 3-8 min start-up.
 */

interface Scenario {
  tasks: number;
  taskMinutes: number;
  concurrency: number;
  nodes: number;
  startupMin: number;
  startupMax: number;
  scaleDownDelayMinutes: number;
  seed: number;
}

type Strategy = "drain-to-target" | "surplus-only";
type WorkerHabit = "exit-on-empty" | "wait-on-empty";

interface SimWorker {
  hiredAt: number;
  startAt: number;
  /** Minutes left of each task in hand. */
  tasks: number[];
  draining: boolean;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function simulate(scenario: Scenario, strategy: Strategy, habit: WorkerHabit) {
  const random = mulberry32(scenario.seed);
  let waiting = scenario.tasks;
  let done = 0;
  let nodeMinutes = 0;
  let workers: SimWorker[] = [];
  let history: TargetSample[] = [];
  let minute = 0;

  while (done < scenario.tasks && minute < 24 * 60) {
    // Work for one minute.
    for (const worker of workers) {
      if (minute < worker.startAt) continue;
      worker.tasks = worker.tasks
        .map((left) => left - 1)
        .filter((left) => {
          if (left <= 0) done++;
          return left > 0;
        });
      while (!worker.draining && worker.tasks.length < scenario.concurrency && waiting > 0) {
        worker.tasks.push(scenario.taskMinutes);
        waiting--;
      }
    }
    // Drained workers leave after their tasks; idle ones leave on an empty queue if that is their habit.
    workers = workers.filter((worker) => {
      const started = minute >= worker.startAt;
      if (!started) return true;
      if (worker.draining && worker.tasks.length === 0) return false;
      if (habit === "exit-on-empty" && worker.tasks.length === 0 && waiting === 0) return false;
      return true;
    });
    nodeMinutes += workers.length;

    // Reconcile once a minute with the real decision.
    const running = workers.filter((w) => minute >= w.startAt && !w.draining);
    const pending = workers.filter((w) => minute < w.startAt);
    const draining = workers.filter((w) => w.draining);
    const inFlight = workers.reduce((sum, w) => sum + w.tasks.length, 0);
    const region: RegionView = {
      name: "sim",
      fresh: true,
      observation: {
        running: running.length,
        pending: pending.length,
        draining: draining.length,
        capacity: scenario.nodes - workers.length,
      },
    };
    const decision = decide({
      // Storage Queue semantics: the depth counts tasks in flight.
      queueDepth: waiting + inFlight,
      regions: [region],
      policy: stepPolicy,
      parameters: {
        concurrency: scenario.concurrency,
        maxWorkers: 50000,
        minWorkers: 0,
        rampFactor: 10,
        scaleDownDelayMs: scenario.scaleDownDelayMinutes * 60_000,
      },
      history,
      now: minute * 60_000,
    });
    history = decision.history;
    const plan = decision.plan.regions[0]!;
    for (let i = 0; i < plan.hire; i++) {
      const startup = scenario.startupMin + random() * (scenario.startupMax - scenario.startupMin);
      workers.push({ hiredAt: minute, startAt: minute + Math.round(startup), tasks: [], draining: false });
    }
    // Cancel the newest pending workers.
    const toCancel = new Set(pending.slice(-plan.cancel));
    if (plan.cancel > 0) workers = workers.filter((w) => !toCancel.has(w));
    // Drain: a control message reaches a random running worker.
    const drainCount =
      strategy === "surplus-only"
        ? plan.drain
        : Math.max(0, running.length - Math.max(0, decision.plan.target - (pending.length - plan.cancel)));
    const candidates = [...running];
    for (let i = 0; i < drainCount && candidates.length > 0; i++) {
      const index = Math.floor(random() * candidates.length);
      candidates.splice(index, 1)[0]!.draining = true;
    }
    minute++;
  }
  return { makespanMinutes: minute, nodeHours: nodeMinutes / 60 };
}

export default async function run(): Promise<void> {
  const scenario: Scenario = {
    tasks: 10_000,
    taskMinutes: 10,
    concurrency: 4,
    nodes: 500,
    startupMin: 3,
    startupMax: 8,
    scaleDownDelayMinutes: 5,
    seed: 42,
  };
  console.log(
    `scenario: ${scenario.tasks} tasks of ${scenario.taskMinutes} min, concurrency ${scenario.concurrency}, ` +
      `${scenario.nodes} nodes, start-up ${scenario.startupMin}-${scenario.startupMax} min, step policy, 1 tick/min`,
  );
  const baseline = simulate(scenario, "surplus-only", "wait-on-empty");
  console.log(
    "| strategy | workers on an empty queue | makespan (min) | node-hours | makespan ratio | node-hours ratio |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const strategy of ["surplus-only", "drain-to-target"] as const) {
    for (const habit of ["wait-on-empty", "exit-on-empty"] as const) {
      const result = simulate(scenario, strategy, habit);
      console.log(
        `| ${strategy} | ${habit} | ${result.makespanMinutes} | ${result.nodeHours.toFixed(0)} | ` +
          `${(result.makespanMinutes / baseline.makespanMinutes).toFixed(2)} | ${(result.nodeHours / baseline.nodeHours).toFixed(2)} |`,
      );
    }
  }
  console.log("ratios are against surplus-only with workers that wait on an empty queue (ours)");
}
