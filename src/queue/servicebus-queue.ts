import type { TokenCredential } from "@azure/core-auth";
import type {
  ServiceBusAdministrationClientOptions,
  ServiceBusAdministrationClient,
} from "@azure/service-bus";
import type * as serviceBusTypes from "@azure/service-bus";
import { lazySdk } from "../azure/lazy-sdk.js";

const serviceBus = lazySdk<typeof serviceBusTypes>("@azure/service-bus");
import type { CallOptions } from "../regions/types.js";
import { describeQueueSpec, type ServiceBusQueueSpec } from "./spec.js";
import { checkedDepth, type QueueProbe } from "./types.js";

export interface ServiceBusQueueProbeOptions {
  /** Service Bus connection string (`Endpoint=sb://...`); when given, no Azure credential is built. */
  connectionString?: string;
  /** Built on first use only, and only without a connection string. */
  credential?: () => TokenCredential;
  /**
   * Where the management (ATOM, always HTTPS) API listens when that is not the namespace host itself:
   * `host:port` or `https://host:port`. The emulator serves it on its own port.
   */
  adminEndpoint?: string;
  /** Extra client options, e.g. `{ tlsOptions: { ca } }` to trust the emulator's certificate. */
  clientOptions?: ServiceBusAdministrationClientOptions;
}

/** `https://host:port/` or `host:port` -> `host:port`; throws naming the option on anything else. */
function adminHost(adminEndpoint: string): string {
  const text = adminEndpoint.trim();
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`adminEndpoint: expected host[:port] or https://host[:port], got "${adminEndpoint}"`);
  }
  if (url.protocol !== "https:" || (url.pathname !== "/" && url.pathname !== "") || url.search) {
    throw new Error(`adminEndpoint: expected host[:port] or https://host[:port], got "${adminEndpoint}"`);
  }
  return url.host;
}

/**
 * The admin client for a spec. The ATOM API is addressed by the host:port of the connection string's
 * Endpoint (or the namespace), so an admin endpoint override replaces that host in either form.
 */
export function createServiceBusAdministrationClient(
  spec: ServiceBusQueueSpec,
  options: ServiceBusQueueProbeOptions,
): ServiceBusAdministrationClient {
  const clientOptions = options.clientOptions ?? {};
  const host = options.adminEndpoint ? adminHost(options.adminEndpoint) : undefined;
  if (options.connectionString) {
    if (!/(^|;)\s*Endpoint\s*=\s*sb:\/\/[^;]+/i.test(options.connectionString)) {
      throw new Error(
        `queue ${describeQueueSpec(spec)}: the Service Bus connection string has no Endpoint=sb://...`,
      );
    }
    const connectionString = host
      ? options.connectionString.replace(/(^|;)(\s*Endpoint\s*=\s*)sb:\/\/[^;]+/i, `$1$2sb://${host}`)
      : options.connectionString;
    return new (serviceBus().ServiceBusAdministrationClient)(connectionString, clientOptions);
  }
  const namespace = host ?? spec.fullyQualifiedNamespace;
  if (!namespace) {
    throw new Error(
      `queue "${spec.queueName}": a bare queue name needs a Service Bus connection string (WORKFORCE_QUEUE_CONNECTION_STRING)`,
    );
  }
  if (!options.credential) {
    throw new Error(
      `queue ${describeQueueSpec(spec)}: no connection string and no Azure credential; set WORKFORCE_QUEUE_CONNECTION_STRING or use Azure AD`,
    );
  }
  return new (serviceBus().ServiceBusAdministrationClient)(namespace, options.credential(), clientOptions);
}

/**
 * Depth of a Service Bus queue: the runtime `activeMessageCount`, which counts messages a receiver holds
 * under a peek-lock too (dead-lettered and scheduled messages are not work waiting).
 */
export class ServiceBusQueueProbe implements QueueProbe {
  readonly description: string;
  private client: ServiceBusAdministrationClient | undefined;

  constructor(
    private readonly spec: ServiceBusQueueSpec,
    private readonly options: ServiceBusQueueProbeOptions,
  ) {
    this.description = describeQueueSpec(spec);
  }

  async depth(options: CallOptions = {}): Promise<number> {
    // Built on first use: no work (and no credential) in the constructor.
    this.client ??= createServiceBusAdministrationClient(this.spec, this.options);
    let count: unknown;
    try {
      const properties = await this.client.getQueueRuntimeProperties(this.spec.queueName, {
        abortSignal: options.signal,
      });
      count = properties.activeMessageCount;
    } catch (error) {
      if (options.signal?.aborted) throw error; // the caller's deadline, not a queue problem
      const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
      const why =
        code === "MessageEntityNotFoundError"
          ? "the Service Bus queue does not exist"
          : `reading its runtime properties failed: ${error instanceof Error ? error.message : String(error)}`;
      // Keep the SDK's code and status so callers can tell a missing queue from a throttled call.
      throw Object.assign(new Error(`queue ${this.description}: ${why}`, { cause: error }), {
        code,
        statusCode,
      });
    }
    return checkedDepth(this.description, "activeMessageCount", count);
  }

  async close(): Promise<void> {
    this.client = undefined;
  }
}

export function createServiceBusQueueProbe(
  spec: ServiceBusQueueSpec,
  options: ServiceBusQueueProbeOptions,
): ServiceBusQueueProbe {
  return new ServiceBusQueueProbe(spec, options);
}
