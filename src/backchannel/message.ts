import { pythonJsonDumps } from "../queue/python-json.js";

/**
 * The control message of the back channel, as ai4s-jobq's node listener reads it: `json.loads(str(message))`
 * where `str()` of a received message joins its AMQP data sections decoded as UTF-8 (an AMQP value section
 * becomes Python's repr instead, which is not JSON). So the body must travel as a data section holding the
 * UTF-8 bytes of a JSON object. We write exactly what Python's `json.dumps` writes, so the two are byte-equal.
 */

export const CONTROL_OPERATIONS = ["graceful-downscale", "do-not-accept-new-tasks"] as const;
export type ControlOperation = (typeof CONTROL_OPERATIONS)[number];

export function isControlOperation(value: unknown): value is ControlOperation {
  return typeof value === "string" && (CONTROL_OPERATIONS as readonly string[]).includes(value);
}

/**
 * `json.dumps({"operation": op})` as Python writes it (", " and ": " separators, ASCII only). A Buffer, never a
 * JS string: @azure/service-bus JSON-encodes a string body a second time.
 */
export function encodeControlMessage(operation: ControlOperation): Buffer {
  return Buffer.from(pythonJsonDumps({ operation }), "utf8");
}

/** Why a received body is not a control message: the agent dead-letters it with this reason. */
export type ControlMessageProblem = {
  reason: "MalformedControlMessage" | "UnknownOperation";
  description: string;
};

export type DecodedControlMessage = { operation: ControlOperation } | { problem: ControlMessageProblem };

/** What the receiving SDK hands over: the AMQP body section's kind and its content. */
export interface ReceivedBody {
  /** "data" for data sections (Buffers), "value" or "sequence" otherwise. */
  bodyType: "data" | "value" | "sequence";
  body: unknown;
}

const MAX_QUOTED = 80;

function quote(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > MAX_QUOTED ? `${clean.slice(0, MAX_QUOTED - 3)}...` : clean;
}

/**
 * The text Python's listener would parse, or the problem when Python would choke before json.loads (a value
 * section that is not a string: its str() is a Python repr, not JSON).
 */
function textOf(received: ReceivedBody): string | { problem: ControlMessageProblem } {
  const { bodyType, body } = received;
  if (bodyType === "data") {
    const sections = Array.isArray(body) ? body : [body];
    const buffers: Buffer[] = [];
    for (const section of sections) {
      if (Buffer.isBuffer(section) || section instanceof Uint8Array) buffers.push(Buffer.from(section));
      else if (section === null || section === undefined) continue;
      else {
        return {
          problem: { reason: "MalformedControlMessage", description: "data section without bytes" },
        };
      }
    }
    const bytes = Buffer.concat(buffers);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      return { problem: { reason: "MalformedControlMessage", description: "body is not valid UTF-8" } };
    }
  }
  if (bodyType === "value" && typeof body === "string") return body;
  return {
    problem: {
      reason: "MalformedControlMessage",
      description: `body is an AMQP ${bodyType} section holding ${body === null ? "null" : typeof body}; expected a data section with UTF-8 JSON (ai4s-jobq workers cannot read it either)`,
    },
  };
}

/** Decode a received body under the Python listener's rules, and say why when it is not a control message. */
export function decodeControlMessage(received: ReceivedBody): DecodedControlMessage {
  const text = textOf(received);
  if (typeof text !== "string") return text;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return {
      problem: { reason: "MalformedControlMessage", description: `body is not JSON: "${quote(text)}"` },
    };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    const kind = parsed === null ? "null" : Array.isArray(parsed) ? "an array" : `a JSON ${typeof parsed}`;
    return {
      problem: {
        reason: "MalformedControlMessage",
        description: `body is ${kind}; expected an object {"operation": ...}`,
      },
    };
  }
  const operation = (parsed as Record<string, unknown>).operation;
  if (operation === undefined) {
    return { problem: { reason: "MalformedControlMessage", description: 'body has no "operation" field' } };
  }
  if (!isControlOperation(operation)) {
    return {
      problem: {
        reason: "UnknownOperation",
        description: `operation ${quote(JSON.stringify(operation) ?? String(operation))} is not one of ${CONTROL_OPERATIONS.join(", ")}`,
      },
    };
  }
  return { operation };
}
