import { randomUUID } from "node:crypto";
import type { Message } from "rhea";
import { entityNameProblem } from "../../../src/backchannel/entity-names.js";
import { newLockToken } from "./lock-token.js";

/**
 * The broker's state: queues, topics with subscriptions, their messages, locks and dead-letter queues.
 * Pure bookkeeping with an injectable clock; the AMQP and admin front ends call into it.
 */

export type EntityKind = "queue" | "topic" | "subscription";

export interface EntitySettings {
  lockDurationMs: number;
  maxDeliveryCount: number;
  /** Applied when a message has no time-to-live of its own. */
  defaultTtlMs: number | undefined;
  deadLetteringOnMessageExpiration: boolean;
  /** As the admin API sets it: a disabled entity refuses links with `com.microsoft:entity-disabled`. */
  status: EntityStatus;
}

export type EntityStatus = "Active" | "Disabled" | "SendDisabled" | "ReceiveDisabled";

export const defaultEntitySettings: EntitySettings = {
  lockDurationMs: 60_000,
  maxDeliveryCount: 10,
  defaultTtlMs: undefined,
  deadLetteringOnMessageExpiration: false,
  status: "Active",
};

/** Whether an entity takes messages from senders / gives them to receivers in its current status. */
export function allows(entity: Entity, direction: "send" | "receive"): boolean {
  const status = entity.settings.status;
  if (status === "Disabled") return false;
  return direction === "send" ? status !== "SendDisabled" : status !== "ReceiveDisabled";
}

export type MessageState = "active" | "locked" | "deferred";

export interface StoredMessage {
  sequenceNumber: number;
  messageId: string;
  /** The message as the sender encoded it (sections only; the broker adds its annotations on delivery). */
  amqp: Message;
  enqueuedAt: number;
  expiresAt: number | undefined;
  /** Failed deliveries so far (abandon, lock expiry): what the receiver sees as `deliveryCount`. */
  deliveryCount: number;
  state: MessageState;
  lockToken: string | undefined;
  lockedUntil: number | undefined;
  deadLetterReason: string | undefined;
  deadLetterDescription: string | undefined;
}

export class Entity {
  readonly messages: StoredMessage[] = [];
  readonly deadLetters: StoredMessage[] = [];
  readonly subscriptions = new Map<string, Entity>();
  readonly createdAt: Date;
  updatedAt: Date;
  accessedAt: Date;
  nextSequenceNumber = 1;

  constructor(
    readonly kind: EntityKind,
    /** `queue`, `topic` or `topic/Subscriptions/sub`. */
    readonly path: string,
    public settings: EntitySettings,
    now: number,
  ) {
    this.createdAt = new Date(now);
    this.updatedAt = new Date(now);
    this.accessedAt = new Date(now);
  }

  get name(): string {
    // A topic or queue name may hold '/'; a subscription's is the last segment of its path.
    return this.kind === "subscription" ? (this.path.split("/").pop() as string) : this.path;
  }

  /** Active = available + locked + deferred, as Service Bus' ActiveMessageCount counts them. */
  counts(): { active: number; deadLetter: number; total: number; locked: number } {
    const locked = this.messages.filter((m) => m.state === "locked").length;
    return {
      active: this.messages.length,
      deadLetter: this.deadLetters.length,
      total: this.messages.length + this.deadLetters.length,
      locked,
    };
  }
}

/** Where a receive link reads from: the entity's main queue or its `$DeadLetterQueue`. */
export interface MessageSource {
  entity: Entity;
  deadLetter: boolean;
}

export type SettleOutcome = "ok" | "lock-lost";

export interface ReceivedRecord {
  entity: string;
  messageId: string;
  sequenceNumber: number;
  at: Date;
}

const DLQ_SUFFIX = "/$deadletterqueue";
/** `TOPIC/Subscriptions/NAME`; a topic name may itself hold '/'. */
export const SUBSCRIPTION_PATH = /^(.+)\/Subscriptions\/([^/]+)$/i;

/** An entity name Azure refuses (the admin API answers 400 with it). */
export class EntityNameError extends Error {}

function key(path: string): string {
  return path.toLowerCase();
}

/** `sb://host:port/a/b` or `a/b` -> `a/b`. */
export function entityPathOf(address: string): string {
  const stripped = address.replace(/^(amqps?|sb):\/\/[^/]*\//i, "");
  return stripped.replace(/^\/+|\/+$/g, "");
}

export class Store {
  private readonly entities = new Map<string, Entity>();
  private readonly locks = new Map<string, { source: MessageSource; message: StoredMessage }>();
  /** Messages the broker accepted from senders, in order (inspection for tests). */
  readonly received: ReceivedRecord[] = [];
  private readonly listeners = new Set<(entity: Entity) => void>();

  constructor(private readonly clock: () => number = Date.now) {}

  now(): number {
    return this.clock();
  }

  /** Called whenever messages may have become available in `entity` (the broker pumps deliveries then). */
  onAvailable(listener: (entity: Entity) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(entity: Entity): void {
    for (const listener of this.listeners) listener(entity);
  }

  // ---- entities ----

  list(kind?: EntityKind): Entity[] {
    return [...this.entities.values()].filter((e) => kind === undefined || e.kind === kind);
  }

  get(path: string): Entity | undefined {
    return this.entities.get(key(entityPathOf(path)));
  }

  create(kind: EntityKind, path: string, settings: Partial<EntitySettings> = {}): Entity {
    const clean = entityPathOf(path);
    if (this.entities.has(key(clean))) throw new Error(`entity already exists: ${clean}`);
    let parent: Entity | undefined;
    if (kind === "subscription") {
      const match = SUBSCRIPTION_PATH.exec(clean);
      if (!match) throw new Error(`a subscription path is TOPIC/Subscriptions/NAME, got ${clean}`);
      const problem = entityNameProblem("subscription", match[2] as string);
      if (problem) throw new EntityNameError(problem);
      parent = this.entities.get(key(match[1] as string));
      if (!parent || parent.kind !== "topic") throw new Error(`topic not found: ${match[1]}`);
    } else {
      const problem = entityNameProblem(kind, clean);
      if (problem) throw new EntityNameError(problem);
    }
    const entity = new Entity(kind, clean, { ...defaultEntitySettings, ...settings }, this.now());
    this.entities.set(key(clean), entity);
    parent?.subscriptions.set(key(entity.name), entity);
    return entity;
  }

  delete(path: string): boolean {
    const entity = this.get(path);
    if (!entity) return false;
    for (const sub of entity.subscriptions.values()) this.delete(sub.path);
    for (const m of [...entity.messages, ...entity.deadLetters])
      if (m.lockToken) this.locks.delete(m.lockToken);
    this.entities.delete(key(entity.path));
    if (entity.kind === "subscription") {
      const topic = this.get(SUBSCRIPTION_PATH.exec(entity.path)?.[1] ?? "");
      topic?.subscriptions.delete(key(entity.name));
    }
    return true;
  }

  /** A receive address: `queue`, `topic/Subscriptions/sub`, optionally with `/$DeadLetterQueue`. */
  resolveSource(address: string): MessageSource | undefined {
    const path = entityPathOf(address);
    const deadLetter = path.toLowerCase().endsWith(DLQ_SUFFIX);
    const entity = this.get(deadLetter ? path.slice(0, -DLQ_SUFFIX.length) : path);
    if (!entity || entity.kind === "topic") return undefined;
    return { entity, deadLetter };
  }

  // ---- messages ----

  /** Accepts a message sent to a queue or topic; a topic copies it to each subscription. */
  enqueue(address: string, amqp: Message): string {
    const entity = this.get(address);
    if (!entity || entity.kind === "subscription") throw new Error(`cannot send to ${address}`);
    const messageId =
      amqp.message_id === undefined || amqp.message_id === null ? randomUUID() : String(amqp.message_id);
    const withId: Message = { ...amqp, message_id: amqp.message_id ?? messageId };
    const targets = entity.kind === "topic" ? [...entity.subscriptions.values()] : [entity];
    entity.accessedAt = new Date(this.now());
    for (const target of targets) {
      const stored = this.store(target, withId, messageId);
      this.received.push({
        entity: target.path,
        messageId,
        sequenceNumber: stored.sequenceNumber,
        at: new Date(stored.enqueuedAt),
      });
      this.notify(target);
    }
    if (targets.length === 0) {
      this.received.push({ entity: entity.path, messageId, sequenceNumber: 0, at: new Date(this.now()) });
    }
    return messageId;
  }

  private store(entity: Entity, amqp: Message, messageId: string): StoredMessage {
    const now = this.now();
    // The entity's default time-to-live is also a ceiling for the message's own, and a subscription's
    // messages get the lower of the topic's and the subscription's (Service Bus "Message expiration").
    const topic =
      entity.kind === "subscription" ? this.get(SUBSCRIPTION_PATH.exec(entity.path)?.[1] ?? "") : undefined;
    const limits = [
      typeof amqp.ttl === "number" ? amqp.ttl : undefined,
      entity.settings.defaultTtlMs,
      topic?.settings.defaultTtlMs,
    ].filter((value): value is number => value !== undefined);
    const ttl = limits.length > 0 ? Math.min(...limits) : undefined;
    const message: StoredMessage = {
      sequenceNumber: entity.nextSequenceNumber++,
      messageId,
      amqp,
      enqueuedAt: now,
      expiresAt: ttl === undefined ? undefined : now + ttl,
      deliveryCount: 0,
      state: "active",
      lockToken: undefined,
      lockedUntil: undefined,
      deadLetterReason: undefined,
      deadLetterDescription: undefined,
    };
    entity.messages.push(message);
    return message;
  }

  /** Messages from `fromSequenceNumber` on, locked ones included, without taking them (peek). */
  peek(source: MessageSource, fromSequenceNumber: number, count: number): StoredMessage[] {
    this.sweep();
    return this.listOf(source)
      .filter((m) => m.sequenceNumber >= fromSequenceNumber)
      .slice(0, Math.max(0, count));
  }

  private listOf(source: MessageSource): StoredMessage[] {
    return source.deadLetter ? source.entity.deadLetters : source.entity.messages;
  }

  hasAvailable(source: MessageSource): boolean {
    this.sweep();
    return this.listOf(source).some((m) => m.state === "active");
  }

  /**
   * Takes the next available message: peek-lock locks it for the entity's lock duration,
   * receive-and-delete removes it. Expired messages are swept first and never returned.
   */
  acquire(source: MessageSource, mode: "peek-lock" | "receive-and-delete"): StoredMessage | undefined {
    this.sweep();
    const list = this.listOf(source);
    const index = list.findIndex((m) => m.state === "active");
    if (index < 0) return undefined;
    const message = list[index] as StoredMessage;
    source.entity.accessedAt = new Date(this.now());
    if (mode === "receive-and-delete") {
      list.splice(index, 1);
      return message;
    }
    message.state = "locked";
    message.lockToken = newLockToken();
    message.lockedUntil = this.now() + source.entity.settings.lockDurationMs;
    this.locks.set(message.lockToken, { source, message });
    return message;
  }

  /** The lock a token names, if it is still held. */
  private held(lockToken: string): { source: MessageSource; message: StoredMessage } | undefined {
    this.sweep();
    const entry = this.locks.get(lockToken.toLowerCase());
    if (!entry || entry.message.lockToken !== lockToken.toLowerCase()) return undefined;
    return entry;
  }

  private unlock(message: StoredMessage): void {
    if (message.lockToken) this.locks.delete(message.lockToken);
    message.lockToken = undefined;
    message.lockedUntil = undefined;
  }

  private remove(source: MessageSource, message: StoredMessage): void {
    const list = this.listOf(source);
    const index = list.indexOf(message);
    if (index >= 0) list.splice(index, 1);
  }

  complete(lockToken: string): SettleOutcome {
    const entry = this.held(lockToken);
    if (!entry) return "lock-lost";
    this.unlock(entry.message);
    this.remove(entry.source, entry.message);
    return "ok";
  }

  abandon(lockToken: string): SettleOutcome {
    const entry = this.held(lockToken);
    if (!entry) return "lock-lost";
    this.release(entry.source, entry.message);
    return "ok";
  }

  defer(lockToken: string): SettleOutcome {
    const entry = this.held(lockToken);
    if (!entry) return "lock-lost";
    this.unlock(entry.message);
    entry.message.state = "deferred";
    return "ok";
  }

  deadLetter(lockToken: string, reason?: string, description?: string): SettleOutcome {
    const entry = this.held(lockToken);
    if (!entry) return "lock-lost";
    this.unlock(entry.message);
    this.moveToDeadLetter(entry.source, entry.message, reason, description);
    return "ok";
  }

  /** Extends a held lock by the entity's lock duration; undefined when the lock is lost. */
  renewLock(lockToken: string): Date | undefined {
    const entry = this.held(lockToken);
    if (!entry) return undefined;
    entry.message.lockedUntil = this.now() + entry.source.entity.settings.lockDurationMs;
    return new Date(entry.message.lockedUntil);
  }

  /** A failed delivery: counts it and makes the message available again, or dead-letters it at the limit. */
  private release(source: MessageSource, message: StoredMessage): void {
    this.unlock(message);
    message.deliveryCount += 1;
    if (!source.deadLetter && message.deliveryCount >= source.entity.settings.maxDeliveryCount) {
      this.moveToDeadLetter(
        source,
        message,
        "MaxDeliveryCountExceeded",
        `Message could not be consumed after ${source.entity.settings.maxDeliveryCount} delivery attempts.`,
      );
      return;
    }
    message.state = "active";
    this.notify(source.entity);
  }

  private moveToDeadLetter(
    source: MessageSource,
    message: StoredMessage,
    reason?: string,
    description?: string,
  ): void {
    this.remove(source, message);
    if (source.deadLetter) return; // a dead-lettered message dead-lettered again just goes away, as in Azure
    message.state = "active";
    message.deadLetterReason = reason;
    message.deadLetterDescription = description;
    source.entity.deadLetters.push(message);
    this.notify(source.entity);
  }

  /** Expires locks (the message becomes available again) and time-to-live (the message is gone). */
  sweep(): void {
    const now = this.now();
    for (const { source, message } of [...this.locks.values()]) {
      if (message.lockedUntil !== undefined && message.lockedUntil <= now) this.release(source, message);
    }
    for (const entity of this.entities.values()) {
      if (entity.kind === "topic") continue;
      for (const message of [...entity.messages]) {
        if (message.expiresAt === undefined || message.expiresAt > now || message.state === "locked")
          continue;
        const source = { entity, deadLetter: false };
        if (entity.settings.deadLetteringOnMessageExpiration) {
          this.moveToDeadLetter(
            source,
            message,
            "TTLExpiredException",
            "The message expired and was dead lettered.",
          );
        } else {
          this.remove(source, message);
        }
      }
    }
  }
}
