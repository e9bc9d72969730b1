import { describe, expect, test } from "vitest";
import { createLogger } from "../../src/logging/logger.js";
import { ignoreWorkerLeaveSignals } from "../../src/process/stray-signals.js";
import { logLines } from "../support/log-lines.js";

// The helper's own rules; that a real SIGUSR1 opens no debugger is test/integration/stray-signals.test.ts.
// process.emit reaches the listeners without sending a real signal to the test runner.

describe("ignoreWorkerLeaveSignals", () => {
  test("warns once per signal with the hint, repeats only at debug, and removes its listeners", () => {
    const { lines, destination } = logLines();
    const logger = createLogger({ level: "debug", destination });
    const before = ["SIGUSR1", "SIGUSR2"].map((signal) => process.listenerCount(signal));
    const stop = ignoreWorkerLeaveSignals(logger, "signal the worker instead");
    try {
      process.emit("SIGUSR1", "SIGUSR1");
      process.emit("SIGUSR1", "SIGUSR1");
      process.emit("SIGUSR2", "SIGUSR2");
    } finally {
      stop();
    }
    const seen = lines.map(({ level, signal, count, msg }) => ({ level, signal, count, msg }));
    expect(seen).toEqual([
      {
        level: "warn",
        signal: "SIGUSR1",
        count: 1,
        msg: "SIGUSR1 received and ignored: signal the worker instead",
      },
      {
        level: "debug",
        signal: "SIGUSR1",
        count: 2,
        msg: "SIGUSR1 received and ignored: signal the worker instead",
      },
      {
        level: "warn",
        signal: "SIGUSR2",
        count: 1,
        msg: "SIGUSR2 received and ignored: signal the worker instead",
      },
    ]);
    expect(["SIGUSR1", "SIGUSR2"].map((signal) => process.listenerCount(signal))).toEqual(before);
  });
});
