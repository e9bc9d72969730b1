import type { Settings } from "./settings.js";

/** A Storage (not Service Bus) connection string: it names an account or a blob endpoint. */
const STORAGE_SHAPE = /(^|;)\s*(AccountName|BlobEndpoint|UseDevelopmentStorage)\s*=\s*[^;\s]/i;
/** Any connection string we take: Storage, or Service Bus (Endpoint=sb://...). */
const ANY_SHAPE =
  /(^|;)\s*(AccountName|QueueEndpoint|BlobEndpoint|Endpoint|UseDevelopmentStorage)\s*=\s*[^;\s]/i;

export function isStorageConnectionString(value: string | undefined): value is string {
  return value !== undefined && STORAGE_SHAPE.test(value);
}

/** Key=value pairs naming an endpoint or account: enough to tell a connection string from a typo or a URL. */
export function looksLikeConnectionString(value: string): boolean {
  return ANY_SHAPE.test(value);
}

/**
 * The Storage account of the daemon's own state (drain ledger, leader lease): WORKFORCE_STATE_CONNECTION_STRING,
 * else the task queue's connection string when it is a Storage one. Undefined when neither names one.
 */
export function stateStorageConnectionString(
  settings: Pick<Settings, "stateConnectionString" | "queueConnectionString">,
): string | undefined {
  if (settings.stateConnectionString) return settings.stateConnectionString;
  return isStorageConnectionString(settings.queueConnectionString)
    ? settings.queueConnectionString
    : undefined;
}
