import { ConfigError } from "../../config/errors.js";
import { createInterface } from "node:readline";
import { Command, Option } from "commander";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Lines of stdin, read only once iterated: a readline made earlier emits lines nobody listens to yet. */
async function* stdinLines(): AsyncGenerator<string> {
  yield* createInterface({ input: process.stdin, crlfDelay: Infinity });
}

export function register(program: Command): void {
  program
    .command("push")
    .description(
      "Enqueue ai4s-jobq shell tasks: one per -c, or one per line of stdin (a line starting with '{' is a JSON job spec).",
    )
    .argument("[queue]", "queue spec (default WORKFORCE_QUEUE)")
    .option("-c, --command <cmd>", "a shell command (repeatable)", collect, [])
    .addOption(
      new Option("--num-retries <n>", "retries per task, as ai4s-jobq's").default(0).argParser((value) => {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 0)
          throw new ConfigError([
            { where: "--num-retries", message: `expected an integer >= 0, got "${value}"` },
          ]);
        return n;
      }),
    )
    .option("-e, --env <KEY=VALUE>", "environment variable for every task (repeatable)", collect, [])
    .option("--cwd <dir>", "working directory of every task")
    .action(
      async (
        queueArg: string | undefined,
        opts: { command: string[]; numRetries: number; env: string[]; cwd?: string },
      ) => {
        const { createLogger } = await import("../../logging/logger.js");
        const { lazyDefaultCredential } = await import("../../azure/credentials.js");
        const { storageQueueFromCli } = await import("../context.js");
        const { describeQueueSpec } = await import("../../queue/spec.js");
        const { pushTasks } = await import("../../queue/push.js");
        const { spec, connectionString } = storageQueueFromCli(queueArg, "push");
        const env: Record<string, string> = {};
        for (const pair of opts.env) {
          const eq = pair.indexOf("=");
          if (eq <= 0)
            throw new ConfigError([{ where: "--env", message: `expected KEY=VALUE, got "${pair}"` }]);
          env[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
        const commands = opts.command.length > 0 ? opts.command : stdinLines();
        const result = await pushTasks({
          spec,
          connectionString,
          credential: lazyDefaultCredential(),
          commands,
          numRetries: opts.numRetries,
          env,
          ...(opts.cwd ? { cwd: opts.cwd } : {}),
          logger: createLogger({
            level: process.env.WORKFORCE_LOG_LEVEL || "warn",
            destination: process.stderr as never,
          }),
        }).catch((error: unknown) => {
          // The SDK's "connect ECONNREFUSED ..." does not say which queue; sends are not rolled back.
          throw new Error(
            `push to ${describeQueueSpec(spec)} failed: ${(error as Error)?.message ?? String(error)} ` +
              "(tasks sent before the failure stay in the queue)",
            { cause: error },
          );
        });
        process.stdout.write(
          `${JSON.stringify({ queue: describeQueueSpec(spec), pushed: result.pushed })}\n`,
        );
      },
    );
}
