import type { Command } from "commander";

/** `workforce run`: the daemon. SIGTERM/SIGINT finish the tick in flight, then exit 0. */
export function register(program: Command): void {
  program
    .command("run")
    .description("Run the autoscaler daemon (configured by WORKFORCE_* variables and WORKFORCE_CONFIG)")
    .option("--dry-run", "plan and log, but act on nothing")
    .action(async (options: { dryRun?: boolean }) => {
      const { startDaemon } = await import("../../controller/daemon.js");
      const { createLogger } = await import("../../logging/logger.js");
      const { ConfigError, resolveConfig } = await import("../../config/load.js");
      const { configLogFields } = await import("../../config/explain.js");
      const resolved = resolveConfig();
      if (!resolved.config) throw new ConfigError(resolved.problems);
      const config = resolved.config;
      if (options.dryRun) config.dryRun = true;
      const logger = createLogger({ level: config.logLevel });
      // The same facts as `workforce config`: what each setting is and where it came from.
      logger.info(
        { configuration: configLogFields(resolved), configFile: config.configFile },
        "effective configuration",
      );
      for (const warning of resolved.warnings) logger.warn({ configFile: config.configFile }, warning);
      // A safety net: an SDK callback that rejects outside any tick must not take the daemon down.
      const onUnhandled = (reason: unknown) =>
        logger.error({ err: reason }, "unhandled rejection (ignored; the daemon keeps running)");
      process.on("unhandledRejection", onUnhandled);
      try {
        const daemon = await startDaemon({ config, logger, handleSignals: true });
        await daemon.done;
      } finally {
        process.off("unhandledRejection", onUnhandled);
      }
    });
}
