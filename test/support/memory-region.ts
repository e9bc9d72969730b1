import type {
  CallOptions,
  CancelResult,
  DrainResult,
  HireResult,
  Region,
  RegionObservation,
} from "../../src/regions/types.js";

/**
 * A region kept in memory, for controller tests that are about the loop's rules rather than an adapter.
 * Faults on demand: fail or hang any operation.
 */
export class MemoryRegion implements Region {
  readonly kind = "memory";
  running = 0;
  pending = 0;
  draining = 0;
  calls: Array<{ operation: string; count?: number }> = [];
  fail: Partial<Record<"observe" | "hire" | "cancel" | "drain", Error>> = {};
  hang: Partial<Record<"observe" | "hire" | "cancel" | "drain", boolean>> = {};

  constructor(
    readonly name: string,
    public capacityLimit = 100,
    readonly weight = 1,
  ) {}

  private async gate(
    operation: "observe" | "hire" | "cancel" | "drain",
    options?: CallOptions,
  ): Promise<void> {
    if (this.hang[operation]) await new Promise(() => undefined); // never answers, ignores the signal
    if (this.fail[operation]) throw this.fail[operation];
    options?.signal?.throwIfAborted();
  }

  async observe(options?: CallOptions): Promise<RegionObservation> {
    this.calls.push({ operation: "observe" });
    await this.gate("observe", options);
    return {
      running: this.running,
      pending: this.pending,
      draining: this.draining,
      capacity: this.capacityLimit - this.running - this.pending - this.draining,
    };
  }

  async hire(count: number, options?: CallOptions): Promise<HireResult> {
    this.calls.push({ operation: "hire", count });
    await this.gate("hire", options);
    this.pending += count;
    return { hired: count, errors: [] };
  }

  async cancelPending(count: number, options?: CallOptions): Promise<CancelResult> {
    this.calls.push({ operation: "cancel", count });
    await this.gate("cancel", options);
    const cancelled = Math.min(count, this.pending);
    this.pending -= cancelled;
    return { cancelled, errors: [] };
  }

  async drain(count: number, options?: CallOptions): Promise<DrainResult> {
    this.calls.push({ operation: "drain", count });
    await this.gate("drain", options);
    const drained = Math.min(count, this.running);
    this.running -= drained;
    this.draining += drained;
    return { drained, errors: [] };
  }

  /** Pending workers start running (nodes came up). */
  start(count = this.pending): void {
    const started = Math.min(count, this.pending);
    this.pending -= started;
    this.running += started;
  }

  /** Draining workers finish their task and leave. */
  finishDraining(): void {
    this.draining = 0;
  }
}

/** A queue whose depth the test sets; `fail` makes reads throw. */
export class MemoryQueue {
  readonly description = "memory queue";
  depthValue = 0;
  fail?: Error;
  async depth(): Promise<number> {
    if (this.fail) throw this.fail;
    return this.depthValue;
  }
}
