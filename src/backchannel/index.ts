import type { ExpiredDrain } from "../regions/types.js";
import { stateStorageConnectionString } from "../config/connection-strings.js";
import { LazyCredential } from "../azure/credentials.js";
import { randomUUID } from "node:crypto";
import type { TokenCredential } from "@azure/core-auth";
import type { Logger } from "../logging/logger.js";
import type { Settings } from "../config/settings.js";
import type { DrainResult } from "../regions/types.js";
import type { BackChannelConfig } from "./config.js";
import type { DrainChannel } from "./types.js";
import { FencedError, type WriteFence } from "../regions/fence.js";
import { evaluateLedger, recordDrain, settleDrain } from "./ledger.js";
import {
  createBlobLedgerStore,
  createMemoryLedgerStore,
  fencedLedgerStore,
  LedgerConflictError,
  withLedger,
  type LedgerStore,
} from "./ledger-store.js";
import {
  createControlSender,
  createTopologyCache,
  type ControlSender,
  type TopologyCache,
} from "./sender.js";
import type { ServiceBusClientDeps } from "./clients.js";

export { backChannelSchema, SHUTDOWN_SUBSCRIPTION, type BackChannelConfig } from "./config.js";
export type { DrainChannel } from "./types.js";
export * from "./message.js";
export * from "./ledger.js";
export * from "./ledger-store.js";
export * from "./sender.js";
export {
  createServiceBusClient,
  createAdministrationClient,
  namespaceOf,
  type ServiceBusTarget,
} from "./clients.js";

export type DrainSettings = Pick<
  Settings,
  "drainOperation" | "drainTimeoutSeconds" | "controlMessageTtlSeconds"
>;

export interface DrainChannelDeps {
  settings: DrainSettings;
  /** The region's logger. */
  logger: Logger;
  /** Where the region's ledger lives. */
  store: LedgerStore;
  /** Sends the control messages; by default built from `config` (tests inject their own). */
  sender?: ControlSender;
  /** For the default sender: Azure AD credential (namespace configs) and extra CA for the admin endpoint. */
  clientDeps?: ServiceBusClientDeps;
  topology?: TopologyCache;
  now?: () => number;
  newId?: () => string;
  /** Checked before every ledger write and every send (leader election). */
  fence?: WriteFence;
}

/** Deadline of the ledger correction after a failed send. */
const SETTLE_TIMEOUT_MS = 10_000;

/**
 * A region's drain channel: control messages on its back-channel topic, recorded in its ledger.
 *
 * Order matters for restarts: the ledger entry is written *before* the messages are sent and corrected
 * after a failed send. A crash in between leaves a phantom entry (under-drain until the drain timeout),
 * never a sent but unrecorded drain (which would drain extra workers after the restart).
 */
export function createDrainChannel(
  regionName: string,
  config: BackChannelConfig,
  deps: DrainChannelDeps,
): DrainChannel {
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? randomUUID;
  const logger = deps.logger;
  const timeoutMs = deps.settings.drainTimeoutSeconds * 1000;
  const sender =
    deps.sender ??
    createControlSender({
      target: {
        ...(config.connectionString ? { connectionString: config.connectionString } : {}),
        ...(config.fullyQualifiedNamespace
          ? { fullyQualifiedNamespace: config.fullyQualifiedNamespace }
          : {}),
        ...(config.adminEndpoint ? { adminEndpoint: config.adminEndpoint } : {}),
        topic: config.topic,
        subscription: config.subscription,
        autoCreate: config.autoCreate,
      },
      ttlSeconds: deps.settings.controlMessageTtlSeconds,
      logger,
      labels: { region: regionName },
      ...(deps.clientDeps ? { clientDeps: deps.clientDeps } : {}),
      ...(deps.topology ? { topology: deps.topology } : {}),
      ...(deps.fence ? { fence: deps.fence } : {}),
      now,
    });
  if (deps.fence) deps = { ...deps, store: fencedLedgerStore(deps.store, deps.fence) };

  /**
   * Corrects a drain's entry to what may have gone out (none: take it out), under its own deadline (the
   * caller's signal may be what cut the drain off). On failure the entry stays too big: the region
   * under-drains until the drain timeout, the safe side; the error says so.
   */
  const correctEntry = async (id: string, delivered: number, after: string): Promise<Error | undefined> => {
    try {
      await withLedger(
        deps.store,
        regionName,
        { signal: AbortSignal.timeout(SETTLE_TIMEOUT_MS) },
        (ledger) =>
          ledger.entries.some((entry) => entry.id === id)
            ? { next: settleDrain(ledger, id, delivered), result: undefined }
            : { result: undefined },
      );
      return undefined;
    } catch (error) {
      return new Error(`drain ledger not corrected after ${after}: ${(error as Error).message}`);
    }
  };

  let expired: ExpiredDrain[] = [];
  return {
    async inFlight(running, options) {
      const { ledger } = await deps.store.load(regionName, options);
      const evaluation = evaluateLedger(ledger, running, now());
      expired = evaluation.entries
        .filter((state) => state.expired && state.outstanding > 0)
        .map((state) => ({ id: state.entry.id, count: state.outstanding, at: state.entry.expiresAt }));
      return evaluation.inFlight;
    },

    expiredDrains: () => expired,

    async requestDrain(count, running, options): Promise<DrainResult> {
      if (!Number.isInteger(count) || count <= 0) return { drained: 0, errors: [] };
      const id = newId();
      // Reserve: never more than the running workers not already asked.
      let reserved: { toSend: number; inFlight: number };
      /** A save of the reservation went out: the service may have written it, answered or not. */
      let saved = false;
      const store: LedgerStore = {
        ...deps.store,
        save: (...args) => ((saved = true), deps.store.save(...args)),
      };
      try {
        reserved = await withLedger(store, regionName, options, (ledger) => {
          const at = now();
          const { inFlight } = evaluateLedger(ledger, running, at);
          // Our own reservation, made by a save whose answer was lost (its retry then met it as a
          // conflict): it is what to send, not a drain of someone else's to leave room for.
          const own = ledger.entries.find((entry) => entry.id === id);
          if (own) return { result: { toSend: own.count, inFlight: Math.max(0, inFlight - own.count) } };
          const toSend = Math.min(count, Math.max(0, new Set(running).size - inFlight));
          if (toSend === 0) return { result: { toSend, inFlight } };
          return {
            next: recordDrain(ledger, running, toSend, { id, now: at, timeoutMs }),
            result: { toSend, inFlight },
          };
        });
      } catch (error) {
        // Without a ledger entry nothing is sent: an unrecorded drain could be repeated after a restart.
        const reason = error instanceof Error ? error.message : String(error);
        const errors = [new Error(`region ${regionName}: drain not sent: ledger unavailable: ${reason}`)];
        // A save cut off (deadline, reset, 5xx) may still have been written: take the entry out again, or
        // workers nobody asked would count as leaving until the drain timeout. A refusal wrote nothing.
        const refused = error instanceof LedgerConflictError || error instanceof FencedError;
        if (saved && !refused) {
          const failed = await correctEntry(id, 0, "a cut-off reservation");
          if (failed) errors.push(failed);
        }
        return { drained: 0, errors };
      }
      if (reserved.toSend === 0) {
        logger.info(
          { requested: count, inFlight: reserved.inFlight, running: running.length },
          "drain skipped: every running worker is already asked to leave",
        );
        return { drained: 0, errors: [] };
      }
      const operation = deps.settings.drainOperation;
      const result = await sender.send(operation, reserved.toSend, options);
      const { sent, errors } = result;
      const unknown = result.unknown ?? 0;
      // A send cut off before the broker answered may have gone out: it stays in the ledger as sent.
      const mayHaveGone = sent + unknown;
      if (mayHaveGone < reserved.toSend) {
        const failed = await correctEntry(id, mayHaveGone, "a failed send");
        if (failed) errors.push(failed);
      }
      const log = errors.length > 0 ? logger.warn.bind(logger) : logger.info.bind(logger);
      log(
        {
          operation,
          requested: count,
          sent,
          ...(unknown > 0 ? { unknown } : {}),
          inFlightBefore: reserved.inFlight,
          running: running.length,
          ...(errors[0] ? { err: errors[0] } : {}),
        },
        `drain requested: ${sent} control message(s) sent${unknown > 0 ? `, ${unknown} cut off (counted as sent)` : ""}`,
      );
      return { drained: sent, ...(unknown > 0 ? { unknown } : {}), errors };
    },

    close: () => sender.close(),
  };
}

export interface DrainChannelFactoryDeps {
  settings: DrainSettings;
  /** The daemon's logger; channels log through a child with { region }. */
  logger: Logger;
  /** Built on first use only (namespace configs); connection-string configs never call it. */
  credential?: () => TokenCredential;
  /** Shared by every region's channel (see ledgerStoreFromSettings). */
  stateStore: LedgerStore;
  /** Extra CA (PEM) for the Service Bus administration endpoint. */
  tlsCa?: string;
  /** Checked before every ledger write and every control message send (leader election). */
  fence?: WriteFence;
}

/**
 * What the daemon puts in RegionContext.createDrainChannel: one topology cache for the process, so each
 * topic is made sure of once.
 */
export function drainChannelFactory(
  deps: DrainChannelFactoryDeps,
): (regionName: string, config: BackChannelConfig) => DrainChannel {
  const topology = createTopologyCache();
  return (regionName, config) =>
    createDrainChannel(regionName, config, {
      settings: deps.settings,
      logger: deps.logger.child({ region: regionName }),
      store: deps.stateStore,
      topology,
      ...(deps.fence ? { fence: deps.fence } : {}),
      clientDeps: {
        ...(deps.credential ? { credential: deps.credential } : {}),
        ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
      },
    });
}

export interface LedgerStoreFromSettingsOptions {
  logger: Logger;
  /** For a Storage account reached with Azure AD (no connection string): its blob endpoint. */
  accountUrl?: string;
  credential?: () => TokenCredential;
  tlsCa?: string;
}

/**
 * The daemon's ledger store: blobs in `stateContainer` of the account named by `stateConnectionString`, or by
 * the queue's Storage connection string, or `accountUrl` with Azure AD. Without any, ledgers are kept in
 * memory and a warning says that a restart may drain extra workers.
 */
export function ledgerStoreFromSettings(
  settings: Pick<Settings, "stateConnectionString" | "queueConnectionString" | "stateContainer">,
  options: LedgerStoreFromSettingsOptions,
): LedgerStore {
  const connectionString = stateStorageConnectionString(settings);
  const tls = options.tlsCa ? { tlsCa: options.tlsCa } : {};
  if (connectionString)
    return createBlobLedgerStore({ connectionString, container: settings.stateContainer, ...tls });
  if (options.accountUrl && options.credential) {
    return createBlobLedgerStore({
      accountUrl: options.accountUrl,
      credential: new LazyCredential(options.credential),
      container: settings.stateContainer,
      ...tls,
    });
  }
  options.logger.warn(
    "no Storage account for the drain ledger (set WORKFORCE_STATE_CONNECTION_STRING): drains in flight are kept in memory, and a restart may drain extra workers",
  );
  return createMemoryLedgerStore();
}
