/**
 * Service Bus refusals, named. The SDK retries a refused token and then throws an AggregateError with an
 * empty message; a user needs the refusal itself (a wrong key, a rule without the claim) and what to check.
 */

export type Claim = "Send" | "Listen" | "Manage";

/** Service Bus refused our credentials or their rights on the back channel. */
export class BackChannelAccessError extends Error {
  override readonly name = "BackChannelAccessError";
  constructor(
    message: string,
    /** The SDK's code (UnauthorizedAccess). */
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The most telling error inside an AggregateError (the SDK's retries), else the error itself. */
export function innermostError(error: unknown): unknown {
  let current = error;
  while (current instanceof AggregateError && current.errors.length > 0) current = current.errors.at(-1);
  return current;
}

/**
 * `error` as a user should read it: a refusal becomes a BackChannelAccessError that says which claim the
 * operation needs and where; anything else is returned unwrapped.
 */
export function explainServiceBusError(
  error: unknown,
  context: { namespace: string; entity: string; claim: Claim },
): unknown {
  const inner = innermostError(error);
  const { code, message } = (inner ?? {}) as { code?: string; message?: string };
  if (code !== "UnauthorizedAccess") return inner;
  const hint = /claim/i.test(message ?? "")
    ? `the shared access rule (or role) lacks the ${context.claim} claim`
    : "check the connection string's SharedAccessKeyName and SharedAccessKey (or the identity's role)";
  return new BackChannelAccessError(
    `Service Bus refused access to ${context.namespace}/${context.entity} (${code}: ${message ?? "no reason given"}); ` +
      `${context.claim} is needed: ${hint}`,
    code,
    { cause: inner },
  );
}
