import type { WriteRateLimiter } from "../../azure/rate-limiter.js";
import { BadAnswerError, NotJson, type ArmWorkspace, type BodySink } from "./arm.js";
import { detach, JobPageReader, PageSyntaxError, type JobFields } from "./job-page.js";
import type { WorkerNames } from "../types.js";
import { classifyStatus, type StatusClass } from "./states.js";
import { JobCache } from "./job-cache.js";

export { JobCache } from "./job-cache.js";

/**
 * Listing a region's workers: `GET .../jobs?listViewType=ActiveOnly&jobType=Command&tag=KEY`, pages
 * followed by `nextLink`, read as they arrive (job-page.ts). Per job only what the decisions need is kept (name,
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
  /** Every job of ours the listing showed, by name, whatever its status (for hires in flight). */
  names: WorkerNames;
}

export interface ListingOptions {
  arm: ArmWorkspace;
  experiment: string;
  tagKey: string;
  /** The tag key the list asks the service for, when not `tagKey` (the jobs must still carry `tagKey`). */
  listTag?: string;
  maxListPages: number;
  readLimiter: WriteRateLimiter;
  /** The longest wait for read budget before the region is held this tick. */
  maxBudgetWaitMs: number;
  /** Finished jobs kept with their resource (the retire batch); the rest are only counted. */
  keepFinished: number;
  /** The region's jobs as last listed (kept up to date by the listing), to reuse unchanged ones. */
  cache?: JobCache;
  /** Told of a job whose name or status is odd (once per kind, by the caller). */
  onOddJob?: (job: { name: string; status: unknown }) => void;
  /**
   * Told of every finished job listed (to record its exit: exits.ts); `resource` parses the job's text,
   * only when called, and only during the call.
   */
  onFinished?: (job: JobSummary, resource: () => Record<string, unknown>) => void;
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

/** A job list with more pages than `maxListPages` (a guard: the listing is not used). */
export class ListTooLong extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ListTooLong";
  }
}

/** The parts of a listed job a decision needs; undefined when it is not one of ours. */
function summarize(job: JobFields, experiment: string, cache: JobCache | undefined): JobSummary | undefined {
  if (!job.hasProperties) return undefined;
  // The tag filter is the service's (unverified that it honours it): check here too.
  if (job.experimentName !== experiment || !job.tagged || job.archived) return undefined;
  const name = job.name ?? "";
  const count = job.instanceCount;
  const createdAt = job.createdAt ? Date.parse(job.createdAt) || 0 : 0;
  const nodes = count !== undefined && Number.isInteger(count) && count >= 1 ? count : 1;
  const known = name ? cache?.get(name) : undefined;
  if (known && known.status === job.status && known.createdAt === createdAt && known.nodes === nodes)
    return known;
  const status = job.status === undefined ? undefined : detach(job.status);
  return {
    // Copies: the fields are slices of the page's text.
    name: known ? known.name : detach(name),
    status,
    createdAt,
    nodes,
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
    names: new Set<string>(),
  };
}

/**
 * Read every page of the workforce's jobs. `expectedPages` (the last listing's) is the budget asked for
 * up front, with `extraReads` more for the calls made beside it (the cluster read): `onBeside` is told,
 * once the budget is granted, when their tokens are there, so that they go no sooner.
 */
export async function listWorkforce(
  options: ListingOptions,
  region: string,
  expectedPages: number,
  extraReads: number,
  signal?: AbortSignal,
  onBeside?: (ready: Promise<void>) => void,
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
  // The reads beside the listing (the cluster) are taken from the claim now.
  const beside = Promise.all(Array.from({ length: extraReads }, () => take())).then(() => undefined);
  beside.catch(() => undefined);
  onBeside?.(beside);
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

/** One page as read: its jobs of ours (finished ones with their resource while the batch has room). */
interface Page {
  jobs: (JobSummary | FinishedJob)[];
  nextLink: string | undefined;
}

/** A sink for one attempt at a page: jobs are summarized as their text arrives, the page never held. */
function pageSink(options: ListingOptions, keepFinished: () => number): BodySink<Page> {
  const { arm } = options;
  const jobs: (JobSummary | FinishedJob)[] = [];
  let kept = 0;
  const reader = new JobPageReader(options.tagKey, (fields, page) => {
    const job = summarize(fields, options.experiment, options.cache);
    if (!job) return;
    let resource: Record<string, unknown> | undefined;
    const read = () => (resource ??= page.resource());
    if (job.class === "finished") options.onFinished?.(job, read);
    if (job.class === "finished" && kept < keepFinished()) {
      kept++;
      jobs.push({ ...job, resource: read() });
    } else jobs.push(job);
  });
  let broken: PageSyntaxError | undefined;
  return {
    write(chunk) {
      if (broken) return;
      try {
        reader.write(chunk);
      } catch (error) {
        if (!(error instanceof PageSyntaxError)) throw error;
        // The rest of the body is still read (and dropped): the connection stays usable.
        broken = error;
      }
    },
    end(contentType) {
      if (!broken) {
        try {
          reader.end();
        } catch (error) {
          if (!(error instanceof PageSyntaxError)) throw error;
          broken = error;
        }
      }
      if (broken) {
        const given = new NotJson(
          `a ${contentType ?? "no content type"} answer (${broken.message}): ${JSON.stringify(reader.head.slice(0, 80))}`,
        );
        throw new BadAnswerError(arm.where("jobs.list", "value", "an array of jobs", given));
      }
      if (reader.valueKind !== "array")
        throw new BadAnswerError(arm.where("jobs.list", "value", "an array of jobs", reader.head));
      const link = reader.nextLink;
      return { jobs, nextLink: typeof link === "string" && link ? link : undefined };
    },
  };
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
  const cache = options.cache ?? new JobCache();
  cache.begin();
  const url = arm.jobsUrl({
    // ActiveOnly = not archived; with our tag key, finished jobs leave the list once retired.
    listViewType: "ActiveOnly",
    jobType: "Command",
    tag: options.listTag ?? options.tagKey,
  });
  const room = () => options.keepFinished - listing.finished.length;
  const fetchPage = (link: string) =>
    budget().then(() => arm.getStreamed("jobs.list", link, () => pageSink(options, room), signal));
  let next = fetchPage(url);
  for (let page = 0; page < options.maxListPages; page++) {
    const { jobs, nextLink } = await next;
    listing.pages = page + 1;
    // The next page is asked for as soon as its link is known, before this one is sorted.
    if (nextLink) {
      next = fetchPage(nextLink);
      // An unread page must not end as an unhandled rejection if this one turns out bad.
      next.catch(() => undefined);
    }
    for (const job of jobs) {
      // A job without a name is counted (as pending) each time it is listed: nothing to match it by.
      if (job.name && !cache.see(job)) continue;
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
          if ("resource" in job && listing.finished.length < options.keepFinished) listing.finished.push(job);
          break;
        case "leaving":
          break;
      }
    }
    if (!nextLink) {
      listing.at = Date.now();
      cache.complete();
      listing.names = cache;
      return listing;
    }
  }
  throw new ListTooLong(
    `job list longer than maxListPages (${options.maxListPages}) pages: finished jobs are not being retired?`,
  );
}
