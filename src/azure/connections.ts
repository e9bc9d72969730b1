import type { Agent } from "node:https";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";

/**
 * The keep-alive connections to the ARM endpoint, shared by every workspace of the process and bounded.
 *
 * All regions talk to one host (management.azure.com). The SDK's default agent opens a connection for
 * every request in flight, keeps every one open afterwards, and, given an extra CA, builds a TLS context
 * per connection: 84 regions reading at once left 168 TLS connections open, a cost that grew with the
 * number of regions. Here reads and writes have a pool each, of what a tick can use (a round of region
 * reads; ARM's write burst, past which writes are throttled anyway), with one TLS context; requests
 * beyond the bound wait in the agent's queue (their deadline runs), and idle connections beyond
 * `maxFreeSockets` are closed as requests end.
 */
export interface ConnectionBounds {
  /** Connections open at once to one host (the agent's `maxSockets`). */
  maxSockets: number;
  /** Idle connections kept for the next tick (the agent's `maxFreeSockets`). */
  maxFreeSockets: number;
}

export interface ConnectionPools {
  reads: ConnectionBounds;
  writes: ConnectionBounds;
}

/** Idle connections kept per pool between ticks. */
const KEPT_IDLE = 16;
/** ARM's write burst per subscription (src/azure/rate-limiter.ts): more writes at once are throttled. */
const WRITE_BURST = 200;

/**
 * The pools a region needs: reads for a round of `readConcurrency` regions (their list chain) plus one
 * region's writes; writes up to ARM's burst.
 */
export function connectionPools(readConcurrency: number, submitConcurrency: number): ConnectionPools {
  return {
    reads: { maxSockets: readConcurrency + submitConcurrency, maxFreeSockets: KEPT_IDLE },
    writes: { maxSockets: Math.max(WRITE_BURST, submitConcurrency), maxFreeSockets: KEPT_IDLE },
  };
}

interface Agents {
  reads: Agent;
  writes: Agent;
}

/** The agents per CA (undefined: Node's roots), for the process. */
const shared = new Map<string | undefined, Promise<Agents>>();

async function build(ca: string | undefined, pools: ConnectionPools): Promise<Agents> {
  const [https, tls] = await Promise.all([import("node:https"), import("node:tls")]);
  // One TLS context for every connection: given only `ca`, each connection would build its own.
  const secureContext = ca ? tls.createSecureContext({ ca }) : undefined;
  const agent = (bounds: ConnectionBounds) =>
    new https.Agent({ keepAlive: true, ...bounds, ...(secureContext ? { secureContext } : {}) });
  return { reads: agent(pools.reads), writes: agent(pools.writes) };
}

function grow(agent: Agent, bounds: ConnectionBounds): void {
  agent.maxSockets = Math.max(agent.maxSockets, bounds.maxSockets);
  agent.maxFreeSockets = Math.max(agent.maxFreeSockets, bounds.maxFreeSockets);
}

/**
 * Sends every HTTPS request through the process's pools for `ca` (GETs as reads, the rest as writes),
 * grown to `pools` if an earlier region asked for less; unless a policy before it chose an agent (the
 * proxy policy, for HTTPS_PROXY): added after `proxyPolicy`.
 */
export async function sharedAgentPolicy(
  ca: string | undefined,
  pools: ConnectionPools,
): Promise<PipelinePolicy> {
  let agents = shared.get(ca);
  if (!agents) shared.set(ca, (agents = build(ca, pools)));
  const { reads, writes } = await agents;
  grow(reads, pools.reads);
  grow(writes, pools.writes);
  return {
    name: "sharedAgentPolicy",
    sendRequest(request, next) {
      if (!request.agent && request.url.startsWith("https:"))
        request.agent = request.method === "GET" ? reads : writes;
      return next(request);
    },
  };
}
