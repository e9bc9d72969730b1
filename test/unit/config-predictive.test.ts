import { describe, expect, test } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { loadPolicy } from "../../src/controller/policy-loader.js";

const regionsEnv = {
  WORKFORCE_REGIONS: JSON.stringify([
    { kind: "local", name: "here", capacity: 4, command: ["true"], stateDir: "/tmp/x" },
  ]),
};

describe("WORKFORCE_POLICY=predictive", () => {
  test("the daemon's policy takes its knob and hints from the settings", async () => {
    const config = loadConfig({
      env: {
        ...regionsEnv,
        WORKFORCE_POLICY: "predictive",
        WORKFORCE_PAYBACK_RATIO: "8",
        WORKFORCE_TASK_SECONDS: "1200",
        WORKFORCE_STARTUP_SECONDS: "330",
      },
    });
    expect(config).toMatchObject({
      policy: "predictive",
      paybackRatio: 8,
      taskSeconds: 1200,
      startupSeconds: 330,
    });
    const policy = await loadPolicy(config);
    const state = {
      queueDepth: 300,
      concurrency: 4,
      running: 10,
      pending: 0,
      maxWorkers: 50000,
      minWorkers: 0,
      rampFactor: 10,
    };
    // Without estimates (nothing measured yet), the hints: 25 workers (see README, How it decides).
    expect(policy(state)).toBe(25);
    // A cheaper knob buys fewer workers for the same state.
    const cheaper = await loadPolicy({ ...config, paybackRatio: 30 });
    expect(cheaper(state)).toBeLessThan(25);
    // Measured estimates win over the hints.
    expect(policy({ ...state, estimates: { taskSeconds: 60, startupSeconds: 330 } })).toBeLessThan(25);
  });

  test("defaults, and bad values name the variable", () => {
    expect(loadConfig({ env: { ...regionsEnv } })).toMatchObject({
      paybackRatio: 8,
      taskSeconds: 600,
      startupSeconds: 300,
    });
    let problems: Array<{ where: string; message: string }> = [];
    try {
      loadConfig({
        env: {
          ...regionsEnv,
          WORKFORCE_PAYBACK_RATIO: "-1",
          WORKFORCE_TASK_SECONDS: "0",
          WORKFORCE_POLICY: "greedy",
        },
      });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems = error.problems;
    }
    const where = problems.map((problem) => problem.where);
    expect(where).toEqual(
      expect.arrayContaining(["WORKFORCE_PAYBACK_RATIO", "WORKFORCE_TASK_SECONDS", "WORKFORCE_POLICY"]),
    );
    expect(problems.find((p) => p.where === "WORKFORCE_PAYBACK_RATIO")?.message).toContain(
      "expected a number >= 0",
    );
  });
});
