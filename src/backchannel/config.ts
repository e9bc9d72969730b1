import { z } from "zod";
import {
  QUEUE_OR_TOPIC_NAME,
  QUEUE_OR_TOPIC_RULE,
  SUBSCRIPTION_NAME,
  SUBSCRIPTION_RULE,
} from "./entity-names.js";

/** The subscription every node listens on; fixed by ai4s-jobq, so not configurable on the node side. */
export const SHUTDOWN_SUBSCRIPTION = "shutdown";

const topicName = z.string().regex(QUEUE_OR_TOPIC_NAME, QUEUE_OR_TOPIC_RULE);
const subscriptionName = z.string().regex(SUBSCRIPTION_NAME, SUBSCRIPTION_RULE);

/** A host name, optionally with a port: `NAME.servicebus.windows.net`, `127.0.0.1:5671`. */
const hostName = z
  .string()
  .min(1)
  .transform((value) => value.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, ""))
  .pipe(
    z
      .string()
      .regex(
        /^[A-Za-z0-9.-]+(:\d{1,5})?$/,
        "a host name such as NAMESPACE.servicebus.windows.net (optionally sb://... or :PORT)",
      ),
  );

/**
 * A region's back channel: where the daemon sends control messages that ask running workers to finish their
 * task and leave. Either a namespace (Azure AD: the daemon needs "Azure Service Bus Data Sender" on the topic,
 * and "Data Owner" or Manage rights to auto-create it) or a connection string (local use and emulators).
 */
export const backChannelSchema = z
  .object({
    /** `NAMESPACE.servicebus.windows.net`; also what nodes get in WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE. */
    fullyQualifiedNamespace: hostName.optional(),
    /** Secret: never logged. `Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...`. */
    connectionString: z
      .string()
      .min(1)
      .refine(
        (value) => /(^|;)\s*Endpoint\s*=/i.test(value),
        "a Service Bus connection string with Endpoint=sb://...",
      )
      .optional(),
    /** What nodes get in WORKFORCE_CONTROL_TOPIC_NAME. */
    topic: topicName,
    /** Nodes listen on `shutdown` (ai4s-jobq's fixed name); change it only for agents started with the same name. */
    subscription: subscriptionName.default(SHUTDOWN_SUBSCRIPTION),
    /**
     * Where the administration client (HTTPS, ATOM) is reached when it is not the namespace itself, e.g. an
     * emulator that serves AMQP and HTTPS on different ports: `https://127.0.0.1:5443` or `127.0.0.1:5443`.
     */
    adminEndpoint: hostName.optional(),
    /** Create the topic and subscription when missing (needs Manage rights). */
    autoCreate: z.boolean().default(true),
  })
  .strict()
  .superRefine((value, ctx) => {
    const given =
      Number(value.fullyQualifiedNamespace !== undefined) + Number(value.connectionString !== undefined);
    if (given !== 1) {
      ctx.addIssue({
        code: "custom",
        path: [value.connectionString === undefined ? "fullyQualifiedNamespace" : "connectionString"],
        message:
          given === 0
            ? "set fullyQualifiedNamespace (Azure AD) or connectionString (shared key), not neither"
            : "set fullyQualifiedNamespace or connectionString, not both",
      });
    }
  });

export type BackChannelConfig = z.output<typeof backChannelSchema>;
/** What a region's config file holds before defaults. */
export type BackChannelInput = z.input<typeof backChannelSchema>;
