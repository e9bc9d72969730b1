import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import { BadAnswerError, NotJson, type ArmWorkspace } from "./arm.js";
import { classifyStatus, type StatusClass } from "./states.js";

/**
 * Listing a region's workers: `GET .../jobs?listViewType=ActiveOnly&jobType=Command&tag=KEY`, pages
 * followed by `nextLink`, parsed as plain JSON. Per job only what the decisions need is kept (name,
 * status, creation time, nodes); the resource as read is kept only for finished jobs, to retire them.
 * Reads are rationed by the subscription's read budget: a listing either gets the budget for every page
 * it expects, or does not start (a partial read would count fewer workers than there are).
 */

/** One job as the region needs it. */
export interface JobSummary {
  name: string;
  status: string | undefined;
  /** ms since the epoch (0 when the service gave none). */
  createdAt: number;
  /** Nodes it takes: `resources.instanceCount`. */
  nodes: number;
  class: StatusClass;
}

/** A finished job, with its resource exactly as read (retiring PUTs it back with one field changed). */
export interface FinishedJob extends JobSummary {
  resource: Record<string, unknown>;
}

export interface Listing {
  at: number;
  running: JobSummary[];
  pending: JobSummary[];
  /** Jobs with a status this code does not know (counted as pending, never cancelled). */
  unknown: JobSummary[];
  /** Finished jobs to retire (at most `keepFinished`), with their resource. */
  finished: FinishedJob[];
  finishedCount: number;
  /** Nodes our not-yet-running jobs will take (pending and unknown), counted once. */
  waitingNodes: number;
  pages: number;
}

export interface ListingOptions {
  arm: ArmWorkspace;
  experiment: string;
  tagKey: string;
  maxListPages: number;
  readLimiter: WriteRateLimiter;
  /** The longest wait for read budget before the region is held this tick. */
  maxBudgetWaitMs: number;
  /** Finished jobs kept with their resource (the retire batch); the rest are only counted. */
  keepFinished: number;
  /** Told of a job whose name or status is odd (once per kind, by the caller). */
  onOddJob?: (job: { name: string; status: unknown }) => void;
  /** Told of every finished job listed, with its resource (to record its exit: exits.ts). */
  onFinished?: (job: JobSummary, resource: Record<string, unknown>) => void;
}

/** Not enough ARM read budget for a whole listing now: the region is held this tick, not read in part. */
export class ReadBudgetHold extends Error {
  readonly code = "ReadBudget";
  constructor(region: string, reads: number, waitMs: number) {
    super(
      `region ${region}: budget: the subscription's ARM read budget has no room for ${reads} reads within ${Math.round(waitMs / 1000)} s; the region is held this tick (not read in part)`,
    );
    this.name = "ReadBudgetHold";
  }
}

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

/** The parts of a listed job a decision needs; undefined when it is not one of ours. */
function summarize(
  resource: Record<string, unknown>,
  experiment: string,
  tagKey: string,
): JobSummary | undefined {
  const properties = resource.properties as Record<string, unknown> | undefined;
  if (!properties || typeof properties !== "object") return undefined;
  // The tag filter is the service's (unverified that it honours it): check here too.
  if (properties.experimentName !== experiment) return undefined;
  const tags = properties.tags as Record<string, unknown> | undefined;
  if (!tags || typeof tags !== "object" || !Object.prototype.hasOwnProperty.call(tags, tagKey))
    return undefined;
  if (properties.isArchived === true) return undefined;
  const created = str((resource.systemData as Record<string, unknown> | undefined)?.createdAt);
  const count = (properties.resources as { instanceCount?: unknown } | undefined)?.instanceCount;
  const name = str(resource.name) ?? "";
  const status = str(properties.status);
  return {
    name,
    status,
    createdAt: created ? Date.parse(created) || 0 : 0,
    nodes: typeof count === "number" && Number.isInteger(count) && count >= 1 ? count : 1,
    class: name ? classifyStatus(status) : "unknown",
  };
}

export function emptyListing(): Listing {
  return {
    at: Date.now(),
    running: [],
    pending: [],
    unknown: [],
    finished: [],
    finishedCount: 0,
    waitingNodes: 0,
    pages: 0,
  };
}

/**
 * Read every page of the workforce's jobs. `expectedPages` (the last listing's) is the budget asked for
 * up front, with `extraReads` more for the calls made beside it (the cluster read).
 */
export async function listWorkforce(
  options: ListingOptions,
  region: string,
  expectedPages: number,
  extraReads: number,
  signal?: AbortSignal,
): Promise<Listing> {
  const { readLimiter, maxBudgetWaitMs } = options;
  const upFront = Math.max(1, expectedPages) + extraReads;
  if (!readLimiter.claim(upFront, maxBudgetWaitMs))
    throw new ReadBudgetHold(region, upFront, maxBudgetWaitMs);
  let unused = upFront;
  const take = () => {
    unused--;
    return readLimiter.takeClaimed(signal);
  };
  // The reads beside the listing (the cluster, sent at once) are taken from the claim now.
  for (let i = 0; i < extraReads; i++) take().catch(() => undefined);
  try {
    return await readPages(options, region, signal, () => {
      if (unused > 0) return take();
      // A listing longer than expected: one more read, under the same rule.
      if (!readLimiter.claim(1, maxBudgetWaitMs))
        return Promise.reject(new ReadBudgetHold(region, upFront + 1, maxBudgetWaitMs));
      unused++;
      return take();
    });
  } finally {
    readLimiter.release(Math.max(0, unused));
  }
}

async function readPages(
  options: ListingOptions,
  region: string,
  signal: AbortSignal | undefined,
  budget: () => Promise<void>,
): Promise<Listing> {
  const { arm } = options;
  const listing = emptyListing();
  // By name: a job created or retired while we page may shift the pages and show up twice.
  const seen = new Set<string>();
  let url: string | undefined = arm.jobsUrl({
    // ActiveOnly = not archived; with our tag key, finished jobs leave the list once retired.
    listViewType: "ActiveOnly",
    jobType: "Command",
    tag: options.tagKey,
  });
  const fetchPage = (link: string) => budget().then(() => arm.getJson("jobs.list", link, signal));
  let next = fetchPage(url);
  for (let page = 0; page < options.maxListPages; page++) {
    const answer = await next;
    const value = (answer as { value?: unknown } | undefined)?.value;
    if (answer instanceof NotJson || !Array.isArray(value))
      throw new BadAnswerError(arm.where("jobs.list", "value", "an array of jobs", answer));
    const link = (answer as { nextLink?: unknown }).nextLink;
    url = typeof link === "string" && link ? link : undefined;
    listing.pages = page + 1;
    // The next page is asked for as soon as its link is known, before this one is sorted.
    if (url) {
      next = fetchPage(url);
      // An unread page must not end as an unhandled rejection if this one turns out bad.
      next.catch(() => undefined);
    }
    for (const item of value) {
      if (!item || typeof item !== "object") continue;
      const resource = item as Record<string, unknown>;
      const job = summarize(resource, options.experiment, options.tagKey);
      if (!job) continue;
      const key = job.name || `(no name ${seen.size})`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (job.class === "unknown" && job.status !== "Unknown") options.onOddJob?.(job);
      switch (job.class) {
        case "running":
          listing.running.push(job);
          break;
        case "pending":
          listing.pending.push(job);
          listing.waitingNodes += job.nodes;
          break;
        case "unknown":
          listing.unknown.push(job);
          listing.waitingNodes += job.nodes;
          break;
        case "finished":
          listing.finishedCount++;
          options.onFinished?.(job, resource);
          if (listing.finished.length < options.keepFinished) listing.finished.push({ ...job, resource });
          break;
        case "leaving":
          break;
      }
    }
    if (!url) {
      listing.at = Date.now();
      return listing;
    }
  }
  throw new Error(
    `job list longer than maxListPages (${options.maxListPages}) pages: finished jobs are not being retired?`,
  );
}
