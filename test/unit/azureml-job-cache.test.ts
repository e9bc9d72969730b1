import { describe, expect, it } from "vitest";
import { JobCache, type JobSummary } from "../../src/regions/azureml/listing.js";

const job = (name: string, status = "Running"): JobSummary => ({
  name,
  status,
  createdAt: 1,
  nodes: 1,
  class: status === "Running" ? "running" : "pending",
});

describe("JobCache: the region's jobs as last listed, kept in place", () => {
  it("sees a job once per listing (a job shown on two pages is counted once)", () => {
    const cache = new JobCache();
    cache.begin();
    expect(cache.see(job("a"))).toBe(true);
    expect(cache.see(job("a"))).toBe(false);
    cache.complete();
    // The next listing sees it again, once.
    cache.begin();
    expect(cache.see(job("a"))).toBe(true);
    expect(cache.see(job("a"))).toBe(false);
  });

  it("forgets what a complete listing did not show, and keeps the last object of what it did", () => {
    const cache = new JobCache();
    cache.begin();
    cache.see(job("a"));
    cache.see(job("b"));
    cache.complete();
    const queued = job("b", "Queued");
    cache.begin();
    cache.see(queued);
    cache.complete();
    expect(cache.has("a")).toBe(false);
    expect(cache.get("b")).toBe(queued);
  });

  it("keeps a finished job without its resource (the retire batch's copy is not held a tick longer)", () => {
    const cache = new JobCache();
    cache.begin();
    cache.see({
      ...job("done", "Completed"),
      class: "finished",
      resource: { big: "x".repeat(100) },
    } as JobSummary);
    cache.complete();
    expect(cache.has("done")).toBe(true);
    expect(cache.get("done")).not.toHaveProperty("resource");
  });
});
