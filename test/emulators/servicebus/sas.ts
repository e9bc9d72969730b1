import { createHmac, timingSafeEqual } from "node:crypto";
import { entityPathOf } from "./store.js";

/**
 * Shared access signatures as Service Bus checks them. A token is
 * `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64 HMAC-SHA256>&se=<expiry>&skn=<rule>`,
 * signed over `<sr as written in the token>\n<se>` with the rule's key. The token is good for its resource and
 * everything below it, until `se` (seconds since the epoch), with the rule's rights.
 */

export type Right = "Send" | "Listen" | "Manage";

export interface AuthorizationRule {
  name: string;
  key: string;
  rights: Right[];
}

/** What the root rule of a new namespace has. */
export const ROOT_RULE_NAME = "RootManageSharedAccessKey";

export type TokenVerdict =
  | { ok: true; rule: string; rights: Right[]; resourcePath: string; expiresAtMs: number }
  | { ok: false; description: string };

/** The token's fields, or undefined when it is not a SAS token. */
function fieldsOf(token: string): Record<string, string> | undefined {
  const match = /^SharedAccessSignature\s+(.+)$/i.exec(token.trim());
  if (!match) return undefined;
  const fields: Record<string, string> = {};
  for (const pair of (match[1] as string).split("&")) {
    const at = pair.indexOf("=");
    if (at > 0) fields[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return fields;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

/** The entity path a resource URI names: `sb://host/a/b` -> `a/b` (lower case, as Azure compares it). */
export function resourcePathOf(resource: string): string {
  const withoutQuery = resource.split(/[?#]/)[0] as string;
  return entityPathOf(withoutQuery.replace(/^https?:\/\/[^/]*\/?/i, "sb://x/")).toLowerCase();
}

/** Whether a token for `granted` covers `requested` (the same path or one below it). */
export function covers(granted: string, requested: string): boolean {
  const target = requested.toLowerCase();
  return granted === "" || target === granted || target.startsWith(`${granted}/`);
}

export function verifySasToken(
  token: string,
  rules: readonly AuthorizationRule[],
  nowMs: number,
): TokenVerdict {
  const fields = fieldsOf(token);
  if (!fields || !fields.sr || !fields.sig || !fields.se || !fields.skn)
    return {
      ok: false,
      description: "InvalidToken: the token is not a SharedAccessSignature with sr, sig, se and skn.",
    };
  const rule = rules.find((r) => r.name === decode(fields.skn as string));
  if (!rule) return { ok: false, description: "InvalidIssuer: Token issuer is invalid." };
  const expected = createHmac("sha256", rule.key).update(`${fields.sr}\n${fields.se}`, "utf8").digest();
  const given = Buffer.from(decode(fields.sig as string), "base64");
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, description: "InvalidSignature: The token has an invalid signature." };
  const expiresAtMs = Number(fields.se) * 1000;
  if (!Number.isFinite(expiresAtMs) || expiresAtMs <= nowMs)
    return {
      ok: false,
      description: `ExpiredToken: The token is expired. Expiration time: '${new Date(expiresAtMs).toISOString()}'.`,
    };
  return {
    ok: true,
    rule: rule.name,
    rights: rule.rights,
    resourcePath: resourcePathOf(decode(fields.sr as string)),
    expiresAtMs,
  };
}

/** Azure's words when a claim is missing. */
export function missingClaim(right: Right, resource: string): string {
  return `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: '${resource}'.`;
}
