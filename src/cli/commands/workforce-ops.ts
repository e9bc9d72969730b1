import { parseCount } from "../usage.js";
import type { Command } from "commander";
import { progressBar } from "../progress.js";
import type { Workforce } from "../../controller/workforce.js";
import type { Logger } from "../../logging/logger.js";

/** What the actions need, loaded when one runs (not for `workforce --help`). */
async function load() {
  const [context, operations, snapshot] = await Promise.all([
    import("../context.js"),
    import("../../controller/operations.js"),
    import("../../controller/snapshot.js"),
  ]);
  return { ...context, ...operations, ...snapshot };
}
type Lib = Awaited<ReturnType<typeof load>>;

function print(result: unknown, { describeError }: Lib): void {
  process.stdout.write(
    `${JSON.stringify(result, (key, value) => (value instanceof Error ? describeError(value) : value), 2)}\n`,
  );
}

/**
 * The shape of every operator action: parse the count, build the workforce from config, act, print the
 * result as JSON, exit 1 when any call failed.
 */
async function operate(
  count: string,
  act: (n: number, workforce: Workforce, logger: Logger, lib: Lib) => Promise<{ errors: Error[] } & object>,
): Promise<void> {
  const n = parseCount(count);
  const lib = await load();
  const { cliConfig, cliLogger, withWorkforce } = lib;
  const config = cliConfig();
  const logger = cliLogger(config);
  await withWorkforce(config, logger, async (workforce) => {
    const result = await act(n, workforce, logger, lib);
    print(result, lib);
    if (result.errors.length) process.exitCode = 1;
  });
}

/** `hire`, `lay-off` and `scale-to`: the operator's direct actions on regions. */
export function register(program: Command): void {
  program
    .command("hire")
    .description("Hire N workers in one region now")
    .argument("<count>", "workers to hire")
    .requiredOption("--region <name>", "region to hire in (required; a `name` from the region list)")
    .action((count: string, options: { region: string }) =>
      operate(count, async (n, workforce, _logger, { findRegion }) => {
        const bar = progressBar(`hiring in ${options.region}`);
        const result = await findRegion(workforce, options.region).hire(n, {
          ...(bar ? { onProgress: (progress) => bar.update(progress) } : {}),
        });
        bar?.finish();
        return { region: options.region, requested: n, ...result };
      }),
    );

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
    .action((count: string, options: { region: string; cancelRunning?: boolean }) =>
      operate(count, async (n, workforce, logger, { findRegion, layOff }) => {
        const region = findRegion(workforce, options.region);
        const result = await layOff(region, n, { cancelRunning: options.cancelRunning, logger });
        return { region: options.region, requested: n, ...result };
      }),
    );

  program
    .command("scale-to")
    .description(
      "Bring active workers (running + pending) to N over all regions; shrinks only with --with-layoffs",
    )
    .argument("<count>", "target number of active workers")
    .option("--with-layoffs", "also shrink: cancel pending workers first, then drain running ones")
    .action((count: string, options: { withLayoffs?: boolean }) =>
      operate(count, async (n, workforce, logger, { scaleTo }) => {
        const result = await scaleTo(workforce.regions, n, { withLayoffs: options.withLayoffs, logger });
        return { target: n, ...result };
      }),
    );
}
