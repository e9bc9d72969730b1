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

/** The account a Storage connection string names (not secret); devstoreaccount1 for the emulator. */
export function storageAccountName(connectionString: string | undefined): string | undefined {
  if (!connectionString) return undefined;
  const named = /(?:^|;)\s*AccountName\s*=\s*([^;\s]+)/i.exec(connectionString)?.[1];
  if (named) return named;
  if (/(?:^|;)\s*UseDevelopmentStorage\s*=\s*true/i.test(connectionString)) return "devstoreaccount1";
  const endpoint = /(?:^|;)\s*(?:BlobEndpoint|QueueEndpoint)\s*=\s*([^;\s]+)/i.exec(connectionString)?.[1];
  if (!endpoint) return undefined;
  try {
    const url = new URL(endpoint);
    // https://ACCOUNT.blob.core.windows.net, or http://127.0.0.1:10000/ACCOUNT (emulators)
    return /^\d|localhost/.test(url.hostname)
      ? url.pathname.split("/")[1] || undefined
      : url.hostname.split(".")[0];
  } catch {
    return undefined;
  }
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
