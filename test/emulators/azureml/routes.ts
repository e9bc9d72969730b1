import { PROVIDER } from "./errors.js";

/** The ARM operations of AzureML the emulator answers (the names of the REST spec's operation ids). */
export type Operation =
  | "workspaces.get"
  | "jobs.list"
  | "jobs.get"
  | "jobs.createOrUpdate"
  | "jobs.cancel"
  | "operations.get"
  | "computes.get"
  | "environmentVersions.createOrUpdate"
  | "environmentVersions.get"
  | "unknown";

export interface Route {
  operation: Operation;
  subscription?: string;
  resourceGroup?: string;
  workspace?: string;
  name?: string;
  version?: string;
}

/** Reads count against ARM's read budget, everything else against the write budget. */
export function isRead(method: string): boolean {
  return method === "GET" || method === "HEAD";
}

export function route(method: string, path: string): Route {
  const parts = path.split("/").filter((part) => part.length > 0);
  const lower = parts.map((part) => part.toLowerCase());
  if (
    lower[0] === "subscriptions" &&
    lower[2] === "providers" &&
    lower[4] === "locations" &&
    lower[6] === "mfeoperationresults"
  ) {
    return method === "GET"
      ? { operation: "operations.get", subscription: parts[1], name: parts[7] }
      : { operation: "unknown", subscription: parts[1] };
  }
  if (
    lower[0] !== "subscriptions" ||
    lower[2] !== "resourcegroups" ||
    lower[4] !== "providers" ||
    lower[5] !== PROVIDER.toLowerCase() ||
    lower[6] !== "workspaces" ||
    parts.length < 8
  ) {
    return { operation: "unknown", ...(lower[0] === "subscriptions" ? { subscription: parts[1] } : {}) };
  }
  const base = { subscription: parts[1]!, resourceGroup: parts[3]!, workspace: parts[7]! };
  const rest = lower.slice(8);
  const restRaw = parts.slice(8);
  if (rest.length === 0)
    return method === "GET" ? { operation: "workspaces.get", ...base } : { operation: "unknown", ...base };
  if (rest[0] === "jobs") {
    if (rest.length === 1 && method === "GET") return { operation: "jobs.list", ...base };
    if (rest.length === 2 && method === "GET") return { operation: "jobs.get", ...base, name: restRaw[1]! };
    if (rest.length === 2 && method === "PUT")
      return { operation: "jobs.createOrUpdate", ...base, name: restRaw[1]! };
    if (rest.length === 3 && rest[2] === "cancel" && method === "POST")
      return { operation: "jobs.cancel", ...base, name: restRaw[1]! };
  }
  if (rest[0] === "computes" && rest.length === 2 && method === "GET")
    return { operation: "computes.get", ...base, name: restRaw[1]! };
  if (rest[0] === "environments" && rest[2] === "versions" && rest.length === 4) {
    const env = { ...base, name: restRaw[1]!, version: restRaw[3]! };
    if (method === "PUT") return { operation: "environmentVersions.createOrUpdate", ...env };
    if (method === "GET") return { operation: "environmentVersions.get", ...env };
  }
  return { operation: "unknown", ...base };
}
