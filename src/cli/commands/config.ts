import type { Command } from "commander";
import { EXIT_CONFIG } from "../exit-codes.js";

/**
 * `workforce config`: the effective configuration and where each value came from, offline (it reads the
 * config file and the environment, nothing else). `--check` also fails on warnings.
 */
export function register(program: Command): void {
  program
    .command("config")
    .description(
      "Print the effective configuration with the source of each value (variable, file, default); no network",
    )
    .option("--check", "print only problems and warnings; exit 2 on any (for CI and init containers)")
    .option("--json", "print JSON")
    .action(async (options: { check?: boolean; json?: boolean }) => {
      const { resolveConfig } = await import("../../config/load.js");
      const { formatResolvedConfig } = await import("../../config/explain.js");
      const resolved = resolveConfig({ regionsOptional: false });
      const configFile = process.env.WORKFORCE_CONFIG || undefined;
      const failed = resolved.problems.length > 0 || (options.check && resolved.warnings.length > 0);
      if (options.json) {
        const { sources, problems, warnings } = resolved;
        process.stdout.write(
          `${JSON.stringify({ ok: !failed, configFile, settings: sources, warnings, problems }, null, 2)}\n`,
        );
      } else if (options.check) {
        for (const warning of resolved.warnings) process.stderr.write(`workforce: warning: ${warning}\n`);
        for (const problem of resolved.problems)
          process.stderr.write(`workforce: ${problem.where}: ${problem.message}\n`);
        if (!failed) process.stdout.write("configuration ok\n");
      } else {
        process.stdout.write(formatResolvedConfig(resolved, configFile));
      }
      if (failed) process.exitCode = EXIT_CONFIG;
    });
}
