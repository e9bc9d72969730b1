import type { ServiceBusReceivedMessage, ServiceBusReceiver } from "@azure/service-bus";
import type { Logger } from "../logging/logger.js";
import { BackChannelAccessError } from "../backchannel/errors.js";
import { decodeControlMessage, type ControlOperation, type ReceivedBody } from "../backchannel/message.js";

/** What the node did about a control message. */
export type ControlOutcome =
  /**
   * Workers were found: the message is ours (complete it), then `act` signals them. `act` returns false
   * when it could not act after all (the message is spent; listening goes on).
   */
  | { kind: "act"; act: () => boolean | void }
  /** Nothing here to stop: give the message back so that another node takes it. */
  | { kind: "nothing-here" }
  /** This node cannot act now (`reason` says why): give the message back. */
  | { kind: "give-back"; reason: string };

export interface ListenOptions {
  receiver: ServiceBusReceiver;
  logger: Logger;
  /** Decides what a valid control message means for this node. */
  onControl: (operation: ControlOperation) => ControlOutcome;
  /** Stops listening (the agent is shutting down or its wrapped worker left). */
  signal: AbortSignal;
  /** Longest wait of one receive call (default 60 s); short in tests. */
  maxWaitMs?: number;
  /** After giving a message back, wait this long before taking another (default 2 s). */
  pauseAfterAbandonMs?: number;
  /** Longest pause between retries after a failed receive (default 30 s). */
  maxBackoffMs?: number;
  /**
   * Whether this node has a worker to stop. While it has none, no message is taken: every message taken
   * and given back counts as a delivery, and at the subscription's max delivery count (default 10) Service
   * Bus dead-letters it, so a node waiting for its first worker would otherwise burn control messages.
   */
  hasWorkers?: () => boolean;
  /** How often `hasWorkers` is asked again while it says no (default 1 s). */
  workerPollMs?: number;
  /** Logged with "listening for control messages" once the first receive has answered (connected). */
  listeningFields?: Record<string, unknown>;
  /** Turns a failed receive into what a user should read (a refused token names its cause). */
  explainError?: (error: unknown) => unknown;
}

/** The first receive waits this long at most: its answer is what proves the link is up. */
const FIRST_RECEIVE_MS = 1_000;

export type ListenResult = { kind: "acted"; operation: ControlOperation } | { kind: "stopped" };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function bodyOf(message: ServiceBusReceivedMessage): ReceivedBody {
  const bodyType = message._rawAmqpMessage?.bodyType ?? "data";
  return { bodyType, body: message.body };
}

/**
 * Takes control messages one at a time in peek-lock mode until one is acted upon. A malformed message is
 * dead-lettered with the reason and listening goes on. A receive that fails (dropped connection, refused
 * token) is retried with backoff; the SDK re-opens its connection and link on the next call.
 *
 * The message is completed *before* the workers are signalled: if completing fails (lock lost), another
 * node gets the message and this one must not act too, or two nodes would leave for one request. Nor
 * does it act when listening stopped while the completion was on its way (see below).
 */
export async function listenForControl(options: ListenOptions): Promise<ListenResult> {
  const { receiver, logger, signal } = options;
  const maxWaitTimeInMs = options.maxWaitMs ?? 60_000;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  let backoffMs = 500;
  let waitingForWorkers = false;
  let listening = false;
  while (!signal.aborted) {
    if (options.hasWorkers && !options.hasWorkers()) {
      // Logged once per wait, not per poll.
      if (!waitingForWorkers) logger.info("no live worker on this node yet; not taking control messages");
      waitingForWorkers = true;
      await sleep(options.workerPollMs ?? 1_000, signal);
      continue;
    }
    if (waitingForWorkers) logger.info("a live worker is here; taking control messages");
    waitingForWorkers = false;
    let messages: ServiceBusReceivedMessage[];
    try {
      messages = await receiver.receiveMessages(1, {
        maxWaitTimeInMs: listening ? maxWaitTimeInMs : Math.min(FIRST_RECEIVE_MS, maxWaitTimeInMs),
        abortSignal: signal,
      });
      backoffMs = 500;
      if (!listening) logger.info(options.listeningFields ?? {}, "listening for control messages");
      listening = true;
    } catch (error) {
      if (signal.aborted) break;
      const explained = options.explainError ? options.explainError(error) : error;
      logger.warn(
        { err: explained, retryInMs: backoffMs },
        explained instanceof BackChannelAccessError
          ? `the back channel refused access; retrying: ${explained.message}`
          : `${listening ? "receiving control messages failed" : "cannot connect to the back channel yet"}; retrying`,
      );
      await sleep(backoffMs, signal);
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
      continue;
    }
    for (const message of messages) {
      const decoded = decodeControlMessage(bodyOf(message));
      const messageId = message.messageId === undefined ? undefined : String(message.messageId);
      if ("problem" in decoded) {
        const { reason, description } = decoded.problem;
        logger.warn({ messageId, reason, description }, "control message dead-lettered");
        try {
          await receiver.deadLetterMessage(message, {
            deadLetterReason: reason,
            deadLetterErrorDescription: description,
          });
        } catch (error) {
          logger.warn({ err: error, messageId }, "could not dead-letter a malformed control message");
        }
        continue;
      }
      const outcome = options.onControl(decoded.operation);
      if (outcome.kind === "nothing-here" || outcome.kind === "give-back") {
        if (outcome.kind === "give-back")
          logger.warn(
            { messageId, operation: decoded.operation, reason: outcome.reason },
            `cannot act on this node now; control message given back: ${outcome.reason}`,
          );
        else
          logger.info(
            { messageId, operation: decoded.operation },
            "no live worker on this node; control message given back",
          );
        try {
          await receiver.abandonMessage(message);
        } catch (error) {
          logger.warn({ err: error, messageId }, "could not give back a control message");
        }
        await sleep(options.pauseAfterAbandonMs ?? 2_000, signal);
        continue;
      }
      try {
        await receiver.completeMessage(message);
      } catch (error) {
        logger.warn({ err: error, messageId }, "could not complete the control message; not acting on it");
        continue;
      }
      // The broker answered after listening stopped (SIGTERM, a leave signal, the worker left): this node
      // is leaving, and its workers may have been told already; signalling them now would be a second
      // signal, a hard stop of the task in hand. The message is spent: the daemon's ledger counts a
      // departure as a drain done, and anything else in flight until the drain timeout (the safe side).
      if (signal.aborted) {
        logger.warn(
          { messageId, operation: decoded.operation },
          "control message taken as this node stopped listening: not acted on",
        );
        return { kind: "stopped" };
      }
      if (outcome.act() === false) {
        logger.error(
          { messageId, operation: decoded.operation },
          "control message taken but not acted on (see above); listening on",
        );
        continue;
      }
      return { kind: "acted", operation: decoded.operation };
    }
  }
  return { kind: "stopped" };
}
