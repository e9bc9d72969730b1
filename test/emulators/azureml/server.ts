import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { loadTestTls } from "../tls/index.js";
import { TERMINAL, VirtualWorkspace, type SchedulerTiming, type StoredJob } from "./workspace.js";

/**
 * An HTTPS emulator of the Azure Resource Manager API of AzureML (api-version 2022-10-01, what
 * @azure/arm-machinelearning 2.1.1 sends), faithful enough for the real SDK: jobs PUT/GET/list (nextLink
 * paging, listViewType, tag, jobType, $skip), cancel as a long-running operation (202 + Location), computes
 * GET, environment versions PUT/GET, ARM error bodies, any bearer token accepted (none: 401).
 */

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

export type FaultKind =
  | { kind: "latency"; ms: number }
  | { kind: "throttle"; retryAfterSeconds?: number; retryAfterMs?: number }
  | { kind: "error500" }
  | { kind: "html503" }
  | { kind: "reset" }
  /** Do the operation, then drop the connection before answering (the client sees a network error). */
  | { kind: "resetAfterCommit" }
  | { kind: "hang" }
  /** Refuse the request, without doing it, with an ARM error body (401, 403 AuthorizationFailed, 404, 409...). */
  | { kind: "error"; status: number; code: string; message?: string }
  /**
   * Do the operation, then answer with a changed body: `body` maps the JSON answer (e.g. drop a field), or
   * `raw` replaces it with text of `contentType` (a proxy's HTML page). For the adapter's robustness tests.
   */
  | { kind: "rewrite"; body?: (answer: unknown) => unknown; raw?: string; contentType?: string };

export type Fault = FaultKind & {
  /** Operations it applies to (default: all). */
  operations?: Operation[];
  /** Workspace names it applies to (default: all). */
  workspaces?: string[];
  /** How many requests it hits before it is spent (default: unlimited). */
  times?: number;
};

export interface LoggedRequest {
  at: number;
  method: string;
  /** Path without query. */
  path: string;
  query: Record<string, string>;
  operation: Operation;
  workspace?: string;
  status: number;
  /** Names of faults applied. */
  faults: string[];
}

export interface ArmEmulatorOptions {
  port?: number;
  host?: string;
  /** Jobs per list page (default 100). */
  pageSize?: number;
  /** Scheduler step (default 25 ms); 0 disables the timer (tests then call step()). */
  stepMs?: number;
  timing?: Partial<SchedulerTiming>;
  /** Create unknown workspaces on first use with this cluster (standalone mode). */
  autoCreate?: { clusterName: string; maxNodeCount: number };
  /** Skip the bearer-token check. */
  allowAnonymous?: boolean;
}

export interface ArmEmulator {
  /** Base URL, e.g. https://127.0.0.1:PORT (pass as the SDK's `endpoint`). */
  readonly url: string;
  readonly port: number;
  /** PEM of the CA that issued the server certificate (pass as `tlsOptions: { ca }`). */
  readonly ca: string;
  readonly requests: LoggedRequest[];
  workspace(subscription: string, resourceGroup: string, name: string): VirtualWorkspace;
  findWorkspace(name: string): VirtualWorkspace | undefined;
  addFault(fault: Fault): void;
  clearFaults(): void;
  /** Run the scheduler of every workspace now. */
  step(): void;
  close(): Promise<void>;
}

const PROVIDER = "Microsoft.MachineLearningServices";
const API_VERSION = "2022-10-01";

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly inner?: unknown,
  ) {
    super(message);
  }
}

function armErrorBody(error: HttpError): unknown {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.inner ? { innerError: error.inner } : {}),
      details: [],
      additionalInfo: [],
    },
  };
}

interface Route {
  operation: Operation;
  subscription?: string;
  resourceGroup?: string;
  workspace?: string;
  name?: string;
  version?: string;
}

function route(method: string, path: string): Route {
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
      : { operation: "unknown" };
  }
  if (
    lower[0] !== "subscriptions" ||
    lower[2] !== "resourcegroups" ||
    lower[4] !== "providers" ||
    lower[5] !== PROVIDER.toLowerCase() ||
    lower[6] !== "workspaces" ||
    parts.length < 8
  ) {
    return { operation: "unknown" };
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

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** JSON with sorted keys, so that a body that went through the SDK's (de)serializer compares equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** `$skip` is an opaque continuation token in AzureML, not a number: clients must pass nextLink as given. */
export function encodeSkipToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString("base64url");
}

function decodeSkipToken(token: string | null): number {
  if (!token) return 0;
  try {
    const offset = (JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { offset?: unknown })
      .offset;
    if (typeof offset === "number" && Number.isInteger(offset) && offset >= 0) return offset;
  } catch {
    // fall through: not one of ours
  }
  throw new HttpError(400, "UserError", `The continuation token ${token} is not valid.`, {
    code: "BadArgument",
  });
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Fields a PUT on an existing job may change; anything else is JobPropertyImmutable. AzureML's own error
 * says "Only description, tags, displayName, properties, and isArchived can be updated"
 * (https://github.com/MicrosoftDocs/azure-docs/issues/122250). `status` is read-only: the SDK never sends it.
 */
const MUTABLE = new Set(["isArchived", "tags", "description", "displayName", "properties"]);

export async function startArmEmulator(options: ArmEmulatorOptions = {}): Promise<ArmEmulator> {
  const tls = loadTestTls();
  const pageSize = options.pageSize ?? 100;
  const timing: SchedulerTiming = { prepareMs: 0, cancelMs: 50, ...options.timing };
  const workspaces = new Map<string, VirtualWorkspace>();
  const faults: Fault[] = [];
  const requests: LoggedRequest[] = [];
  /** Cancel operations in flight: id -> job. */
  const cancelOps = new Map<string, { workspace: VirtualWorkspace; job: StoredJob }>();
  const sockets = new Set<Socket>();
  let baseUrl = "";

  const key = (sub: string, rg: string, ws: string) => `${sub}/${rg}/${ws}`.toLowerCase();

  function workspace(subscription: string, resourceGroup: string, name: string): VirtualWorkspace {
    const id = key(subscription, resourceGroup, name);
    let found = workspaces.get(id);
    if (!found) {
      found = new VirtualWorkspace(subscription, resourceGroup, name, timing);
      workspaces.set(id, found);
    }
    return found;
  }

  function lookup(r: Route): VirtualWorkspace {
    const found = workspaces.get(key(r.subscription!, r.resourceGroup!, r.workspace!));
    if (found) return found;
    if (options.autoCreate) {
      const created = workspace(r.subscription!, r.resourceGroup!, r.workspace!);
      created.addCluster(options.autoCreate.clusterName, options.autoCreate.maxNodeCount);
      return created;
    }
    throw new HttpError(
      404,
      "ResourceNotFound",
      `The Resource '${PROVIDER}/workspaces/${r.workspace}' under resource group '${r.resourceGroup}' was not found.`,
    );
  }

  function jobResource(ws: VirtualWorkspace, job: StoredJob): unknown {
    return {
      id: `${ws.armId}/jobs/${job.name}`,
      name: job.name,
      type: `${PROVIDER}/workspaces/jobs`,
      systemData: {
        createdAt: job.createdAt.toISOString(),
        createdBy: "emulator",
        createdByType: "Application",
      },
      properties: { ...job.properties, status: job.status },
    };
  }

  function pickFaults(r: Route): Fault[] {
    const hits: Fault[] = [];
    for (const fault of faults) {
      if (fault.times !== undefined && fault.times <= 0) continue;
      if (fault.operations && !fault.operations.includes(r.operation)) continue;
      if (
        fault.workspaces &&
        (!r.workspace || !fault.workspaces.some((w) => w.toLowerCase() === r.workspace!.toLowerCase()))
      )
        continue;
      if (fault.times !== undefined) fault.times--;
      hits.push(fault);
    }
    return hits;
  }

  function handle(
    r: Route,
    method: string,
    query: URLSearchParams,
    body: unknown,
  ): { status: number; body?: unknown; headers?: Record<string, string> } {
    if (r.operation === "unknown")
      throw new HttpError(404, "NoRegisteredProviderFound", `no route for ${method}`);
    if (!query.get("api-version")) {
      throw new HttpError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
      );
    }
    if (r.operation === "operations.get") {
      const op = cancelOps.get(r.name!);
      if (!op) throw new HttpError(404, "OperationNotFound", `operation ${r.name} not found`);
      op.workspace.schedule();
      if (op.job.status === "CancelRequested") return { status: 202, headers: { "Retry-After": "1" } };
      cancelOps.delete(r.name!);
      return { status: 200, body: {} };
    }
    const ws = lookup(r);
    ws.schedule();
    switch (r.operation) {
      case "workspaces.get":
        return {
          status: 200,
          body: {
            id: ws.armId,
            name: ws.name,
            type: `${PROVIDER}/workspaces`,
            location: ws.location,
            properties: { provisioningState: "Succeeded", friendlyName: ws.name },
          },
        };
      case "jobs.list": {
        const view = query.get("listViewType") ?? "ActiveOnly";
        const tag = query.get("tag");
        const jobType = query.get("jobType");
        const skip = decodeSkipToken(query.get("$skip"));
        const matching = [...ws.jobs.values()]
          .filter((job) => {
            const archived = job.properties.isArchived === true;
            if (view === "ActiveOnly" && archived) return false;
            if (view === "ArchivedOnly" && !archived) return false;
            if (jobType && String(job.properties.jobType).toLowerCase() !== jobType.toLowerCase())
              return false;
            if (tag) {
              const tags = (job.properties.tags ?? {}) as Record<string, unknown>;
              if (!Object.prototype.hasOwnProperty.call(tags, tag)) return false;
            }
            return true;
          })
          .sort((a, b) => b.seq - a.seq); // newest first, as the Studio list
        const page = matching.slice(skip, skip + pageSize);
        const next = skip + pageSize < matching.length ? skip + pageSize : undefined;
        let nextLink: string | undefined;
        if (next !== undefined) {
          const link = new URL(`${baseUrl}${ws.armId}/jobs`);
          for (const [k, v] of query) if (k !== "$skip") link.searchParams.set(k, v);
          link.searchParams.set("$skip", encodeSkipToken(next));
          nextLink = link.toString();
        }
        return {
          status: 200,
          body: { value: page.map((job) => jobResource(ws, job)), ...(nextLink ? { nextLink } : {}) },
        };
      }
      case "jobs.get": {
        const job = ws.jobs.get(r.name!);
        if (!job)
          throw new HttpError(404, "UserError", `Job ${r.name} not found in workspace ${ws.name}.`, {
            code: "NotFound",
          });
        return { status: 200, body: jobResource(ws, job) };
      }
      case "jobs.createOrUpdate": {
        const properties = (body as { properties?: Record<string, unknown> } | undefined)?.properties;
        if (!properties || typeof properties !== "object")
          throw new HttpError(400, "UserError", "The request body must have properties.", {
            code: "BadArgument",
          });
        const existing = ws.jobs.get(r.name!);
        if (existing) {
          const differs = (k: string) =>
            properties[k] !== undefined && canonical(properties[k]) !== canonical(existing.properties[k]);
          const changed = Object.keys(properties).filter((k) => MUTABLE.has(k) && differs(k));
          const immutableChanged = Object.keys(properties).filter((k) => !MUTABLE.has(k) && differs(k));
          // A second create of the same job (a transport retry) changes nothing mutable: AzureML answers JobPropertyImmutable.
          if (immutableChanged.length > 0 || changed.length === 0) {
            const what = immutableChanged.length > 0 ? ` (${immutableChanged.join(", ")} cannot change)` : "";
            throw new HttpError(
              400,
              "UserError",
              `A job with name ${r.name} already exists; its properties are immutable${what}.`,
              {
                code: "BadArgument",
                innerError: { code: "JobPropertyImmutable" },
              },
            );
          }
          for (const k of changed) existing.properties[k] = properties[k];
          return { status: 200, body: jobResource(ws, existing) };
        }
        if (properties.jobType !== "Command")
          throw new HttpError(
            400,
            "UserError",
            `jobType ${String(properties.jobType)} is not supported by the emulator`,
            { code: "BadArgument" },
          );
        for (const field of ["command", "environmentId", "computeId"]) {
          if (typeof properties[field] !== "string" || !properties[field]) {
            throw new HttpError(400, "UserError", `${field} is required for a Command job.`, {
              code: "BadArgument",
            });
          }
        }
        const compute = String(properties.computeId).split("/").pop()!;
        if (
          !String(properties.computeId)
            .toLowerCase()
            .startsWith(ws.armId.toLowerCase() + "/computes/") ||
          !ws.cluster(compute)
        ) {
          throw new HttpError(
            400,
            "UserError",
            `Compute ${String(properties.computeId)} not found in workspace ${ws.name}.`,
            { code: "NotFound" },
          );
        }
        const stored = { ...properties, isArchived: properties.isArchived ?? false };
        const durationMs = Number(
          (properties.environmentVariables as Record<string, string> | undefined)?.EMULATOR_RUN_MS,
        );
        const job = ws.createJob(
          r.name!,
          stored,
          Number.isFinite(durationMs) && durationMs > 0 ? durationMs : undefined,
        );
        ws.schedule();
        return { status: 201, body: jobResource(ws, job) };
      }
      case "jobs.cancel": {
        const job = ws.jobs.get(r.name!);
        if (!job) throw new HttpError(404, "UserError", `Job ${r.name} not found.`, { code: "NotFound" });
        if (job.status === "Completed" || job.status === "Failed") {
          throw new HttpError(
            400,
            "UserError",
            `Cannot cancel job ${r.name} in terminal state ${job.status}.`,
            { code: "BadArgument" },
          );
        }
        if (TERMINAL.has(job.status)) return { status: 200 };
        ws.requestCancel(job);
        const id = `jc:${randomUUID()}`;
        cancelOps.set(id, { workspace: ws, job });
        return {
          status: 202,
          headers: {
            "Retry-After": "1",
            Location: `${baseUrl}/subscriptions/${ws.subscription}/providers/${PROVIDER}/locations/emulator/mfeOperationResults/${id}?api-version=${API_VERSION}`,
          },
        };
      }
      case "computes.get": {
        const cluster = ws.cluster(r.name!);
        if (!cluster)
          throw new HttpError(
            404,
            "ResourceNotFound",
            `Compute ${r.name} not found in workspace ${ws.name}.`,
          );
        const used = ws.nodesInUse(cluster.name);
        return {
          status: 200,
          body: {
            id: `${ws.armId}/computes/${cluster.name}`,
            name: cluster.name,
            type: `${PROVIDER}/workspaces/computes`,
            location: "emulator",
            properties: {
              computeType: "AmlCompute",
              provisioningState: "Succeeded",
              computeLocation: "emulator",
              isAttachedCompute: false,
              disableLocalAuth: true,
              properties: {
                vmSize: cluster.vmSize,
                vmPriority: "Dedicated",
                osType: "Linux",
                scaleSettings: {
                  maxNodeCount: cluster.maxNodeCount,
                  minNodeCount: cluster.minNodeCount,
                  nodeIdleTimeBeforeScaleDown: "PT120S",
                },
                allocationState: "Steady",
                allocationStateTransitionTime: new Date().toISOString(),
                currentNodeCount: used,
                targetNodeCount: used,
                nodeStateCounts: {
                  idleNodeCount: 0,
                  runningNodeCount: used,
                  preparingNodeCount: 0,
                  unusableNodeCount: 0,
                  leavingNodeCount: 0,
                  preemptedNodeCount: 0,
                },
              },
            },
          },
        };
      }
      case "environmentVersions.createOrUpdate": {
        const props = (body as { properties?: Record<string, unknown> } | undefined)?.properties;
        if (!props || typeof props.image !== "string")
          throw new HttpError(400, "UserError", "An environment version needs properties.image.", {
            code: "BadArgument",
          });
        const id = `${r.name}:${r.version}`;
        const existing = ws.environments.get(id);
        if (existing && existing.image !== props.image) {
          throw new HttpError(
            409,
            "UserError",
            `Environment ${id} already exists with another image; versions are immutable.`,
            { code: "Conflict" },
          );
        }
        ws.environments.set(id, props);
        return {
          status: existing ? 200 : 201,
          body: {
            id: `${ws.armId}/environments/${r.name}/versions/${r.version}`,
            name: r.version,
            type: `${PROVIDER}/workspaces/environments/versions`,
            properties: props,
          },
        };
      }
      case "environmentVersions.get": {
        const props = ws.environments.get(`${r.name}:${r.version}`);
        if (!props)
          throw new HttpError(404, "UserError", `Environment ${r.name}:${r.version} not found.`, {
            code: "NotFound",
          });
        return {
          status: 200,
          body: {
            id: `${ws.armId}/environments/${r.name}/versions/${r.version}`,
            name: r.version,
            properties: props,
          },
        };
      }
    }
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "https://emulator");
    const r = route(method, url.pathname);
    const entry: LoggedRequest = {
      at: Date.now(),
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      operation: r.operation,
      ...(r.workspace ? { workspace: r.workspace } : {}),
      status: 0,
      faults: [],
    };
    requests.push(entry);
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      const text = body === undefined ? "" : JSON.stringify(body);
      res.writeHead(status, {
        "x-ms-request-id": randomUUID(),
        ...(text ? { "Content-Type": "application/json; charset=utf-8" } : {}),
        ...headers,
      });
      res.end(text);
    };
    const rawBody = await readBody(req);
    let commitThenReset = false;
    let rewrite: Extract<FaultKind, { kind: "rewrite" }> | undefined;
    for (const fault of pickFaults(r)) {
      entry.faults.push(fault.kind);
      switch (fault.kind) {
        case "latency":
          await delay(fault.ms);
          break;
        case "throttle":
          return send(
            429,
            { error: { code: "TooManyRequests", message: "The request is being throttled." } },
            {
              ...(fault.retryAfterMs !== undefined
                ? { "x-ms-retry-after-ms": String(fault.retryAfterMs) }
                : {}),
              "Retry-After": String(
                fault.retryAfterSeconds ?? Math.ceil((fault.retryAfterMs ?? 1000) / 1000),
              ),
            },
          );
        case "error500":
          return send(500, {
            error: { code: "InternalServerError", message: "Something went wrong on the server." },
          });
        case "html503":
          entry.status = 503;
          res.writeHead(503, { "Content-Type": "text/html" });
          res.end(
            "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>",
          );
          return;
        case "reset":
          entry.status = -1;
          req.socket.destroy();
          return;
        case "resetAfterCommit":
          commitThenReset = true;
          break;
        case "hang":
          entry.status = -2;
          return; // never answered; close() destroys the socket
        case "rewrite":
          rewrite = fault;
          break;
        case "error":
          return send(fault.status, {
            error: { code: fault.code, message: fault.message ?? `emulated ${fault.status} ${fault.code}` },
          });
      }
    }
    if (!options.allowAnonymous && !/^Bearer \S+/.test(req.headers.authorization ?? "")) {
      return send(401, {
        error: {
          code: "AuthenticationFailed",
          message: "Authentication failed. The 'Authorization' header is missing.",
        },
      });
    }
    try {
      let body: unknown;
      if (rawBody) {
        try {
          body = JSON.parse(rawBody);
        } catch {
          throw new HttpError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
          );
        }
      }
      const result = handle(r, method, url.searchParams, body);
      if (commitThenReset) {
        entry.status = -1;
        req.socket.destroy();
        return;
      }
      if (rewrite?.raw !== undefined) {
        entry.status = result.status;
        res.writeHead(result.status, {
          "Content-Type": rewrite.contentType ?? "text/html",
          ...result.headers,
        });
        res.end(rewrite.raw);
        return;
      }
      send(result.status, rewrite?.body ? rewrite.body(result.body) : result.body, result.headers);
    } catch (error) {
      if (error instanceof HttpError) return send(error.status, armErrorBody(error));
      send(500, { error: { code: "InternalServerError", message: String(error) } });
    }
  }

  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    onRequest(req, res).catch(() => res.destroy());
  });
  // ARM's front door keeps idle connections for minutes; Node's 5 s default would reset kept-alive sockets.
  server.keepAliveTimeout = 120_000;
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `https://${options.host ?? "127.0.0.1"}:${port}`;
  const stepMs = options.stepMs ?? 25;
  const timer = stepMs > 0 ? setInterval(() => workspaces.forEach((ws) => ws.schedule()), stepMs) : undefined;
  timer?.unref();

  return {
    url: baseUrl,
    port,
    ca: tls.ca,
    requests,
    workspace,
    findWorkspace: (name) =>
      [...workspaces.values()].find((ws) => ws.name.toLowerCase() === name.toLowerCase()),
    addFault: (fault) => void faults.push(fault),
    clearFaults: () => void faults.splice(0),
    step: () => workspaces.forEach((ws) => ws.schedule()),
    close: async () => {
      if (timer) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
