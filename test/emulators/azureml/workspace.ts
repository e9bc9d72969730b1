import { ClusterNodes, type Cluster, type ClusterOptions } from "./cluster.js";

/**
 * The virtual AzureML workspace behind the ARM emulator: jobs, compute clusters and a scheduler that moves
 * jobs the way the service does: NotStarted -> Preparing (the image, no node yet) -> Queued (waiting for
 * nodes) -> Running (on `resources.instanceCount` nodes) -> Finalizing -> Completed, each step after its
 * time. Nodes come and go as `cluster.ts` says (minNodeCount, idle time before scale-down, resizes).
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

export type { Cluster } from "./cluster.js";

export const TERMINAL: ReadonlySet<string> = new Set(["Completed", "Failed", "Canceled"]);
/** States in which a job holds its nodes. */
const ON_NODE: ReadonlySet<string> = new Set(["Running", "Finalizing", "NotResponding"]);

export interface StoredJob {
  name: string;
  /** The `properties` of the job as stored: what was PUT plus what the service adds (jobs.ts). */
  properties: Record<string, unknown>;
  status: JobStatus;
  createdAt: Date;
  lastModifiedAt: Date;
  /** Order of creation (ties in createdAt). */
  seq: number;
  /** ms timestamp at which the current state ends on its own. */
  stateEndsAt?: number;
  /** How long the job runs once Running (undefined: until told). */
  durationMs?: number;
  /**
   * The exit code its command ends with after `durationMs` (default 0): non-zero ends as Failed. AzureML
   * moves a job whose process exited to Finalizing (outputs and logs uploaded), then Completed or Failed;
   * the ARM resource says no more than that (no exit code, no error, no start or end time).
   */
  exitCode?: number;
  /** Cluster (compute name) the job runs on. */
  compute?: string;
  /** Nodes it holds now (0 while it waits). */
  nodesHeld: number;
  /** The state the job was in when a cancel was requested (a fault drill checks no Running job is cancelled). */
  cancelledFrom?: JobStatus;
}

export interface SchedulerTiming {
  /** NotStarted -> Preparing (default 0: the same scheduler step). */
  startMs: number;
  /** Time a job spends Preparing (its image) before it queues for nodes (default 0). */
  prepareMs: number;
  /** Time from CancelRequested to Canceled. */
  cancelMs: number;
  /** Time spent Finalizing (on its nodes) after running (default 0). */
  finalizeMs: number;
  /** Default run time of a job once Running (undefined: until finished by the test). */
  runMs?: number;
}

/** Nodes a job asks for: `resources.instanceCount` (default 1). */
export function nodesOf(properties: Record<string, unknown>): number {
  const count = (properties.resources as { instanceCount?: unknown } | undefined)?.instanceCount;
  return typeof count === "number" && Number.isInteger(count) && count >= 1 ? count : 1;
}

export class VirtualWorkspace {
  readonly jobs = new Map<string, StoredJob>();
  readonly clusters = new Map<string, ClusterNodes>();
  readonly environments = new Map<string, Record<string, unknown>>();
  private seq = 0;
  /** The workspace's Azure region, as ARM's workspace GET gives it (the ml.azure.com paths carry it). */
  location = "eastus";
  /** Called when a job enters Running (the e2e test starts consuming tasks for it). */
  onRunning?: (job: StoredJob) => void;
  /** What the service adds to every job it creates (set by the server: jobs.ts `decorate`). */
  decorate?: (name: string, properties: Record<string, unknown>) => Record<string, unknown>;

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

  addCluster(name: string, maxNodeCount: number, options: ClusterOptions = {}): Cluster {
    const nodes = new ClusterNodes(name, maxNodeCount, options, this.now);
    this.clusters.set(name.toLowerCase(), nodes);
    return nodes.cluster;
  }

  cluster(name: string): ClusterNodes | undefined {
    return this.clusters.get(name.toLowerCase());
  }

  createJob(
    name: string,
    properties: Record<string, unknown>,
    durationMs?: number,
    exitCode?: number,
  ): StoredJob {
    const computeId = typeof properties.computeId === "string" ? properties.computeId : undefined;
    const at = new Date(this.now());
    const job: StoredJob = {
      name,
      properties: this.decorate ? this.decorate(name, properties) : properties,
      status: "NotStarted",
      createdAt: at,
      lastModifiedAt: at,
      seq: this.seq++,
      stateEndsAt: this.now() + this.timing.startMs,
      nodesHeld: 0,
      ...(durationMs !== undefined || this.timing.runMs !== undefined
        ? { durationMs: durationMs ?? this.timing.runMs }
        : {}),
      ...(computeId ? { compute: computeId.split("/").pop()! } : {}),
      ...(exitCode ? { exitCode } : {}),
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
      job.stateEndsAt = undefined;
    }
  }

  /** Force a status (tests); a job that leaves its nodes gives them back. */
  setStatus(name: string, status: JobStatus): void {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`no job ${name} in workspace ${this.name}`);
    if (ON_NODE.has(status) && job.nodesHeld === 0) this.take(job);
    if (!ON_NODE.has(status) && status !== "CancelRequested") this.release(job);
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
    job.cancelledFrom = job.status;
    job.status = "CancelRequested";
    job.stateEndsAt = this.now() + this.timing.cancelMs;
  }

  byStatus(status: JobStatus): StoredJob[] {
    return [...this.jobs.values()].filter((job) => job.status === status);
  }

  private take(job: StoredJob): boolean {
    const cluster = this.cluster(job.compute ?? "");
    const want = nodesOf(job.properties);
    if (!cluster || !cluster.assign(want)) return false;
    job.nodesHeld = want;
    return true;
  }

  private release(job: StoredJob): void {
    if (job.nodesHeld === 0) return;
    this.cluster(job.compute ?? "")?.free(job.nodesHeld);
    job.nodesHeld = 0;
  }

  private run(job: StoredJob, now: number): void {
    job.status = "Running";
    job.stateEndsAt = job.durationMs !== undefined ? now + job.durationMs : undefined;
    this.onRunning?.(job);
  }

  /** Advance every job whose time has come; start queued jobs on free nodes, oldest first. */
  schedule(): void {
    const now = this.now();
    // Timed steps, repeated while a zero-length step leads into the next one.
    for (const job of this.jobs.values()) {
      for (let guard = 0; guard < 6 && job.stateEndsAt !== undefined && job.stateEndsAt <= now; guard++) {
        switch (job.status) {
          case "NotStarted":
            job.status = "Preparing";
            job.stateEndsAt = job.stateEndsAt + this.timing.prepareMs;
            break;
          case "Preparing":
            job.status = "Queued";
            job.stateEndsAt = undefined;
            break;
          case "Running":
            job.status = "Finalizing";
            job.stateEndsAt = job.stateEndsAt + this.timing.finalizeMs;
            break;
          case "Finalizing":
            job.status = job.exitCode ? "Failed" : "Completed";
            job.stateEndsAt = undefined;
            this.release(job);
            break;
          case "CancelRequested":
            job.status = "Canceled";
            job.stateEndsAt = undefined;
            this.release(job);
            break;
          default:
            job.stateEndsAt = undefined;
        }
      }
    }
    for (const cluster of this.clusters.values()) cluster.tick();
    const queued = [...this.jobs.values()]
      .filter((job) => job.status === "Queued")
      .sort((a, b) => a.seq - b.seq);
    const waiting = new Map<ClusterNodes, number>();
    for (const job of queued) {
      if (this.take(job)) {
        this.run(job, now);
        continue;
      }
      const cluster = this.cluster(job.compute ?? "");
      if (cluster) waiting.set(cluster, (waiting.get(cluster) ?? 0) + nodesOf(job.properties));
    }
    // Clusters grow for the nodes their queued jobs still wait for; with no allocation time the new nodes
    // are there at once and the jobs start in this same step.
    let grewAtOnce = false;
    for (const [cluster, demand] of waiting) if (cluster.request(demand)) grewAtOnce = true;
    for (const cluster of this.clusters.values()) if (!waiting.has(cluster)) cluster.request(0);
    if (grewAtOnce) {
      for (const job of queued) if (job.status === "Queued" && this.take(job)) this.run(job, now);
    }
  }
}
