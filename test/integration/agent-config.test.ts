import { describe, expect, it } from "vitest";
import { agentChannelFromEnv, signalPlan } from "../../src/agent/index.js";
import { exitCodeOf } from "../../src/agent/wrap.js";
import { ConfigError } from "../../src/config/load.js";

function problemsOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("agent configuration", () => {
  it("reads ai4s-jobq's variables; without any, there is no back channel", () => {
    expect(agentChannelFromEnv({})).toBeUndefined();
    expect(
      agentChannelFromEnv({
        WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE: "mybus.servicebus.windows.net",
        WORKFORCE_CONTROL_TOPIC_NAME: "wf-eastus",
      }),
    ).toEqual({
      fullyQualifiedNamespace: "mybus.servicebus.windows.net",
      topic: "wf-eastus",
      subscription: "shutdown",
    });
    expect(
      agentChannelFromEnv({
        WORKFORCE_BACK_CHANNEL_CONNECTION_STRING: "Endpoint=sb://127.0.0.1:5672;SharedAccessKey=k",
        WORKFORCE_CONTROL_TOPIC_NAME: "wf",
      }),
    ).toMatchObject({ connectionString: "Endpoint=sb://127.0.0.1:5672;SharedAccessKey=k", topic: "wf" });
  });

  it("a half-configured back channel names the missing variable", () => {
    expect(problemsOf(() => agentChannelFromEnv({ WORKFORCE_CONTROL_TOPIC_NAME: "wf" }))).toContain(
      "WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE",
    );
    expect(
      problemsOf(() =>
        agentChannelFromEnv({
          WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE: "mybus.servicebus.windows.net",
        }),
      ),
    ).toContain("WORKFORCE_CONTROL_TOPIC_NAME");
    expect(
      problemsOf(() =>
        agentChannelFromEnv({
          WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE: "not a host",
          WORKFORCE_CONTROL_TOPIC_NAME: "wf",
        }),
      ),
    ).toMatch(/WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE: expected a host name/);
  });

  it("signals: SIGINT by default, per-operation overrides, bad names refused", () => {
    expect(signalPlan()).toEqual({ "graceful-downscale": "SIGINT", "do-not-accept-new-tasks": "SIGINT" });
    expect(signalPlan("sigterm", ["do-not-accept-new-tasks=USR1"])).toEqual({
      "graceful-downscale": "SIGTERM",
      "do-not-accept-new-tasks": "SIGUSR1",
    });
    expect(problemsOf(() => signalPlan("SIGKILL"))).toContain("--signal");
    expect(problemsOf(() => signalPlan("SIGINT", ["explode=SIGUSR1"]))).toContain("--signal-for");
    expect(problemsOf(() => signalPlan("SIGINT", ["graceful-downscale=SIGNOPE"]))).toContain(
      "--signal-for graceful-downscale",
    );
  });

  it("exit codes follow the shell's convention", () => {
    expect(exitCodeOf(0, null)).toBe(0);
    expect(exitCodeOf(3, null)).toBe(3);
    expect(exitCodeOf(null, "SIGTERM")).toBe(143);
    expect(exitCodeOf(null, "SIGINT")).toBe(130);
  });
});
