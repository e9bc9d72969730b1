import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { loadTestTls } from "../tls/index.js";
import type { ArmEmulator } from "./server.js";
import { TERMINAL, type StoredJob, type VirtualWorkspace } from "./workspace.js";
import { checkBearer } from "./tokens.js";
import { MlError, searchEntities } from "./ml-index.js";

/**
 * The AzureML front end on ml.azure.com, as upstream ai4s-jobq calls it: the execution API's resume and
 * the index API's entities search. A separate HTTPS server (another host in Azure), over the same job
 * store as the ARM emulator, so ARM and the index always agree on a job's status. Fidelity rules as for
 * the ARM emulator: bearer tokens checked for the `https://ml.azure.com` audience (an ARM token is 401),
 * what the service refuses is refused, faults on demand (the front door's raw HTML 503, a
 * DatabaseOverCapacity 503 or 500 with Retry-After, a 429 with Retry-After). Neither API is documented: shapes follow upstream's client
 * (workforce.py at adafbf1); answers upstream does not read are this emulator's guess (docs/azureml.md).
 */

export type MlOperation = "execution.resume" | "index.entities" | "unknown";

export type MlFault = (
  | { kind: "html503" }
  /**
   * The backend over capacity: a 503 DatabaseOverCapacity with Retry-After (seconds), or (`status: 500`)
   * the 500 that upstream says Singularity's backend wraps it in under heavy load.
   */
  | { kind: "overCapacity"; retryAfterSeconds?: number; status?: 500 | 503 }
  /**
   * Throttled: 429 TooManyRequests with Retry-After in whole seconds (as ARM and the AzureML front end
   * send it), optionally `x-ms-retry-after-ms` too. The body's shape is this emulator's guess.
   */
  | { kind: "throttle"; retryAfterSeconds: number; retryAfterMs?: number }
  | { kind: "latency"; ms: number }
  | { kind: "reset" }
  | { kind: "error"; status: number; message: string }
) & {
  operations?: MlOperation[];
  workspaces?: string[];
  /** Only requests whose JSON body matches (e.g. index pages after the first). */
  match?: (body: unknown) => boolean;
  times?: number;
};

export interface MlLoggedRequest {
  method: string;
  path: string;
  operation: MlOperation;
  workspace?: string;
  job?: string;
  body?: unknown;
  status: number;
  faults: string[];
  /** Epoch ms when the request came in. */
  at: number;
}

export interface MlApiEmulatorOptions {
  /** The ARM emulator whose workspaces and jobs this front end serves. */
  arm: ArmEmulator;
  port?: number;
  host?: string;
  /** Largest index page (default 100, what Studio uses). */
  maxPageSize?: number;
  /** A job older than this (since creation) can no longer be resumed (Singularity's limit). */
  maxExecutionMs?: number;
  /**
   * The search index's lag: a job shows in the index only this long after its creation (default 0). The
   * real index is fed from run history, and may show a new job only after some seconds.
   */
  indexLagMs?: number;
}

export interface MlApiEmulator {
  /** Base URL (a region's `mlEndpoint`). */
  readonly url: string;
  readonly ca: string;
  readonly requests: MlLoggedRequest[];
  addFault(fault: MlFault): void;
  clearFaults(): void;
  /** A preemption: the job leaves its node and waits Paused until resumed. */
  preempt(workspace: VirtualWorkspace, name: string): void;
  /** Mark a job past its max execution time: a resume is refused with the service's words. */
  expire(workspace: VirtualWorkspace, name: string): void;
  /** The index's lag (`indexLagMs`), changed at will: 0 shows every job at once. */
  indexLagMs: number;
  close(): Promise<void>;
}

export const ML_AUDIENCE = "https://ml.azure.com";
const PROVIDER = "microsoft.machinelearningservices";

interface MlRoute {
  operation: MlOperation;
  location?: string;
  subscription?: string;
  resourceGroup?: string;
  workspace?: string;
  experiment?: string;
  job?: string;
}

function route(method: string, path: string): MlRoute {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const lower = parts.map((part) => part.toLowerCase());
  const scoped =
    lower[0] === "api" &&
    lower[3] === "v1.0" &&
    lower[4] === "subscriptions" &&
    lower[6] === "resourcegroups" &&
    lower[8] === "providers" &&
    lower[9] === PROVIDER &&
    lower[10] === "workspaces";
  if (!scoped || method !== "POST") return { operation: "unknown" };
  const base = {
    location: parts[1]!,
    subscription: parts[5]!,
    resourceGroup: parts[7]!,
    workspace: parts[11]!,
  };
  if (lower[2] === "index" && lower[12] === "entities" && parts.length === 13)
    return { operation: "index.entities", ...base };
  if (
    lower[2] === "execution" &&
    lower[12] === "experiments" &&
    lower[14] === "runid" &&
    lower[16] === "resume" &&
    parts.length === 17
  )
    return { operation: "execution.resume", ...base, experiment: parts[13]!, job: parts[15]! };
  return { operation: "unknown" };
}

export async function startMlApiEmulator(options: MlApiEmulatorOptions): Promise<MlApiEmulator> {
  const tls = loadTestTls();
  const faults: MlFault[] = [];
  const requests: MlLoggedRequest[] = [];
  const expired = new WeakSet<StoredJob>();
  const sockets = new Set<Socket>();
  const maxPageSize = options.maxPageSize ?? 100;

  function workspaceOf(r: MlRoute): VirtualWorkspace {
    const ws = options.arm.findWorkspace(r.workspace!);
    const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
    if (!ws || !same(ws.subscription, r.subscription!) || !same(ws.resourceGroup, r.resourceGroup!))
      throw new MlError(404, "NotFound", `Workspace ${r.workspace} not found.`);
    // Each Azure region has its own front end; a workspace is only known to its own.
    if (!same(ws.location, r.location!))
      throw new MlError(404, "NotFound", `Workspace ${r.workspace} not found in ${r.location}.`);
    return ws;
  }

  function isExpired(job: StoredJob): boolean {
    if (expired.has(job)) return true;
    return (
      options.maxExecutionMs !== undefined && Date.now() - job.createdAt.getTime() > options.maxExecutionMs
    );
  }

  function resume(r: MlRoute): unknown {
    const ws = workspaceOf(r);
    ws.schedule();
    const job = ws.jobs.get(r.job!);
    if (!job || job.properties.experimentName !== r.experiment)
      throw new MlError(404, "UserError", `Run ${r.job} not found in experiment ${r.experiment}.`);
    if (job.status !== "Paused")
      throw new MlError(400, "UserError", `Run ${r.job} is ${job.status}; only a Paused run can be resumed.`);
    if (isExpired(job))
      throw new MlError(
        400,
        "UserError",
        `Run ${r.job} cannot be resumed: the job exceeded max job execution time.`,
      );
    ws.setStatus(job.name, "Queued");
    ws.schedule();
    return { runId: job.name, status: job.status };
  }

  /** The faults a request meets, in order, up to the first that answers it (later ones are not spent). */
  function pick(r: MlRoute, body: unknown): MlFault[] {
    const hits: MlFault[] = [];
    for (const fault of faults) {
      if (fault.times !== undefined && fault.times <= 0) continue;
      if (fault.operations && !fault.operations.includes(r.operation)) continue;
      if (fault.workspaces && !fault.workspaces.some((w) => w.toLowerCase() === r.workspace?.toLowerCase()))
        continue;
      if (fault.match && !fault.match(body)) continue;
      if (fault.times !== undefined) fault.times--;
      hits.push(fault);
      if (fault.kind !== "latency") break;
    }
    return hits;
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const path = new URL(req.url ?? "/", "https://emulator").pathname;
    const r = route(method, path);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const entry: MlLoggedRequest = {
      method,
      path,
      operation: r.operation,
      ...(r.workspace ? { workspace: r.workspace } : {}),
      ...(r.job ? { job: r.job } : {}),
      ...(body !== undefined ? { body } : {}),
      status: 0,
      faults: [],
      at: Date.now(),
    };
    requests.push(entry);
    const send = (status: number, answer: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      res.writeHead(status, {
        "Content-Type": "application/json; charset=utf-8",
        "x-ms-request-id": randomUUID(),
        ...headers,
      });
      res.end(JSON.stringify(answer));
    };
    for (const fault of pick(r, body)) {
      entry.faults.push(fault.kind);
      switch (fault.kind) {
        case "latency":
          await new Promise((resolve) => setTimeout(resolve, fault.ms));
          break;
        case "reset":
          entry.status = -1;
          req.socket.destroy();
          return;
        case "html503":
          // The nginx front door under load: a bare HTML page, no JSON, no Retry-After.
          entry.status = 503;
          res.writeHead(503, { "Content-Type": "text/html" });
          res.end(
            "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
          );
          return;
        case "overCapacity":
          return send(
            fault.status ?? 503,
            {
              error: {
                code: "ServiceError",
                message: "DatabaseOverCapacity: the service is over capacity. Please retry in 1 second.",
                innerError: { code: "DatabaseOverCapacity" },
              },
            },
            { "Retry-After": String(fault.retryAfterSeconds ?? 1) },
          );
        case "throttle":
          return send(
            429,
            {
              error: {
                code: "TooManyRequests",
                message: `The request is being throttled. Please retry after ${fault.retryAfterSeconds} seconds.`,
              },
            },
            {
              "Retry-After": String(fault.retryAfterSeconds),
              ...(fault.retryAfterMs !== undefined
                ? { "x-ms-retry-after-ms": String(fault.retryAfterMs) }
                : {}),
            },
          );
        case "error":
          return send(fault.status, { error: { code: "UserError", message: fault.message } });
      }
    }
    const auth = checkBearer(req.headers.authorization, [ML_AUDIENCE]);
    if (!auth.ok) return send(401, { error: { code: "Unauthorized", message: auth.message } });
    try {
      if (r.operation === "unknown") throw new MlError(404, "NotFound", `No route for ${method} ${path}.`);
      if (r.operation === "execution.resume") return send(200, resume(r));
      const ws = workspaceOf(r);
      ws.schedule();
      return send(200, searchEntities(ws, body, maxPageSize, Date.now() - emulator.indexLagMs));
    } catch (error) {
      if (error instanceof MlError)
        return send(error.status, { error: { code: error.code, message: error.message } });
      send(500, { error: { code: "InternalServerError", message: String(error) } });
    }
  }

  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    onRequest(req, res).catch(() => res.destroy());
  });
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

  const emulator: MlApiEmulator = {
    indexLagMs: options.indexLagMs ?? 0,
    url: `https://${options.host ?? "127.0.0.1"}:${port}`,
    ca: tls.ca,
    requests,
    addFault: (fault) => void faults.push(fault),
    clearFaults: () => void faults.splice(0),
    preempt(ws, name) {
      const job = ws.jobs.get(name);
      if (!job || TERMINAL.has(job.status)) throw new Error(`no active job ${name} in workspace ${ws.name}`);
      ws.setStatus(name, "Paused"); // its nodes go back to the pool
      ws.schedule();
    },
    expire(ws, name) {
      const job = ws.jobs.get(name);
      if (!job) throw new Error(`no job ${name} in workspace ${ws.name}`);
      expired.add(job);
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return emulator;
}
