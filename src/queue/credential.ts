import type { TokenCredential } from "@azure/core-auth";
import { DefaultAzureCredential } from "@azure/identity";

/**
 * A thunk that builds DefaultAzureCredential on first call only: commands given a connection string never
 * build one (its getToken probes the instance-metadata address).
 */
export function lazyDefaultCredential(): () => TokenCredential {
  let credential: TokenCredential | undefined;
  return () => (credential ??= new DefaultAzureCredential());
}
