/**
 * The virtual AzureML workspace behind the ARM emulator: jobs, one or more compute clusters, and a scheduler
 * that moves jobs Queued -> Preparing -> Running when a node of their cluster is free (one job per node),
 * then to Completed when told or after their duration.
 */

export type JobStatus =
  | "NotStarted"
  | "Starting"
  | "Provisioning"
  | "Preparing"
  | "Queued"
  | "Running"
  | "Finalizing"
  | "CancelRequested"
  | "Completed"
  | "Failed"
  | "Canceled"
  | "NotResponding"
  | "Paused"
  | "Unknown"
  | "Waiting";

export const TERMINAL: ReadonlySet<string> = new Set(["Completed", "Failed", "Canceled"]);
/** States that hold a node of the cluster. */
const ON_NODE: ReadonlySet<string> = new Set([
  "Preparing",
  "Starting",
  "Running",
  "Finalizing",
  "NotResponding",
]);

export interface StoredJob {
  name: string;
  /** The `properties` of the job as PUT, plus server-side fields. */
  properties: Record<string, unknown>;
  status: JobStatus;
  createdAt: Date;
  /** Order of creation (ties in createdAt). */
  seq: number;
  /** ms timestamp at which the current state ends on its own (Preparing -> Running, Running -> Completed). */
  stateEndsAt?: number;
  /** How long the job runs once Running (undefined: until told). */
  durationMs?: number;
  /** Cluster (compute name) the job runs on. */
  compute?: string;
  /** It got a node (a cancel then frees the node only once Canceled). */
  hadNode?: boolean;
}

export interface Cluster {
  name: string;
  maxNodeCount: number;
  minNodeCount: number;
  vmSize: string;
}

export interface SchedulerTiming {
  /** Time a job spends Preparing before Running (default 0: next scheduler step). */
  prepareMs: number;
  /** Time from CancelRequested to Canceled. */
  cancelMs: number;
  /** Default run time of a job once Running (undefined: until finished by the test). */
  runMs?: number;
}

export class VirtualWorkspace {
  readonly jobs = new Map<string, StoredJob>();
  readonly clusters = new Map<string, Cluster>();
  readonly environments = new Map<string, Record<string, unknown>>();
  private seq = 0;
  /** The workspace's Azure region, as ARM's workspace GET gives it (the ml.azure.com paths carry it). */
  location = "eastus";
  /** Called when a job enters Running (the e2e test starts consuming tasks for it). */
  onRunning?: (job: StoredJob) => void;

  constructor(
    readonly subscription: string,
    readonly resourceGroup: string,
    readonly name: string,
    readonly timing: SchedulerTiming,
    private readonly now: () => number = Date.now,
  ) {}

  get armId(): string {
    return `/subscriptions/${this.subscription}/resourceGroups/${this.resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${this.name}`;
  }

  addCluster(
    name: string,
    maxNodeCount: number,
    options: Partial<Omit<Cluster, "name" | "maxNodeCount">> = {},
  ): Cluster {
    const cluster: Cluster = {
      name,
      maxNodeCount,
      minNodeCount: options.minNodeCount ?? 0,
      vmSize: options.vmSize ?? "STANDARD_D2_V2",
    };
    this.clusters.set(name.toLowerCase(), cluster);
    return cluster;
  }

  cluster(name: string): Cluster | undefined {
    return this.clusters.get(name.toLowerCase());
  }

  createJob(name: string, properties: Record<string, unknown>, durationMs?: number): StoredJob {
    const computeId = typeof properties.computeId === "string" ? properties.computeId : undefined;
    const job: StoredJob = {
      name,
      properties,
      status: "Queued",
      createdAt: new Date(this.now()),
      seq: this.seq++,
      ...(durationMs !== undefined || this.timing.runMs !== undefined
        ? { durationMs: durationMs ?? this.timing.runMs }
        : {}),
      ...(computeId ? { compute: computeId.split("/").pop()! } : {}),
    };
    this.jobs.set(name, job);
    return job;
  }

  /** Put many finished jobs in place at once (the "10,000 finished jobs" scenarios). */
  seedFinished(count: number, properties: (index: number) => Record<string, unknown>, prefix = "old"): void {
    for (let i = 0; i < count; i++) {
      const name = `${prefix}-${i.toString(36).padStart(6, "0")}`;
      const job = this.createJob(name, properties(i));
      job.status = "Completed";
    }
  }

  setStatus(name: string, status: JobStatus): void {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`no job ${name} in workspace ${this.name}`);
    job.status = status;
    job.stateEndsAt = undefined;
  }

  /** End a running job (its worker exited). */
  finish(name: string, status: "Completed" | "Failed" = "Completed"): void {
    this.setStatus(name, status);
    this.schedule();
  }

  requestCancel(job: StoredJob): void {
    if (TERMINAL.has(job.status) || job.status === "CancelRequested") return;
    job.status = "CancelRequested";
    job.stateEndsAt = this.now() + this.timing.cancelMs;
  }

  nodesInUse(cluster: string): number {
    let used = 0;
    for (const job of this.jobs.values()) {
      if (job.compute?.toLowerCase() !== cluster.toLowerCase()) continue;
      // A cancelled job that had a node keeps it until it is Canceled.
      if (ON_NODE.has(job.status) || (job.status === "CancelRequested" && job.hadNode)) used++;
    }
    return used;
  }

  byStatus(status: JobStatus): StoredJob[] {
    return [...this.jobs.values()].filter((job) => job.status === status);
  }

  /** Advance every job whose time has come; start queued jobs on free nodes, oldest first. */
  schedule(): void {
    const now = this.now();
    for (const job of this.jobs.values()) {
      if (job.stateEndsAt === undefined || job.stateEndsAt > now) continue;
      if (job.status === "Preparing") {
        job.status = "Running";
        job.stateEndsAt = job.durationMs !== undefined ? now + job.durationMs : undefined;
        this.onRunning?.(job);
      } else if (job.status === "Running") {
        job.status = "Completed";
        job.stateEndsAt = undefined;
      } else if (job.status === "CancelRequested") {
        job.status = "Canceled";
        job.stateEndsAt = undefined;
      }
    }
    const queued = [...this.jobs.values()]
      .filter((job) => job.status === "Queued")
      .sort((a, b) => a.seq - b.seq);
    const free = new Map<string, number>();
    for (const job of queued) {
      const clusterName = job.compute ?? "";
      const cluster = this.cluster(clusterName);
      if (!cluster) continue;
      const key = cluster.name.toLowerCase();
      if (!free.has(key)) free.set(key, cluster.maxNodeCount - this.nodesInUse(cluster.name));
      const left = free.get(key)!;
      if (left <= 0) continue;
      free.set(key, left - 1);
      job.status = "Preparing";
      job.hadNode = true;
      job.stateEndsAt = now + this.timing.prepareMs;
      if (this.timing.prepareMs === 0) {
        job.status = "Running";
        job.stateEndsAt = job.durationMs !== undefined ? now + job.durationMs : undefined;
        this.onRunning?.(job);
      }
    }
  }
}
