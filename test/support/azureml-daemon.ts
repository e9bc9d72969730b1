import type { ArmEmulator } from "../emulators/azureml/server.js";
import type { AzuriteInstance } from "./azurite.js";
import { loadConfig } from "../../src/config/load.js";
import { startDaemon, type Daemon } from "../../src/controller/daemon.js";
import type { TickReport } from "../../src/controller/reconciler.js";
import { createLogger, type Logger } from "../../src/logging/logger.js";
import { StaticTokenCredential } from "../../src/azure/credentials.js";

/**
 * The environment of a daemon reading Azurite's queue `queue` and hiring in `regions`: a tick every 0.5 s
 * without jitter, metrics on a free loopback port. `extra` adds settings (or replaces these).
 */
export function azuremlDaemonEnv(
  azurite: AzuriteInstance,
  queue: string,
  regions: unknown[],
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    WORKFORCE_QUEUE: `${azurite.queueEndpoint}/${queue}`,
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    WORKFORCE_INTERVAL_SECONDS: "0.5",
    WORKFORCE_JITTER: "0",
    WORKFORCE_METRICS_PORT: "0",
    WORKFORCE_METRICS_HOST: "127.0.0.1",
    WORKFORCE_REGIONS: JSON.stringify(regions),
    ...extra,
  };
}

/**
 * A daemon in this process on the settings of `env`, trusting the ARM emulator's certificate, with a static
 * token; each tick's report is pushed onto `reports` as it comes. Quiet unless given a logger.
 */
export async function startAzuremlDaemon(
  env: Record<string, string>,
  arm: ArmEmulator,
  logger: Logger = createLogger({ level: "silent" }),
): Promise<{ daemon: Daemon; reports: TickReport[] }> {
  const reports: TickReport[] = [];
  const daemon = await startDaemon({
    config: loadConfig({ env }),
    logger,
    credential: new StaticTokenCredential(),
    tlsCa: arm.ca,
    onTick: (report) => reports.push(report),
  });
  return { daemon, reports };
}

/** Workers hired over all these ticks, in every region. */
export function hiredIn(reports: TickReport[]): number {
  return reports.reduce((sum, report) => sum + report.outcomes.reduce((s, o) => s + o.hired, 0), 0);
}
