import type { BlobLeaseClient, BlockBlobClient } from "@azure/storage-blob";
import type * as storageBlobTypes from "@azure/storage-blob";
import { lazySdk } from "../azure/lazy-sdk.js";

const storageBlob = lazySdk<typeof storageBlobTypes>("@azure/storage-blob");
import type { Config } from "../config/load.js";
import { ConfigError } from "../config/load.js";
import { stateStorageConnectionString } from "../config/connection-strings.js";
import type { Logger } from "../logging/logger.js";
import type { WorkforceMetrics } from "../metrics/registry.js";
import { describeError } from "./snapshot.js";
import { FencedError, type WriteFence } from "../regions/fence.js";

export interface LeaderElection {
  /** True while this replica holds the lease by its own monotonic clock, less the safety margin. */
  isLeader(): boolean;
  /** Checked before every write: refuses it unless isLeader() is true at that very moment. */
  readonly fence: LeaseFence;
  /** Resolves once this replica is the leader (at once if it is), or when `signal` aborts. */
  whenLeader(signal?: AbortSignal): Promise<void>;
  /** Give the lease up so a standby takes over at once. */
  stop(): Promise<void>;
}

export interface LeaderOptions {
  logger: Logger;
  metrics?: WorkforceMetrics;
  /** Lease length, 15-60 s as Azure allows (default 15). */
  leaseSeconds?: number;
  /** How often the leader renews (default a third of the lease). */
  renewEveryMs?: number;
  /** How often a standby tries to acquire (default 1 s: it takes over within about that of the expiry). */
  standbyRetryMs?: number;
  /**
   * How much sooner than the lease's end the leader stops writing (default a fifth of the lease): room
   * for clock-rate differences with the Storage service and for a write sent just before the end.
   */
  safetyMarginMs?: number;
  /** The fence to drive (the daemon builds it first, so that the regions can check it). */
  fence?: LeaseFence;
  /** Blob name (default "leader"). */
  blobName?: string;
  /** Monotonic clock in ms (default performance.now; tests pass their own). */
  now?: () => number;
}

/** Azure blob leases last 15 to 60 seconds (or forever, which a leader election cannot use). */
export const LEASE_SECONDS = { min: 15, max: 60, default: 15 } as const;

/**
 * The fence of a lease holder: writes may go until `heldUntil` on this process's monotonic clock. The
 * lease is taken as starting when its acquire or renew request was *sent* (the service starts it later),
 * and ends `safetyMarginMs` before the lease would, so this replica stops writing before any standby can
 * acquire the lease. A paused process (SIGSTOP, a frozen VM) finds the time past on waking and writes
 * nothing until a renewal has succeeded.
 */
export class LeaseFence implements WriteFence {
  private heldUntil = -Infinity;
  private readonly watchers = new Set<() => void>();
  constructor(private readonly now: () => number = () => performance.now()) {}

  holds(): boolean {
    return this.now() < this.heldUntil;
  }

  /** The lease was granted or renewed by a request sent at `sentAt` (this clock); it may be used for `validMs`. */
  grant(sentAt: number, validMs: number): void {
    this.heldUntil = sentAt + validMs;
    this.changed();
  }

  revoke(): void {
    this.heldUntil = -Infinity;
    this.changed();
  }

  watch(onChange: () => void): () => void {
    // A function of its own per watch, so that the same callback watched twice is removed once each.
    const watcher = () => onChange();
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  private changed(): void {
    for (const watcher of [...this.watchers]) watcher();
  }

  /** Milliseconds of writing left (negative once fenced), for logs. */
  remainingMs(): number {
    return this.heldUntil - this.now();
  }

  check(write: string): void {
    if (this.holds()) return;
    throw new FencedError(
      write,
      Number.isFinite(this.heldUntil)
        ? `this replica's leader lease ran out ${Math.round(-this.remainingMs())} ms ago by its own clock and is not renewed yet`
        : "this replica does not hold the leader lease",
    );
  }
}

/** Where the daemon keeps its own state: the state connection string, or the queue's Storage account. */
export function stateConnectionString(config: Config): string {
  const candidate = stateStorageConnectionString(config);
  if (!candidate) {
    throw new ConfigError([
      {
        where: "WORKFORCE_STATE_CONNECTION_STRING",
        message:
          "leader election and the drain ledger need a Storage connection string (or a Storage queue connection string)",
      },
    ]);
  }
  return candidate;
}

/**
 * Leader election on an Azure blob lease, as Kubernetes controllers do with a Lease object: only the
 * holder reconciles, and only while its fence holds (see LeaseFence). The leader renews every third of
 * the lease; a standby tries every `standbyRetryMs`, so it takes over within the lease length plus about
 * that when the leader dies, and at once when the leader steps down.
 */
export async function startLeaderElection(config: Config, options: LeaderOptions): Promise<LeaderElection> {
  const leaseSeconds = options.leaseSeconds ?? LEASE_SECONDS.default;
  if (!(leaseSeconds >= LEASE_SECONDS.min && leaseSeconds <= LEASE_SECONDS.max)) {
    throw new ConfigError([
      {
        where: "WORKFORCE_LEADER_LEASE_SECONDS",
        message: `expected ${LEASE_SECONDS.min} to ${LEASE_SECONDS.max} seconds (what Azure blob leases allow); given ${leaseSeconds}`,
      },
    ]);
  }
  const leaseMs = leaseSeconds * 1000;
  const renewEveryMs = options.renewEveryMs ?? leaseMs / 3;
  const standbyRetryMs = options.standbyRetryMs ?? 1000;
  const marginMs = options.safetyMarginMs ?? leaseMs / 5;
  const now = options.now ?? (() => performance.now());
  const fence = options.fence ?? new LeaseFence(now);
  const log = options.logger.child({ component: "leader-election" });
  const service = storageBlob().BlobServiceClient.fromConnectionString(stateConnectionString(config));
  const container = service.getContainerClient(config.stateContainer);
  await container.createIfNotExists();
  const blob: BlockBlobClient = container.getBlockBlobClient(options.blobName ?? "leader");
  if (!(await blob.exists())) {
    await blob.upload("", 0).catch(() => undefined); // another replica may have created it
  }
  const lease: BlobLeaseClient = blob.getBlobLeaseClient();
  /** We hold the lease as far as the service is concerned (our last call on it succeeded). */
  let holding = false;
  let reported = false;
  let stopped = false;
  const waiters = new Set<() => void>();

  const report = () => {
    const value = fence.holds();
    if (value !== reported) log.info({ leader: value }, value ? "became the leader" : "no longer the leader");
    reported = value;
    options.metrics?.isLeader.set(value ? 1 : 0);
    if (value) for (const wake of waiters) wake();
  };

  const attempt = async () => {
    const sentAt = now();
    // A call that hangs past the lease is worthless: give it until the fence would end anyway.
    const abortSignal = AbortSignal.timeout(
      Math.max(1000, holding ? leaseMs - marginMs : standbyRetryMs * 5),
    );
    try {
      if (holding) await lease.renewLease({ abortSignal });
      else await lease.acquireLease(leaseSeconds, { abortSignal });
      holding = true;
      // An answer that comes in after stop() is the service's, not a licence to write: stop() gives it back.
      if (!stopped) fence.grant(sentAt, leaseMs - marginMs);
    } catch (error) {
      if (holding) log.warn({ error: describeError(error) }, "could not renew the leader lease");
      // A renewal that failed for a moment may still succeed next time; a 409 means someone else has it.
      // Either way the fence, not this flag, decides whether we write: it runs out on its own.
      if (statusCode(error) === 409) {
        holding = false;
        fence.revoke();
      } else if (!fence.holds()) {
        holding = false;
      }
    }
    report();
  };

  let timer: NodeJS.Timeout | undefined;
  /** The acquire or renewal on its way, which stop() waits for before it gives the lease up. */
  let inFlight: Promise<void> = Promise.resolve();
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(
      () => void (inFlight = attempt()).finally(schedule),
      holding ? Math.max(200, Math.min(renewEveryMs, fence.remainingMs() / 2)) : standbyRetryMs,
    );
    timer.unref();
  };

  /**
   * Stop writing at once; then, since a call in flight may still take or keep the lease at the service
   * (and one that timed out may have), wait for it and release whatever we may hold. Releasing a lease
   * another replica holds is refused (409) and changes nothing.
   */
  const giveUp = async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    fence.revoke();
    report();
    for (const wake of waiters) wake();
    await inFlight;
    holding = false;
    await lease
      .releaseLease({ abortSignal: AbortSignal.timeout(Math.max(1000, standbyRetryMs * 5)) })
      .catch(() => undefined);
  };
  let stopping: Promise<void> | undefined;

  await attempt();
  schedule();
  return {
    isLeader: () => fence.holds(),
    fence,
    whenLeader: (signal) =>
      new Promise<void>((resolve) => {
        if (fence.holds() || signal?.aborted) return resolve();
        const done = () => {
          waiters.delete(done);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        waiters.add(done);
        signal?.addEventListener("abort", done, { once: true });
      }),
    stop: () => (stopping ??= giveUp()),
  };
}

function statusCode(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === "number" ? status : undefined;
}
