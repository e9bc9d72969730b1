import { describe, expect, test } from "vitest";
import { carryOut, type ActOptions } from "../../src/controller/act.js";
import type { Plan, RegionPlan } from "../../src/policy/decide.js";
import type { CallOptions, CancelOptions, Region } from "../../src/regions/types.js";
import { createLogger } from "../../src/logging/logger.js";
import { MemoryRegion } from "../support/memory-region.js";
import { logLines } from "../support/log-lines.js";

function logCapture() {
  const { lines, destination } = logLines();
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
    // East was given up at the act deadline (the message below); the wall clock is only a loose backstop.
    expect(Date.now() - started).toBeLessThan(10_000);
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

describe("act phase: outcomes not known yet, and the resume sweep", () => {
  test("hires and drains of unknown outcome are reported as such, per operation; nonsense counts as none", async () => {
    const east = region();
    east.hire = async () => ({ hired: 1, unknown: 2, errors: [] });
    east.drain = async () => ({ drained: 0, unknown: 3, errors: [] });
    east.cancelPending = async () => ({ cancelled: 1, unknown: 5, errors: [] }) as never;
    const { options: act } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 3, cancel: 1, drain: 3 }]), [east], act);
    // A cancel's unknowns are not hires or drains in flight.
    expect(outcome).toMatchObject({ hired: 1, hireUnknown: 2, drained: 0, drainUnknown: 3, cancelled: 1 });

    const west = region("west");
    west.hire = async () => ({ hired: 1, unknown: Number.NaN, errors: [] });
    west.drain = async () => ({ drained: 1, unknown: Number.POSITIVE_INFINITY, errors: [] });
    const [nonsense] = await carryOut(plan([{ region: "west", hire: 1, cancel: 0, drain: 1 }]), [west], act);
    expect(nonsense).toMatchObject({ hired: 1, hireUnknown: 0, drained: 1, drainUnknown: 0 });
  });

  test("the controller's hire options reach the region's hire, with the deadline's signal", async () => {
    const east = region();
    let seen: Record<string, unknown> | undefined;
    east.hire = async (count: number, hireOptions?: Record<string, unknown>) => {
      seen = hireOptions;
      return { hired: count, errors: [] };
    };
    const onSubmit = () => undefined;
    const asked: string[] = [];
    const { options: act } = options({
      hireOptions: (name) => {
        asked.push(name);
        return { onSubmit };
      },
    });
    await carryOut(plan([{ region: "east", hire: 2, cancel: 0, drain: 0 }]), [east], act);
    expect(asked).toEqual(["east"]);
    expect(seen?.onSubmit).toBe(onSubmit);
    expect(seen?.signal).toBeInstanceOf(AbortSignal);
  });

  test("a call abandoned at its deadline that answers later is reported with what it did", async () => {
    const east = region();
    east.hire = (count: number) =>
      new Promise((resolve) => setTimeout(() => resolve({ hired: count, errors: [] }), 300));
    const late: Array<[string, string, unknown]> = [];
    const { options: act } = options({
      actTimeoutMs: 50,
      onLate: (name, operation, result) => late.push([name, operation, result]),
    });
    const [outcome] = await carryOut(plan([{ region: "east", hire: 2, cancel: 0, drain: 0 }]), [east], act);
    expect(outcome).toMatchObject({ hired: 0 });
    expect(late).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(late).toEqual([["east", "hire", { hired: 2, errors: [] }]]);
  });

  const pausing = (answer: () => Promise<unknown>) => {
    const east = region();
    const calls: string[] = [];
    const original = { hire: east.hire.bind(east), cancel: east.cancelPending.bind(east) };
    east.hire = async (count, o) => (calls.push("hire"), original.hire(count, o));
    east.cancelPending = async (count, o) => (calls.push("cancel"), original.cancel(count, o));
    Object.assign(east, {
      resumePaused: async (o?: CallOptions) => {
        calls.push(o?.signal ? "resume (signal)" : "resume");
        return answer();
      },
    });
    return { east, calls };
  };

  test("the resume sweep runs last, in held ticks too, never in a dry run, and reports its counts and errors", async () => {
    const result = { resumed: 2, cancelled: 1, refused: 1, failed: 1, errors: [new Error("one failed")] };
    const { east, calls } = pausing(async () => result);
    const { options: act } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 1, cancel: 1, drain: 0 }]), [east], act);
    expect(calls).toEqual(["cancel", "hire", "resume (signal)"]);
    expect(outcome!.resume).toEqual({ resumed: 2, cancelled: 1, refused: 1, failed: 1 });
    expect(outcome!.errors).toMatchObject([{ operation: "resume", message: "one failed" }]);

    calls.length = 0;
    const [held] = await carryOut(
      plan([{ region: "east", hire: 1, cancel: 1, drain: 0 }], "queue unreadable"),
      [east],
      act,
    );
    expect(calls).toEqual(["resume (signal)"]);
    expect(held).toMatchObject({ hired: 0, cancelled: 0, resume: { resumed: 2 } });

    calls.length = 0;
    await carryOut(
      plan([{ region: "east", hire: 1, cancel: 1, drain: 0 }]),
      [east],
      options({ dryRun: true }).options,
    );
    expect(calls).toEqual([]);
  });

  test("a failing or hanging sweep is an error of the region's resume, logged, and the hires stand", async () => {
    const { east } = pausing(async () => {
      throw new Error("list failed");
    });
    const { options: act, lines } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 1, cancel: 0, drain: 0 }]), [east], act);
    expect(outcome).toMatchObject({ hired: 1, errors: [{ operation: "resume", message: "list failed" }] });
    expect(outcome!.resume).toBeUndefined();
    expect(lines.find((line) => line.msg === "resume failed")).toMatchObject({
      operation: "resume",
      region: "east",
    });

    const { east: hanging } = pausing(() => new Promise(() => undefined));
    const [slow] = await carryOut(
      plan([{ region: "east", hire: 0, cancel: 0, drain: 0 }]),
      [hanging],
      options({ actTimeoutMs: 50 }).options,
    );
    expect(slow!.errors[0]!.message).toMatch(/region east resume did not answer within 50 ms/);
  });
});

describe("act phase: cancels cut off by the deadline", () => {
  test("the cancels confirmed before the cut-off count, sent-but-unanswered ones are unknown, the rest arrives late", async () => {
    const east = region();
    let finish: (() => void) | undefined;
    east.cancelPending = (count: number, o?: CancelOptions) =>
      new Promise((resolve) => {
        for (const name of ["w1", "w2", "w3", "w4"]) o?.onSubmit?.(name);
        o?.onOutcome?.("w1", "cancelled");
        o?.onOutcome?.("w2", "unknown");
        o?.onOutcome?.("w3", "refused");
        // w4: sent, no answer before the deadline.
        finish = () => {
          o?.onOutcome?.("w4", "cancelled"); // after the cut-off: does not change the tick's outcome
          resolve({ cancelled: 2, errors: [] });
        };
      });
    const late: unknown[] = [];
    const { options: act } = options({ actTimeoutMs: 50, onLate: (_n, _op, result) => late.push(result) });
    const [outcome] = await carryOut(plan([{ region: "east", hire: 0, cancel: 4, drain: 0 }]), [east], act);
    expect(outcome).toMatchObject({ cancelled: 1, cancelUnknown: 2 });
    finish!();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(outcome).toMatchObject({ cancelled: 1, cancelUnknown: 2 });
    // The late answer counts only what the tick did not: 2 - 1 already counted.
    expect(late).toEqual([{ cancelled: 1, errors: [] }]);
  });

  test("cancels answered in time: every unanswered one is unknown, refused ones are neither", async () => {
    const east = region();
    east.cancelPending = async (_count: number, o?: CancelOptions) => {
      for (const name of ["w1", "w2", "w3"]) o?.onSubmit?.(name);
      o?.onOutcome?.("w1", "cancelled");
      o?.onOutcome?.("w2", "refused");
      return { cancelled: 1, errors: [] };
    };
    const { options: act } = options();
    const [outcome] = await carryOut(plan([{ region: "east", hire: 0, cancel: 3, drain: 0 }]), [east], act);
    expect(outcome).toMatchObject({ cancelled: 1, cancelUnknown: 1 });
  });
});
