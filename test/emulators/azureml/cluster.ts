/**
 * The nodes of an AmlCompute cluster, as the service keeps them: `minNodeCount` nodes always there (idle
 * when unused), new nodes allocated for queued jobs (the cluster is `Resizing` while they come), and
 * nodes left idle by a finished job kept for `nodeIdleTimeBeforeScaleDown` before they go. The compute
 * GET reports `currentNodeCount`, `targetNodeCount` and `nodeStateCounts` from this state, consistently.
 */

export interface Cluster {
  name: string;
  maxNodeCount: number;
  minNodeCount: number;
  vmSize: string;
  vmPriority: "Dedicated" | "LowPriority";
  /** nodeIdleTimeBeforeScaleDown, in ms (the service's default: 120 s). */
  idleTimeMs: number;
  /** Time to allocate a new node (default 0: at once, the cluster never shows Resizing). */
  allocateMs: number;
}

export type ClusterOptions = Partial<Omit<Cluster, "name" | "maxNodeCount">>;

export interface NodeCounts {
  currentNodeCount: number;
  targetNodeCount: number;
  allocationState: "Steady" | "Resizing";
  nodeStateCounts: {
    idleNodeCount: number;
    runningNodeCount: number;
    preparingNodeCount: number;
    unusableNodeCount: number;
    leavingNodeCount: number;
    preemptedNodeCount: number;
  };
}

export class ClusterNodes {
  readonly cluster: Cluster;
  /** Idle nodes: when each became idle. */
  private idle: number[] = [];
  private busy = 0;
  /** Nodes being allocated: when each will be ready. */
  private booting: number[] = [];

  constructor(
    name: string,
    maxNodeCount: number,
    options: ClusterOptions,
    private readonly now: () => number,
  ) {
    this.cluster = {
      name,
      maxNodeCount,
      minNodeCount: options.minNodeCount ?? 0,
      vmSize: options.vmSize ?? "STANDARD_D2_V2",
      vmPriority: options.vmPriority ?? "Dedicated",
      idleTimeMs: options.idleTimeMs ?? 120_000,
      allocateMs: options.allocateMs ?? 0,
    };
    const at = now();
    for (let i = 0; i < Math.min(this.cluster.minNodeCount, maxNodeCount); i++) this.idle.push(at);
  }

  get name(): string {
    return this.cluster.name;
  }

  private get allocated(): number {
    return this.idle.length + this.busy;
  }

  /** Give `count` idle nodes to a job, all or none. */
  assign(count: number): boolean {
    if (this.idle.length < count) return false;
    // The most recently idle nodes first: the oldest idle ones are the next to leave.
    this.idle.splice(this.idle.length - count, count);
    this.busy += count;
    return true;
  }

  /** A job gave back `count` nodes: they stay idle until the idle time is over. */
  free(count: number): void {
    const taken = Math.min(count, this.busy);
    this.busy -= taken;
    const at = this.now();
    for (let i = 0; i < taken; i++) this.idle.push(at);
  }

  /**
   * Queued jobs wait for `demand` nodes: allocate what is not already coming, up to maxNodeCount. True when
   * new nodes are there at once (no allocation time).
   */
  request(demand: number): boolean {
    const room = this.cluster.maxNodeCount - this.allocated - this.booting.length;
    const add = Math.max(0, Math.min(demand - this.booting.length, room));
    if (add === 0) return false;
    const at = this.now();
    if (this.cluster.allocateMs <= 0) {
      for (let i = 0; i < add; i++) this.idle.push(at);
      return true;
    }
    for (let i = 0; i < add; i++) this.booting.push(at + this.cluster.allocateMs);
    return false;
  }

  /** Nodes arrive when allocated; idle nodes above minNodeCount leave once their idle time is over. */
  tick(): void {
    const now = this.now();
    const ready = this.booting.filter((at) => at <= now).length;
    if (ready > 0) {
      this.booting = this.booting.filter((at) => at > now);
      for (let i = 0; i < ready; i++) this.idle.push(now);
    }
    this.idle.sort((a, b) => a - b);
    while (
      this.idle.length > 0 &&
      this.allocated > this.cluster.minNodeCount &&
      this.idle[0]! + this.cluster.idleTimeMs <= now
    ) {
      this.idle.shift();
    }
  }

  counts(): NodeCounts {
    const current = this.allocated;
    return {
      currentNodeCount: current,
      targetNodeCount: current + this.booting.length,
      allocationState: this.booting.length > 0 ? "Resizing" : "Steady",
      nodeStateCounts: {
        idleNodeCount: this.idle.length,
        runningNodeCount: this.busy,
        preparingNodeCount: 0,
        unusableNodeCount: 0,
        leavingNodeCount: 0,
        preemptedNodeCount: 0,
      },
    };
  }
}
