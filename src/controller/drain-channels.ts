import type { TokenCredential } from "@azure/core-auth";
import type { Config } from "../config/load.js";
import type { Logger } from "../logging/logger.js";
import type { RegionContext } from "../regions/context.js";
import { drainChannelFactory, ledgerStoreFromSettings } from "../backchannel/index.js";
import { parseQueueSpec } from "../queue/spec.js";
import type { WriteFence } from "../regions/fence.js";

export interface DrainChannelDeps {
  logger: Logger;
  credential: () => TokenCredential;
  tlsCa?: string;
  fence?: WriteFence;
}

/** A Storage queue reached with Azure AD: its account's blob endpoint holds the drain ledger. */
function blobAccountUrl(config: Config): string | undefined {
  if (!config.queue) return undefined;
  try {
    const spec = parseQueueSpec(config.queue, { connectionString: config.queueConnectionString });
    if (spec.kind !== "storage" || !spec.accountUrl) return undefined;
    const url = new URL(spec.accountUrl);
    // Only public-style endpoints name the blob service by host (ACCOUNT.queue.* -> ACCOUNT.blob.*).
    if (!/^[^.]+\.queue\./.test(url.hostname)) return undefined;
    url.hostname = url.hostname.replace(/^([^.]+)\.queue\./, "$1.blob.");
    return url.origin;
  } catch {
    return undefined;
  }
}

/**
 * The factory regions use to build their back-channel drain (Service Bus control messages + a ledger of
 * drains in flight kept in blob storage). Built only when some region names a back channel.
 */
export function createDrainChannelFactory(
  config: Config,
  deps: DrainChannelDeps,
): RegionContext["createDrainChannel"] | undefined {
  const needed = config.regions.some((region) => "backChannel" in region && region.backChannel);
  if (!needed) return undefined;
  const stateStore = ledgerStoreFromSettings(config, {
    logger: deps.logger,
    credential: deps.credential,
    ...(blobAccountUrl(config) ? { accountUrl: blobAccountUrl(config) } : {}),
    ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
  });
  return drainChannelFactory({
    settings: config,
    logger: deps.logger,
    credential: deps.credential,
    stateStore,
    ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
    ...(deps.fence ? { fence: deps.fence } : {}),
  });
}
