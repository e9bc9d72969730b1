#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { ConfigError } from "../config/errors.js";
import { redactText } from "../logging/redact.js";
import { packageVersion } from "./version.js";
import { UsageError } from "./usage.js";
import { register as registerRun } from "./commands/run.js";
import { register as registerOnce } from "./commands/once.js";
import { register as registerStatus } from "./commands/status.js";
import { register as registerPlan } from "./commands/plan.js";
import { register as registerWorkforceOps } from "./commands/workforce-ops.js";
import { register as registerPush } from "./commands/push.js";
import { register as registerWorker } from "./commands/worker.js";
import { register as registerAgent } from "./commands/agent.js";
import { register as registerSignal } from "./commands/signal.js";
import { register as registerDemo } from "./commands/demo.js";
import { register as registerSimulate } from "./commands/simulate.js";

import { EXIT_CONFIG } from "./exit-codes.js";
import { register as registerConfig } from "./commands/config.js";

export { EXIT_CONFIG } from "./exit-codes.js";

/**
 * Each command lives in src/cli/commands/<name>.ts and exports a `register` function; add one import
 * and one line below to plug a new command in.
 */
export function buildProgram(): Command {
  const program = new Command()
    .name("workforce")
    .description("Keeps a fleet of batch workers sized to the work waiting in a queue, across regions.")
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride()
    .addHelpText(
      "after",
      "\nConfiguration: WORKFORCE_* variables and the file named by WORKFORCE_CONFIG (README: Configuration)." +
        "\nExit codes: 0 success, 1 runtime failure, 2 bad configuration or usage, 3 did less than asked." +
        "\nTry it: npm start (a local demo), or workforce plan --queue 1600 --concurrency 4 --running 3",
    );
  registerRun(program);
  registerConfig(program);
  registerOnce(program);
  registerStatus(program);
  registerPlan(program);
  registerWorkforceOps(program);
  registerPush(program);
  registerWorker(program);
  registerAgent(program);
  registerSignal(program);
  registerDemo(program);
  registerSimulate(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version come through here with exit code 0.
      return error.exitCode === 0 ? 0 : EXIT_CONFIG;
    }
    if (error instanceof ConfigError || error instanceof UsageError) {
      process.stderr.write(`workforce: ${error.message}\n`);
      return EXIT_CONFIG;
    }
    process.stderr.write(`workforce: ${redactText((error as Error)?.message ?? String(error))}\n`);
    return 1;
  }
}

// Run when executed directly (not when imported by tests or the library).
function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    // npm's bin shim is a symlink: compare real paths.
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv).then((code) => process.exit(code));
}
