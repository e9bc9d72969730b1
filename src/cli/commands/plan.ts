import { parseCount, UsageError } from "../usage.js";
import type { Command } from "commander";
import { BUILTIN_POLICIES, builtinPolicy } from "../../controller/policy-loader.js";
import { predictiveSizing } from "../../policy/predictive.js";
import { rampLimit, stepSize } from "../../policy/step.js";
import { planShrink } from "../../policy/shrink.js";

/** `workforce plan`: the policy alone, no I/O. What would the target be for this state of the world? */
export function register(program: Command): void {
  program
    .command("plan")
    .description("Print the target the policy gives for a queue and workforce (no I/O)")
    .requiredOption("--queue <n>", "tasks in the queue (waiting + in flight) (required)")
    .requiredOption("--running <n>", "workers running now (required)")
    .option("--concurrency <n>", "tasks one worker runs at once", "1")
    .option("--pending <n>", "workers hired but not running yet", "0")
    .option("--max <n>", "maxWorkers cap", "50000")
    .option("--min <n>", "minWorkers floor while the queue is non-empty", "0")
    .option("--ramp-factor <n>", "target <= ramp factor x (running + 1)", "10")
    .option("--policy <name>", "step | proportional | predictive", "step")
    .option("--task-seconds <s>", "predictive: the task time (as learned, or WORKFORCE_TASK_SECONDS)", "600")
    .option(
      "--startup-seconds <s>",
      "predictive: the start-up time (as learned, or WORKFORCE_STARTUP_SECONDS)",
      "300",
    )
    .option("--payback-ratio <x>", "predictive: WORKFORCE_PAYBACK_RATIO", "8")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExample:\n  workforce plan --queue 1600 --concurrency 4 --running 3\n" +
        "  target 40 (step; ramp limit 40, step 50, queue 1600, max 50000)\n" +
        "  active 3 (running 3, pending 0) -> hire 37",
    )
    .action((options: Record<string, string | boolean | undefined>) => {
      const policyName = String(options.policy);
      if (!(policyName in BUILTIN_POLICIES))
        throw new UsageError(
          `--policy must be one of ${Object.keys(BUILTIN_POLICIES).join(", ")}; given "${policyName}"`,
        );
      const concurrency = parseCount(String(options.concurrency), "--concurrency");
      if (concurrency < 1) throw new UsageError("--concurrency must be >= 1");
      const rampFactor = Number(options.rampFactor);
      if (!(rampFactor > 0))
        throw new UsageError(
          `--ramp-factor must be a number > 0; given ${JSON.stringify(options.rampFactor)}`,
        );
      const input = {
        queueDepth: parseCount(String(options.queue), "--queue"),
        concurrency,
        running: parseCount(String(options.running), "--running"),
        pending: parseCount(String(options.pending), "--pending"),
        maxWorkers: parseCount(String(options.max), "--max"),
        minWorkers: parseCount(String(options.min), "--min"),
        rampFactor,
      };
      const predictive = {
        taskSeconds: Number(options.taskSeconds),
        startupSeconds: Number(options.startupSeconds),
        paybackRatio: Number(options.paybackRatio),
      };
      for (const [option, value] of Object.entries(predictive)) {
        if (!(value >= 0))
          throw new UsageError(
            `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a number >= 0`,
          );
      }
      const policy = builtinPolicy(policyName as keyof typeof BUILTIN_POLICIES, predictive);
      const target = policy(input);
      const sizing = policyName === "predictive" ? predictiveSizing(input, predictive) : undefined;
      const active = input.running + input.pending;
      const delta = target - active;
      // The daemon's own shrink rule: cancel pending first, drain running only beyond what the queue can
      // keep busy (surplus-only draining).
      const shrink = planShrink({
        target,
        queueDepth: input.queueDepth,
        concurrency,
        regions: [{ name: "all", running: input.running, pending: input.pending }],
      });
      const cancel = shrink.cancel.all ?? 0;
      const drain = shrink.drain.all ?? 0;
      const spared = -delta - cancel - drain;
      const shrinkWords = [
        cancel > 0 ? `cancel ${cancel} pending` : "",
        drain > 0 ? `drain ${drain} running` : "",
      ].filter(Boolean);
      const sparedWords =
        spared > 0
          ? `${spared} running worker(s) kept: the queue keeps ${shrink.busyWorkers} busy (surplus-only draining)`
          : "";
      const result = {
        policy: policyName,
        target,
        delta,
        action:
          delta > 0
            ? `hire ${delta}`
            : delta < 0
              ? [shrinkWords.join(", ") || "none", sparedWords].filter(Boolean).join("; ")
              : "none",
        shrink: { cancel, drain, busyWorkers: shrink.busyWorkers, surplus: shrink.surplus },
        limits: {
          ramp: rampLimit(input),
          step: policyName === "step" ? stepSize(Math.floor(input.queueDepth / concurrency)) : undefined,
          payback: sizing?.raw,
          queue: input.queueDepth,
          maxWorkers: input.maxWorkers,
        },
        input,
      };
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        process.stdout.write(
          `target ${target} (${policyName}; ramp limit ${result.limits.ramp}` +
            `${result.limits.step !== undefined ? `, step ${result.limits.step}` : ""}` +
            `${sizing ? `, payback ${sizing.payingWorkers} workers in ${sizing.waves} waves -> ${sizing.raw}` : ""}, queue ${input.queueDepth}, max ${input.maxWorkers})\n` +
            `active ${active} (running ${input.running}, pending ${input.pending}) -> ${result.action}\n`,
        );
      }
    });
}
