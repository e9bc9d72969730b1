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
        throw throttled(429, 8);
      },
      { signal: deadline(2_000), backoff: { gate, call: "read" } },
    );
    await expect(first).rejects.toBeInstanceOf(BackoffError);
    // At once: well before the call's 2 s deadline, which a call waiting for the back-off would reach.
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(calls).toBe(1);
    expect(gate.active()).toMatchObject([{ call: "read", reason: "HTTP 429, Retry-After 8 s" }]);
    expect(gate.remainingMs("read")).toBeGreaterThan(7_000);

    // The next call (the next tick): not sent at all.
    const second = withRetry(
      async () => {
        calls++;
        return "answered";
      },
      { signal: deadline(2_000), backoff: { gate, call: "read" } },
    );
    await expect(second).rejects.toThrow(/reads in back-off until .*HTTP 429, Retry-After 8 s.*not sent/);
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
