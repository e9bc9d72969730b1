import { redactText } from "../../logging/logger.js";

/** Distinct errors kept per call (a storm of the same 429 is one error). */
const MAX_ERRORS = 5;

/** What an operator should check, for answers that retrying will not fix. */
const HINTS: Record<number, string> = {
  401: " (the token was refused: check the region's credential and tenant; not retried)",
  403: " (the identity lacks a role on the workspace or compute: see Roles in the AzureML region docs; not retried)",
  404: " (check subscriptionId, resourceGroup, workspace and compute; not retried)",
};

/** `region R: WHAT: HTTP 403 AuthorizationFailed: message (hint)`, secrets redacted, code kept. */
export function regionError(region: string, what: string, error: unknown): Error {
  const message = redactText(error instanceof Error ? error.message : String(error));
  const status = (error as { statusCode?: unknown })?.statusCode;
  const code = (error as { code?: unknown })?.code;
  const detail = [status !== undefined ? `HTTP ${status}` : "", typeof code === "string" ? code : ""]
    .filter(Boolean)
    .join(" ");
  const wrapped = new Error(
    `region ${region}: ${what}: ${detail ? `${detail}: ` : ""}${message}${HINTS[Number(status)] ?? ""}`,
    { cause: error },
  );
  if (typeof code === "string") (wrapped as Error & { code?: string }).code = code;
  return wrapped;
}

export function pushError(errors: Error[], error: Error): void {
  if (errors.length < MAX_ERRORS && !errors.some((known) => known.message === error.message))
    errors.push(error);
}
