import type {
  ServiceBusClient,
  ServiceBusMessage,
  ServiceBusMessageBatch,
  ServiceBusSender,
} from "@azure/service-bus";
import type { Logger } from "../logging/logger.js";
import type { CallOptions } from "../regions/types.js";
import { fencedSignal, type WriteFence } from "../regions/fence.js";
import {
  createAdministrationClient,
  createServiceBusClient,
  namespaceOf,
  type ServiceBusClientDeps,
  type ServiceBusTarget,
} from "./clients.js";
import { explainServiceBusError } from "./errors.js";
import { encodeControlMessage, type ControlOperation } from "./message.js";

export interface ControlTopic extends ServiceBusTarget {
  topic: string;
  subscription: string;
  /** Create the topic and subscription when missing. */
  autoCreate: boolean;
}

export interface SendResult {
  /** Messages the broker accepted. */
  sent: number;
  /**
   * Messages whose send was cut off before the broker answered (deadline, dropped connection): the broker
   * may have taken them, so they count as sent.
   */
  unknown?: number;
  errors: Error[];
}

/** Broker answers that say a send was refused, not carried out: its messages are certainly not sent. */
const REFUSALS = new Set([
  "MessageSizeExceeded",
  "MessagingEntityNotFound",
  "MessagingEntityDisabled",
  "UnauthorizedAccess",
  "QuotaExceeded",
  "ServiceBusy",
]);

function refused(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && REFUSALS.has(code);
}

export interface ControlSender {
  /** Send `count` control messages with `operation`; stops at the first failed batch. */
  send(operation: ControlOperation, count: number, options?: CallOptions): Promise<SendResult>;
  /** Make sure the topic and subscription exist (once per process per topic; see TopologyCache). */
  ensureTopology(options?: CallOptions): Promise<void>;
  close(): Promise<void>;
}

/**
 * Remembers which topics this process has already made sure of, so that the administration endpoint is
 * called once per topic, not once per tick. A failed attempt is retried after `retryAfterMs`.
 */
export interface TopologyCache {
  readonly done: Set<string>;
  readonly failedAt: Map<string, number>;
  readonly retryAfterMs: number;
}

export function createTopologyCache(retryAfterMs = 5 * 60_000): TopologyCache {
  return { done: new Set(), failedAt: new Map(), retryAfterMs };
}

export interface ControlSenderOptions {
  target: ControlTopic;
  /** Time-to-live of every message: one nobody takes must not stop a worker hired later. */
  ttlSeconds: number;
  logger: Logger;
  clientDeps?: ServiceBusClientDeps;
  topology?: TopologyCache;
  /** Added to each message's application properties (e.g. the region), for whoever reads the topic. */
  labels?: Record<string, string>;
  /** Injected clock for tests. */
  now?: () => number;
  /** Checked before the topic is made sure of and right before each batch goes to the broker (leader election). */
  fence?: WriteFence;
}

function alreadyExists(error: unknown): boolean {
  const { statusCode, code } = error as { statusCode?: number; code?: string };
  return statusCode === 409 || code === "MessageEntityAlreadyExistsError";
}

async function createTolerant(create: () => Promise<unknown>): Promise<"created" | "existed"> {
  try {
    await create();
    return "created";
  } catch (error) {
    if (alreadyExists(error)) return "existed";
    throw error;
  }
}

export function createControlSender(options: ControlSenderOptions): ControlSender {
  const { target, logger } = options;
  const topology = options.topology ?? createTopologyCache();
  const now = options.now ?? Date.now;
  const key = `${namespaceOf(target)}/${target.topic}/${target.subscription}`;
  let client: ServiceBusClient | undefined;
  let sender: ServiceBusSender | undefined;

  function getSender(): ServiceBusSender {
    client ??= createServiceBusClient(target, options.clientDeps);
    sender ??= client.createSender(target.topic);
    return sender;
  }

  async function ensureTopology(callOptions?: CallOptions): Promise<void> {
    if (!target.autoCreate || topology.done.has(key)) return;
    const failedAt = topology.failedAt.get(key);
    if (failedAt !== undefined && now() - failedAt < topology.retryAfterMs) return;
    const admin = createAdministrationClient(target, options.clientDeps);
    const abortSignal = callOptions?.signal;
    try {
      const topic = await createTolerant(() => admin.createTopic(target.topic, { abortSignal }));
      const subscription = await createTolerant(() =>
        admin.createSubscription(target.topic, target.subscription, { abortSignal }),
      );
      topology.done.add(key);
      topology.failedAt.delete(key);
      if (topic === "created" || subscription === "created") {
        logger.info(
          {
            topic: target.topic,
            subscription: target.subscription,
            topicState: topic,
            subscriptionState: subscription,
          },
          "back channel topic and subscription ready",
        );
      }
    } catch (error) {
      topology.failedAt.set(key, now());
      // Not fatal: with Data Sender rights only, the topic must have been created by someone else.
      logger.warn(
        { err: error, topic: target.topic, subscription: target.subscription },
        "could not make sure the back channel topic and subscription exist; sending anyway",
      );
    }
  }

  function message(operation: ControlOperation): ServiceBusMessage {
    return {
      // A Buffer travels as one AMQP data section, byte-for-byte (a string would be JSON-encoded again).
      body: encodeControlMessage(operation),
      contentType: "application/json",
      timeToLive: Math.round(options.ttlSeconds * 1000),
      applicationProperties: { origin: "workforce-autoscaler", ...options.labels },
    };
  }

  async function send(
    operation: ControlOperation,
    count: number,
    callOptions?: CallOptions,
  ): Promise<SendResult> {
    if (!Number.isInteger(count) || count < 0)
      throw new RangeError(`message count must be an integer >= 0; given ${count}`);
    if (count === 0) return { sent: 0, unknown: 0, errors: [] };
    const abortSignal = callOptions?.signal;
    // Before the topic's creation too (a write to the namespace): a fenced replica makes none of them.
    try {
      options.fence?.check("control message send");
    } catch (error) {
      return { sent: 0, unknown: 0, errors: [error as Error] };
    }
    // The administration client retries a creation by itself: cut off when the lease runs out or is lost.
    const topologyGuard = fencedSignal(options.fence, "back channel topic creation (a retry)", abortSignal);
    try {
      await ensureTopology(topologyGuard.signal ? { signal: topologyGuard.signal } : callOptions);
    } finally {
      topologyGuard.done();
    }
    let sent = 0;
    /** Messages of the batch being sent now: if the send fails, they may have gone out all the same. */
    let sending = 0;
    const sendBatch = async (topicSender: ServiceBusSender, batch: ServiceBusMessageBatch) => {
      // Before the batch is in flight: a fenced replica sends nothing, and nothing counts as maybe sent.
      options.fence?.check("control message send");
      sending = batch.count;
      // The SDK retries a send by itself: the lease's end stops those retries (the batch counts as maybe sent).
      const guard = fencedSignal(options.fence, "control message send (a retry)", abortSignal);
      try {
        await topicSender.sendMessages(batch, { abortSignal: guard.signal });
      } catch (error) {
        const fenced = guard.fenced();
        if (fenced)
          throw new Error(`control message send cut off, the batch may have gone: ${fenced.message}`, {
            cause: error,
          });
        throw error;
      } finally {
        guard.done();
      }
      sent += batch.count;
      sending = 0;
    };
    try {
      const topicSender = getSender();
      // Batches: k messages in as few round trips as the broker's size limit allows.
      let batch = await topicSender.createMessageBatch({ abortSignal });
      for (let index = 0; index < count; index += 1) {
        if (batch.tryAddMessage(message(operation))) continue;
        if (batch.count === 0) throw new Error("a control message does not fit in an empty batch");
        await sendBatch(topicSender, batch);
        batch = await topicSender.createMessageBatch({ abortSignal });
        if (!batch.tryAddMessage(message(operation)))
          throw new Error("a control message does not fit in an empty batch");
      }
      if (batch.count > 0) await sendBatch(topicSender, batch);
      return { sent, unknown: 0, errors: [] };
    } catch (error) {
      // The SDK's retries wrap the broker's answer in an AggregateError: judge (and report) the answer.
      const explained = explainServiceBusError(error, {
        namespace: namespaceOf(target),
        entity: target.topic,
        claim: "Send",
      });
      const unknown = refused(explained) ? 0 : sending;
      return {
        sent,
        unknown,
        errors: [explained instanceof Error ? explained : new Error(String(explained))],
      };
    }
  }

  return {
    send,
    ensureTopology,
    async close() {
      const closing = client;
      client = undefined;
      sender = undefined;
      await closing?.close();
    },
  };
}
