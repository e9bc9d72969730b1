import type { TokenCredential } from "@azure/core-auth";
import type { Config } from "../config/load.js";
import type { Logger } from "../logging/logger.js";
import type { RegionContext } from "../regions/context.js";

export interface DrainChannelDeps {
  logger: Logger;
  credential: () => TokenCredential;
  tlsCa?: string;
}

/** The factory regions use to build their back-channel drain (Service Bus control messages + ledger). */
export function createDrainChannelFactory(
  _config: Config,
  _deps: DrainChannelDeps,
): RegionContext["createDrainChannel"] | undefined {
  // Wired to src/backchannel once it lands.
  return undefined;
}
