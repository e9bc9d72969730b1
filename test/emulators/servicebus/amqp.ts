import { createRequire } from "node:module";
import type { AddressInfo, Server } from "node:net";
import type { Socket } from "node:net";
import type { Connection, Container, Delivery, EventContext, Message, Receiver, Sender } from "rhea";
import type { Faults } from "./faults.js";
import { bytesToUuid, deliveryTagToLockToken, lockTokenToDeliveryTag } from "./lock-token.js";
import { covers, missingClaim, verifySasToken, type AuthorizationRule, type Right } from "./sas.js";
import {
  allows,
  entityPathOf,
  type Entity,
  type MessageSource,
  type SettleOutcome,
  type Store,
  type StoredMessage,
} from "./store.js";

// rhea is CommonJS whose export is a container instance: named ESM imports would be undefined at run time.
const rhea = createRequire(import.meta.url)("rhea") as typeof import("rhea");
/** Outcome constructors rhea has at run time but leaves out of its typings. */
const outcomes = rhea.message as unknown as {
  accepted(): { described(): unknown };
  rejected(fields: { error?: { condition: string; description?: string } }): { described(): unknown };
};

/** The client's own outcome (modified, released), described for echoing back settled. */
function echo(state: Record<string, unknown>): unknown {
  const described = (state as { described?: () => unknown }).described;
  return typeof described === "function" ? described.call(state) : undefined;
}

/** Format of a batch: one outer message whose data sections each hold an encoded message. */
export const BATCH_FORMAT = 0x80013700;
const CBS = "$cbs";
const MANAGEMENT_SUFFIX = "/$management";
const LOCK_LOST = "com.microsoft:message-lock-lost";

export interface AmqpBrokerOptions {
  host: string;
  /** Plain AMQP (what `UseDevelopmentEmulator=true` connects to): SASL ANONYMOUS, or no SASL layer. */
  port: number;
  /** AMQP over TLS, as Azure serves it on 5671: SASL MSSBCBS, ANONYMOUS, EXTERNAL. */
  tls?: { port: number; key: string; cert: string };
  /** Shared access rules whose tokens `$cbs` accepts. */
  rules: readonly AuthorizationRule[];
  /** Offered on every attach; the client sizes its batches by it. */
  maxMessageSize: number;
  store: Store;
  faults: Faults;
}

type ReceiveMode = "peek-lock" | "receive-and-delete";

interface Consumer {
  sender: Sender;
  source: MessageSource;
  mode: ReceiveMode;
  /** Deliveries handed to rhea that it has not written yet (rhea spends credit only when it writes). */
  queued: Delivery[];
}

/** Fields of the attach frame the broker sends back (rhea keeps them in `local.attach`). */
function localAttach(link: Sender | Receiver): Record<string, unknown> {
  return (link as unknown as { local: { attach: Record<string, unknown> } }).local.attach;
}

/**
 * rhea echoes a drain only while credit is left. When the client's drain crosses the broker's last
 * deliveries, credit is already 0 and the client would wait for the echo until its drain timeout (then close
 * the link); so echo it whenever a drain is pending, spending whatever credit is left.
 */
function answerEveryDrain(sender: Sender): void {
  const link = sender as unknown as {
    _draining: boolean;
    _drained: boolean;
    credit: number;
    delivery_count: number;
    _get_drain(): boolean;
  };
  link._get_drain = function (this: typeof link): boolean {
    if (!this._draining || !this._drained) return false;
    this.delivery_count += this.credit;
    this.credit = 0;
    this._drained = false; // answered once per request
    return true;
  };
}

/** An AMQP int (signed 32 bits): what the management spec types status codes as. rhea would send a uint. */
function int(value: number): unknown {
  return rhea.types.wrap_int(value);
}

/** What a `$cbs` put-token granted a connection. */
interface Grant {
  /** Entity path the token is for ('' = the whole namespace). */
  path: string;
  rights: readonly Right[];
  expiresAtMs: number;
}

/** Azure's SASL mechanisms on its TLS port. MSSBCBS and EXTERNAL carry nothing: the client authorises with `$cbs`. */
function tlsMechanisms(): Record<string, () => unknown> {
  const later = () => ({
    outcome: undefined as boolean | undefined,
    username: undefined,
    start(this: { outcome?: boolean }) {
      this.outcome = true;
    },
  });
  const mechanisms = rhea.sasl.server_mechanisms() as unknown as Record<string, () => unknown> & {
    enable_anonymous(): void;
  };
  mechanisms.MSSBCBS = later;
  // Our own client (@azure/service-bus) sends ANONYMOUS with the key name, or no SASL layer at all.
  mechanisms.enable_anonymous();
  mechanisms.EXTERNAL = later;
  return mechanisms;
}

function socketOf(connection: Connection): Socket | undefined {
  return (connection as unknown as { socket?: Socket }).socket;
}

function asBuffer(value: unknown): Buffer | undefined {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return undefined;
}

/** An AMQP long arrives as a number, or as 8 big-endian bytes when rhea keeps it exact. */
function numberOf(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  const bytes = asBuffer(value);
  if (bytes && bytes.length === 8) return Number(bytes.readBigInt64BE(0));
  return undefined;
}

function lockTokenOf(value: unknown): string {
  const bytes = asBuffer(value);
  if (bytes && bytes.length === 16) return bytesToUuid(bytes);
  return String(value).toLowerCase();
}

function entityDisabled(entity: Entity): { condition: string; description: string } {
  return {
    condition: "com.microsoft:entity-disabled",
    description: `Messaging entity '${entity.path}' is currently disabled (status ${entity.settings.status}).`,
  };
}

export class AmqpBroker {
  private readonly container: Container;
  private server: Server | undefined;
  private readonly connections = new Set<Connection>();
  private readonly consumers: Consumer[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;

  private readonly tlsContainer: Container | undefined;
  private tlsServer: Server | undefined;
  /** What each connection's put-tokens granted. */
  private readonly grants = new WeakMap<Connection, Grant[]>();

  constructor(private readonly options: AmqpBrokerOptions) {
    this.container = this.createContainer("servicebus-emulator");
    if (options.tls) {
      this.tlsContainer = this.createContainer("servicebus-emulator-tls");
      (this.tlsContainer as unknown as { sasl_server_mechanisms: unknown }).sasl_server_mechanisms =
        tlsMechanisms();
    }
    this.unsubscribe = options.store.onAvailable((entity) => this.pump(entity));
  }

  private createContainer(id: string): Container {
    const container = rhea.create_container({
      id,
      // The broker decides when to accept and settle; rhea must not do it on its own.
      autoaccept: false,
      treat_modified_as_released: false,
    } as Parameters<typeof rhea.create_container>[0]);
    container.on("connection_open", (ctx: EventContext) => this.connections.add(ctx.connection));
    container.on("disconnected", (ctx: EventContext) => this.forget(ctx.connection));
    container.on("connection_close", (ctx: EventContext) => this.forget(ctx.connection));
    container.on("error", () => undefined); // a client's bad frame must not crash the test process
    container.on("sender_open", (ctx: EventContext) => this.onSenderOpen(ctx));
    container.on("receiver_open", (ctx: EventContext) => this.onReceiverOpen(ctx));
    container.on("sender_close", (ctx: EventContext) => this.removeConsumer(ctx.sender));
    container.on("message", (ctx: EventContext) => this.onMessage(ctx));
    container.on("sendable", (ctx: EventContext) => this.pumpConsumer(ctx.sender));
    container.on("sender_draining", (ctx: EventContext) => this.onDraining(ctx));
    for (const outcome of ["accepted", "rejected", "modified", "released"] as const) {
      container.on(outcome, (ctx: EventContext) => this.onDisposition(ctx, outcome));
    }
    return container;
  }

  /** The TLS port once started (undefined without TLS). */
  tlsPort: number | undefined;

  async start(): Promise<number> {
    const listen = async (container: Container, options: Record<string, unknown>): Promise<Server> => {
      const server = container.listen({ host: this.options.host, ...options } as never) as unknown as Server;
      await new Promise<void>((resolve, reject) => {
        server.once("listening", resolve);
        server.once("error", reject);
      });
      return server;
    };
    this.server = await listen(this.container, { port: this.options.port });
    if (this.tlsContainer && this.options.tls) {
      const { port, key, cert } = this.options.tls;
      this.tlsServer = await listen(this.tlsContainer, { port, transport: "tls", key, cert });
      this.tlsPort = (this.tlsServer.address() as AddressInfo).port;
    }
    // Locks and time-to-live expire on the clock, not on traffic.
    this.sweepTimer = setInterval(() => this.tick(), 50);
    this.sweepTimer.unref();
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.unsubscribe();
    this.dropConnections();
    for (const server of [this.server, this.tlsServer]) {
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** Destroys every client socket: what a network failure looks like to the client. */
  dropConnections(): number {
    const count = this.connections.size;
    for (const connection of [...this.connections]) {
      socketOf(connection)?.destroy();
      this.forget(connection);
    }
    return count;
  }

  private forget(connection: Connection): void {
    this.connections.delete(connection);
    for (let i = this.consumers.length - 1; i >= 0; i--) {
      if ((this.consumers[i] as Consumer).sender.connection === connection) this.consumers.splice(i, 1);
    }
  }

  private tick(): void {
    this.options.store.sweep();
    // An entity disabled through the admin API detaches the receivers it has.
    for (const consumer of [...this.consumers]) {
      if (allows(consumer.source.entity, "receive")) continue;
      this.removeConsumer(consumer.sender);
      consumer.sender.close(entityDisabled(consumer.source.entity));
    }
    for (const entity of new Set(this.consumers.map((c) => c.source.entity))) this.pump(entity);
  }

  // ---- links ----

  /** The client opens a receiver: the broker's end is a sender. */
  private onSenderOpen(ctx: EventContext): void {
    const sender = ctx.sender as Sender;
    const address = sender.source?.address ?? "";
    this.mirrorAttach(sender);
    if (address === CBS || address.endsWith(MANAGEMENT_SUFFIX)) return; // reply link of a request/response pair
    const source = this.options.store.resolveSource(address);
    if (!source) {
      sender.close({
        condition: "amqp:not-found",
        description: `The messaging entity '${entityPathOf(address)}' could not be found.`,
      });
      return;
    }
    if (!allows(source.entity, "receive")) {
      sender.close(entityDisabled(source.entity));
      return;
    }
    const refusal = this.unauthorized(ctx.connection, source.entity.path, "Listen", address);
    if (refusal) {
      sender.close(refusal);
      return;
    }
    answerEveryDrain(sender);
    // Peek-lock clients attach with rcv-settle-mode second; receive-and-delete with snd-settle-mode settled.
    const mode: ReceiveMode = sender.snd_settle_mode === 1 ? "receive-and-delete" : "peek-lock";
    this.consumers.push({ sender, source, mode, queued: [] });
  }

  /** The client opens a sender: the broker's end is a receiver. */
  private onReceiverOpen(ctx: EventContext): void {
    const receiver = ctx.receiver as Receiver;
    const address = receiver.target?.address ?? "";
    this.mirrorAttach(receiver);
    if (address === CBS || address.endsWith(MANAGEMENT_SUFFIX)) return;
    const entity = this.options.store.get(address);
    if (!entity || entity.kind === "subscription") {
      receiver.close({
        condition: "amqp:not-found",
        description: `The messaging entity '${entityPathOf(address)}' could not be found.`,
      });
    } else if (!allows(entity, "send")) {
      receiver.close(entityDisabled(entity));
    } else {
      const refusal = this.unauthorized(ctx.connection, entity.path, "Send", address);
      if (refusal) receiver.close(refusal);
    }
  }

  /** Azure's refusal when no live put-token of this connection grants `right` on `path`. */
  private unauthorized(
    connection: Connection,
    path: string,
    right: Right,
    address: string,
  ): { condition: string; description: string } | undefined {
    const now = this.options.store.now();
    const granted = (this.grants.get(connection) ?? []).some(
      (grant) =>
        grant.expiresAtMs > now &&
        covers(grant.path, path) &&
        (grant.rights.includes(right) || grant.rights.includes("Manage")),
    );
    if (granted) return undefined;
    const host = (connection as unknown as { options?: { hostname?: string } }).options?.hostname;
    const resource = /^[a-z]+:\/\//i.test(address) ? address : `sb://${host ?? "localhost"}/${path}`;
    return { condition: "amqp:unauthorized-access", description: missingClaim(right, resource) };
  }

  private mirrorAttach(link: Sender | Receiver): void {
    if (link.source) link.set_source(link.source);
    if (link.target) link.set_target(link.target);
    const attach = localAttach(link);
    attach.snd_settle_mode = link.snd_settle_mode;
    attach.rcv_settle_mode = link.rcv_settle_mode;
    attach.max_message_size = this.options.maxMessageSize;
  }

  private removeConsumer(sender: Sender | undefined): void {
    const index = this.consumers.findIndex((c) => c.sender === sender);
    if (index >= 0) this.consumers.splice(index, 1);
  }

  // ---- incoming messages ----

  private onMessage(ctx: EventContext): void {
    const receiver = ctx.receiver as Receiver;
    const delivery = ctx.delivery as Delivery;
    const address = receiver.target?.address ?? "";
    if (address === CBS) return this.onPutToken(ctx);
    if (address.endsWith(MANAGEMENT_SUFFIX))
      return this.onManagement(ctx, address.slice(0, -MANAGEMENT_SUFFIX.length));
    const format = (ctx as EventContext & { format?: number }).format ?? 0;
    let messages: Message[];
    try {
      messages =
        format === BATCH_FORMAT ? this.unbatch(ctx.message as unknown as Buffer) : [ctx.message as Message];
    } catch (error) {
      delivery.update(
        true,
        outcomes
          .rejected({ error: { condition: "amqp:decode-error", description: String(error) } })
          .described(),
      );
      return;
    }
    this.options.faults.afterAckDelay(() => {
      const entity = this.options.store.get(address);
      if (entity && !allows(entity, "send")) {
        delivery.update(true, outcomes.rejected({ error: entityDisabled(entity) }).described());
        return;
      }
      try {
        for (const message of messages) this.options.store.enqueue(address, message);
        delivery.update(true, outcomes.accepted().described());
      } catch (error) {
        const description = error instanceof Error ? error.message : String(error);
        delivery.update(
          true,
          outcomes.rejected({ error: { condition: "amqp:not-found", description } }).described(),
        );
      }
    });
  }

  private unbatch(payload: Buffer): Message[] {
    const outer = rhea.message.decode(payload) as unknown as Message;
    const body = outer.body as { typecode?: number; content?: unknown; multiple?: boolean } | undefined;
    if (!body || body.typecode !== 0x75) throw new Error("a batch must carry data sections");
    const parts = (body.multiple ? body.content : [body.content]) as unknown[];
    return parts.map((part) => {
      const bytes = asBuffer(part);
      if (!bytes) throw new Error("a batch data section must be binary");
      return rhea.message.decode(bytes) as unknown as Message;
    });
  }

  // ---- request/response nodes ($cbs, ENTITY/$management) ----

  private reply(
    ctx: EventContext,
    node: string,
    request: Message,
    properties: Record<string, unknown>,
    body?: unknown,
  ): void {
    const replyTo = request.reply_to;
    const connection = ctx.connection;
    const sender =
      (connection.find_sender((s: Sender) => s.source?.address === node && s.target?.address === replyTo) as
        Sender | undefined) ??
      (connection.find_sender((s: Sender) => s.source?.address === node) as Sender | undefined);
    ctx.delivery?.update(true, outcomes.accepted().described());
    if (!sender) return;
    const response = {
      correlation_id: request.message_id,
      to: replyTo,
      application_properties: properties,
    } as Message;
    if (body !== undefined) response.body = body;
    sender.send(response);
  }

  private onPutToken(ctx: EventContext): void {
    const request = ctx.message as Message;
    const answer = (code: number, description: string) =>
      this.reply(ctx, CBS, request, { "status-code": int(code), "status-description": description });
    if (this.options.faults.takePutTokenRefusal())
      return answer(401, "Unauthorized: token refused (emulator fault injection)");
    const properties = request.application_properties ?? {};
    const audience = String(properties.name ?? "");
    const type = String(properties.type ?? "");
    const token = typeof request.body === "string" ? request.body : String(request.body ?? "");
    // A token for an entity's `$management` node is a token for the entity.
    const path = entityPathOf(audience)
      .toLowerCase()
      .replace(/\/\$management$/, "");
    const now = this.options.store.now();
    let grant: Grant;
    if (type === "jwt") {
      // Entra ID is not emulated: a bearer token is taken at its word, with every right.
      grant = { path, rights: ["Manage", "Send", "Listen"], expiresAtMs: now + 3_600_000 };
    } else {
      const verdict = verifySasToken(token, this.options.rules, now);
      if (!verdict.ok) return answer(401, verdict.description);
      if (!covers(verdict.resourcePath.replace(/\/\$management$/, ""), path))
        return answer(
          401,
          `InvalidAudience: The token is for '${verdict.resourcePath}', not for '${audience}'.`,
        );
      grant = { path, rights: verdict.rights, expiresAtMs: verdict.expiresAtMs };
    }
    const grants = this.grants.get(ctx.connection) ?? [];
    grants.push(grant);
    this.grants.set(ctx.connection, grants);
    answer(202, "Accepted");
  }

  private onManagement(ctx: EventContext, entityPath: string): void {
    const request = ctx.message as Message;
    const node = `${entityPath}${MANAGEMENT_SUFFIX}`;
    const operation = String(request.application_properties?.operation ?? "");
    const body = (request.body ?? {}) as Record<string, unknown>;
    const tokens = (Array.isArray(body["lock-tokens"]) ? body["lock-tokens"] : []).map(lockTokenOf);
    const store = this.options.store;
    const refusal = this.unauthorized(ctx.connection, entityPathOf(entityPath), "Listen", entityPath);
    if (refusal) {
      return this.reply(ctx, node, request, {
        statusCode: int(401),
        statusDescription: refusal.description,
        errorCondition: refusal.condition,
      });
    }
    const lockLost = (): void =>
      this.reply(ctx, node, request, {
        statusCode: int(410),
        statusDescription:
          "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.",
        errorCondition: LOCK_LOST,
      });

    if (operation === "com.microsoft:renew-lock") {
      const expirations: Date[] = [];
      for (const token of tokens) {
        const until = store.renewLock(token);
        if (!until) return lockLost();
        expirations.push(until);
      }
      return this.reply(ctx, node, request, { statusCode: int(200) }, { expirations });
    }
    if (operation === "com.microsoft:peek-message") {
      const source = store.resolveSource(entityPath);
      if (!source) {
        return this.reply(ctx, node, request, {
          statusCode: int(404),
          statusDescription: `The messaging entity '${entityPath}' could not be found.`,
          errorCondition: "amqp:not-found",
        });
      }
      const from = numberOf(body["from-sequence-number"]) ?? 1;
      const count = numberOf(body["message-count"]) ?? 1;
      const found = store.peek(source, from, count);
      if (found.length === 0) return this.reply(ctx, node, request, { statusCode: int(204) });
      const messages = found.map((m) => ({ message: rhea.message.encode(this.outgoing(m, source)) }));
      return this.reply(ctx, node, request, { statusCode: int(200) }, { messages });
    }
    if (operation === "com.microsoft:update-disposition") {
      const status = String(body["disposition-status"] ?? "");
      for (const token of tokens) {
        const outcome = this.settleByStatus(token, status, body);
        if (outcome === "lock-lost") return lockLost();
      }
      return this.reply(ctx, node, request, { statusCode: int(200) });
    }
    this.reply(ctx, node, request, {
      statusCode: int(501),
      statusDescription: `The emulator does not implement ${operation || "(no operation)"}.`,
      errorCondition: "amqp:not-implemented",
    });
  }

  private settleByStatus(token: string, status: string, body: Record<string, unknown>): SettleOutcome {
    const store = this.options.store;
    switch (status) {
      case "completed":
        return store.complete(token);
      case "abandoned":
        return store.abandon(token);
      case "defered":
      case "deferred":
        return store.defer(token);
      case "suspended":
        return store.deadLetter(
          token,
          body["deadletter-reason"] as string | undefined,
          body["deadletter-description"] as string | undefined,
        );
      default:
        return "lock-lost";
    }
  }

  // ---- deliveries to receivers ----

  private pump(entity: Entity): void {
    const consumers = this.consumers.filter((c) => c.source.entity === entity);
    let progress = true;
    while (progress) {
      progress = false;
      for (const consumer of consumers) {
        if (this.deliverOne(consumer)) progress = true;
      }
    }
  }

  private pumpConsumer(sender: Sender | undefined): void {
    const consumer = this.consumers.find((c) => c.sender === sender);
    if (consumer)
      while (this.deliverOne(consumer)) {
        // keep sending while there is credit and a message
      }
  }

  /**
   * Credit the client has given and the broker has not used yet. rhea lowers `credit` only when it writes
   * a transfer (later, on its own tick), so deliveries queued in this tick count against it here; without
   * that, one flow would lock every message in the entity.
   */
  private unusedCredit(consumer: Consumer): number {
    const internals = consumer.sender as unknown as {
      credit?: number;
      session: { outgoing: { next_pending_delivery: number } };
    };
    const written = internals.session.outgoing.next_pending_delivery;
    consumer.queued = consumer.queued.filter((d) => d.id >= written);
    return (internals.credit ?? 0) - consumer.queued.length;
  }

  private deliverOne(consumer: Consumer): boolean {
    const { sender, source, mode } = consumer;
    if (!sender.is_open() || !sender.sendable() || this.unusedCredit(consumer) <= 0) return false;
    const stored = this.options.store.acquire(source, mode);
    if (!stored) return false;
    const tag = stored.lockToken ? lockTokenToDeliveryTag(stored.lockToken) : Buffer.alloc(0);
    consumer.queued.push(sender.send(this.outgoing(stored, source), tag));
    return true;
  }

  /** The stored message plus what the broker adds on delivery. */
  private outgoing(stored: StoredMessage, source: MessageSource): Message {
    const annotations: Record<string, unknown> = {
      ...(stored.amqp.message_annotations ?? {}),
      "x-opt-sequence-number": stored.sequenceNumber,
      "x-opt-enqueued-time": new Date(stored.enqueuedAt),
    };
    if (stored.lockedUntil !== undefined) annotations["x-opt-locked-until"] = new Date(stored.lockedUntil);
    const message: Message = {
      ...stored.amqp,
      delivery_count: stored.deliveryCount,
      message_annotations: annotations,
    };
    if (source.deadLetter) {
      message.application_properties = {
        ...(stored.amqp.application_properties ?? {}),
        ...(stored.deadLetterReason !== undefined ? { DeadLetterReason: stored.deadLetterReason } : {}),
        ...(stored.deadLetterDescription !== undefined
          ? { DeadLetterErrorDescription: stored.deadLetterDescription }
          : {}),
      };
    }
    return message;
  }

  private onDraining(ctx: EventContext): void {
    const sender = ctx.sender as Sender;
    this.pumpConsumer(sender);
    // Nothing more to send: give the remaining credit back so the client's drain completes.
    sender.set_drained(true);
  }

  private onDisposition(ctx: EventContext, outcome: "accepted" | "rejected" | "modified" | "released"): void {
    const delivery = ctx.delivery as Delivery;
    const lockToken = deliveryTagToLockToken(delivery.tag);
    if (!lockToken) return;
    const state = (delivery as unknown as { remote_state?: Record<string, unknown> }).remote_state ?? {};
    this.options.faults.afterAckDelay(() => {
      const store = this.options.store;
      let result: SettleOutcome;
      if (outcome === "accepted") {
        result = store.complete(lockToken);
      } else if (outcome === "rejected") {
        const error = (state.error ?? {}) as { description?: string; info?: Record<string, unknown> };
        const info = error.info ?? {};
        result = store.deadLetter(
          lockToken,
          (info.DeadLetterReason as string | undefined) ?? undefined,
          (info.DeadLetterErrorDescription as string | undefined) ?? error.description,
        );
      } else if (outcome === "modified" && state.undeliverable_here === true) {
        result = store.defer(lockToken);
      } else {
        result = store.abandon(lockToken);
      }
      const final =
        result === "ok"
          ? outcomes.accepted().described()
          : outcomes
              .rejected({
                error: {
                  condition: LOCK_LOST,
                  description:
                    "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.",
                },
              })
              .described();
      // Settle with a final state. The client reads any `error` in it as a failed settlement, so a
      // successful dead-letter is answered `rejected` without one.
      let answer: unknown = final;
      if (result === "ok" && outcome === "rejected") answer = outcomes.rejected({}).described();
      else if (result === "ok" && outcome !== "accepted") answer = echo(state) ?? final;
      delivery.update(true, answer);
    });
  }
}
