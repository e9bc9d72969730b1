import { parseCount } from "../usage.js";
import type { Command } from "commander";
import { progressBar } from "../progress.js";
import { EXIT_PARTIAL, EXIT_RUNTIME } from "../exit-codes.js";
import type { Workforce } from "../../controller/workforce.js";
import type { Logger } from "../../logging/logger.js";

/** What the actions need, loaded when one runs (not for `workforce --help`). */
async function load() {
  const [context, operations, snapshot, failures] = await Promise.all([
    import("../context.js"),
    import("../../controller/operations.js"),
    import("../../controller/snapshot.js"),
    import("../../controller/failures.js"),
  ]);
  return { ...context, ...operations, ...snapshot, ...failures };
}
type Lib = Awaited<ReturnType<typeof load>>;

function print(result: unknown, { describeError }: Lib): void {
  process.stdout.write(
    `${JSON.stringify(result, (key, value) => (value instanceof Error ? describeError(value) : value), 2)}\n`,
  );
}

/** Did less than asked: how much, and why (undefined when it did all of it). */
type Shortfall<R> = (result: R, n: number, lib: Lib) => string | undefined;

function reasons(errors: Error[], { oneLine, describeError }: Lib): string {
  const lines = [...new Set(errors.map((error) => oneLine(describeError(error))))];
  return lines.length > 0 ? `: ${lines.join("; ")}` : "";
}

/**
 * The shape of every operator action: parse the count, build the workforce from config, act, print the
 * result as JSON. Exit 1 when a call failed; exit 3, saying how much and why, when it did less than asked
 * for want of room or of workers.
 */
async function operate<R extends { errors: Error[] } & object>(
  command: string,
  count: string,
  act: (n: number, workforce: Workforce, logger: Logger, lib: Lib) => Promise<R>,
  shortfall: Shortfall<R>,
): Promise<void> {
  const n = parseCount(count);
  const lib = await load();
  const { cliConfig, cliLogger, withWorkforce } = lib;
  const config = cliConfig();
  const logger = cliLogger(config);
  await withWorkforce(config, logger, async (workforce) => {
    const result = await act(n, workforce, logger, lib);
    print(result, lib);
    const failed = result.errors.some((error) => lib.classifyFailure(error).reason !== "no_capacity");
    const short = shortfall(result, n, lib);
    if (short) process.stderr.write(`workforce: ${command}: ${short}\n`);
    if (failed) process.exitCode = EXIT_RUNTIME;
    else if (short) process.exitCode = EXIT_PARTIAL;
  });
}

const sum = (record: Record<string, number>) => Object.values(record).reduce((a, b) => a + b, 0);

/** `hire`, `lay-off` and `scale-to`: the operator's direct actions on regions. */
export function register(program: Command): void {
  program
    .command("hire")
    .description("Hire N workers in one region now")
    .argument("<count>", "workers to hire")
    .requiredOption("--region <name>", "region to hire in (required; a `name` from the region list)")
    .action((count: string, options: { region: string }) =>
      operate(
        "hire",
        count,
        async (n, workforce, _logger, { findRegion }) => {
          const bar = progressBar(`hiring in ${options.region}`);
          const result = await findRegion(workforce, options.region).hire(n, {
            ...(bar ? { onProgress: (progress) => bar.update(progress) } : {}),
          });
          bar?.finish();
          return { region: options.region, requested: n, ...result };
        },
        (result, n, lib) =>
          result.hired < n
            ? `hired ${result.hired} of ${n} in ${options.region}${reasons(result.errors, lib)}`
            : undefined,
      ),
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
      operate(
        "lay-off",
        count,
        async (n, workforce, logger, { findRegion, layOff }) => {
          const region = findRegion(workforce, options.region);
          const result = await layOff(region, n, { cancelRunning: options.cancelRunning, logger });
          return { region: options.region, requested: n, ...result };
        },
        (result, n, lib) => {
          const done = result.cancelled + result.drained + result.cancelledRunning;
          if (done >= n) return undefined;
          return (
            `laid off ${done} of ${n} in ${options.region} (cancelled ${result.cancelled} pending, ` +
            `${options.cancelRunning ? `stopped ${result.cancelledRunning}` : `drained ${result.drained}`} running)` +
            (result.errors.length
              ? reasons(result.errors, lib)
              : ": no more workers there to lay off (or all already draining)")
          );
        },
      ),
    );

  program
    .command("scale-to")
    .description(
      "Bring active workers (running + pending) to N over all regions; shrinks only with --with-layoffs",
    )
    .argument("<count>", "target number of active workers")
    .option("--with-layoffs", "also shrink: cancel pending workers first, then drain running ones")
    .action((count: string, options: { withLayoffs?: boolean }) =>
      operate(
        "scale-to",
        count,
        async (n, workforce, logger, { scaleTo }) => {
          const result = await scaleTo(workforce.regions, n, { withLayoffs: options.withLayoffs, logger });
          return { target: n, ...result };
        },
        (result, n, lib) => {
          const active = result.before.reduce((total, state) => total + state.running + state.pending, 0);
          if (n > active) {
            const hired = sum(result.hired);
            if (active + hired >= n) return undefined;
            const room = result.before
              .map((state) => `${state.region} ${Math.max(0, state.capacity)}`)
              .join(", ");
            return (
              `${active + hired} active of the ${n} asked: hired ${hired} of ${n - active}` +
              (result.errors.length ? reasons(result.errors, lib) : "") +
              ` (room before: ${room})`
            );
          }
          if (n < active && !options.withLayoffs)
            return `${active} active, more than ${n}: nothing done; shrinking needs --with-layoffs (cancels pending workers, then drains running ones)`;
          if (n < active) {
            const shrunk = sum(result.cancelled) + sum(result.drained);
            if (active - shrunk <= n) return undefined;
            return `laid off ${shrunk} of ${active - n}${reasons(result.errors, lib) || ": the rest are already draining"}`;
          }
          return undefined;
        },
      ),
    );
}
