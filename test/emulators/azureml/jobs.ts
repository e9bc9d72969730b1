import { randomUUID } from "node:crypto";
import { HttpError, PROVIDER, API_VERSION } from "./errors.js";
import { TERMINAL, type StoredJob, type VirtualWorkspace } from "./workspace.js";

/**
 * The jobs API as the service answers it (api-version 2022-10-01, read from the REST spec
 * machinelearningservices/stable/2022-10-01/mfe.json and recorded traffic):
 * - a job read back carries what the service adds: `outputs.default`, `services` (Tracking, Studio),
 *   `systemData`, service `properties`, resource defaults (`shmSize` 2g), `isArchived`, a moving `status`;
 * - a PUT on an existing job is the whole job again; only description, tags, displayName, properties and
 *   isArchived may differ from what is stored, or it is a 400 with inner code JobPropertyImmutable
 *   (an omitted service-added field is a difference too);
 * - the list is `ActiveOnly` (= not archived) newest first, `$skip` continuation in `nextLink`; whether
 *   the `tag` filter is honoured is unverified, so it can be switched off;
 * - cancel is a 202 with a Location and no Retry-After.
 */

/** Fields a PUT on an existing job may change (AzureML's own error lists these five). */
const MUTABLE = new Set(["isArchived", "tags", "description", "displayName", "properties"]);
/** Read-only in the spec: never compared. */
const READ_ONLY = new Set(["status", "parameters"]);

export interface JobsOptions {
  pageSize: number;
  /** False models a service that ignores `tag=` on the list (unverified): every job is listed. */
  honourTagFilter: boolean;
  baseUrl: () => string;
}

/** JSON with sorted keys and no nulls (null and absent mean the same to the service). */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, item]) => item !== null && item !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : 1)),
      );
    }
    return v;
  });
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

/** What the service adds to a job it creates. */
export function decorate(
  ws: VirtualWorkspace,
  name: string,
  put: Record<string, unknown>,
): Record<string, unknown> {
  const outputs = { ...((put.outputs as Record<string, unknown> | undefined) ?? {}) };
  outputs.default ??= {
    jobOutputType: "uri_folder",
    uri: `azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.${name}`,
    mode: "ReadWriteMount",
    description: null,
  };
  const wsid = encodeURIComponent(ws.armId);
  return {
    ...put,
    displayName: put.displayName ?? name,
    description: put.description ?? null,
    tags: put.tags ?? {},
    properties: {
      ...((put.properties as Record<string, unknown> | undefined) ?? {}),
      "_azureml.ComputeTargetType": "amlctrain",
      ContentSnapshotId: randomUUID(),
      ProcessInfoFile: "azureml-logs/process_info.json",
    },
    isArchived: put.isArchived ?? false,
    resources: {
      instanceCount: 1,
      shmSize: "2g",
      properties: null,
      ...((put.resources as Record<string, unknown> | undefined) ?? {}),
    },
    inputs: put.inputs ?? {},
    outputs,
    services: put.services ?? {
      Tracking: {
        jobServiceType: "Tracking",
        port: null,
        endpoint: `azureml://emulator.api.azureml.ms/mlflow/v1.0${ws.armId}?`,
        status: null,
        errorMessage: null,
        properties: null,
        nodes: null,
      },
      Studio: {
        jobServiceType: "Studio",
        port: null,
        endpoint: `https://ml.azure.com/runs/${name}?wsid=${wsid}`,
        status: null,
        errorMessage: null,
        properties: null,
        nodes: null,
      },
    },
    parameters: {},
    componentId: put.componentId ?? null,
    parentJobName: null,
  };
}

export function jobResource(ws: VirtualWorkspace, job: StoredJob): unknown {
  return {
    id: `${ws.armId}/jobs/${job.name}`,
    name: job.name,
    type: `${PROVIDER}/workspaces/jobs`,
    systemData: {
      createdAt: job.createdAt.toISOString(),
      createdBy: "emulator@example.com",
      createdByType: "User",
      lastModifiedAt: job.lastModifiedAt.toISOString(),
      lastModifiedBy: "emulator@example.com",
      lastModifiedByType: "User",
    },
    properties: { ...job.properties, status: job.status },
  };
}

export function listJobs(ws: VirtualWorkspace, query: URLSearchParams, options: JobsOptions): unknown {
  const view = query.get("listViewType") ?? "ActiveOnly";
  const tag = options.honourTagFilter ? query.get("tag") : null;
  const jobType = query.get("jobType");
  const skip = decodeSkipToken(query.get("$skip"));
  const matching = [...ws.jobs.values()]
    .filter((job) => {
      const archived = job.properties.isArchived === true;
      if (view === "ActiveOnly" && archived) return false;
      if (view === "ArchivedOnly" && !archived) return false;
      if (jobType && String(job.properties.jobType).toLowerCase() !== jobType.toLowerCase()) return false;
      if (tag) {
        const tags = (job.properties.tags ?? {}) as Record<string, unknown>;
        if (!Object.prototype.hasOwnProperty.call(tags, tag)) return false;
      }
      return true;
    })
    .sort((a, b) => b.seq - a.seq); // newest first, as the Studio list
  const page = matching.slice(skip, skip + options.pageSize);
  const next = skip + options.pageSize < matching.length ? skip + options.pageSize : undefined;
  let nextLink: string | undefined;
  if (next !== undefined) {
    const link = new URL(`${options.baseUrl()}${ws.armId}/jobs`);
    for (const [k, v] of query) if (k !== "$skip") link.searchParams.set(k, v);
    link.searchParams.set("$skip", encodeSkipToken(next));
    nextLink = link.toString();
  }
  return { value: page.map((job) => jobResource(ws, job)), ...(nextLink ? { nextLink } : {}) };
}

export function getJob(ws: VirtualWorkspace, name: string): StoredJob {
  const job = ws.jobs.get(name);
  if (!job)
    throw new HttpError(404, "UserError", `Job ${name} not found in workspace ${ws.name}.`, {
      code: "NotFound",
    });
  return job;
}

function immutable(name: string, fields: string[]): HttpError {
  const what = fields.length > 0 ? ` (${fields.join(", ")} cannot change)` : "";
  return new HttpError(
    400,
    "UserError",
    `A job with name ${name} already exists; only description, tags, displayName, properties and isArchived can be updated${what}.`,
    { code: "BadArgument", innerError: { code: "JobPropertyImmutable" } },
  );
}

/** PUT on an existing job: the whole job, compared field by field with what is stored. */
function updateJob(existing: StoredJob, properties: Record<string, unknown>): void {
  const keys = new Set([...Object.keys(properties), ...Object.keys(existing.properties)]);
  const differs = (k: string) =>
    canonical(properties[k] ?? null) !== canonical(existing.properties[k] ?? null);
  const immutableChanged = [...keys].filter((k) => !MUTABLE.has(k) && !READ_ONLY.has(k) && differs(k));
  const changed = [...keys].filter((k) => MUTABLE.has(k) && properties[k] !== undefined && differs(k));
  // A second create of the same job (a transport retry) changes nothing mutable: AzureML answers
  // JobPropertyImmutable too.
  if (immutableChanged.length > 0 || changed.length === 0) throw immutable(existing.name, immutableChanged);
  for (const k of changed) existing.properties[k] = properties[k];
  existing.lastModifiedAt = new Date();
}

export function putJob(ws: VirtualWorkspace, name: string, body: unknown): { status: number; body: unknown } {
  const properties = (body as { properties?: Record<string, unknown> } | undefined)?.properties;
  if (!properties || typeof properties !== "object")
    throw new HttpError(400, "UserError", "The request body must have properties.", { code: "BadArgument" });
  const existing = ws.jobs.get(name);
  if (existing) {
    updateJob(existing, properties);
    return { status: 200, body: jobResource(ws, existing) };
  }
  if (properties.jobType !== "Command")
    throw new HttpError(
      400,
      "UserError",
      `jobType ${String(properties.jobType)} is not supported by the emulator`,
      {
        code: "BadArgument",
      },
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
      {
        code: "NotFound",
      },
    );
  }
  const exit = commandExit(String(properties.command));
  const runMs = Number(
    (properties.environmentVariables as Record<string, string> | undefined)?.EMULATOR_RUN_MS,
  );
  const durationMs = exit ? exit.afterMs : Number.isFinite(runMs) && runMs > 0 ? runMs : undefined;
  const job = ws.createJob(name, properties, durationMs, exit?.code);
  ws.schedule();
  return { status: 201, body: jobResource(ws, job) };
}

/**
 * What a job's command does once Running, for tests: `emulator-exit=CODE@MS` anywhere in the command
 * (a shell comment, say) makes its process exit with CODE after MS ms of running (`workforce worker
 * --queue q # emulator-exit=2@0` is the docs' old broken command, which exits 2 at once). The service
 * then ends the job as it ends any: Finalizing, then Completed (exit 0) or Failed.
 */
export function commandExit(command: string): { code: number; afterMs: number } | undefined {
  const match = /\bemulator-exit=(\d+)(?:@(\d+))?/.exec(command);
  return match ? { code: Number(match[1]), afterMs: Number(match[2] ?? 0) } : undefined;
}

/** Cancel operations in flight: id -> job. */
export type CancelOperations = Map<string, { workspace: VirtualWorkspace; job: StoredJob }>;

export function cancelJob(
  ws: VirtualWorkspace,
  name: string,
  operations: CancelOperations,
  baseUrl: string,
): { status: number; headers?: Record<string, string> } {
  const job = ws.jobs.get(name);
  if (!job) throw new HttpError(404, "UserError", `Job ${name} not found.`, { code: "NotFound" });
  if (job.status === "Completed" || job.status === "Failed") {
    throw new HttpError(400, "UserError", `Cannot cancel job ${name} in terminal state ${job.status}.`, {
      code: "BadArgument",
    });
  }
  if (TERMINAL.has(job.status)) return { status: 200 };
  ws.requestCancel(job);
  const id = `jc:${randomUUID()}`;
  operations.set(id, { workspace: ws, job });
  // Recorded answers carry no Retry-After: a client must pick its own poll interval.
  return {
    status: 202,
    headers: {
      Location: `${baseUrl}/subscriptions/${ws.subscription}/providers/${PROVIDER}/locations/emulator/mfeOperationResults/${id}?api-version=${API_VERSION}`,
      "x-ms-async-operation-timeout": "PT1H",
    },
  };
}

export function cancelStatus(operations: CancelOperations, id: string): { status: number; body?: unknown } {
  const op = operations.get(id);
  if (!op) throw new HttpError(404, "OperationNotFound", `operation ${id} not found`);
  op.workspace.schedule();
  if (op.job.status === "CancelRequested") return { status: 202 };
  operations.delete(id);
  return { status: 200, body: {} };
}
