import { UsageError } from "../usage.js";
import { writeFileSync } from "node:fs";
import { basename } from "node:path";
import type { Command } from "commander";
import { builtinPolicy, loadPolicy } from "../../controller/policy-loader.js";
import type { Settings } from "../../config/settings.js";
import type { PolicyFunction } from "../../policy/types.js";
import type { NamedResult } from "../../simulate/report.js";

const POLICY_NAMES = ["step", "proportional", "predictive"] as const;

/** Options whose defaults are the daemon's settings' defaults (read from the schema, which loads zod). */
const SETTING_DEFAULTS: Record<string, keyof Settings> = {
  "--max-workers": "maxWorkers",
  "--min-workers": "minWorkers",
  "--ramp-factor": "rampFactor",
  "--scale-down-delay": "scaleDownDelaySeconds",
  "--payback-ratio": "paybackRatio",
  "--task-seconds": "taskSeconds",
  "--startup-seconds": "startupSeconds",
};

/**
 * Give the setting-backed options their defaults only when `simulate` runs (or shows its help): the
 * settings schema needs zod, which `workforce --help` and the other commands should not load.
 */
function withSettingDefaults(program: Command): void {
  program.hook("preSubcommand", async (_, sub) => {
    if (sub.name() !== "simulate") return;
    const { SETTINGS } = await import("../../config/settings.js");
    for (const option of sub.options) {
      const key = SETTING_DEFAULTS[option.long ?? ""];
      if (!key) continue;
      const value = String(SETTINGS.find((spec) => spec.key === key)?.default);
      option.default(value);
      sub.setOptionValueWithSource(option.attributeName(), value, "default");
    }
  });
}

function number(value: string, option: string, min: number): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < min) {
    throw new UsageError(`${option} must be a number >= ${min}; given ${JSON.stringify(value)}`);
  }
  return parsed;
}

const collect = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean),
];

/** `workforce simulate`: what a policy would do to a workload, in simulated time, before paying for it. */
export function register(program: Command): void {
  withSettingDefaults(program);
  program
    .command("simulate")
    .description(
      "Replay a workload through the real decision code against a model of regions, in simulated time (no I/O but the files)",
    )
    .requiredOption(
      "--trace <file>",
      'tasks: JSON {"tasks": [{"seconds": 600, "at": 0}, ...]} or CSV with a seconds column (and at)',
    )
    .requiredOption("--cluster <file>", "regions, concurrency, interval: JSON or YAML (see README: Simulate)")
    .option(
      "--policy <name>",
      `${POLICY_NAMES.join(" | ")}; repeat (or comma-separate) to compare side by side`,
      collect,
    )
    .option(
      "--policy-module <path>",
      "a custom policy module (as WORKFORCE_POLICY_MODULE); runs beside any --policy",
    )
    .option("--seed <n>", "seed of the start-up draws and drain choices", "1")
    .option("--max-workers <n>", "WORKFORCE_MAX_WORKERS")
    .option("--min-workers <n>", "WORKFORCE_MIN_WORKERS")
    .option("--ramp-factor <x>", "WORKFORCE_RAMP_FACTOR")
    .option("--scale-down-delay <seconds>", "WORKFORCE_SCALE_DOWN_DELAY_SECONDS")
    .option("--payback-ratio <x>", "WORKFORCE_PAYBACK_RATIO (predictive)")
    .option("--task-seconds <s>", "WORKFORCE_TASK_SECONDS: the task-time hint (predictive)")
    .option("--startup-seconds <s>", "WORKFORCE_STARTUP_SECONDS: the start-up hint (predictive)")
    .option("--max-hours <h>", "stop after this much simulated time", "168")
    .option("--json", "print JSON: one object per policy (keyed by policy when several)")
    .option("--chart <file.svg>", "draw queue, target and workers over time, one block per policy")
    .addHelpText(
      "after",
      "\nExample (files in examples/simulate/):\n" +
        "  workforce simulate --trace examples/simulate/trace.json --cluster examples/simulate/cluster.yaml \\\n" +
        "    --policy step --policy predictive --chart run.svg\n" +
        "The model: a hired worker waits for a free node, starts after a delay drawn from its region's\n" +
        "startupSeconds, and each of its concurrency slots takes tasks; the controller ticks every\n" +
        "intervalSeconds and sees only what the daemon sees (queue depth, workers per state, capacity).",
    )
    .action(async (options: Record<string, string | string[] | boolean | undefined>) => {
      const { readCluster, readTrace, SimulationInputError } = await import("../../simulate/input.js");
      const { simulate } = await import("../../simulate/run.js");
      const { renderChart } = await import("../../simulate/chart.js");
      const { formatTable, summary } = await import("../../simulate/report.js");
      let tasks;
      let cluster;
      try {
        tasks = readTrace(String(options.trace));
        cluster = readCluster(String(options.cluster));
      } catch (error) {
        if (error instanceof SimulationInputError) throw new UsageError(error.message);
        throw error;
      }
      const predictive: Pick<Settings, "paybackRatio" | "taskSeconds" | "startupSeconds"> = {
        paybackRatio: number(String(options.paybackRatio), "--payback-ratio", 0),
        taskSeconds: number(String(options.taskSeconds), "--task-seconds", 1),
        startupSeconds: number(String(options.startupSeconds), "--startup-seconds", 0),
      };
      const policies: Array<{ name: string; policy: PolicyFunction }> = [];
      const names = (options.policy as string[] | undefined) ?? (options.policyModule ? [] : ["step"]);
      for (const name of names) {
        if (!(POLICY_NAMES as readonly string[]).includes(name)) {
          throw new UsageError(`--policy must be one of ${POLICY_NAMES.join(", ")}; given "${name}"`);
        }
        policies.push({ name, policy: builtinPolicy(name as Settings["policy"], predictive) });
      }
      if (options.policyModule) {
        const path = String(options.policyModule);
        policies.push({
          name: basename(path),
          policy: await loadPolicy({ policy: "step", policyModule: path }),
        });
      }
      const parameters = {
        maxWorkers: number(String(options.maxWorkers), "--max-workers", 0),
        minWorkers: number(String(options.minWorkers), "--min-workers", 0),
        rampFactor: number(String(options.rampFactor), "--ramp-factor", Number.MIN_VALUE),
        scaleDownDelayMs: number(String(options.scaleDownDelay), "--scale-down-delay", 0) * 1000,
      };
      const seed = number(String(options.seed), "--seed", 0);
      const maxSeconds = number(String(options.maxHours), "--max-hours", 0) * 3600;
      const runs: NamedResult[] = policies.map(({ name, policy }) => ({
        policy: name,
        result: simulate(cluster, tasks, {
          policy,
          parameters,
          hints: { taskSeconds: predictive.taskSeconds, startupSeconds: predictive.startupSeconds },
          seed,
          maxSeconds,
        }),
      }));
      if (options.chart) writeFileSync(String(options.chart), renderChart(runs));
      if (options.json) {
        const body =
          runs.length === 1
            ? summary(runs[0]!)
            : Object.fromEntries(runs.map((run) => [run.policy, summary(run)]));
        process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      } else {
        process.stdout.write(formatTable(runs));
        if (options.chart) process.stdout.write(`chart: ${String(options.chart)}\n`);
      }
      // Unfinished work (the time limit hit) is worth a non-zero exit for scripts.
      if (runs.some((run) => run.result.tasksFinished < run.result.tasks)) process.exitCode = 1;
    });
}
