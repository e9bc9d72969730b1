import { describe, expect, it } from "vitest";
import {
  classifyJobExit,
  endedJob,
  exitTagValue,
  JobExits,
  type EndedJob,
} from "../../src/regions/azureml/exits.js";
import { emptyListing, type JobSummary, type Listing } from "../../src/regions/azureml/listing.js";
import { startBackoff } from "../../src/policy/start-backoff.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const grace = { startGraceMs: 60_000 };

function summary(name: string, status: string, createdAt = T0): JobSummary {
  const finished = ["Completed", "Failed", "Canceled"].includes(status);
  return { name, status, createdAt, nodes: 1, class: finished ? "finished" : "running" };
}

/** A listed job resource as ARM gives it (2022-10-01): no start or end time, maybe a service error. */
function resource(name: string, status: string, extra: { modified?: number; error?: string } = {}) {
  return {
    name,
    systemData: {
      createdAt: new Date(T0).toISOString(),
      lastModifiedAt: new Date(extra.modified ?? T0).toISOString(),
    },
    properties: {
      status,
      services: {
        Studio: { jobServiceType: "Studio", endpoint: "https://ml.azure.com/runs/x", errorMessage: null },
        Tracking: { jobServiceType: "Tracking", errorMessage: extra.error ?? null },
      },
    },
  };
}

const ended = (status: string, extra: Partial<EndedJob> = {}): EndedJob => ({
  name: "job-1",
  status,
  createdAt: T0,
  ...extra,
});

describe("classifyJobExit", () => {
  it("a job that Failed before any listing saw it Running failed to start", () => {
    const exit = classifyJobExit(ended("Failed"), undefined, T0 + 8_000, grace);
    expect(exit).toMatchObject({
      workerId: "job-1",
      outcome: "failed_start",
      at: T0 + 8_000,
      detail: "Failed 8 s after it was submitted, never seen Running",
    });
    expect(exit.ranSeconds).toBeUndefined();
  });

  it("Failed within the grace after it was first seen Running is a failed start; later, a failure", () => {
    const watched = { runningSince: T0 + 10_000 };
    expect(classifyJobExit(ended("Failed"), watched, T0 + 40_000, grace)).toMatchObject({
      outcome: "failed_start",
      ranSeconds: 30,
    });
    expect(classifyJobExit(ended("Failed"), watched, T0 + 610_000, grace)).toMatchObject({
      outcome: "failed",
      ranSeconds: 600,
    });
    // Running when this process first looked: it has run for an unknown time.
    const before = classifyJobExit(ended("Failed"), { runningSince: "before" }, T0 + 20_000, grace);
    expect(before.outcome).toBe("failed");
    expect(before.ranSeconds).toBeUndefined();
  });

  it("Completed succeeded; Canceled is a drain when this process cancelled it, else an operator's stop", () => {
    expect(classifyJobExit(ended("Completed"), undefined, T0 + 5_000, grace).outcome).toBe("succeeded");
    expect(classifyJobExit(ended("Canceled"), undefined, T0 + 5_000, grace).outcome).toBe("stopped");
    expect(
      classifyJobExit(ended("Canceled"), { cancelRequestedAt: T0 + 1_000 }, T0 + 5_000, grace),
    ).toMatchObject({ outcome: "drained", drainSeconds: 4 });
  });

  it("the error a service entry carries is the exit's last output, secrets redacted", () => {
    const job = endedJob(
      summary("job-1", "Failed"),
      resource("job-1", "Failed", { error: "cannot mount: AccountKey=c2VjcmV0 refused" }),
    );
    expect(job.error).toBe("cannot mount: AccountKey=c2VjcmV0 refused");
    expect(classifyJobExit(job, undefined, T0 + 1_000, grace).lastOutput).toBe(
      "cannot mount: AccountKey=[REDACTED] refused",
    );
    // lastModifiedAt equal to createdAt says nothing about the end.
    expect(endedJob(summary("job-1", "Failed"), resource("job-1", "Failed")).modifiedAt).toBeUndefined();
  });
});

describe("JobExits", () => {
  function listing(at: number, running: JobSummary[] = []): Listing {
    return { ...emptyListing(), at, running };
  }

  it("records each finished job once however many listings show it, and forgets it once retired", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    const job = summary("job-1", "Running");
    expect(exits.commit(listing(T0, []), T0)).toEqual([]); // first listing: nothing of ours yet
    expect(exits.commit(listing(T0 + 1_000, [job]), T0 + 900)).toEqual([]);
    const recorded: string[] = [];
    for (let tick = 2; tick < 6; tick++) {
      exits.see(summary("job-1", "Failed"), () => resource("job-1", "Failed"));
      for (const exit of exits.commit(listing(T0 + tick * 1_000), T0 + tick * 1_000 - 100))
        recorded.push(exit.outcome);
    }
    expect(recorded).toEqual(["failed_start"]);
    expect(exits.exits()).toHaveLength(1);
    expect(exits.exits()[0]).toMatchObject({ workerId: "job-1", ranSeconds: 1, at: T0 + 2_000 });
    // Retired (no longer listed): forgotten; the history keeps the exit.
    exits.commit(listing(T0 + 7_000), T0 + 6_900);
    expect(exits.exits()).toHaveLength(1);
  });

  it("jobs the first listing finds finished are marked seen, not exits (a previous process counted them)", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    exits.see(summary("old", "Failed"), () => resource("old", "Failed"));
    expect(exits.commit(listing(T0), T0 - 100)).toEqual([]);
    exits.see(summary("old", "Failed"), () => resource("old", "Failed"));
    expect(exits.commit(listing(T0 + 1_000), T0 + 900)).toEqual([]);
    expect(exits.exits()).toEqual([]);
  });

  it("keeps nothing per job Running past the grace, and still tells a failure from a failed start", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    const old = summary("old", "Running", T0 - 3600_000); // Running when this process first looked
    exits.commit(listing(T0, [old]), T0);
    const fresh = summary("fresh", "Running", T0 + 500);
    exits.commit(listing(T0 + 1_000, [old, fresh]), T0 + 900);
    expect((exits as unknown as { seen: Map<string, number> }).seen.size).toBe(1);
    exits.commit(listing(T0 + 120_000, [old, fresh]), T0 + 119_900); // fresh past the grace: forgotten
    expect((exits as unknown as { seen: Map<string, number> }).seen.size).toBe(0);
    exits.see(summary("old", "Failed", old.createdAt), () => resource("old", "Failed"));
    exits.see(summary("fresh", "Failed", fresh.createdAt), () => resource("fresh", "Failed"));
    const found = exits.commit(listing(T0 + 121_000), T0 + 120_900);
    expect(found.map((exit) => [exit.workerId, exit.outcome])).toEqual([
      ["old", "failed"],
      ["fresh", "failed"],
    ]);
    // A job that waited, ran between two listings and is seen Finalizing, then Failed: a failed start.
    exits.commit(listing(T0 + 122_000, []), T0 + 121_900);
    const waited = summary("waited", "Queued", T0 + 121_950);
    exits.commit({ ...listing(T0 + 123_000), pending: [waited] }, T0 + 122_900);
    exits.commit(listing(T0 + 124_000), T0 + 123_900); // Finalizing: in no list
    exits.see(summary("waited", "Failed", waited.createdAt), () => resource("waited", "Failed"));
    expect(exits.commit(listing(T0 + 125_000), T0 + 124_900).map((exit) => exit.outcome)).toEqual([
      "failed_start",
    ]);
  });

  it("a job seen finished by a listing that failed half-way is recorded by the next whole one", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    exits.commit(listing(T0), T0);
    exits.see(summary("job-2", "Completed"), () => resource("job-2", "Completed"));
    // (that listing failed: no commit) ... the next one no longer lists it, but it really finished
    expect(exits.commit(listing(T0 + 2_000), T0 + 1_500).map((exit) => exit.workerId)).toEqual(["job-2"]);
  });

  it("a job this process hired and no listing showed (the index's lag) fails: a failed start, even read late", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    const quiet = new JobExits({ startGraceMs: 60_000 });
    for (const tracker of [exits, quiet]) tracker.commit(listing(T0), T0);
    exits.hired("h", T0 + 100);
    // Listings that do not show it, for minutes (its read through ARM held back by the budget).
    for (const tracker of [exits, quiet])
      for (let minute = 1; minute <= 3; minute++)
        tracker.commit(listing(T0 + minute * 60_000), T0 + minute * 60_000 - 100);
    for (const tracker of [exits, quiet])
      tracker.see(summary("h", "Failed", T0 + 100), () => resource("h", "Failed"));
    expect(exits.commit(listing(T0 + 240_000), T0 + 239_900).map((exit) => exit.outcome)).toEqual([
      "failed_start",
    ]);
    // Not known as a hire of ours: taken for a job that was Running before (a failure, no backoff).
    expect(quiet.commit(listing(T0 + 240_000), T0 + 239_900).map((exit) => exit.outcome)).toEqual(["failed"]);
  });

  it("a hired job read Running through ARM (not listed): how long it ran tells a failed start from a failure", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    exits.commit(listing(T0), T0);
    for (const name of ["short", "long"]) {
      exits.hired(name, T0 + 100);
      exits.sawActive(summary(name, "Running", T0 + 100), T0 + 1_000);
      exits.sawActive(summary(name, "Running", T0 + 100), T0 + 2_000); // the first sighting counts
    }
    exits.commit(listing(T0 + 3_000), T0 + 2_900);
    exits.see(summary("short", "Failed", T0 + 100), () => resource("short", "Failed"));
    const short = exits.commit(listing(T0 + 5_000), T0 + 4_900);
    expect(short).toEqual([
      expect.objectContaining({ workerId: "short", outcome: "failed_start", ranSeconds: 4 }),
    ]);
    exits.commit(listing(T0 + 120_000), T0 + 119_900); // "long" Running past the grace
    exits.see(summary("long", "Failed", T0 + 100), () => resource("long", "Failed"));
    expect(exits.commit(listing(T0 + 121_000), T0 + 120_900).map((exit) => exit.outcome)).toEqual(["failed"]);
  });

  it("keeps every exit of a tick that finds hundreds, oldest submission first", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    exits.commit(listing(T0), T0);
    for (let i = 0; i < 300; i++) {
      const name = `job-${String(299 - i).padStart(3, "0")}`;
      exits.see(summary(name, "Completed", T0 + (299 - i)), () => resource(name, "Completed"));
    }
    const found = exits.commit(listing(T0 + 1_000), T0 + 500);
    expect(found).toHaveLength(300);
    expect(found[0]!.workerId).toBe("job-000");
    expect(exits.exits()).toHaveLength(300);
  });

  it("failed starts in a row back the region off; a job that ran ends the streak", () => {
    const exits = new JobExits({ startGraceMs: 60_000 });
    exits.commit(listing(T0), T0);
    for (let i = 1; i <= 3; i++) {
      exits.see(summary(`bad-${i}`, "Failed", T0 + i), () => resource(`bad-${i}`, "Failed"));
      exits.commit(listing(T0 + i * 10_000), T0 + i * 10_000 - 100);
    }
    const parameters = { initialMs: 30_000, maxMs: 1_800_000 };
    expect(startBackoff(exits.exits(), T0 + 31_000, parameters)).toMatchObject({
      failures: 3,
      until: T0 + 30_000 + 120_000,
    });
    exits.see(summary("good", "Completed", T0 + 9), () => resource("good", "Completed"));
    exits.commit(listing(T0 + 40_000), T0 + 39_900);
    expect(startBackoff(exits.exits(), T0 + 41_000, parameters)).toBeUndefined();
  });

  it("holds the failed starts of the current streak (at most 10), marks them, and finds them after a restart", () => {
    const exits = new JobExits({ startGraceMs: 60_000, tagKey: "workforce.e" });
    exits.commit(listing(T0), T0);
    exits.see(summary("ran", "Completed", T0), () => resource("ran", "Completed"));
    exits.commit(listing(T0 + 1_000), T0 + 900);
    for (let i = 0; i < 12; i++) {
      exits.see(summary(`bad-${i}`, "Failed", T0 + i), () => resource(`bad-${i}`, "Failed"));
      exits.commit(listing(T0 + (i + 2) * 1_000), T0 + (i + 2) * 1_000 - 100);
    }
    const held = exits.held();
    expect([...held].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `bad-${i + 2}`).sort());
    const bad11 = exits.exits().at(-1)!;
    expect(exitTagValue(bad11)).toBe(`failed_start@${new Date(T0 + 13_000).toISOString()}`);

    // A new process: the marked jobs are its streak; an unmarked one found finished is not an exit.
    const after = new JobExits({ startGraceMs: 60_000, tagKey: "workforce.e" });
    const marked = (name: string, value: string) => {
      const r = resource(name, "Failed");
      return {
        ...r,
        properties: { ...r.properties, tags: { "workforce.e": "e", "workforce.e.exit": value } },
      };
    };
    after.see(summary("bad-11", "Failed"), () => marked("bad-11", exitTagValue(bad11)));
    after.see(summary("bad-10", "Failed"), () =>
      marked("bad-10", "failed_start@2026-01-01T00:00:12.000Z@0.5"),
    );
    after.see(summary("old", "Failed"), () => resource("old", "Failed"));
    after.see(summary("odd", "Failed"), () => marked("odd", "nonsense"));
    const found = after.commit(listing(T0 + 60_000), T0 + 59_000);
    expect(found.map((exit) => [exit.workerId, exit.outcome, exit.at, exit.ranSeconds])).toEqual([
      ["bad-10", "failed_start", T0 + 12_000, 0.5],
      ["bad-11", "failed_start", T0 + 13_000, undefined],
    ]);
    expect([...after.held()].sort()).toEqual(["bad-10", "bad-11"]);
    expect(startBackoff(after.exits(), T0 + 60_000, { initialMs: 30_000, maxMs: 1_800_000 })).toMatchObject({
      failures: 2,
    });
  });
});
