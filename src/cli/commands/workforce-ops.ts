import type { Command } from "commander";
import { layOff, scaleTo } from "../../controller/operations.js";
import { describeError } from "../../controller/snapshot.js";
import { cliConfig, cliLogger, findRegion, parseCount, withWorkforce } from "../context.js";
import { progressBar } from "../progress.js";

function print(result: unknown): void {
  process.stdout.write(
    `${JSON.stringify(result, (key, value) => (value instanceof Error ? describeError(value) : value), 2)}\n`,
  );
}

/** `hire`, `lay-off` and `scale-to`: the operator's direct actions on regions. */
export function register(program: Command): void {
  program
    .command("hire")
    .description("Hire N workers in one region now")
    .argument("<count>", "workers to hire")
    .requiredOption("--region <name>", "region to hire in (required; a `name` from the region list)")
    .action(async (count: string, options: { region: string }) => {
      const n = parseCount(count);
      const config = cliConfig();
      const logger = cliLogger(config);
      await withWorkforce(config, logger, async (workforce) => {
        const bar = progressBar(`hiring in ${options.region}`);
        const result = await findRegion(workforce, options.region).hire(n, {
          ...(bar ? { onProgress: (progress) => bar.update(progress) } : {}),
        });
        bar?.finish();
        print({ region: options.region, requested: n, ...result });
        if (result.errors.length) process.exitCode = 1;
      });
    });

  program
    .command("lay-off")
    .description(
      "Lay off N workers in one region: pending ones are cancelled first, then running ones drained",
    )
    .argument("<count>", "workers to lay off")
    .requiredOption("--region <name>", "region to lay off in (required; a `name` from the region list)")
    .option(
      "--cancel-running",
      "cancel running workers at once instead of draining them (interrupts their tasks)",
    )
    .action(async (count: string, options: { region: string; cancelRunning?: boolean }) => {
      const n = parseCount(count);
      const config = cliConfig();
      const logger = cliLogger(config);
      await withWorkforce(config, logger, async (workforce) => {
        const region = findRegion(workforce, options.region);
        const result = await layOff(region, n, { cancelRunning: options.cancelRunning, logger });
        print({ region: options.region, requested: n, ...result });
        if (result.errors.length) process.exitCode = 1;
      });
    });

  program
    .command("scale-to")
    .description(
      "Bring active workers (running + pending) to N over all regions; shrinks only with --with-layoffs",
    )
    .argument("<count>", "target number of active workers")
    .option("--with-layoffs", "also shrink: cancel pending workers first, then drain running ones")
    .action(async (count: string, options: { withLayoffs?: boolean }) => {
      const n = parseCount(count);
      const config = cliConfig();
      const logger = cliLogger(config);
      await withWorkforce(config, logger, async (workforce) => {
        const result = await scaleTo(workforce.regions, n, { withLayoffs: options.withLayoffs, logger });
        print({ target: n, ...result });
        if (result.errors.length) process.exitCode = 1;
      });
    });
}
