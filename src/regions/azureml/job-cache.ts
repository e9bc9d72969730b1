import type { FinishedJob, JobSummary } from "./listing.js";

/**
 * The jobs of the region's last listing, by name, kept up to date in place by each listing: a job listed
 * again unchanged is the same object, and the entry of a job is made once in its life (no new object,
 * name copy, set or map per job per tick, which the garbage collector would move to the old generation).
 */
export class JobCache {
  private readonly entries = new Map<string, { job: JobSummary; listing: number }>();
  private listing = 0;

  /** A listing starts: jobs it does not see again are forgotten when it completes. */
  begin(): void {
    this.listing++;
  }

  get(name: string): JobSummary | undefined {
    return this.entries.get(name)?.job;
  }

  /** The job as this listing saw it; false if this listing saw the name already (a job that moved pages). */
  see(job: JobSummary): boolean {
    const entry = this.entries.get(job.name);
    if (!entry) this.entries.set(job.name, { job: stripResource(job), listing: this.listing });
    else if (entry.listing === this.listing) return false;
    else {
      entry.job = stripResource(job);
      entry.listing = this.listing;
    }
    return true;
  }

  /** The listing is complete: what it did not see has left the list. */
  complete(): void {
    for (const [name, entry] of this.entries) if (entry.listing !== this.listing) this.entries.delete(name);
  }

  /**
   * Whether the last listing showed a job of this name (after a listing that failed part way, the jobs it
   * saw before failing too: asked only after a listing that completed).
   */
  has(name: string): boolean {
    return this.entries.has(name);
  }
}

/** A finished job's summary without the resource kept to retire it. */
function stripResource(job: JobSummary | FinishedJob): JobSummary {
  if (!("resource" in job)) return job;
  const { resource: _resource, ...summary } = job;
  return summary;
}
