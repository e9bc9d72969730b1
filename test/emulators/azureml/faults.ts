import type { Operation, Route } from "./routes.js";

export type FaultKind =
  | { kind: "latency"; ms: number }
  | { kind: "throttle"; retryAfterSeconds?: number; retryAfterMs?: number }
  | { kind: "error500" }
  | { kind: "html503" }
  | { kind: "reset" }
  /** Do the operation, then drop the connection before answering (the client sees a network error). */
  | { kind: "resetAfterCommit" }
  | { kind: "hang" }
  /** Refuse the request, without doing it, with an ARM error body (401, 403 AuthorizationFailed, 404, 409...). */
  | { kind: "error"; status: number; code: string; message?: string }
  /**
   * Do the operation, then answer with a changed body: `body` maps the JSON answer (e.g. drop a field), or
   * `raw` replaces it with text of `contentType` (a proxy's HTML page). For the adapter's robustness tests.
   */
  | { kind: "rewrite"; body?: (answer: unknown) => unknown; raw?: string; contentType?: string };

export type Fault = FaultKind & {
  /** Operations it applies to (default: all). */
  operations?: Operation[];
  /** Workspace names it applies to (default: all). */
  workspaces?: string[];
  /** How many requests it hits before it is spent (default: unlimited). */
  times?: number;
  /**
   * At most this many hits on any one resource (the request's path, e.g. one job's PUT and its retries;
   * default: unlimited). Bounds what one call's retries meet, whatever the order of parallel requests.
   */
  perPath?: number;
};

/** Hits so far per fault and path, for `perPath`. */
export type FaultHits = WeakMap<Fault, Map<string, number>>;

/** The faults that hit this request (and spend one of their `times`). */
export function pickFaults(faults: Fault[], r: Route, path: string, hitsSoFar: FaultHits): Fault[] {
  const hits: Fault[] = [];
  for (const fault of faults) {
    if (fault.times !== undefined && fault.times <= 0) continue;
    if (fault.operations && !fault.operations.includes(r.operation)) continue;
    if (
      fault.workspaces &&
      (!r.workspace || !fault.workspaces.some((w) => w.toLowerCase() === r.workspace!.toLowerCase()))
    )
      continue;
    if (fault.perPath !== undefined) {
      const byPath = hitsSoFar.get(fault) ?? new Map<string, number>();
      hitsSoFar.set(fault, byPath);
      const hits = byPath.get(path) ?? 0;
      if (hits >= fault.perPath) continue;
      byPath.set(path, hits + 1);
    }
    if (fault.times !== undefined) fault.times--;
    hits.push(fault);
  }
  return hits;
}
