import { createHash } from "node:crypto";
import type { StoredJob, VirtualWorkspace } from "./workspace.js";

/**
 * The index API's entities search of the ml.azure.com emulator (ml-api.ts): the filters upstream sends
 * (type, archived, experiment, status; operator `eq`), order by creation time, keyset continuation tokens
 * bound to their query, and hits shaped as upstream reads them.
 */

const RUNNING = new Set(["Running", "NotResponding", "Finalizing"]);

export class MlError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Keyset continuation: the position after the last hit, bound to the query it belongs to. */
function encodeToken(afterSeq: number, query: string): string {
  return Buffer.from(JSON.stringify({ afterSeq, query })).toString("base64url");
}

function decodeToken(token: unknown, query: string): number | undefined {
  if (token === undefined || token === null) return undefined;
  try {
    const decoded = JSON.parse(Buffer.from(String(token), "base64url").toString("utf8")) as {
      afterSeq?: unknown;
      query?: unknown;
    };
    if (typeof decoded.afterSeq === "number" && decoded.query === query) return decoded.afterSeq;
  } catch {
    // not one of ours
  }
  throw new MlError(400, "BadRequest", "The continuation token is not valid for this query.");
}

const FIELDS = new Set(["type", "annotations/archived", "properties/experimentName", "annotations/status"]);

interface Filter {
  field: string;
  values: string[];
}

function parseSearch(body: unknown): { filters: Filter[]; desc: boolean; pageSize: number; token: unknown } {
  const search = body as Record<string, unknown> | undefined;
  if (!search || typeof search !== "object")
    throw new MlError(400, "BadRequest", "The request body must be a search.");
  if (!Array.isArray(search.filters)) throw new MlError(400, "BadRequest", "filters must be an array.");
  const filters = search.filters.map((raw: unknown) => {
    const f = raw as { field?: unknown; operator?: unknown; values?: unknown };
    if (typeof f.field !== "string" || !FIELDS.has(f.field))
      throw new MlError(400, "BadRequest", `Unsupported filter field ${JSON.stringify(f.field)}.`);
    if (f.operator !== "eq")
      throw new MlError(400, "BadRequest", `Unsupported filter operator ${JSON.stringify(f.operator)}.`);
    if (!Array.isArray(f.values) || !f.values.every((v) => typeof v === "string"))
      throw new MlError(400, "BadRequest", `Filter ${f.field}: values must be strings.`);
    return { field: f.field, values: f.values as string[] };
  });
  const order = Array.isArray(search.order)
    ? (search.order[0] as Record<string, unknown> | undefined)
    : undefined;
  if (order && order.field !== "properties/creationContext/createdTime")
    throw new MlError(400, "BadRequest", `Unsupported order field ${JSON.stringify(order.field)}.`);
  const pageSize = search.pageSize === undefined ? 100 : search.pageSize;
  if (typeof pageSize !== "number" || !Number.isInteger(pageSize) || pageSize < 1)
    throw new MlError(400, "BadRequest", "pageSize must be a positive integer.");
  return { filters, desc: order?.direction === "Desc", pageSize, token: search.continuationToken };
}

function experimentId(ws: VirtualWorkspace, name: unknown): string {
  const hex = createHash("sha256")
    .update(`${ws.armId}/${String(name)}`)
    .digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function hit(ws: VirtualWorkspace, job: StoredJob): unknown {
  const p = job.properties;
  const created = job.createdAt.toISOString();
  return {
    entityId: `azureml://location/${ws.location}/workspaceId/${ws.name}/type/runs/objectId/${job.name}`,
    kind: "Unversioned",
    annotations: {
      archived: p.isArchived === true,
      tags: p.tags ?? {},
      // The service fills the display name with the job name when none was given.
      displayName: typeof p.displayName === "string" ? p.displayName : job.name,
      status: job.status,
      // The emulator does not keep start times: a job that ran shows its creation time.
      effectiveStartTimeUtc: RUNNING.has(job.status) ? created : null,
      error: null,
      metrics: {},
    },
    properties: {
      experimentName: p.experimentName,
      experimentId: experimentId(ws, p.experimentName),
      compute: { target: job.compute ?? null },
      creationContext: { createdTime: created, createdBy: { userName: "emulator" } },
    },
  };
}

/**
 * One page of the entities search over a workspace's jobs (keyset paging, bound to its query); only the
 * jobs created by `indexedUntil` (epoch ms) are in the index yet.
 */
export function searchEntities(
  ws: VirtualWorkspace,
  body: unknown,
  maxPageSize: number,
  indexedUntil = Infinity,
): unknown {
  if (typeof body !== "object" || body === null)
    throw new MlError(400, "BadRequest", "The request body must be JSON.");
  const search = parseSearch(body);
  const query = JSON.stringify([search.filters, search.desc, ws.name]);
  const after = decodeToken(search.token, query);
  const keep = (job: StoredJob) =>
    job.createdAt.getTime() <= indexedUntil &&
    search.filters.every((f) => {
      switch (f.field) {
        case "type":
          return f.values.includes("runs");
        case "annotations/archived":
          return f.values.includes(String(job.properties.isArchived === true));
        case "properties/experimentName":
          return f.values.includes(String(job.properties.experimentName));
        default:
          return f.values.includes(job.status);
      }
    });
  const ordered = [...ws.jobs.values()]
    .filter(keep)
    .sort((a, b) => (search.desc ? b.seq - a.seq : a.seq - b.seq));
  const rest =
    after === undefined
      ? ordered
      : ordered.filter((job) => (search.desc ? job.seq < after : job.seq > after));
  const page = rest.slice(0, Math.min(search.pageSize, maxPageSize));
  const more = rest.length > page.length;
  return {
    totalCount: null,
    value: page.map((job) => hit(ws, job)),
    continuationToken: more ? encodeToken(page[page.length - 1]!.seq, query) : null,
    nextSkip: null,
    entityContainerIdsToEntityContainerMetadata: {},
  };
}
