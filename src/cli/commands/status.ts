import type { Command } from "commander";
import type { TickReport } from "../../controller/reconciler.js";
import { oneLine } from "../../controller/failures.js";
import { waitNotice } from "../waiting.js";
import { CALL_NOUNS } from "../../azure/backoff.js";

function pad(value: string | number, width: number): string {
  return String(value).padStart(width);
}

/** The learned times, and where each comes from (a one-shot command has measured nothing: hints). */
export function formatEstimates(report: Pick<TickReport, "estimates">): string {
  const { estimates } = report;
  const describe = (e: { seconds: number; source: string; samples: number }) =>
    `${Math.round(e.seconds)} s (${e.source === "hint" ? "hint" : e.source === "at-least" ? "at least, still measuring" : `measured, ${e.samples} samples`})`;
  const startup = Object.entries(estimates.startup)
    .map(([region, estimate]) => `${region} ${describe(estimate)}`)
    .join(", ");
  return `estimates: task ${describe(estimates.task)}; start-up ${startup || "none"}`;
}

/** A human-readable status: one row per region, the queue, and what the next tick would do. */
export function formatStatus(report: TickReport): string {
  const lines: string[] = [];
  const { snapshot, plan } = report;
  lines.push(
    snapshot.queue.depth !== undefined
      ? `queue depth: ${snapshot.queue.depth}`
      : `queue depth: UNKNOWN (${oneLine(snapshot.queue.error ?? "")})`,
  );
  const header = `${"REGION".padEnd(20)}${pad("RUNNING", 9)}${pad("PENDING", 9)}${pad("DRAINING", 10)}${pad("CAPACITY", 10)}  NEXT TICK`;
  lines.push(header);
  for (const reading of snapshot.regions) {
    const o = reading.observation;
    const regionPlan = plan.regions.find((candidate) => candidate.region === reading.name);
    const actions = regionPlan
      ? [
          regionPlan.hire ? `hire ${regionPlan.hire}` : "",
          regionPlan.cancel ? `cancel ${regionPlan.cancel}` : "",
          regionPlan.drain ? `drain ${regionPlan.drain}` : "",
        ].filter(Boolean)
      : [];
    const startBackoff = report.backoff?.find((candidate) => candidate.region === reading.name);
    const backoff = (reading.backoff ?? [])
      .map(
        (b) =>
          `${CALL_NOUNS[b.call]} in back-off for ${Math.max(0, Math.ceil((b.until - Date.now()) / 1000))} s (${b.reason})`,
      )
      .join("; ");
    const note =
      (reading.error
        ? ` [read failed: ${oneLine(reading.error)}${o ? `; using a reading ${reading.ageTicks} tick(s) old` : "; workers unknown"}]`
        : "") +
      (reading.inFlight ? ` [${reading.inFlight} hire(s) in flight, counted as pending]` : "") +
      (backoff ? ` [${backoff}]` : "") +
      (startBackoff ? ` [backing off: ${startBackoff.reason}]` : "");
    lines.push(
      `${reading.name.padEnd(20)}${pad(o?.running ?? "?", 9)}${pad(o?.pending ?? "?", 9)}${pad(o?.draining ?? "?", 10)}${pad(o?.capacity ?? "?", 10)}  ${actions.join(", ") || "nothing"}${note}`,
    );
  }
  lines.push(formatEstimates(report));
  if (plan.hireHold && !plan.hold) lines.push(`no hires: ${plan.hireHold}`);
  lines.push(
    plan.hold
      ? `next tick: ${plan.hold}`
      : `next tick: want ${plan.desired}, target ${plan.target}, active ${plan.totals.running + plan.totals.pending}, surplus ${plan.surplus}`,
  );
  return `${lines.join("\n")}\n`;
}

export function register(program: Command): void {
  program
    .command("status")
    .description(
      "Show each region's workers, the queue depth, and what the next tick would do (acts on nothing)",
    )
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const { cliConfig, cliLogger, withWorkforce } = await import("../context.js");
      const config = cliConfig();
      const logger = cliLogger(config, "warn");
      const notice = waitNotice({ limitSeconds: config.callTimeoutSeconds });
      const report = await withWorkforce(
        config,
        logger,
        (workforce) => workforce.reconciler.preview(undefined, notice.onCall),
        { dryRun: true },
      ).finally(() => notice.stop());
      if (options.json) {
        process.stdout.write(
          `${JSON.stringify({ queue: report.snapshot.queue, regions: report.snapshot.regions, plan: report.plan, estimates: report.estimates, backoff: report.backoff }, null, 2)}\n`,
        );
      } else {
        process.stdout.write(formatStatus(report));
      }
      // 1 when anything could not be read (the queue or a region): scripts can rely on a clean 0.
      if (report.snapshot.queue.depth === undefined || report.snapshot.regions.some((r) => r.error)) {
        process.exitCode = 1;
      }
    });
}
