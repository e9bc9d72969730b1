import { describe, expect, it } from "vitest";
import { freeWorkers, type ClusterReading } from "../../src/regions/azureml/capacity.js";

// The table of docs/azureml.md ("Capacity"), row by row. `upstream` is max - target - ourWaiting.
const ROWS: Array<{
  name: string;
  cluster: Omit<ClusterReading, "allocationState">;
  ourWaitingNodes: number;
  perWorker: number;
  expected: number;
}> = [
  {
    name: "fixed pool (min = max = 10), all idle",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 10,
      targetNodeCount: 10,
      idleNodeCount: 10,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 0,
    perWorker: 1,
    expected: 10,
  },
  {
    name: "fixed pool, idle, 3 of ours queued and not placed yet",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 10,
      targetNodeCount: 10,
      idleNodeCount: 10,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 3,
    perWorker: 1,
    expected: 7,
  },
  {
    name: "fixed pool, all busy",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 10,
      targetNodeCount: 10,
      idleNodeCount: 0,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 0,
    perWorker: 1,
    expected: 0,
  },
  {
    name: "autoscaling up: 2 running, resizing to 6 for our 4 queued",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 2,
      targetNodeCount: 6,
      idleNodeCount: 0,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 4,
    perWorker: 1,
    expected: 4,
  },
  {
    name: "autoscaling down: 2 running, 4 idle waiting out nodeIdleTimeBeforeScaleDown",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 6,
      targetNodeCount: 6,
      idleNodeCount: 4,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 0,
    perWorker: 1,
    expected: 8,
  },
  {
    name: "Resizing down: target 2 below current 6 (4 idle leaving)",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 6,
      targetNodeCount: 2,
      idleNodeCount: 4,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 0,
    perWorker: 1,
    expected: 8,
  },
  {
    name: "Resizing up, new nodes preparing for our 4 queued",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 4,
      targetNodeCount: 4,
      idleNodeCount: 0,
      preparingNodeCount: 4,
    },
    ourWaitingNodes: 4,
    perWorker: 1,
    expected: 6,
  },
  {
    name: "shared cluster: another experiment runs 5, 2 of ours queued",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 5,
      targetNodeCount: 5,
      idleNodeCount: 0,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 2,
    perWorker: 1,
    expected: 3,
  },
  {
    name: "shared cluster resizing for its 3 queued and our 2",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 5,
      targetNodeCount: 10,
      idleNodeCount: 0,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 2,
    perWorker: 1,
    expected: 0,
  },
  {
    name: "multi-node template (2 nodes a worker), empty cluster",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 0,
      targetNodeCount: 0,
      idleNodeCount: 0,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 0,
    perWorker: 2,
    expected: 5,
  },
  {
    name: "multi-node template, 2 of ours queued (4 nodes), resize under way",
    cluster: {
      maxNodeCount: 10,
      currentNodeCount: 0,
      targetNodeCount: 4,
      idleNodeCount: 0,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 4,
    perWorker: 2,
    expected: 3,
  },
  {
    name: "over-committed: 3 nodes busy, 2 of ours queued",
    cluster: {
      maxNodeCount: 3,
      currentNodeCount: 3,
      targetNodeCount: 3,
      idleNodeCount: 0,
      preparingNodeCount: 0,
    },
    ourWaitingNodes: 2,
    perWorker: 1,
    expected: -2,
  },
];

describe("AzureML capacity: what the cluster can still give our jobs", () => {
  for (const row of ROWS) {
    it(row.name, () => {
      expect(freeWorkers(row.cluster, row.ourWaitingNodes, row.perWorker)).toBe(row.expected);
    });
  }
});
