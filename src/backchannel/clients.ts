import type { TokenCredential } from "@azure/core-auth";
import type {
  ServiceBusClientOptions,
  RetryOptions,
  ServiceBusAdministrationClient,
  ServiceBusClient,
  RetryMode,
} from "@azure/service-bus";
import type * as serviceBusTypes from "@azure/service-bus";
import { lazySdk } from "../azure/lazy-sdk.js";

const serviceBus = lazySdk<typeof serviceBusTypes>("@azure/service-bus");

/** Where a back channel is and how to authenticate: a connection string, or a namespace + Azure AD. */
export interface ServiceBusTarget {
  connectionString?: string;
  fullyQualifiedNamespace?: string;
  /** Host[:port] of the HTTPS administration endpoint when it is not the namespace itself. */
  adminEndpoint?: string;
}

export interface ServiceBusClientDeps {
  /** Only called for a namespace without a connection string. */
  credential?: () => TokenCredential;
  /** Extra CA certificates (PEM) for the HTTPS administration endpoint. */
  tlsCa?: string;
  /** AMQP retry policy (default: two quick retries; the caller's AbortSignal bounds the whole call). */
  retry?: RetryOptions;
}

/**
 * The SDK's default waits 30 s between retries, longer than a tick's call deadline: retry briefly and let
 * the caller's AbortSignal bound the whole call.
 */
const DEFAULT_RETRY: RetryOptions = {
  maxRetries: 2,
  retryDelayInMs: 500,
  maxRetryDelayInMs: 5000,
  mode: 0 satisfies RetryMode.Exponential, // RetryMode.Exponential (a type import: the SDK loads on first use)
};

function endpointOf(connectionString: string): string | undefined {
  return /(?:^|;)\s*Endpoint\s*=\s*([^;]+)/i.exec(connectionString)?.[1]?.trim();
}

/** The namespace host a connection string names (for logs: never the key). */
export function namespaceOf(target: ServiceBusTarget): string {
  if (target.fullyQualifiedNamespace) return target.fullyQualifiedNamespace;
  const endpoint = target.connectionString ? endpointOf(target.connectionString) : undefined;
  return endpoint?.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "") ?? "(unknown namespace)";
}

function needCredential(deps: ServiceBusClientDeps): TokenCredential {
  if (!deps.credential)
    throw new Error("back channel: a namespace without a connection string needs an Azure credential");
  return deps.credential();
}

export function createServiceBusClient(
  target: ServiceBusTarget,
  deps: ServiceBusClientDeps = {},
): ServiceBusClient {
  const options: ServiceBusClientOptions = { retryOptions: deps.retry ?? DEFAULT_RETRY };
  if (target.connectionString) return new (serviceBus().ServiceBusClient)(target.connectionString, options);
  if (!target.fullyQualifiedNamespace)
    throw new Error("back channel: give a connection string or a namespace");
  return new (serviceBus().ServiceBusClient)(target.fullyQualifiedNamespace, needCredential(deps), options);
}

/**
 * The administration client speaks HTTPS (ATOM) to `https://{namespace}/...`, or to `adminEndpoint` when given
 * (an emulator serves it on another port than AMQP). A connection string keeps its key; only its endpoint
 * is swapped.
 */
export function createAdministrationClient(
  target: ServiceBusTarget,
  deps: ServiceBusClientDeps = {},
): ServiceBusAdministrationClient {
  const options = deps.tlsCa ? { tlsOptions: { ca: deps.tlsCa } } : {};
  if (target.connectionString) {
    const connectionString = target.adminEndpoint
      ? target.connectionString.replace(
          /((?:^|;)\s*Endpoint\s*=\s*)[^;]+/i,
          `$1sb://${target.adminEndpoint}/`,
        )
      : target.connectionString;
    return new (serviceBus().ServiceBusAdministrationClient)(connectionString, options);
  }
  const host = target.adminEndpoint ?? target.fullyQualifiedNamespace;
  if (!host) throw new Error("back channel: give a connection string or a namespace");
  return new (serviceBus().ServiceBusAdministrationClient)(host, needCredential(deps), options);
}
