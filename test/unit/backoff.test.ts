import { describe, expect, it } from "vitest";
import { Backoff, BackoffError, markDeadline } from "../../src/azure/backoff.js";
import { withRetry } from "../../src/azure/retry.js";

/** An error as the Azure SDK raises it for an answer with headers. */
function throttled(status: number, retryAfterSeconds: number): Error {
  return Object.assign(new Error(`HTTP ${status}`), {
    statusCode: status,
    response: { headers: { "retry-after": String(retryAfterSeconds) } },
  });
}

function deadline(ms: number): AbortSignal {
  const signal = AbortSignal.timeout(ms);
  markDeadline(signal, Date.now() + ms);
  return signal;
}

describe("back-off remembered across calls", () => {
  it("a Retry-After longer than the call's deadline: the call gives up at once, and no call goes before then", async () => {
    const gate = new Backoff();
    let calls = 0;
    const started = Date.now();
    const first = withRetry(
      async () => {
        calls++;
        throw throttled(429, 30);
      },
      { signal: deadline(20_000), backoff: { gate, call: "read" } },
    );
    await expect(first).rejects.toBeInstanceOf(BackoffError);
    // At once: well before the call's 20 s deadline, which a call waiting for the back-off would reach (the
    // bound is far from both, so a stalled test process does not matter).
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(calls).toBe(1);
    expect(gate.active()).toMatchObject([{ call: "read", reason: "HTTP 429, Retry-After 30 s" }]);
    expect(gate.remainingMs("read") + (Date.now() - started)).toBeGreaterThanOrEqual(30_000);

    // The next call (the next tick): not sent at all.
    const second = withRetry(
      async () => {
        calls++;
        return "answered";
      },
      { signal: deadline(2_000), backoff: { gate, call: "read" } },
    );
    await expect(second).rejects.toThrow(/reads in back-off until .*HTTP 429, Retry-After 30 s.*not sent/);
    expect(calls).toBe(1);
    // Writes are another kind of call: they still go.
    expect(gate.remainingMs("write")).toBe(0);
  });

  it("a short Retry-After is waited for within the call (503 too)", async () => {
    const gate = new Backoff();
    let calls = 0;
    const answer = await withRetry(
      async () => {
        calls++;
        if (calls === 1) throw throttled(503, 0.2);
        return "ok";
      },
      { signal: deadline(5_000), backoff: { gate, call: "write" } },
    );
    expect(answer).toBe("ok");
    expect(calls).toBe(2);
  });

  it("a 5xx with Retry-After is remembered only where asked (ml.azure.com wraps over-capacity in a 500)", async () => {
    const arm = new Backoff();
    const ml = new Backoff();
    const fail = async () => {
      throw throttled(500, 30);
    };
    const options = (gate: Backoff, anyServerError: boolean) => ({
      signal: deadline(2_000),
      backoff: { gate, call: "resume" as const, anyServerError },
    });
    await expect(withRetry(fail, options(ml, true))).rejects.toBeInstanceOf(BackoffError);
    expect(ml.active()).toMatchObject([{ call: "resume", reason: "HTTP 500, Retry-After 30 s" }]);
    // Without anyServerError a 500 is not a back-off: the call ends with the 500 itself.
    await expect(withRetry(fail, options(arm, false))).rejects.toMatchObject({ statusCode: 500 });
    expect(arm.active()).toEqual([]);
  });

  it("our own backoff (no Retry-After) is waited within the deadline, else the call ends with the answer's error", async () => {
    const gate = new Backoff();
    let calls = 0;
    const flaky = async () => {
      calls++;
      if (calls === 1) throw Object.assign(new Error("HTTP 503"), { statusCode: 503 });
      return "ok";
    };
    // min(2^1, 30) s + jitter 0: fits a 5 s deadline, so it is waited (not a back-off).
    const call = { signal: deadline(5_000), backoff: { gate, call: "index-list" as const }, random: () => 0 };
    await expect(withRetry(flaky, call)).resolves.toBe("ok");
    expect(calls).toBe(2);
    // It does not fit a 1.9 s deadline: the 503 itself, at once (not at the deadline), and nothing remembered.
    calls = 0;
    const started = Date.now();
    await expect(withRetry(flaky, { ...call, signal: deadline(1_900) })).rejects.toMatchObject({
      statusCode: 503,
    });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(gate.active()).toEqual([]);
  });

  it("a back-off is extended, never shortened, and ends by itself", () => {
    let clock = 0;
    const gate = new Backoff(() => clock);
    gate.note("write", 5_000, "HTTP 429, Retry-After 5 s");
    gate.note("write", 1_000, "HTTP 429, Retry-After 1 s");
    expect(gate.remainingMs("write")).toBe(5_000);
    clock = 5_000;
    expect(gate.active()).toEqual([]);
  });
});
