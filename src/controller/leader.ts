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

export interface LeaderElection {
  isLeader(): boolean;
  /** Give the lease up so a standby takes over at once. */
  stop(): Promise<void>;
}

export interface LeaderOptions {
  logger: Logger;
  metrics?: WorkforceMetrics;
  /** Lease length, 15-60 s as Azure allows (default 30). */
  leaseSeconds?: number;
  /** How often to renew or try to acquire (default a third of the lease). */
  renewEveryMs?: number;
  /** Blob name (default "leader"). */
  blobName?: string;
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
 * holder reconciles; a standby takes over within one lease length when the leader dies.
 */
export async function startLeaderElection(config: Config, options: LeaderOptions): Promise<LeaderElection> {
  const leaseSeconds = options.leaseSeconds ?? 30;
  const renewEveryMs = options.renewEveryMs ?? (leaseSeconds * 1000) / 3;
  const log = options.logger.child({ component: "leader-election" });
  const service = storageBlob().BlobServiceClient.fromConnectionString(stateConnectionString(config));
  const container = service.getContainerClient(config.stateContainer);
  await container.createIfNotExists();
  const blob: BlockBlobClient = container.getBlockBlobClient(options.blobName ?? "leader");
  if (!(await blob.exists())) {
    await blob.upload("", 0).catch(() => undefined); // another replica may have created it
  }
  const lease: BlobLeaseClient = blob.getBlobLeaseClient();
  let leader = false;

  const setLeader = (value: boolean) => {
    if (value !== leader) log.info({ leader: value }, value ? "became the leader" : "no longer the leader");
    leader = value;
    options.metrics?.isLeader.set(value ? 1 : 0);
  };

  const attempt = async () => {
    try {
      if (leader) await lease.renewLease();
      else await lease.acquireLease(leaseSeconds);
      setLeader(true);
    } catch (error) {
      if (leader) log.warn({ error: describeError(error) }, "lost the leader lease");
      setLeader(false);
    }
  };

  await attempt();
  const timer = setInterval(() => void attempt(), renewEveryMs);
  timer.unref();
  return {
    isLeader: () => leader,
    stop: async () => {
      clearInterval(timer);
      if (leader) await lease.releaseLease().catch(() => undefined);
      setLeader(false);
    },
  };
}
