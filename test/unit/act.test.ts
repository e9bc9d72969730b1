import { describe, expect, test } from "vitest";
import { Writable } from "node:stream";
import { carryOut, type ActOptions } from "../../src/controller/act.js";
import type { Plan, RegionPlan } from "../../src/policy/decide.js";
import type { CallOptions, Region } from "../../src/regions/types.js";
import { createLogger } from "../../src/logging/logger.js";
import { MemoryRegion } from "../support/memory-region.js";

function logCapture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, logger: createLogger({ level: "debug", destination }) };
}

const plan = (regions: RegionPlan[], hold?: string): Plan => ({
  ...(hold ? { hold } : {}),
  desired: 0,
  target: 0,
  totals: { running: 0, pending: 0, draining: 0, capacity: 0 },
  hire: 0,
  surplus: 0,
  busyWorkers: 0,
  regions,
});

function options(overrides: Partial<ActOptions> = {}) {
  const { lines, logger } = logCapture();
  return { lines, options: { actTimeoutMs: 500, concurrency: 4, dryRun: false, logger, ...overrides } };
}

function region(name = "east") {
  const memory = new MemoryRegion(name);
  memory.running = 10;
  memory.pending = 10;
  return memory;
}

describe("act phase", () => {
  test("cancels, then drains, then hires, each with its count, and reports what was done", async () => {
    const east = region();
    const { options: act } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 3, cancel: 2, drain: 1 }]), [east], act);
    expect(east.calls).toEqual([
      { operation: "cancel", count: 2 },
      { operation: "drain", count: 1 },
      { operation: "hire", count: 3 },
    ]);
    expect(outcome).toEqual({
      region: "east",
      hired: 3,
      hireUnknown: 0,
      cancelled: 2,
      cancelUnknown: 0,
      drained: 1,
      drainUnknown: 0,
      errors: [],
    });
  });

  test("a zero count makes no call at all: nothing is sent to a region every tick for nothing", async () => {
    const east = region();
    const { options: act } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 0, cancel: 0, drain: 0 }]), [east], act);
    expect(east.calls).toEqual([]);
    expect(outcome).toEqual({
      region: "east",
      hired: 0,
      hireUnknown: 0,
      cancelled: 0,
      cancelUnknown: 0,
      drained: 0,
      drainUnknown: 0,
      errors: [],
    });
  });

  test("a held plan, a dry run or a region not in the list: no calls, empty outcomes", async () => {
    const east = region();
    const orders = [{ region: "east", hire: 3, cancel: 0, drain: 0 }];
    for (const [what, run] of [
      ["hold", () => carryOut(plan(orders, "queue unknown"), [east], options().options)],
      ["dry run", () => carryOut(plan(orders), [east], options({ dryRun: true }).options)],
      ["unknown", () => carryOut(plan([{ ...orders[0]!, region: "gone" }]), [east], options().options)],
    ] as const) {
      const outcomes = await run();
      expect(east.calls, what).toEqual([]);
      expect(outcomes[0]!.hired, what).toBe(0);
      expect(outcomes[0]!.errors, what).toEqual([]);
    }
  });

  test("a partial result keeps both what was done and every error, and is logged as partly done", async () => {
    const east = region();
    east.hire = async (count: number) => ({
      hired: count - 2,
      errors: [new Error("submit job w-1: HTTP 500"), new Error("submit job w-2: HTTP 500")],
    });
    const { options: act, lines } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 5, cancel: 0, drain: 0 }]), [east], act);
    expect(outcome!.hired).toBe(3);
    expect(outcome!.errors).toEqual([
      { operation: "hire", message: "submit job w-1: HTTP 500", reason: "error", permanent: false },
      { operation: "hire", message: "submit job w-2: HTTP 500", reason: "error", permanent: false },
    ]);
    const warning = lines.find((line) => line.msg === "hire partly done");
    expect(warning).toMatchObject({ region: "east", operation: "hire", requested: 5, done: 3 });
    expect(warning!.errors).toEqual(["submit job w-1: HTTP 500", "submit job w-2: HTTP 500"]);
  });

  test("fewer done than asked, without an error, is still logged as partly done; all done is not", async () => {
    const east = region();
    east.cancelPending = async () => ({ cancelled: 1, errors: [] });
    const { options: act, lines } = options();
    await carryOut(plan([{ region: "east", hire: 2, cancel: 4, drain: 0 }]), [east], act);
    expect(lines.filter((line) => String(line.msg).endsWith("partly done")).map((line) => line.msg)).toEqual([
      "cancel partly done",
    ]);
  });

  test("all done but with errors on the way is logged as partly done too, errors and all", async () => {
    const east = region();
    east.hire = async (count: number) => ({ hired: count, errors: [new Error("retried after HTTP 429")] });
    const { options: act, lines } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 2, cancel: 0, drain: 0 }]), [east], act);
    expect(outcome).toMatchObject({
      hired: 2,
      errors: [{ operation: "hire", message: "retried after HTTP 429" }],
    });
    expect(lines.find((line) => line.msg === "hire partly done")).toMatchObject({
      requested: 2,
      done: 2,
      errors: ["retried after HTTP 429"],
    });
  });

  test("an answer without an errors list is fine: what was done counts, nothing is made up", async () => {
    const east = region();
    east.drain = async () => ({ drained: 1 }) as unknown as { drained: number; errors: Error[] };
    east.cancelPending = async () => ({ cancelled: 1 }) as unknown as { cancelled: number; errors: Error[] };
    const { options: act, lines } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 0, cancel: 3, drain: 1 }]), [east], act);
    expect(outcome).toEqual({
      region: "east",
      hired: 0,
      hireUnknown: 0,
      cancelled: 1,
      cancelUnknown: 0,
      drained: 1,
      drainUnknown: 0,
      errors: [],
    });
    const partly = lines.find((line) => line.msg === "cancel partly done");
    expect(partly).toMatchObject({ requested: 3, done: 1 });
    expect(partly!.errors).toBeUndefined();
  });

  test("each operation's failure is named by its operation", async () => {
    const east = region();
    east.fail.drain = new Error("bus down");
    east.fail.hire = new Error("ARM down");
    const { options: act } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 1, cancel: 0, drain: 1 }]), [east], act);
    expect(outcome!.errors).toEqual([
      { operation: "drain", message: "bus down", reason: "error", permanent: false },
      { operation: "hire", message: "ARM down", reason: "error", permanent: false },
    ]);
  });

  test("an answer that is not a number counts as nothing done", async () => {
    const east = region();
    east.drain = async () => ({ drained: Number.NaN, errors: [] });
    east.hire = async () => ({ errors: [] }) as unknown as { hired: number; errors: Error[] };
    const { options: act } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 2, cancel: 0, drain: 1 }]), [east], act);
    expect(outcome).toMatchObject({ drained: 0, hired: 0 });
  });

  test("a call that throws is an error of that operation; the region's other steps still run", async () => {
    const east = region();
    east.fail.cancel = new Error("ARM said no");
    const { options: act, lines } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 1, cancel: 2, drain: 0 }]), [east], act);
    expect(outcome!.errors).toEqual([
      { operation: "cancel", message: "ARM said no", reason: "error", permanent: false },
    ]);
    expect(outcome!.hired).toBe(1);
    expect(lines.find((line) => line.msg === "cancel failed")).toMatchObject({
      operation: "cancel",
      requested: 2,
    });
  });

  test("every call gets a signal that fires at the act deadline; a hanging region does not hold the others", async () => {
    const east = region("east");
    const west = region("west");
    let seen: AbortSignal | undefined;
    east.hire = (_count: number, callOptions?: CallOptions) => {
      seen = callOptions?.signal;
      return new Promise(() => undefined); // never answers
    };
    const { options: act } = options({ actTimeoutMs: 100 });
    const started = Date.now();
    const outcomes = await carryOut(
      plan([
        { region: "east", hire: 2, cancel: 0, drain: 0 },
        { region: "west", hire: 1, cancel: 0, drain: 0 },
      ]),
      [east, west],
      act,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(seen?.aborted).toBe(true);
    expect(outcomes[0]!.errors[0]).toMatchObject({ operation: "hire" });
    expect(outcomes[0]!.errors[0]!.message).toMatch(/region east hire did not answer within 100 ms/);
    expect(outcomes[1]).toMatchObject({ region: "west", hired: 1, errors: [] });
  });

  test("the caller's signal reaches every call: a daemon stopping mid-tick aborts the call in flight", async () => {
    for (const operation of ["cancel", "drain", "hire"] as const) {
      const east = region();
      const stop = new AbortController();
      let abortedInside: boolean | undefined;
      const call = async (count: number, callOptions?: CallOptions) => {
        stop.abort(new Error("shutting down"));
        abortedInside = callOptions?.signal?.aborted;
        return { hired: count, cancelled: count, drained: count, errors: [] };
      };
      if (operation === "cancel") east.cancelPending = call;
      if (operation === "drain") east.drain = call;
      if (operation === "hire") east.hire = call;
      const orders = { region: "east", hire: 0, cancel: 0, drain: 0, [operation]: 1 };
      await carryOut(plan([orders]), [east], options({ signal: stop.signal }).options);
      expect(abortedInside, operation).toBe(true);
    }
  });

  test("regions act at most `concurrency` at a time", async () => {
    let inFlight = 0;
    let most = 0;
    const regions: Region[] = ["a", "b", "c", "d", "e"].map((name) => {
      const memory = region(name);
      memory.hire = async (count: number) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 20));
        inFlight--;
        return { hired: count, errors: [] };
      };
      return memory;
    });
    const { options: act } = options({ concurrency: 2 });
    const outcomes = await carryOut(
      plan(regions.map((r) => ({ region: r.name, hire: 1, cancel: 0, drain: 0 }))),
      regions,
      act,
    );
    expect(most).toBe(2);
    expect(outcomes.map((outcome) => outcome.hired)).toEqual([1, 1, 1, 1, 1]);
  });
});
