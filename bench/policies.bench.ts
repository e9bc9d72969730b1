import { builtinPolicy } from "../src/controller/policy-loader.js";
import { spreadHires } from "../src/policy/spread.js";
import type { Plan } from "../src/policy/decide.js";
import type { Settings } from "../src/config/settings.js";
import { simulate, type SimulationOptions, type SimulationResult } from "../src/simulate/run.js";
import { REFERENCE_CLUSTER, REFERENCE_TRACES } from "../src/simulate/reference.js";
import type { Task } from "../src/simulate/input.js";

/**
 * The policies on the reference workloads (src/simulate/reference.ts), through `workforce simulate`'s
 * engine: makespan and node-hours as ratios against `step` on the same traces and seed, against the goals
 * of the predictive policy. Then the old question of how to shrink: draining only surplus workers (ours)
 * versus draining down to the target.
 */
const SEED = 1;
const DEFAULTS = { paybackRatio: 8, taskSeconds: 600, startupSeconds: 300 };

function run(
  tasks: Task[],
  policy: Settings["policy"],
  extra: Partial<SimulationOptions> = {},
): SimulationResult {
  return simulate(REFERENCE_CLUSTER, tasks, {
    policy: builtinPolicy(policy, DEFAULTS),
    parameters: { maxWorkers: 50000, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 300_000 },
    hints: { taskSeconds: DEFAULTS.taskSeconds, startupSeconds: DEFAULTS.startupSeconds },
    seed: SEED,
    ...extra,
  });
}

/** What the daemon did before surplus-only draining: drain running workers down to the target. */
function drainToTarget(plan: Plan): Plan {
  const keep = Math.max(0, plan.target - plan.totals.pending);
  const excess = Math.max(0, plan.totals.running - keep);
  const drains = spreadHires(
    excess,
    plan.regions.map((r) => ({ name: r.region, capacity: Number.MAX_SAFE_INTEGER })),
  );
  return { ...plan, regions: plan.regions.map((r) => ({ ...r, drain: drains[r.region] ?? 0 })) };
}

const ratio = (value: number, base: number) => (base > 0 ? value / base : NaN);
const mark = (ok: boolean) => (ok ? "ok" : "MISSED");

export default async function bench(): Promise<void> {
  console.log(
    `reference cluster: concurrency 4, regions of 200/200/100 nodes, start-up 3-8 min, 60 s ticks, workers exit on an empty queue; seed ${SEED}; predictive with its defaults (payback ${DEFAULTS.paybackRatio}, hints ${DEFAULTS.taskSeconds} s / ${DEFAULTS.startupSeconds} s)`,
  );
  console.log(
    "| trace | policy | makespan (min) | node-hours | interrupted | makespan / step | node-hours / step | goal (<= 1 and <= 1.05, 0 interrupted) | simulated in |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  const makespanRatios: number[] = [];
  let stepOnA: SimulationResult | undefined;
  for (const trace of REFERENCE_TRACES) {
    const tasks = trace.tasks();
    const step = run(tasks, "step");
    if (trace.name === "a") stepOnA = step;
    for (const policy of ["step", "proportional", "predictive"] as const) {
      const started = performance.now();
      const result = policy === "step" ? step : run(tasks, policy);
      const ms = performance.now() - started;
      const m = ratio(result.makespanSeconds, step.makespanSeconds);
      const n = ratio(result.nodeHours, step.nodeHours);
      if (policy === "predictive") makespanRatios.push(m);
      const goal = policy === "predictive" ? mark(m <= 1 && n <= 1.05 && result.tasksInterrupted === 0) : "";
      console.log(
        `| (${trace.name}) ${trace.describe} | ${policy} | ${(result.makespanSeconds / 60).toFixed(1)} | ${result.nodeHours.toFixed(1)} | ${result.tasksInterrupted} | ${m.toFixed(2)} | ${n.toFixed(2)} | ${goal} | ${policy === "step" ? "" : `${ms.toFixed(0)} ms`} |`,
      );
    }
  }
  const mean = makespanRatios.reduce((a, b) => a + b, 0) / makespanRatios.length;
  console.log(
    `predictive, mean makespan / step over the three: ${mean.toFixed(3)} (goal <= 0.85: ${mark(mean <= 0.85)})`,
  );
  if (stepOnA) {
    const minutes = stepOnA.makespanSeconds / 60;
    const ok = Math.abs(minutes / 82 - 1) <= 0.1 && Math.abs(stepOnA.nodeHours / 453 - 1) <= 0.1;
    console.log(
      `simulator self-check, step on (a): ${minutes.toFixed(1)} min (${(minutes / 82).toFixed(3)} of 82), ${stepOnA.nodeHours.toFixed(1)} node-hours (${(stepOnA.nodeHours / 453).toFixed(3)} of 453): ${mark(ok)}`,
    );
  }

  console.log(
    "\nshrinking on (a) with step: surplus-only draining (the daemon) vs draining down to the target",
  );
  console.log(
    "| workers on an empty queue | drains | makespan (min) | node-hours | makespan ratio | node-hours ratio |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  const tasks = REFERENCE_TRACES[0]!.tasks();
  for (const exit of [true, false]) {
    const cluster = { ...REFERENCE_CLUSTER, workersExitWhenQueueEmpty: exit };
    const options = {
      policy: builtinPolicy("step"),
      parameters: { maxWorkers: 50000, minWorkers: 0, rampFactor: 10, scaleDownDelayMs: 300_000 },
      hints: { taskSeconds: 600, startupSeconds: 300 },
      seed: SEED,
    };
    const surplus = simulate(cluster, tasks, options);
    const toTarget = simulate(cluster, tasks, { ...options, revisePlan: drainToTarget });
    for (const [name, result] of [
      ["surplus-only", surplus],
      ["to the target", toTarget],
    ] as const) {
      console.log(
        `| ${exit ? "exit" : "wait"} | ${name} | ${(result.makespanSeconds / 60).toFixed(1)} | ${result.nodeHours.toFixed(1)} | ${ratio(result.makespanSeconds, surplus.makespanSeconds).toFixed(2)} | ${ratio(result.nodeHours, surplus.nodeHours).toFixed(2)} |`,
      );
    }
  }
}
