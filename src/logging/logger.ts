import { pino, type Logger, type DestinationStream } from "pino";
import { redactText } from "./redact.js";

export type { Logger } from "pino";

/** Keys whose values never reach a log line, wherever they sit in the logged object. */
const SECRET_KEYS = [
  "connectionString",
  "queueConnectionString",
  "stateConnectionString",
  "accountKey",
  "sharedAccessKey",
  "sasToken",
  "token",
  "accessToken",
  "authorization",
  "password",
  "clientSecret",
];

const REDACT_PATHS = SECRET_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]).concat([
  "headers.authorization",
  "*.headers.authorization",
  "request.headers.authorization",
]);

export { redactText } from "./redact.js";

/** Serialize an error for logs without leaking secrets quoted in its message or stack. */
function errorSerializer(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  for (const key of ["message", "stack"]) {
    if (typeof serialized[key] === "string") serialized[key] = redactText(serialized[key] as string);
  }
  // SDK errors carry the request (with its Authorization header) and the response: keep the useful bits.
  delete serialized.request;
  delete serialized.response;
  return serialized;
}

export interface LoggerOptions {
  level?: string;
  /** Where lines go (default stdout). Tests pass a stream to read them. */
  destination?: DestinationStream;
}

/** The one logger of a process; components take `log.child({ region })` and the like. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: { name: "workforce" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      serializers: { err: errorSerializer, error: errorSerializer },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // Free-text messages can quote a secret too.
        logMethod(args, method) {
          const redacted = args.map((arg) => (typeof arg === "string" ? redactText(arg) : arg));
          method.apply(this, redacted as Parameters<typeof method>);
        },
      },
    },
    options.destination,
  );
}
