import type { ScaleUpFailureReason } from "../metrics/registry.js";

/**
 * What kind of failure an error is: one that will heal by itself (throttling, a timeout, a refused
 * connection while a service restarts) or one that never will until someone fixes the configuration
 * (a wrong key or role, a queue, workspace or cluster that does not exist, a host that does not resolve).
 */
export interface FailureKind {
  permanent: boolean;
  reason: ScaleUpFailureReason;
  /** What to fix, for permanent failures. */
  hint?: string;
  /** The network cause and host, when there is one: "connection refused by 127.0.0.1:10001". */
  network?: string;
}

const NETWORK_CAUSES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ETIMEDOUT: "connection timed out",
  ECONNRESET: "connection reset",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  CERT_HAS_EXPIRED: "TLS certificate expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed TLS certificate (set NODE_EXTRA_CA_CERTS)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "untrusted TLS certificate (set NODE_EXTRA_CA_CERTS)",
  SELF_SIGNED_CERT_IN_CHAIN: "untrusted TLS certificate (set NODE_EXTRA_CA_CERTS)",
};

interface ErrorLike {
  name?: string;
  code?: unknown;
  statusCode?: unknown;
  message?: string;
  cause?: unknown;
  address?: string;
  port?: number;
  hostname?: string;
  request?: { url?: string };
  details?: { errorCode?: string };
}

function chain(error: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  let current: unknown = error;
  for (let depth = 0; current && typeof current === "object" && depth < 6; depth++) {
    out.push(current as ErrorLike);
    const next = current as ErrorLike & { errors?: unknown[] };
    current = next.cause ?? next.errors?.[0];
  }
  return out;
}

function hostOf(errors: ErrorLike[]): string | undefined {
  for (const error of errors) {
    if (error.address) return error.port ? `${error.address}:${error.port}` : error.address;
    if (error.hostname) return error.hostname;
    if (error.request?.url) {
      try {
        return new URL(error.request.url).host;
      } catch {
        // not a URL
      }
    }
  }
  return undefined;
}

/** "connection refused by 127.0.0.1:1" from an error or its causes, when the network is to blame. */
export function networkCause(error: unknown): string | undefined {
  const errors = chain(error);
  for (const candidate of errors) {
    const code = typeof candidate.code === "string" ? candidate.code : undefined;
    const fromMessage =
      /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH)\b/.exec(
        candidate.message ?? "",
      )?.[1];
    const known = code && NETWORK_CAUSES[code] ? code : fromMessage;
    if (known) {
      const host = hostOf(errors) ?? /(?:ENOTFOUND|EAI_AGAIN) (\S+)/.exec(candidate.message ?? "")?.[1];
      return `${NETWORK_CAUSES[known]}${host ? ` (${host})` : ""}`;
    }
  }
  return undefined;
}

export function classifyFailure(error: unknown): FailureKind {
  const errors = chain(error);
  const network = networkCause(error);
  const text = errors.map((e) => `${e.name ?? ""} ${String(e.code ?? "")} ${e.message ?? ""}`).join(" ");
  const status = errors.map((e) => e.statusCode).find((s): s is number => typeof s === "number");
  const withNetwork = (kind: FailureKind): FailureKind => (network ? { ...kind, network } : kind);

  if (/room for \d+|no capacity|quota/i.test(text))
    return withNetwork({ permanent: false, reason: "no_capacity" });
  if (
    status === 401 ||
    status === 403 ||
    /AuthenticationFailed|AuthorizationFailure|AuthorizationPermissionMismatch|CredentialUnavailable|AuthenticationRequired|InvalidAuthenticationInfo|invalid_client|AADSTS/i.test(
      text,
    )
  )
    return withNetwork({
      permanent: true,
      reason: "permanent",
      hint: "authentication or authorization failed: check the key or connection string, or the identity's role",
    });
  if (
    status === 404 ||
    /QueueNotFound|ResourceNotFound|ContainerNotFound|WorkspaceNotFound|MessagingEntityNotFound|ResourceGroupNotFound|not found/i.test(
      text,
    )
  )
    return withNetwork({
      permanent: true,
      reason: "permanent",
      hint: "not found: check the name of the queue, workspace, cluster or resource group, and the subscription",
    });
  if (network?.startsWith("host not found"))
    return {
      permanent: true,
      reason: "permanent",
      network,
      hint: "the host does not resolve: check the endpoint (account name, endpoint suffix, namespace)",
    };
  if (/Invalid URL|ERR_INVALID_URL|Invalid connection string|malformed/i.test(text))
    return withNetwork({
      permanent: true,
      reason: "permanent",
      hint: "malformed endpoint: check the connection string or URL",
    });
  if (status === 429 || status === 503 || /throttl|TooManyRequests|ServerBusy/i.test(text))
    return withNetwork({ permanent: false, reason: "throttled" });
  if (/DeadlineExceeded|did not answer within|timed out|ETIMEDOUT|AbortError/i.test(text))
    return withNetwork({ permanent: false, reason: "timeout" });
  return withNetwork({ permanent: false, reason: "error" });
}

/** One line, whatever the SDK put in its message (RequestId, Time, XML bodies...): first line, cut. */
export function oneLine(message: string, max = 240): string {
  const first = message.split(/\r?\n/).find((line) => line.trim() !== "") ?? message;
  const trimmed = first.trim();
  return trimmed.length > max ? `${trimmed.slice(0, max - 3)}...` : trimmed;
}
