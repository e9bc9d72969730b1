import type { MlApi } from "./ml-api.js";
import { MlApiBadAnswer } from "./ml-api.js";
import { emptyListing, type JobSummary, type Listing } from "./listing.js";
import { classifyStatus } from "./states.js";

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
 * Every active job of the experiment, all pages, sorted as the ARM listing sorts them. A page that fails
 * (after the retry policy's retries) or an answer without a `value` array fails the whole listing: a
 * partial list is a failed read, never fewer workers. `maxPages` guards against a token that never ends.
 * The index gives no node count: each job takes the template's `nodesPerWorker` (all ours are built from it).
 */
export async function listIndexed(
  api: MlApi,
  options: {
    region: string;
    experiment: string;
    maxPages: number;
    nodesPerWorker: number;
    onOddJob?: (job: { name: string; status: unknown }) => void;
    signal?: AbortSignal;
  },
): Promise<Listing> {
  const listing = emptyListing();
  // By name: a job created while we page may shift the pages and show up twice.
  const seen = new Set<string>();
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
    listing.pages = page + 1;
    for (const hit of value) {
      const job = parseHit(hit);
      // A hit of another experiment (a filter ignored) is dropped; one that does not say its experiment
      // is kept (dropping it could count fewer workers).
      if (job.experiment !== undefined && job.experiment !== options.experiment) continue;
      const key = job.name || `(no name ${seen.size})`;
      if (seen.has(key)) continue;
      seen.add(key);
      const summary: JobSummary = {
        name: job.name,
        status: job.status,
        createdAt: job.createdAt,
        nodes: options.nodesPerWorker,
        class: job.name ? classifyStatus(job.status) : "unknown",
      };
      if (summary.class === "unknown" && summary.status !== "Unknown") options.onOddJob?.(summary);
      switch (summary.class) {
        case "running":
          listing.running.push(summary);
          break;
        case "pending":
          listing.pending.push(summary);
          listing.waitingNodes += summary.nodes;
          break;
        case "unknown":
          listing.unknown.push(summary);
          listing.waitingNodes += summary.nodes;
          break;
        case "finished":
          // Only if the status filter was ignored; nothing to retire (the index never lists it again).
          listing.finishedCount++;
          break;
        case "leaving":
          break;
      }
    }
    const next = answer?.continuationToken;
    if (typeof next !== "string" || next === "") {
      listing.at = Date.now();
      listing.names = seen;
      return listing;
    }
    token = next;
  }
  throw new Error(
    `region ${options.region}: index listing longer than maxListPages (${options.maxPages}) pages: is the status filter ignored?`,
  );
}
