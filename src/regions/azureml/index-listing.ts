import type { MlApi } from "./ml-api.js";
import { MlApiBadAnswer } from "./ml-api.js";

/**
 * Listing a region's jobs through the AzureML index API (`listing: index`), as upstream ai4s-jobq does in
 * production: one POST per page of 100, filtered on the server by experiment, archived state and status,
 * so finished jobs cost nothing whatever their number. Undocumented and outside ARM (experimental): the
 * default stays `listing: arm`. Facts: ai4s/jobq/orchestration/workforce.py (`list_jobs`) at adafbf1.
 */

/** One job as the index lists it; the name is the hit's `annotations.displayName`, as upstream reads it. */
export interface IndexedJob {
  name: string;
  status: string | undefined;
  createdAt: number;
  experiment: string | undefined;
  /** `annotations.effectiveStartTimeUtc` (absent until it ran). */
  startedAt?: number;
  /** `properties.compute.target`. */
  compute?: string;
}

/**
 * Statuses asked for: every status the region counts (running, pending, unknown in states.ts), plus the
 * run-history statuses ARM's enum lacks (`Pausing`, `Unapproved`), which count as unknown (never fewer
 * workers). Finished and leaving jobs are not listed.
 */
export const INDEX_STATUSES = [
  "Running",
  "NotResponding",
  "NotStarted",
  "Queued",
  "Waiting",
  "Preparing",
  "Provisioning",
  "Starting",
  "Paused",
  "Pausing",
  "Unapproved",
  "Unknown",
] as const;

/** The search body of one page (upstream's, with our statuses). */
export function indexQuery(experiment: string, continuationToken: string | undefined): unknown {
  return {
    filters: [
      { field: "type", operator: "eq", values: ["runs"] },
      { field: "annotations/archived", operator: "eq", values: ["false"] },
      { field: "properties/experimentName", operator: "eq", values: [experiment] },
      { field: "annotations/status", operator: "eq", values: [...INDEX_STATUSES] },
    ],
    order: [{ field: "properties/creationContext/createdTime", direction: "Asc" }],
    freeTextSearch: "",
    // 100 is the largest page the service gives (upstream's comment: "the maximum page size").
    pageSize: 100,
    includeTotalResultCount: false,
    searchBuilder: "AppendPrefix",
    continuationToken: continuationToken ?? null,
  };
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function time(value: unknown): number | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : at;
}

/** One hit as the region needs it; a hit without a name is kept nameless (counted, never touched). */
export function parseHit(hit: unknown): IndexedJob {
  const annotations = record(record(hit)?.annotations) ?? {};
  const properties = record(record(hit)?.properties) ?? {};
  const created = record(properties.creationContext)?.createdTime;
  const started = time(annotations.effectiveStartTimeUtc);
  const target = record(properties.compute)?.target;
  return {
    name: typeof annotations.displayName === "string" ? annotations.displayName : "",
    status: typeof annotations.status === "string" ? annotations.status : undefined,
    createdAt: time(created) ?? 0,
    experiment: typeof properties.experimentName === "string" ? properties.experimentName : undefined,
    ...(started !== undefined ? { startedAt: started } : {}),
    ...(typeof target === "string" ? { compute: target } : {}),
  };
}

/**
 * Every active job of the experiment, all pages. A page that fails (after the retry policy's retries) or
 * an answer without a `value` array fails the whole listing: a partial list is a failed read, never fewer
 * workers. `maxPages` guards against a token that never ends.
 */
export async function listIndexedJobs(
  api: MlApi,
  options: { region: string; experiment: string; maxPages: number; signal?: AbortSignal },
): Promise<IndexedJob[]> {
  const jobs = new Map<string, IndexedJob>();
  let token: string | undefined;
  for (let page = 0; page < options.maxPages; page++) {
    const answer = record(await api.searchEntities(indexQuery(options.experiment, token), options.signal));
    const value = answer?.value;
    if (!Array.isArray(value)) {
      const given = JSON.stringify(answer ?? null).slice(0, 200);
      throw new MlApiBadAnswer(
        `region ${options.region}: index entities: expected an array of jobs at value; given ${given}`,
      );
    }
    for (const hit of value) {
      const job = parseHit(hit);
      jobs.set(job.name || `(no name ${jobs.size})`, job);
    }
    const next = answer?.continuationToken;
    if (typeof next !== "string" || next === "") {
      // The server filtered by experiment; a hit of another experiment (a filter ignored) is dropped, a
      // hit that does not say its experiment is kept (dropping it could count fewer workers).
      return [...jobs.values()].filter(
        (job) => job.experiment === undefined || job.experiment === options.experiment,
      );
    }
    token = next;
  }
  throw new Error(
    `index listing longer than maxListPages (${options.maxPages}) pages: is the status filter ignored?`,
  );
}
