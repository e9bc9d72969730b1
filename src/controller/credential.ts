import type { TokenCredential } from "@azure/core-auth";
import { DefaultAzureCredential } from "@azure/identity";

/**
 * DefaultAzureCredential, built on first use only: local mode and connection-string setups never build one
 * (its getToken probes the instance-metadata service). AZURE_TOKEN_CREDENTIALS narrows the chain, e.g. to
 * EnvironmentCredential or WorkloadIdentityCredential.
 */
export function lazyCredential(): () => TokenCredential {
  let credential: TokenCredential | undefined;
  return () => (credential ??= new DefaultAzureCredential());
}
