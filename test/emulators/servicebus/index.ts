import { join } from "node:path";
import { loadTestTls, testTlsDir } from "../tls/index.js";
import { AdminServer } from "./admin.js";
import { AmqpBroker } from "./amqp.js";
import { Faults, type ServiceBusFaults } from "./faults.js";
import { ROOT_RULE_NAME, type AuthorizationRule } from "./sas.js";
import {
  Store,
  type EntitySettings,
  type MessageState,
  type ReceivedRecord,
  type StoredMessage,
} from "./store.js";

/**
 * A Service Bus emulator for tests: an AMQP 1.0 broker that the real @azure/service-bus client and the
 * Python azure-servicebus client (uamqp) talk to, plus the ATOM admin API over HTTPS for
 * ServiceBusAdministrationClient. AMQP is served twice: plain (SASL ANONYMOUS, for
 * `UseDevelopmentEmulator=true`) and over TLS (SASL MSSBCBS, ANONYMOUS, EXTERNAL, as Azure's 5671).
 * Every client authorises with SAS tokens on `$cbs` (and on the admin API), checked for real: signature
 * with the rule's key, expiry, and the rule's rights (Send to send, Listen to receive, Manage for the
 * admin API), refused with Azure's errors.
 *
 * Clients:
 *   new ServiceBusClient(emulator.connectionString)
 *   new ServiceBusAdministrationClient(emulator.adminConnectionString, { tlsOptions: { ca: emulator.ca } })
 * The admin client always speaks HTTPS to the host:port in the connection string's Endpoint, so it gets its
 * own connection string (same key, Endpoint=sb://127.0.0.1:ADMIN_PORT). With a TokenCredential instead:
 *   new ServiceBusAdministrationClient(`127.0.0.1:${emulator.adminPort}`, credential, { tlsOptions: { ca } })
 */

export type { ServiceBusFaults } from "./faults.js";
export type { AuthorizationRule, Right } from "./sas.js";
export type { EntitySettings, EntityStatus, MessageState } from "./store.js";

export interface ServiceBusEmulatorOptions {
  /** 0 (default) picks a free port. */
  amqpPort?: number;
  adminPort?: number;
  host?: string;
  /** Offered as max_message_size on every attach (default 256 KiB, the Standard tier's limit). */
  maxMessageSize?: number;
  /** Entities to create at start: queue names, topic names, and `TOPIC/Subscriptions/NAME`. */
  queues?: string[];
  topics?: string[];
  subscriptions?: string[];
  /** Settings for entities created by this emulator's helpers and the lists above. */
  entitySettings?: Partial<EntitySettings>;
  /** Key of the root rule (RootManageSharedAccessKey: Manage, Send, Listen); tokens are checked against it. */
  sharedAccessKey?: string;
  /** More shared access rules, e.g. `{ name: "sender", key: "k", rights: ["Send"] }`. */
  rules?: AuthorizationRule[];
  /** Port of AMQP over TLS (0, the default, picks a free one). */
  tlsPort?: number;
}

/** One message as a test sees it. */
export interface InspectedMessage {
  sequenceNumber: number;
  messageId: string;
  /** Value sections as decoded; data sections parsed as JSON when they are JSON, else the raw bytes. */
  body: unknown;
  /** The exact bytes of a data-section body (what a Python reader gets), undefined for value bodies. */
  bodyBytes: Buffer | undefined;
  applicationProperties: Record<string, unknown>;
  state: MessageState;
  deliveryCount: number;
  enqueuedAt: Date;
  timeToLiveMs: number | undefined;
  expiresAt: Date | undefined;
  lockedUntil: Date | undefined;
  /** The lock token a peek-lock receiver holds (as the client reports it in `message.lockToken`). */
  lockToken: string | undefined;
  deadLetterReason: string | undefined;
  deadLetterDescription: string | undefined;
}

export interface EntityCounts {
  active: number;
  /** Active messages a receiver holds under a peek-lock. */
  locked: number;
  deadLetter: number;
  total: number;
}

export interface ServiceBusEmulator {
  amqpPort: number;
  /** AMQP over TLS (the test CA's certificate, for `localhost` and 127.0.0.1), as Azure serves 5671. */
  tlsPort: number;
  adminPort: number;
  /** For ServiceBusClient (plain AMQP on amqpPort, `UseDevelopmentEmulator=true`). */
  connectionString: string;
  /**
   * For any AMQP client over TLS (`Endpoint=sb://localhost:TLSPORT`, no emulator flag): the client must
   * trust `ca` (Node: NODE_EXTRA_CA_CERTS=`caPath`; Python: connection_verify=`caPath`).
   */
  tlsConnectionString: string;
  /** A connection string for another rule (or a wrong key), plain or over TLS. */
  connectionStringFor(rule: { name: string; key: string }, options?: { tls?: boolean }): string;
  /** Path of the CA's PEM file. */
  caPath: string;
  /** For ServiceBusAdministrationClient (HTTPS on adminPort); pass `tlsOptions: { ca }`. */
  adminConnectionString: string;
  /** `https://127.0.0.1:adminPort` */
  adminEndpoint: string;
  /** `127.0.0.1:adminPort`: the "namespace" to give the admin client with a TokenCredential. */
  adminNamespace: string;
  /** PEM of the CA that issued the admin endpoint's certificate. */
  ca: string;
  faults: ServiceBusFaults;
  createQueue(name: string, settings?: Partial<EntitySettings>): void;
  createTopic(name: string, settings?: Partial<EntitySettings>): void;
  createSubscription(topic: string, name: string, settings?: Partial<EntitySettings>): void;
  /** Changes an entity's settings, as an admin update does (e.g. `{ status: "Disabled" }`). */
  updateSettings(entity: string, settings: Partial<EntitySettings>): void;
  /** Messages in `entity` (`queue`, `topic/Subscriptions/sub`, either with `/$DeadLetterQueue`), oldest first. */
  messages(entity: string): InspectedMessage[];
  counts(entity: string): EntityCounts;
  /** Every message the broker accepted from a sender, in order (a topic's copies appear per subscription). */
  receivedLog(): ReceivedRecord[];
  /** Resolves when `predicate` holds (checked every 20 ms); rejects after `timeoutMs` (default 10 s). */
  waitFor(predicate: () => boolean, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<void>;
  stop(): Promise<void>;
}

function inspect(stored: StoredMessage): InspectedMessage {
  const raw = stored.amqp.body as { typecode?: number; content?: unknown; multiple?: boolean } | undefined;
  let body: unknown = raw;
  let bodyBytes: Buffer | undefined;
  if (
    raw &&
    typeof raw === "object" &&
    raw.typecode === 0x75 &&
    !raw.multiple &&
    Buffer.isBuffer(raw.content)
  ) {
    bodyBytes = raw.content;
    try {
      body = JSON.parse(bodyBytes.toString("utf8"));
    } catch {
      body = bodyBytes;
    }
  }
  return {
    sequenceNumber: stored.sequenceNumber,
    messageId: stored.messageId,
    body,
    bodyBytes,
    applicationProperties: { ...(stored.amqp.application_properties ?? {}) },
    state: stored.state,
    deliveryCount: stored.deliveryCount,
    enqueuedAt: new Date(stored.enqueuedAt),
    timeToLiveMs: typeof stored.amqp.ttl === "number" ? stored.amqp.ttl : undefined,
    expiresAt: stored.expiresAt === undefined ? undefined : new Date(stored.expiresAt),
    lockedUntil: stored.lockedUntil === undefined ? undefined : new Date(stored.lockedUntil),
    lockToken: stored.lockToken,
    deadLetterReason: stored.deadLetterReason,
    deadLetterDescription: stored.deadLetterDescription,
  };
}

export async function startServiceBusEmulator(
  options: ServiceBusEmulatorOptions = {},
): Promise<ServiceBusEmulator> {
  const host = options.host ?? "127.0.0.1";
  const key = options.sharedAccessKey ?? "emulator-key";
  const tls = loadTestTls();
  const store = new Store();
  const settings = options.entitySettings ?? {};
  for (const name of options.queues ?? []) store.create("queue", name, settings);
  for (const name of options.topics ?? []) store.create("topic", name, settings);
  for (const path of options.subscriptions ?? []) store.create("subscription", path, settings);

  // The faults' drop switch and the broker refer to each other; the switch is only used after start.
  const brokerRef: { current?: AmqpBroker } = {};
  const faults = new Faults(() => brokerRef.current?.dropConnections() ?? 0);
  const rules: AuthorizationRule[] = [
    { name: ROOT_RULE_NAME, key, rights: ["Manage", "Send", "Listen"] },
    ...(options.rules ?? []),
  ];
  const broker = new AmqpBroker({
    host,
    port: options.amqpPort ?? 0,
    tls: { port: options.tlsPort ?? 0, key: tls.key, cert: tls.cert },
    rules,
    maxMessageSize: options.maxMessageSize ?? 256 * 1024,
    store,
    faults,
  });
  brokerRef.current = broker;
  const admin = new AdminServer({ host, port: options.adminPort ?? 0, tls, store, rules, faults });
  const amqpPort = await broker.start();
  let adminPort: number;
  try {
    adminPort = await admin.start();
  } catch (error) {
    await broker.stop();
    throw error;
  }
  const tlsPort = broker.tlsPort as number;
  const connectionStringFor = (
    port: number,
    rule: { name: string; key: string } = { name: ROOT_RULE_NAME, key },
  ): string =>
    port === tlsPort
      ? `Endpoint=sb://localhost:${port}/;SharedAccessKeyName=${rule.name};SharedAccessKey=${rule.key}`
      : `Endpoint=sb://${host}:${port};SharedAccessKeyName=${rule.name};SharedAccessKey=${rule.key};UseDevelopmentEmulator=true;`;

  const source = (entity: string) => {
    const resolved = store.resolveSource(entity);
    if (!resolved) throw new Error(`no such queue or subscription in the emulator: ${entity}`);
    return resolved;
  };

  return {
    amqpPort,
    tlsPort,
    adminPort,
    connectionString: connectionStringFor(amqpPort),
    tlsConnectionString: connectionStringFor(tlsPort),
    connectionStringFor: (rule, o = {}) => connectionStringFor(o.tls ? tlsPort : amqpPort, rule),
    caPath: join(testTlsDir(), "ca.pem"),
    adminConnectionString: connectionStringFor(adminPort),
    adminEndpoint: `https://${host}:${adminPort}`,
    adminNamespace: `${host}:${adminPort}`,
    ca: tls.ca,
    faults,
    createQueue: (name, s) => void store.create("queue", name, { ...settings, ...s }),
    createTopic: (name, s) => void store.create("topic", name, { ...settings, ...s }),
    createSubscription: (topic, name, s) =>
      void store.create("subscription", `${topic}/Subscriptions/${name}`, { ...settings, ...s }),
    updateSettings(entity, changes) {
      const found = store.get(entity);
      if (!found) throw new Error(`no such entity in the emulator: ${entity}`);
      found.settings = { ...found.settings, ...changes };
    },
    messages(entity) {
      store.sweep();
      const { entity: e, deadLetter } = source(entity);
      return (deadLetter ? e.deadLetters : e.messages).map(inspect);
    },
    counts(entity) {
      store.sweep();
      const { entity: e, deadLetter } = source(entity);
      const list = deadLetter ? e.deadLetters : e.messages;
      return {
        active: list.length,
        locked: list.filter((m) => m.state === "locked").length,
        deadLetter: deadLetter ? 0 : e.deadLetters.length,
        total: list.length + (deadLetter ? 0 : e.deadLetters.length),
      };
    },
    receivedLog: () => [...store.received],
    async waitFor(predicate, opts = {}) {
      const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
      while (!predicate()) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        if (Date.now() > deadline)
          throw new Error(`servicebus emulator: condition not met within ${opts.timeoutMs ?? 10_000} ms`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      await Promise.all([broker.stop(), admin.stop()]);
    },
  };
}
