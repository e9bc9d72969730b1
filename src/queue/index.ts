import type { TokenCredential } from "@azure/core-auth";
import type { QueueProbe } from "./types.js";
import type { QueueSpec } from "./spec.js";
import { StorageQueueProbe } from "./storage-queue.js";
import { createServiceBusQueueProbe, type ServiceBusQueueProbeOptions } from "./servicebus-queue.js";

export * from "./spec.js";
export * from "./types.js";
export { createQueueClient, StorageQueueProbe, type QueueClientOptions } from "./storage-queue.js";
export {
  createServiceBusAdministrationClient,
  createServiceBusQueueProbe,
  ServiceBusQueueProbe,
  type ServiceBusQueueProbeOptions,
} from "./servicebus-queue.js";

export interface QueueProbeOptions {
  /** Storage or Service Bus connection string; when given, no Azure credential is built. */
  connectionString?: string;
  /** Built on first use only, and only without a connection string. */
  credential?: () => TokenCredential;
  /** Service Bus only: a separate admin (ATOM) endpoint and client options such as `tlsOptions`. */
  serviceBus?: Pick<ServiceBusQueueProbeOptions, "adminEndpoint" | "clientOptions">;
}

/**
 * The depth read retries briefly, then fails with its real cause (connection refused, a 403...): the
 * Storage SDK's default (4 tries, 4 s apart and growing) outlasts the call timeout, which then reports a
 * bare "did not answer" and hides it. The next tick reads again anyway.
 */
const PROBE_RETRIES = { maxTries: 3, retryDelayInMs: 200, maxRetryDelayInMs: 1000 };

/** The probe for a parsed queue spec: one case per kind of queue. */
export function createQueueProbe(spec: QueueSpec, options: QueueProbeOptions): QueueProbe {
  switch (spec.kind) {
    case "storage":
      return new StorageQueueProbe(spec, { ...options, pipelineOptions: { retryOptions: PROBE_RETRIES } });
    case "servicebus":
      return createServiceBusQueueProbe(spec, {
        ...options.serviceBus,
        ...(options.connectionString ? { connectionString: options.connectionString } : {}),
        ...(options.credential ? { credential: options.credential } : {}),
      });
    default: {
      const unknown: never = spec;
      throw new Error(`unknown queue kind ${JSON.stringify(unknown)}`);
    }
  }
}
