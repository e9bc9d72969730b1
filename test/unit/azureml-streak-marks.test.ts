import { describe, expect, it } from "vitest";
import { StreakMarks } from "../../src/regions/azureml/streak-marks.js";
import { unmarkBody, type Retirer } from "../../src/regions/azureml/retire.js";
import type { EndedJob } from "../../src/regions/azureml/exits.js";
import type { JobSummary } from "../../src/regions/azureml/listing.js";
import type { WorkerExit } from "../../src/regions/types.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const KEY = "workforce.exp.exit";

/** The writes asked of the retirer, answered at once as the service would take them. */
function recorder() {
  const writes: string[] = [];
  const retirer = {
    mark(
      jobs: Array<{ job: { name: string }; key: string; value: string }>,
      onMarked?: (name: string) => void,
    ) {
      for (const { job, key, value } of jobs) {
        writes.push(`mark ${job.name} ${key}=${value}`);
        onMarked?.(job.name);
      }
    },
    unmark(name: string, key: string, onGone: (name: string) => void) {
      writes.push(`unmark ${name} ${key}`);
      onGone(name);
    },
  } as unknown as Retirer;
  return { writes, marks: new StreakMarks({ tagKey: "workforce.exp", retirer }) };
}

const job = (name: string, status = "Failed"): JobSummary => ({
  name,
  status,
  createdAt: T0,
  nodes: 1,
  class: "finished",
});
const ended = (name: string, marked?: boolean): EndedJob => ({
  name,
  status: "Failed",
  createdAt: T0,
  ...(marked ? { marked: { outcome: "failed_start", at: T0 } } : {}),
});
const exit = (name: string, at = T0): WorkerExit => ({
  workerId: name,
  outcome: "failed_start",
  at,
  detail: "Failed",
});
const resource = (name: string) => () => ({ name, properties: { tags: { "workforce.exp": "exp" } } });

describe("the streak's marks where finished jobs are not retired (keep, index)", () => {
  it("marks each held failed start once, and takes the marks off when the streak ends", () => {
    const { writes, marks } = recorder();
    marks.see(job("a"), ended("a"), true, resource("a"));
    marks.see(job("b"), ended("b"), true, resource("b"));
    const exits = new Map([
      ["a", exit("a")],
      ["b", exit("b", T0 + 1000)],
    ]);
    marks.settle(new Set(["a", "b"]), (name) => exits.get(name));
    marks.settle(new Set(["a", "b"]), (name) => exits.get(name)); // nothing more to write
    expect(writes).toEqual([
      `mark a ${KEY}=failed_start@2026-01-01T00:00:00.000Z`,
      `mark b ${KEY}=failed_start@2026-01-01T00:00:01.000Z`,
    ]);
    writes.length = 0;
    // The oldest leaves the held window (more than 10 in a row), then a worker ran: none held.
    marks.settle(new Set(["b"]), (name) => exits.get(name));
    marks.settle(new Set(), (name) => exits.get(name));
    marks.settle(new Set(), (name) => exits.get(name));
    expect(writes).toEqual([`unmark a ${KEY}`, `unmark b ${KEY}`]);
  });

  it("a first listing's marked jobs are the streak; its unmarked failed jobs are no exits and get no mark", () => {
    const { writes, marks } = recorder();
    marks.see(job("old"), ended("old", true), false, resource("old"));
    marks.see(job("other"), ended("other"), false, resource("other"));
    marks.settle(new Set(["old", "other"]), (name) => exit(name));
    expect(writes).toEqual([]);
    marks.settle(new Set(), (name) => exit(name));
    expect(writes).toEqual([`unmark old ${KEY}`]);
  });

  it("a job that ran (not held) or did not fail is never marked", () => {
    const { writes, marks } = recorder();
    marks.see(job("ran"), ended("ran"), true, resource("ran"));
    marks.see(job("done", "Completed"), ended("done"), true, resource("done"));
    marks.settle(new Set(["done"]), (name) => exit(name));
    marks.settle(new Set(["ran"]), (name) => exit(name)); // its resource was forgotten
    expect(writes).toEqual([]);
  });

  it("unmarkBody: the job as read without the tag; nothing to write when it has none", () => {
    const read = {
      name: "a",
      systemData: { createdAt: "x" },
      properties: { status: "Failed", tags: { t: "1", [KEY]: "v" } },
    };
    expect(unmarkBody(read, KEY)).toEqual({ ...read, properties: { status: "Failed", tags: { t: "1" } } });
    expect(read.properties.tags).toHaveProperty(KEY); // not changed in place
    expect(unmarkBody({ properties: { tags: { t: "1" } } }, KEY)).toBeUndefined();
    expect(unmarkBody({ properties: {} }, KEY)).toBeUndefined();
  });
});
