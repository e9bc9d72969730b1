import type { TokenCredential } from "@azure/core-auth";
import type { ContainerClient, StoragePipelineOptions, BlobServiceClient } from "@azure/storage-blob";
import type * as storageBlobTypes from "@azure/storage-blob";
import { lazySdk } from "../azure/lazy-sdk.js";

const storageBlob = lazySdk<typeof storageBlobTypes>("@azure/storage-blob");
import { z } from "zod";
import type { CallOptions } from "../regions/types.js";
import { fencedSignal, type WriteFence } from "../regions/fence.js";
import type { DrainLedger } from "./ledger.js";

/**
 * Where drain ledgers live between daemon runs: one JSON document per region, written with optimistic
 * concurrency (a save names the version it read; someone else's write in between is a conflict).
 */
export interface LedgerStore {
  /** The region's ledger and its version; a missing ledger is empty with version undefined. */
  load(region: string, options?: CallOptions): Promise<{ ledger: DrainLedger; version: string | undefined }>;
  /**
   * Write the ledger if it is still at `expectedVersion` (undefined: only if none exists yet). Returns the new
   * version; throws LedgerConflictError when someone else wrote in between.
   */
  save(
    region: string,
    ledger: DrainLedger,
    expectedVersion: string | undefined,
    options?: CallOptions,
  ): Promise<string>;
  /** Where it keeps ledgers, for logs (no secrets). */
  readonly description: string;
}

export class LedgerConflictError extends Error {
  readonly code = "LedgerConflict";
  constructor(region: string) {
    super(`drain ledger of region "${region}" was changed by someone else since it was read`);
    this.name = "LedgerConflictError";
  }
}

export class LedgerFormatError extends Error {
  readonly code = "LedgerFormat";
  constructor(where: string, detail: string) {
    super(`drain ledger ${where} is not a valid ledger (${detail}); fix or delete it`);
    this.name = "LedgerFormatError";
  }
}

/** The stored form: ISO times so that an operator can read it. */
const storedLedgerSchema = z.object({
  version: z.literal(1),
  base: z.array(z.string()),
  entries: z.array(
    z.object({
      id: z.string().min(1),
      at: z.iso.datetime(),
      expiresAt: z.iso.datetime(),
      count: z.number().int().min(0),
    }),
  ),
});

export function serializeLedger(ledger: DrainLedger): string {
  return JSON.stringify({
    version: 1,
    base: ledger.base,
    entries: ledger.entries.map((entry) => ({
      id: entry.id,
      at: new Date(entry.at).toISOString(),
      expiresAt: new Date(entry.expiresAt).toISOString(),
      count: entry.count,
    })),
  });
}

export function parseLedger(text: string, where: string): DrainLedger {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new LedgerFormatError(where, `not JSON: ${(error as Error).message}`);
  }
  const result = storedLedgerSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue?.path.map(String).join(".") || "(root)";
    throw new LedgerFormatError(where, `${path}: ${issue?.message ?? "invalid"}`);
  }
  return {
    base: result.data.base,
    entries: result.data.entries.map((entry) => ({
      id: entry.id,
      at: Date.parse(entry.at),
      expiresAt: Date.parse(entry.expiresAt),
      count: entry.count,
    })),
  };
}

/**
 * Ledgers in this process only: a restarted daemon forgets drains in flight and may ask again. For tests,
 * dry runs and setups without a Storage account (the daemon warns when it falls back to it).
 */
export function createMemoryLedgerStore(): LedgerStore {
  const documents = new Map<string, { text: string; version: number }>();
  return {
    description: "memory (not kept across restarts)",
    async load(region, options) {
      options?.signal?.throwIfAborted();
      const document = documents.get(region);
      if (!document) return { ledger: { base: [], entries: [] }, version: undefined };
      return {
        ledger: parseLedger(document.text, `of region "${region}" (memory)`),
        version: String(document.version),
      };
    },
    async save(region, ledger, expectedVersion, options) {
      options?.signal?.throwIfAborted();
      const current = documents.get(region);
      if ((current === undefined ? undefined : String(current.version)) !== expectedVersion) {
        throw new LedgerConflictError(region);
      }
      const version = (current?.version ?? 0) + 1;
      documents.set(region, { text: serializeLedger(ledger), version });
      return String(version);
    },
  };
}

export interface BlobLedgerStoreOptions {
  /** A Storage connection string (secret), or accountUrl + credential. */
  connectionString?: string;
  /** e.g. https://ACCOUNT.blob.core.windows.net (Azure AD: needs Storage Blob Data Contributor). */
  accountUrl?: string;
  credential?: TokenCredential;
  /** Container for the daemon's state (created when missing). */
  container: string;
  /** Folder inside the container (default "drain-ledger"). */
  prefix?: string;
  /** Extra CA certificates (PEM) for HTTPS endpoints: emulators, private clouds. */
  tlsCa?: string;
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number })?.statusCode;
}

/**
 * Ledgers as JSON blobs `{prefix}/{region}.json`, ETag-guarded: a save with a stale ETag fails with 412 and
 * becomes a LedgerConflictError, so two writers never silently lose each other's drains.
 */
export function createBlobLedgerStore(options: BlobLedgerStoreOptions): LedgerStore {
  const prefix = (options.prefix ?? "drain-ledger").replace(/\/+$/, "");
  const pipeline: StoragePipelineOptions = {
    retryOptions: { maxTries: 3, retryDelayInMs: 500, maxRetryDelayInMs: 4000 },
    ...(options.tlsCa ? { tlsOptions: { ca: options.tlsCa } } : {}),
  };
  let service: BlobServiceClient;
  if (options.connectionString) {
    service = storageBlob().BlobServiceClient.fromConnectionString(options.connectionString, pipeline);
  } else if (options.accountUrl && options.credential) {
    service = new (storageBlob().BlobServiceClient)(options.accountUrl, options.credential, pipeline);
  } else {
    throw new Error("blob ledger store: give connectionString, or accountUrl and credential");
  }
  const container: ContainerClient = service.getContainerClient(options.container);
  let containerReady: Promise<void> | undefined;
  const blobName = (region: string) => `${prefix}/${region}.json`;
  const where = (region: string) => `${options.container}/${blobName(region)}`;

  async function ensureContainer(signal?: AbortSignal): Promise<void> {
    containerReady ??= container
      .createIfNotExists({ abortSignal: signal })
      .then(() => undefined)
      .catch((error: unknown) => {
        containerReady = undefined;
        throw error;
      });
    return containerReady;
  }

  return {
    description: `blob container "${options.container}" (${service.url.replace(/\?.*$/, "")})`,
    async load(region, callOptions) {
      const blob = container.getBlockBlobClient(blobName(region));
      try {
        const response = await blob.download(0, undefined, { abortSignal: callOptions?.signal });
        const text = await streamToString(response.readableStreamBody);
        return { ledger: parseLedger(text, `blob ${where(region)}`), version: response.etag };
      } catch (error) {
        // No blob (or no container yet): nothing was ever drained here.
        if (statusOf(error) === 404) return { ledger: { base: [], entries: [] }, version: undefined };
        throw error;
      }
    },
    async save(region, ledger, expectedVersion, callOptions) {
      await ensureContainer(callOptions?.signal);
      const blob = container.getBlockBlobClient(blobName(region));
      const body = serializeLedger(ledger);
      try {
        const response = await blob.upload(body, Buffer.byteLength(body), {
          abortSignal: callOptions?.signal,
          blobHTTPHeaders: { blobContentType: "application/json" },
          conditions: expectedVersion === undefined ? { ifNoneMatch: "*" } : { ifMatch: expectedVersion },
        });
        if (!response.etag) throw new Error(`blob ${where(region)}: upload returned no ETag`);
        return response.etag;
      } catch (error) {
        const status = statusOf(error);
        // 412: the ETag moved; 409: a blob appeared where we expected none.
        if (status === 412 || status === 409) throw new LedgerConflictError(region);
        throw error;
      }
    },
  };
}

async function streamToString(stream: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stream) return "";
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A store whose every save is checked against the fence first: a fenced replica changes no ledger. The
 * Storage SDK retries an upload by itself: the save is cut off when the lease runs out unrenewed, so no
 * retry goes out fenced (the write may have gone all the same: the caller treats it as failed).
 */
export function fencedLedgerStore(store: LedgerStore, fence: WriteFence): LedgerStore {
  return {
    ...store,
    load: (region, options) => store.load(region, options),
    save: async (region, ledger, expectedVersion, options) => {
      const write = `drain ledger write for region ${region}`;
      fence.check(write);
      const guard = fencedSignal(fence, `${write} (a retry)`, options?.signal);
      try {
        return await store.save(region, ledger, expectedVersion, {
          ...options,
          ...(guard.signal ? { signal: guard.signal } : {}),
        });
      } catch (error) {
        const fenced = guard.fenced();
        if (fenced)
          throw new Error(`${write} cut off, it may have gone: ${fenced.message}`, { cause: error });
        throw error;
      } finally {
        guard.done();
      }
    },
  };
}

/** Conflicting ledger writes (another replica) are re-read and retried this many times. */
const LEDGER_ATTEMPTS = 3;

/**
 * Read the region's ledger, change it, and write it back if still at the version read; a conflict (another
 * writer in between) is re-read and retried. `change` returns only a result when there is nothing to write.
 */
export async function withLedger<T>(
  store: LedgerStore,
  region: string,
  options: CallOptions | undefined,
  change: (ledger: DrainLedger) => { next: DrainLedger; result: T } | { result: T },
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    const { ledger, version } = await store.load(region, options);
    const outcome = change(ledger);
    if (!("next" in outcome)) return outcome.result;
    try {
      await store.save(region, outcome.next, version, options);
      return outcome.result;
    } catch (error) {
      if (!(error instanceof LedgerConflictError) || attempt >= LEDGER_ATTEMPTS) throw error;
    }
  }
}
