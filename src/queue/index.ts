import type { TokenCredential } from "@azure/core-auth";
import type { QueueProbe } from "./types.js";
import { describeQueueSpec, type QueueSpec } from "./spec.js";
import { StorageQueueProbe } from "./storage-queue.js";

export * from "./spec.js";
export * from "./types.js";
export { createQueueClient, StorageQueueProbe, type QueueClientOptions } from "./storage-queue.js";

export interface QueueProbeOptions {
  /** Storage or Service Bus connection string; when given, no Azure credential is built. */
  connectionString?: string;
  /** Built on first use only, and only without a connection string. */
  credential?: () => TokenCredential;
}

/** The probe for a parsed queue spec: one case per kind of queue. */
export function createQueueProbe(spec: QueueSpec, options: QueueProbeOptions): QueueProbe {
  switch (spec.kind) {
    case "storage":
      return new StorageQueueProbe(spec, options);
    case "servicebus":
      // The Service Bus probe (runtime activeMessageCount) plugs in here.
      throw new Error(`queue ${describeQueueSpec(spec)}: Service Bus queues are not supported yet`);
    default: {
      const unknown: never = spec;
      throw new Error(`unknown queue kind ${JSON.stringify(unknown)}`);
    }
  }
}
