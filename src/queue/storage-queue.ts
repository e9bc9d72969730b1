import type { StoragePipelineOptions, QueueClient } from "@azure/storage-queue";
import type * as storageQueueTypes from "@azure/storage-queue";
import { lazySdk } from "../azure/lazy-sdk.js";

const storageQueue = lazySdk<typeof storageQueueTypes>("@azure/storage-queue");
import type { TokenCredential } from "@azure/core-auth";
import type { CallOptions } from "../regions/types.js";
import { checkedDepth, type QueueProbe } from "./types.js";
import { describeQueueSpec, type StorageQueueSpec } from "./spec.js";

export interface QueueClientOptions {
  /** Storage connection string; when given, no Azure credential is ever built. */
  connectionString?: string;
  /** Built only when needed (no connection string): production passes DefaultAzureCredential lazily. */
  credential?: () => TokenCredential;
  /** Passed to the SDK pipeline (retry options, user agent...). */
  pipelineOptions?: StoragePipelineOptions;
}

/**
 * A QueueClient for `spec`, or for another queue of the same account when `queueName` is given (the
 * `-failed` queue). A connection string wins over the spec's account, as upstream does.
 */
export function createQueueClient(
  spec: StorageQueueSpec,
  options: QueueClientOptions,
  queueName: string = spec.queueName,
): QueueClient {
  if (options.connectionString) {
    return new (storageQueue().QueueClient)(options.connectionString, queueName, options.pipelineOptions);
  }
  if (!spec.accountUrl) {
    throw new Error(
      `queue "${spec.queueName}": a bare queue name needs a connection string (WORKFORCE_QUEUE_CONNECTION_STRING)`,
    );
  }
  if (!options.credential) {
    throw new Error(
      `queue ${describeQueueSpec(spec)}: no connection string and no Azure credential; set WORKFORCE_QUEUE_CONNECTION_STRING or use Azure AD`,
    );
  }
  return new (storageQueue().QueueClient)(
    `${spec.accountUrl}/${queueName}`,
    options.credential(),
    options.pipelineOptions,
  );
}

/** Depth of a Storage queue: approximateMessagesCount counts in-flight (invisible) messages too. */
export class StorageQueueProbe implements QueueProbe {
  readonly description: string;
  private client: QueueClient | undefined;

  constructor(
    private readonly spec: StorageQueueSpec,
    private readonly options: QueueClientOptions,
  ) {
    this.description = describeQueueSpec(spec);
  }

  async depth(options: CallOptions = {}): Promise<number> {
    // Built on first use: no work (and no credential) in the constructor.
    this.client ??= createQueueClient(this.spec, this.options);
    const properties = await this.client.getProperties({ abortSignal: options.signal });
    return checkedDepth(this.description, "approximateMessagesCount", properties.approximateMessagesCount);
  }

  async close(): Promise<void> {
    this.client = undefined;
  }
}
