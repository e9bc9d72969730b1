import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { waitNotice } from "../../src/cli/waiting.js";

/** A terminal that keeps what is written to it. */
function terminal() {
  const written: string[] = [];
  const stream = { isTTY: true, write: (text: string) => written.push(text) > 0 };
  return { written, stream: stream as unknown as NodeJS.WriteStream };
}

describe("status's notice of what it still waits for", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("names a call that has waited a second, then repeats every few seconds", () => {
    const { written, stream } = terminal();
    const notice = waitNotice({ limitSeconds: 30 }, stream);
    notice.onCall("queue tasks", "start");
    vi.advanceTimersByTime(999);
    expect(written).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(written).toEqual(["workforce: waiting for queue tasks (up to 30 s; 1 s so far)\n"]);
    vi.advanceTimersByTime(5_000);
    expect(written.at(-1)).toBe("workforce: waiting for queue tasks (up to 30 s; 6 s so far)\n");
    notice.stop();
  });

  it("counts the second from the call's start: a command slow to get to its first call still says what hangs", () => {
    // On a loaded machine, building the clients can take longer than the notice's first second.
    const { written, stream } = terminal();
    const notice = waitNotice({ limitSeconds: 4 }, stream);
    vi.advanceTimersByTime(1_500);
    notice.onCall("queue tasks", "start");
    vi.advanceTimersByTime(1_000);
    expect(written).toEqual(["workforce: waiting for queue tasks (up to 4 s; 1 s so far)\n"]);
    notice.stop();
  });

  it("says nothing for calls that answer within the second, nor anywhere but on a terminal", () => {
    const { written, stream } = terminal();
    const notice = waitNotice({ limitSeconds: 30 }, stream);
    notice.onCall("queue tasks", "start");
    vi.advanceTimersByTime(500);
    notice.onCall("queue tasks", "end");
    vi.advanceTimersByTime(10_000);
    expect(written).toEqual([]);
    notice.stop();

    const piped = terminal();
    (piped.stream as { isTTY: boolean }).isTTY = false;
    const quiet = waitNotice({ limitSeconds: 30 }, piped.stream);
    quiet.onCall("queue tasks", "start");
    vi.advanceTimersByTime(10_000);
    expect(piped.written).toEqual([]);
    quiet.stop();
  });
});
