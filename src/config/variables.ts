import { SETTINGS } from "./settings.js";

export const FILE_ENV = "WORKFORCE_CONFIG";
export const REGIONS_ENV = "WORKFORCE_REGIONS";

/** WORKFORCE_* variables read by the node side (agent, worker), not by the daemon's settings. */
export const NODE_SIDE_VARIABLES = [
  "WORKFORCE_BACK_CHANNEL_CONNECTION_STRING",
  "WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE",
  "WORKFORCE_CONTROL_TOPIC_NAME",
  "WORKFORCE_WORKER_ID",
  "WORKFORCE_AGENT_SIGNAL",
];

export function knownVariables(): string[] {
  return [...SETTINGS.map((spec) => spec.env), FILE_ENV, REGIONS_ENV, ...NODE_SIDE_VARIABLES];
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The candidate nearest to `name` (case-insensitive), when it is near enough to be a typo of it. */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const [closest] = candidates
    .map((candidate) => ({ candidate, distance: editDistance(name.toLowerCase(), candidate.toLowerCase()) }))
    .sort((x, y) => x.distance - y.distance);
  const limit = Math.max(2, Math.min(4, Math.floor(name.length / 4)));
  return closest && closest.distance <= limit ? closest.candidate : undefined;
}

// What Kubernetes injects for every Service of the namespace (service links): a Service named
// workforce-autoscaler gives WORKFORCE_AUTOSCALER_SERVICE_HOST, _SERVICE_PORT, _SERVICE_PORT_METRICS,
// _PORT, _PORT_9464_TCP, _PORT_9464_TCP_PROTO, _PORT_9464_TCP_PORT and _PORT_9464_TCP_ADDR.
const SERVICE_LINK =
  /^(.+?)_(SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)$/;

/**
 * A Kubernetes service link: its name has one of the shapes above and its Service's `_SERVICE_HOST` and
 * `_SERVICE_PORT` are both present (Kubernetes always sets them together), so a typo such as
 * WORKFORCE_METRIC_PORT is still caught.
 */
export function isServiceLink(name: string, env: NodeJS.ProcessEnv): boolean {
  const match = SERVICE_LINK.exec(name);
  if (!match) return false;
  const service = match[1]!;
  return env[`${service}_SERVICE_HOST`] !== undefined && env[`${service}_SERVICE_PORT`] !== undefined;
}

/**
 * WORKFORCE_* variables nobody reads (a typo would leave its setting at the default without a word), each
 * with the closest known name when one is near. Kubernetes service links are not counted.
 */
export function unknownVariables(env: NodeJS.ProcessEnv): Array<{ name: string; suggestion?: string }> {
  const known = knownVariables();
  return Object.keys(env)
    .filter((name) => name.startsWith("WORKFORCE_") && !known.includes(name) && !isServiceLink(name, env))
    .sort()
    .map((name) => {
      const suggestion = closestName(name, known);
      return suggestion ? { name, suggestion } : { name };
    });
}
