/**
 * How many more workers an AmlCompute cluster can take: what it can still give our jobs, in workers.
 *
 *   committed = max( max(targetNodeCount, currentNodeCount) - idle,   every node there or coming, but idle ones
 *                    current - idle - preparing + ourWaitingNodes )  nodes in use, plus what our queued jobs need
 *   free nodes = maxNodeCount - committed
 *   capacity   = floor(free nodes / nodes per worker)
 *
 * Idle nodes are free (kept by minNodeCount or waiting out nodeIdleTimeBeforeScaleDown). Nodes being
 * allocated (target above current, or nodes still preparing) are for queued jobs: ours or another
 * experiment's. Our queued jobs' nodes are counted once: either the resize already covers them (first
 * term) or they are added to the nodes in use (second). docs/azureml.md has the table of cases.
 * Upstream's `max - target - pending` counted queued jobs twice and idle nodes as taken.
 */

export interface ClusterReading {
  maxNodeCount: number;
  currentNodeCount: number;
  targetNodeCount: number;
  idleNodeCount: number;
  /** Nodes being prepared for jobs (new ones, counted in currentNodeCount). */
  preparingNodeCount: number;
  allocationState?: string;
}

export function freeNodes(cluster: ClusterReading, ourWaitingNodes: number): number {
  const current = cluster.currentNodeCount;
  const idle = Math.min(cluster.idleNodeCount, current);
  const thereOrComing = Math.max(cluster.targetNodeCount, current) - idle;
  const inUse = Math.max(0, current - idle - cluster.preparingNodeCount);
  const committed = Math.max(thereOrComing, inUse + ourWaitingNodes);
  return cluster.maxNodeCount - committed;
}

/** Workers that still fit; negative when our queued jobs already need more nodes than there are. */
export function freeWorkers(
  cluster: ClusterReading,
  ourWaitingNodes: number,
  nodesPerWorker: number,
): number {
  return Math.floor(freeNodes(cluster, ourWaitingNodes) / Math.max(1, nodesPerWorker));
}

/** Reads the numbers from a compute GET (AmlCompute keeps them in `properties.properties`). */
export function readCluster(
  resource: unknown,
  bad: (field: string, expected: string, given: unknown, computeType?: string) => Error,
): ClusterReading {
  const outer = (resource as { properties?: unknown } | undefined)?.properties as
    { computeType?: unknown; properties?: unknown } | undefined;
  const inner = outer?.properties as Record<string, unknown> | undefined;
  const scale = inner?.scaleSettings as { maxNodeCount?: unknown } | undefined;
  const computeType = outer?.computeType !== undefined ? String(outer.computeType) : undefined;
  const num = (value: unknown, field: string): number => {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0)
      throw bad(
        `properties.properties.${field}`,
        "a number >= 0 (an AmlCompute cluster)",
        value,
        computeType,
      );
    return value;
  };
  const counts = (inner?.nodeStateCounts ?? {}) as Record<string, unknown>;
  const current = num(inner?.currentNodeCount ?? 0, "currentNodeCount");
  return {
    maxNodeCount: num(scale?.maxNodeCount, "scaleSettings.maxNodeCount"),
    currentNodeCount: current,
    // Absent on a cluster that never scaled: no nodes asked for.
    targetNodeCount: num(inner?.targetNodeCount ?? current, "targetNodeCount"),
    // Without nodeStateCounts no node is known to be idle: the safe reading.
    idleNodeCount: num(counts.idleNodeCount ?? 0, "nodeStateCounts.idleNodeCount"),
    preparingNodeCount: num(counts.preparingNodeCount ?? 0, "nodeStateCounts.preparingNodeCount"),
    ...(typeof inner?.allocationState === "string" ? { allocationState: inner.allocationState } : {}),
  };
}
