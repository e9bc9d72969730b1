import type { RegionObservation } from "../regions/types.js";
import { EventHeap } from "./heap.js";
import type { Cluster, Task } from "./input.js";

/**
 * The world the simulated controller acts on, in simulated seconds. Rules (the model):
 * - a hired worker waits for a free node in its region, then starts after a delay drawn uniformly from the
 *   region's `startupSeconds`, then runs;
 * - each of its `concurrency` slots takes the next waiting task (first enqueued, first taken);
 * - with `workersExitWhenQueueEmpty` a slot that finds no task exits, and the worker ends with its last
 *   slot; otherwise an idle slot waits for the next task;
 * - a drained worker's slots finish their task and take no more; cancelling a worker that has no node
 *   costs nothing; only pending workers are ever cancelled;
 * - billing: node-seconds from a node's allocation to its worker's end.
 */
type WorkerState = "waiting-for-node" | "starting" | "running" | "draining" | "ended" | "cancelled";

interface Worker {
  id: number;
  region: number;
  state: WorkerState;
  nodeAt?: number;
  busy: number;
  /** Slots waiting for a task (only when workers do not exit on an empty queue). */
  idle: number;
}

type Event =
  | { time: number; kind: "start"; worker: Worker }
  | { time: number; kind: "finish"; worker: Worker }
  | { time: number; kind: "arrival" };

interface RegionState {
  name: string;
  nodes: number;
  startup: [number, number];
  freeNodes: number;
  waiting: Worker[];
  running: Set<Worker>;
  pending: Set<Worker>;
  draining: number;
}

export interface WorldTotals {
  tasksFinished: number;
  tasksInterrupted: number;
  lastFinishAt: number;
  nodeSeconds: number;
  busySlotSeconds: number;
  waitSecondsTotal: number;
  tasksStarted: number;
  hires: number;
  cancels: number;
  drains: number;
  maxActive: number;
}

export class World {
  readonly totals: WorldTotals = {
    tasksFinished: 0,
    tasksInterrupted: 0,
    lastFinishAt: 0,
    nodeSeconds: 0,
    busySlotSeconds: 0,
    waitSecondsTotal: 0,
    tasksStarted: 0,
    hires: 0,
    cancels: 0,
    drains: 0,
    maxActive: 0,
  };
  private readonly regions: RegionState[];
  private readonly events = new EventHeap<Event>();
  private readonly tasks: Task[];
  /** Tasks enqueued so far, and taken so far (tasks are in enqueue order). */
  private arrived = 0;
  private taken = 0;
  private inFlight = 0;
  private active = 0;
  private nextId = 0;
  private now = 0;
  /** Workers with idle slots, oldest first (only when workers wait on an empty queue). */
  private readonly idleWorkers = new Set<Worker>();

  constructor(
    private readonly cluster: Cluster,
    tasks: readonly Task[],
    private readonly random: () => number,
  ) {
    this.tasks = [...tasks].sort((a, b) => a.at - b.at);
    this.regions = cluster.regions.map((region) => ({
      name: region.name,
      nodes: region.nodes,
      startup: region.startupSeconds,
      freeNodes: region.nodes,
      waiting: [],
      running: new Set(),
      pending: new Set(),
      draining: 0,
    }));
    for (const task of this.tasks) if (task.at > 0) this.events.push({ time: task.at, kind: "arrival" });
    this.arrive();
  }

  get time(): number {
    return this.now;
  }

  get regionNames(): string[] {
    return this.regions.map((region) => region.name);
  }

  /** Everything done and nobody left to bill. */
  get finished(): boolean {
    return this.totals.tasksFinished === this.tasks.length && this.active === 0;
  }

  get taskCount(): number {
    return this.tasks.length;
  }

  /** What the daemon's queue probe reads: tasks waiting or in flight. */
  queueDepth(): number {
    return this.arrived - this.taken + this.inFlight;
  }

  observe(): Array<{ name: string; observation: RegionObservation }> {
    return this.regions.map((region) => ({
      name: region.name,
      observation: {
        running: region.running.size,
        pending: region.pending.size,
        draining: region.draining,
        // Each active worker holds or awaits a node.
        capacity: region.freeNodes - region.waiting.length,
      },
    }));
  }

  /** Run every event up to and including `time`. */
  advanceTo(time: number): void {
    for (let event = this.events.peek(); event && event.time <= time; event = this.events.peek()) {
      this.events.pop();
      this.now = event.time;
      if (event.kind === "start") this.start(event.worker);
      else if (event.kind === "finish") this.finishTask(event.worker);
      else this.arrive();
    }
    this.now = time;
  }

  hire(regionName: string, count: number): number {
    const region = this.regionNamed(regionName);
    for (let i = 0; i < count; i++) {
      const worker: Worker = {
        id: this.nextId++,
        region: this.regions.indexOf(region),
        state: "waiting-for-node",
        busy: 0,
        idle: 0,
      };
      region.pending.add(worker);
      this.active++;
      if (region.freeNodes > 0) this.allocate(region, worker);
      else region.waiting.push(worker);
    }
    this.totals.hires += count;
    this.totals.maxActive = Math.max(this.totals.maxActive, this.active);
    return count;
  }

  /** Cancel pending workers, the last hired first. Running workers are never touched. */
  cancelPending(regionName: string, count: number): number {
    const region = this.regionNamed(regionName);
    const newestFirst = [...region.pending].reverse();
    let cancelled = 0;
    for (const worker of newestFirst.slice(0, Math.max(0, count))) {
      region.pending.delete(worker);
      if (worker.state === "waiting-for-node") {
        region.waiting.splice(region.waiting.indexOf(worker), 1);
      } else {
        this.release(region, worker);
      }
      worker.state = "cancelled";
      this.active--;
      cancelled++;
    }
    this.totals.cancels += cancelled;
    return cancelled;
  }

  /** Ask `count` running workers (chosen at random, as a control message finds one) to finish and leave. */
  drain(regionName: string, count: number): number {
    const region = this.regionNamed(regionName);
    const candidates = [...region.running];
    let drained = 0;
    for (let i = 0; i < count && candidates.length > 0; i++) {
      const index = Math.floor(this.random() * candidates.length);
      const worker = candidates.splice(index, 1)[0]!;
      region.running.delete(worker);
      worker.state = "draining";
      region.draining++;
      worker.idle = 0;
      this.idleWorkers.delete(worker);
      if (worker.busy === 0) this.end(worker);
      drained++;
    }
    this.totals.drains += drained;
    return drained;
  }

  private regionNamed(name: string): RegionState {
    const region = this.regions.find((candidate) => candidate.name === name);
    if (!region) throw new Error(`no simulated region named ${name}`);
    return region;
  }

  private allocate(region: RegionState, worker: Worker): void {
    region.freeNodes--;
    worker.nodeAt = this.now;
    worker.state = "starting";
    const [low, high] = region.startup;
    this.events.push({ time: this.now + low + this.random() * (high - low), kind: "start", worker });
  }

  /** A worker gives its node back; the next waiting worker gets it. */
  private release(region: RegionState, worker: Worker): void {
    if (worker.nodeAt === undefined) return;
    this.totals.nodeSeconds += this.now - worker.nodeAt;
    worker.nodeAt = undefined;
    region.freeNodes++;
    const next = region.waiting.shift();
    if (next) this.allocate(region, next);
  }

  private start(worker: Worker): void {
    if (worker.state !== "starting") return; // cancelled meanwhile
    const region = this.regions[worker.region]!;
    region.pending.delete(worker);
    region.running.add(worker);
    worker.state = "running";
    for (let slot = 0; slot < this.cluster.concurrency; slot++) this.fillSlot(worker);
    if (worker.busy === 0 && worker.idle === 0) this.end(worker);
  }

  /** A free slot takes the next task, or exits, or waits. */
  private fillSlot(worker: Worker): void {
    if (worker.state === "running" && this.taken < this.arrived) {
      const task = this.tasks[this.taken++]!;
      worker.busy++;
      this.inFlight++;
      this.totals.tasksStarted++;
      this.totals.waitSecondsTotal += this.now - task.at;
      this.totals.busySlotSeconds += task.seconds;
      this.events.push({ time: this.now + task.seconds, kind: "finish", worker });
    } else if (worker.state === "running" && !this.cluster.workersExitWhenQueueEmpty) {
      worker.idle++;
      this.idleWorkers.add(worker);
    }
  }

  private finishTask(worker: Worker): void {
    worker.busy--;
    this.inFlight--;
    this.totals.tasksFinished++;
    this.totals.lastFinishAt = this.now;
    this.fillSlot(worker);
    if (worker.busy === 0 && worker.idle === 0) this.end(worker);
  }

  private arrive(): void {
    while (this.arrived < this.tasks.length && this.tasks[this.arrived]!.at <= this.now) this.arrived++;
    for (const worker of this.idleWorkers) {
      while (worker.idle > 0 && this.taken < this.arrived) {
        worker.idle--;
        this.fillSlot(worker);
      }
      if (worker.idle === 0) this.idleWorkers.delete(worker);
      if (this.taken >= this.arrived) break;
    }
  }

  private end(worker: Worker): void {
    const region = this.regions[worker.region]!;
    if (worker.state === "draining") region.draining--;
    region.running.delete(worker);
    this.idleWorkers.delete(worker);
    worker.state = "ended";
    this.active--;
    this.release(region, worker);
  }
}
