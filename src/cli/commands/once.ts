import type { Command } from "commander";

/** `workforce once`: one tick, then exit (1 when the tick could not read the queue or decide). */
export function register(program: Command): void {
  program
    .command("once")
    .description("Run one reconcile tick and exit (exit 1 if the queue could not be read)")
    .option("--dry-run", "plan and log, but act on nothing")
    .option("--json", "print the tick report as JSON on stdout")
    .action(async (options: { dryRun?: boolean; json?: boolean }) => {
      const { createMetrics } = await import("../../metrics/registry.js");
      const { buildWorkforce } = await import("../../controller/workforce.js");
      const { cliConfig, cliLogger } = await import("../context.js");
      const config = cliConfig();
      const logger = cliLogger(config);
      const workforce = await buildWorkforce(config, {
        logger,
        metrics: createMetrics({ processMetrics: false }),
        dryRun: options.dryRun || config.dryRun,
      });
      try {
        const report = await workforce.reconciler.tick();
        if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        if (report.result === "held" || report.result === "error") process.exitCode = 1;
      } finally {
        await workforce.close();
      }
    });
}
