import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { loadTestTls } from "../tls/index.js";
import { VirtualWorkspace, type SchedulerTiming } from "./workspace.js";
import { HttpError, armErrorBody, PROVIDER } from "./errors.js";
import { isRead, route, type Operation, type Route } from "./routes.js";
import { pickFaults, type Fault, type FaultHits, type FaultKind } from "./faults.js";
import { ARM_BUDGET, SubscriptionBudgets, type BudgetOptions } from "./budget.js";
import {
  cancelJob,
  decorate,
  cancelStatus,
  getJob,
  jobResource,
  listJobs,
  putJob,
  type CancelOperations,
} from "./jobs.js";
import {
  computeResource,
  getEnvironmentVersion,
  putEnvironmentVersion,
  workspaceResource,
} from "./resources.js";

/**
 * An HTTPS emulator of the Azure Resource Manager API of AzureML (api-version 2022-10-01), as the service
 * answers (see jobs.ts, cluster.ts, budget.ts): jobs decorated by the service and immutable but for five
 * fields, clusters whose nodes come and go, ARM's per-subscription read and write budgets, cancel as a
 * long-running operation, ARM error bodies, any bearer token accepted (none: 401).
 */

export type { Operation } from "./routes.js";
export type { Fault, FaultKind } from "./faults.js";
export { encodeSkipToken } from "./jobs.js";

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
  /** The JSON body of a PUT or POST, as it came on the wire. */
  body?: unknown;
  /** Which entrance it came through (see ArmEmulator.entrance): tells clients apart in the log. */
  via?: string;
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
  /** ARM's per-subscription budgets (default ARM's: reads 250 + 25/s, writes 200 + 10/s); false: none. */
  budget?: BudgetOptions | false;
  /** False models a service that ignores the list's `tag=` filter (unverified); default true. */
  honourTagFilter?: boolean;
  /** Keep PUT/POST bodies in `requests` (default true). */
  logBodies?: boolean;
}

export interface ArmEmulator {
  /** Base URL, e.g. https://127.0.0.1:PORT (pass as the SDK's `endpoint`). */
  readonly url: string;
  readonly port: number;
  /** PEM of the CA that issued the server certificate (pass as `tlsOptions: { ca }`). */
  readonly ca: string;
  readonly requests: LoggedRequest[];
  /**
   * Requests received and not yet done with (answered, refused, hung up on, or dropped with their client):
   * 0 once every write that reached the service has taken effect. Tests wait for it instead of sleeping.
   */
  inFlight(): number;
  workspace(subscription: string, resourceGroup: string, name: string): VirtualWorkspace;
  findWorkspace(name: string): VirtualWorkspace | undefined;
  addFault(fault: Fault): void;
  clearFaults(): void;
  /** Run the scheduler of every workspace now. */
  step(): void;
  /**
   * Another port onto the same service, whose requests are logged with `via: name`: give each of two
   * daemons its own entrance and the log says who sent every request (the fault drill does). Its URL.
   */
  entrance(name: string): Promise<string>;
  /**
   * Spend `count` of a subscription's reads or writes as another client of the same principal would (an
   * operator's `workforce status`, a replica just restarted with a full bucket of its own): the budget
   * the daemon's next requests meet is lower than its own count says. No-op with `budget: false`.
   */
  spendBudget(subscription: string, kind: "reads" | "writes", count: number): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export async function startArmEmulator(options: ArmEmulatorOptions = {}): Promise<ArmEmulator> {
  const tls = loadTestTls();
  const timing: SchedulerTiming = {
    startMs: 0,
    prepareMs: 0,
    cancelMs: 50,
    finalizeMs: 0,
    ...options.timing,
  };
  const workspaces = new Map<string, VirtualWorkspace>();
  const faults: Fault[] = [];
  const faultHits: FaultHits = new WeakMap();
  const requests: LoggedRequest[] = [];
  const cancelOps: CancelOperations = new Map();
  const budgets =
    options.budget === false ? undefined : new SubscriptionBudgets(options.budget ?? ARM_BUDGET);
  const sockets = new Set<Socket>();
  let baseUrl = "";
  const jobsOptions = {
    pageSize: options.pageSize ?? 100,
    honourTagFilter: options.honourTagFilter ?? true,
    baseUrl: () => baseUrl,
  };

  const key = (sub: string, rg: string, ws: string) => `${sub}/${rg}/${ws}`.toLowerCase();

  function workspace(subscription: string, resourceGroup: string, name: string): VirtualWorkspace {
    const id = key(subscription, resourceGroup, name);
    let found = workspaces.get(id);
    if (!found) {
      found = new VirtualWorkspace(subscription, resourceGroup, name, timing);
      const created = found;
      created.decorate = (job, properties) => decorate(created, job, properties);
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

  function handle(r: Route, method: string, query: URLSearchParams, body: unknown): Answer {
    if (r.operation === "unknown")
      throw new HttpError(404, "NoRegisteredProviderFound", `no route for ${method}`);
    if (!query.get("api-version")) {
      throw new HttpError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
      );
    }
    if (r.operation === "operations.get") return cancelStatus(cancelOps, r.name!);
    const ws = lookup(r);
    ws.schedule();
    switch (r.operation) {
      case "workspaces.get":
        return { status: 200, body: workspaceResource(ws) };
      case "jobs.list":
        return { status: 200, body: listJobs(ws, query, jobsOptions) };
      case "jobs.get":
        return { status: 200, body: jobResource(ws, getJob(ws, r.name!)) };
      case "jobs.createOrUpdate":
        return putJob(ws, r.name!, body);
      case "jobs.cancel":
        return cancelJob(ws, r.name!, cancelOps, baseUrl);
      case "computes.get":
        return { status: 200, body: computeResource(ws, r.name!) };
      case "environmentVersions.createOrUpdate":
        return putEnvironmentVersion(ws, r.name!, r.version!, body);
      case "environmentVersions.get":
        return { status: 200, body: getEnvironmentVersion(ws, r.name!, r.version!) };
    }
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse, via?: string): Promise<void> {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "https://emulator");
    const r = route(method, url.pathname);
    const entry: LoggedRequest = {
      at: Date.now(),
      ...(via ? { via } : {}),
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      operation: r.operation,
      ...(r.workspace ? { workspace: r.workspace } : {}),
      status: 0,
      faults: [],
    };
    requests.push(entry);
    let budgetHeaders: Record<string, string> = {};
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      const text = body === undefined ? "" : JSON.stringify(body);
      res.writeHead(status, {
        "x-ms-request-id": randomUUID(),
        ...budgetHeaders,
        ...(text ? { "Content-Type": "application/json; charset=utf-8" } : {}),
        ...headers,
      });
      res.end(text);
    };
    const rawBody = await readBody(req);
    let commitThenReset = false;
    let rewrite: Extract<FaultKind, { kind: "rewrite" }> | undefined;
    for (const fault of pickFaults(faults, r, url.pathname.toLowerCase(), faultHits)) {
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
    if (budgets && r.subscription) {
      const charge = budgets.charge(r.subscription, isRead(method));
      budgetHeaders = charge.headers;
      if (charge.retryAfterSeconds !== undefined) {
        return send(
          429,
          {
            error: {
              code: "SubscriptionRequestsThrottled",
              message: `Number of ${isRead(method) ? "read" : "write"} requests for subscription '${r.subscription}' exceeded the limit. Please try again after '${charge.retryAfterSeconds}' seconds.`,
            },
          },
          { "Retry-After": String(charge.retryAfterSeconds) },
        );
      }
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
        if (options.logBodies !== false) entry.body = body;
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
      if (error instanceof HttpError) return send(error.status, armErrorBody(error), error.headers);
      send(500, { error: { code: "InternalServerError", message: String(error) } });
    }
  }

  const servers: Server[] = [];
  let inFlight = 0;
  async function listen(port: number, via?: string): Promise<number> {
    const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      inFlight += 1;
      onRequest(req, res, via)
        .catch(() => res.destroy())
        .finally(() => (inFlight -= 1));
    });
    // ARM's front door keeps idle connections for minutes; Node's 5 s default would reset kept-alive sockets.
    server.keepAliveTimeout = 120_000;
    server.on("connection", (socket: Socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, options.host ?? "127.0.0.1", () => resolve());
    });
    servers.push(server);
    return (server.address() as AddressInfo).port;
  }
  const port = await listen(options.port ?? 0);
  baseUrl = `https://${options.host ?? "127.0.0.1"}:${port}`;
  const stepMs = options.stepMs ?? 25;
  const timer = stepMs > 0 ? setInterval(() => workspaces.forEach((ws) => ws.schedule()), stepMs) : undefined;
  timer?.unref();

  return {
    url: baseUrl,
    port,
    ca: tls.ca,
    requests,
    inFlight: () => inFlight,
    workspace,
    findWorkspace: (name) =>
      [...workspaces.values()].find((ws) => ws.name.toLowerCase() === name.toLowerCase()),
    addFault: (fault) => void faults.push(fault),
    clearFaults: () => void faults.splice(0),
    step: () => workspaces.forEach((ws) => ws.schedule()),
    entrance: async (name) => `https://${options.host ?? "127.0.0.1"}:${await listen(0, name)}`,
    spendBudget: (subscription, kind, count) => {
      for (let i = 0; i < count; i++) budgets?.charge(subscription, kind === "reads");
    },
    close: async () => {
      if (timer) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await Promise.all(
        servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
      );
    },
  };
}
