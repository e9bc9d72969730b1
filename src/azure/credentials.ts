import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import { z } from "zod";

/** Public-cloud ARM endpoint; sovereign clouds and the emulator override it per region. */
export const PUBLIC_ARM_ENDPOINT = "https://management.azure.com";

/** The token scope for an ARM endpoint: its origin + "/.default" (public cloud: management.azure.com). */
export function armScope(endpoint: string): string {
  return `${new URL(endpoint).origin}/.default`;
}

/**
 * How a region gets its Azure token. Default: the daemon's credential (DefaultAzureCredential: workload
 * identity, managed identity, ...). A region may name its own user-assigned managed identity, workload
 * identity client, or the Azure CLI login (for a person running the daemon from a laptop).
 */
export const credentialConfigSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("default") }).strict(),
  z.object({ type: z.literal("managedIdentity"), clientId: z.string().min(1).optional() }).strict(),
  z
    .object({
      type: z.literal("workloadIdentity"),
      clientId: z.string().min(1).optional(),
      tenantId: z.string().min(1).optional(),
    })
    .strict(),
  z.object({ type: z.literal("azureCli"), tenantId: z.string().min(1).optional() }).strict(),
  /** A fixed dummy token, for the local ARM emulator only (refused for any other endpoint). */
  z.object({ type: z.literal("emulator") }).strict(),
]);
export type CredentialConfig = z.output<typeof credentialConfigSchema>;

/**
 * A credential that builds the real one on first getToken only: nothing is constructed (and no network
 * is probed) for a region that is never called.
 */
export class LazyCredential implements TokenCredential {
  private inner: Promise<TokenCredential> | undefined;
  constructor(private readonly build: () => TokenCredential | Promise<TokenCredential>) {}

  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    this.inner ??= Promise.resolve().then(this.build);
    return (await this.inner).getToken(scopes, options);
  }
}

/** The credential for one region: its own if configured, else the daemon's (`fallback`). */
export function regionCredential(
  config: CredentialConfig | undefined,
  fallback: () => TokenCredential,
): TokenCredential {
  if (!config || config.type === "default") return new LazyCredential(fallback);
  if (config.type === "emulator") return new StaticTokenCredential("emulator");
  return new LazyCredential(async () => {
    // @azure/identity is loaded only when a region asks for its own credential.
    const identity = await import("@azure/identity");
    switch (config.type) {
      case "managedIdentity":
        return config.clientId
          ? new identity.ManagedIdentityCredential({ clientId: config.clientId })
          : new identity.ManagedIdentityCredential();
      case "workloadIdentity":
        return new identity.WorkloadIdentityCredential({
          ...(config.clientId ? { clientId: config.clientId } : {}),
          ...(config.tenantId ? { tenantId: config.tenantId } : {}),
        });
      case "azureCli":
        return new identity.AzureCliCredential(config.tenantId ? { tenantId: config.tenantId } : {});
      default:
        throw new Error(`unknown credential type ${(config as { type: string }).type}`);
    }
  });
}

/**
 * A fixed identity for tests and the emulators: an unsigned JWT (`alg: none`) whose `aud` is the resource
 * of the scope asked for, as Entra ID's tokens carry it, so that an emulator can refuse a token meant for
 * another service (an ARM token sent to ml.azure.com) as the real one does. Never valid for Azure.
 */
export class StaticTokenCredential implements TokenCredential {
  constructor(private readonly subject = "test-token") {}
  async getToken(scopes: string | string[]): Promise<AccessToken> {
    const scope = (Array.isArray(scopes) ? scopes[0] : scopes) ?? "";
    const expiresOnTimestamp = Date.now() + 3_600_000;
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const claims = {
      aud: scope.replace(/\/\.default$/, ""),
      sub: this.subject,
      exp: Math.floor(expiresOnTimestamp / 1000),
    };
    return { token: `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.`, expiresOnTimestamp };
  }
}

/**
 * A thunk that builds DefaultAzureCredential on first call only: local mode and connection-string setups
 * never build one (its getToken probes the instance-metadata address). AZURE_TOKEN_CREDENTIALS narrows
 * the chain, e.g. to WorkloadIdentityCredential.
 */
export function lazyDefaultCredential(): () => TokenCredential {
  let credential: TokenCredential | undefined;
  // @azure/identity is loaded on the first getToken, not at start.
  return () =>
    (credential ??= new LazyCredential(
      async () => new (await import("@azure/identity")).DefaultAzureCredential(),
    ));
}
