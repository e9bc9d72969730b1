import { ConfigError, loadConfig, unknownVariables, type Config, type LoadOptions } from "../config/load.js";
import { describeQueueSpec, parseQueueSpec, type StorageQueueSpec } from "../queue/spec.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { buildWorkforce, type Workforce } from "../controller/workforce.js";
import type { Region } from "../regions/types.js";

export { UsageError, parseCount } from "./usage.js";
import { UsageError } from "./usage.js";

/** Load and validate config for a CLI command (a ConfigError makes main exit 2). */
export function cliConfig(options: LoadOptions = {}): Config {
  return loadConfig(options);
}

/** Logs of one-shot commands go to stderr, so stdout stays clean for tables and JSON. */
export function cliLogger(config: Pick<Config, "logLevel">, level?: string): Logger {
  const logger = createLogger({ level: level ?? config.logLevel, destination: process.stderr });
  warnUnknownVariables(logger);
  return logger;
}

/** A misspelt variable would otherwise leave its setting at the default without a word. */
export function warnUnknownVariables(logger: Logger, env: NodeJS.ProcessEnv = process.env): void {
  for (const { name, suggestion } of unknownVariables(env)) {
    logger.warn(
      { variable: name, ...(suggestion ? { didYouMean: suggestion } : {}) },
      `unknown variable ${name} ignored${suggestion ? ` (did you mean ${suggestion}?)` : ""}`,
    );
  }
}

/** Build the workforce for a one-shot command, run `fn`, and always release connections. */
export async function withWorkforce<T>(
  config: Config,
  logger: Logger,
  fn: (workforce: Workforce) => Promise<T>,
  options: { dryRun?: boolean } = {},
): Promise<T> {
  const workforce = await buildWorkforce(config, { logger, ...options });
  try {
    return await fn(workforce);
  } finally {
    await workforce.close();
  }
}

export function findRegion(workforce: Workforce, name: string): Region {
  const region = workforce.regions.find((candidate) => candidate.name === name);
  if (!region) {
    throw new UsageError(
      `--region: no region named "${name}"; configured: ${workforce.regions.map((r) => r.name).join(", ")}`,
    );
  }
  return region;
}

/**
 * The Storage queue a queue command (`worker`, `push`) works on: its QUEUE argument or WORKFORCE_QUEUE,
 * with WORKFORCE_QUEUE_CONNECTION_STRING. Bad or missing specs are configuration errors (exit 2).
 */
export function storageQueueFromCli(
  queueArg: string | undefined,
  command: string,
): { spec: StorageQueueSpec; connectionString?: string } {
  const connectionString = process.env.WORKFORCE_QUEUE_CONNECTION_STRING || undefined;
  const specText = queueArg ?? process.env.WORKFORCE_QUEUE;
  if (!specText) {
    throw new ConfigError([{ where: "QUEUE (or WORKFORCE_QUEUE)", message: "a queue spec is required" }]);
  }
  let spec;
  try {
    spec = parseQueueSpec(specText, { connectionString });
  } catch (error) {
    throw new ConfigError([{ where: "QUEUE", message: (error as Error).message }]);
  }
  if (spec.kind !== "storage") {
    throw new ConfigError([
      { where: "QUEUE", message: `${describeQueueSpec(spec)}: ${command} works with Storage queues only` },
    ]);
  }
  return { spec, ...(connectionString ? { connectionString } : {}) };
}
