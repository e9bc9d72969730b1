import { describe, expect, test } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { loadPolicy } from "../../src/controller/policy-loader.js";
import { workforceArgv } from "../support/cli.js";

const localRegion = { kind: "local", name: "here", capacity: 4, command: ["true"], stateDir: "/tmp/x" };
const regionsEnv = { WORKFORCE_REGIONS: JSON.stringify([localRegion]) };

function problemsOf(fn: () => unknown): Array<{ where: string; message: string }> {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

function tempFile(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "wf-config-")), name);
  writeFileSync(path, text);
  return path;
}

describe("configuration", () => {
  test("defaults apply when nothing is set", () => {
    const config = loadConfig({ env: { ...regionsEnv } });
    expect(config).toMatchObject({
      concurrency: 1,
      policy: "step",
      maxWorkers: 50000,
      minWorkers: 0,
      rampFactor: 10,
      intervalSeconds: 60,
      scaleDownDelaySeconds: 300,
      metricsPort: 9464,
      dryRun: false,
    });
    expect(config.regions[0]).toMatchObject({ name: "here", drainSignal: "SIGINT", weight: 1 });
  });

  test("a variable overrides the file", () => {
    const file = tempFile(
      "wf.yaml",
      `concurrency: 4\nintervalSeconds: 30\nregions:\n  - ${JSON.stringify(localRegion)}\n`,
    );
    const config = loadConfig({ env: { WORKFORCE_CONFIG: file, WORKFORCE_CONCURRENCY: "8" } });
    expect(config.concurrency).toBe(8);
    expect(config.intervalSeconds).toBe(30);
    expect(config.regions).toHaveLength(1);
  });

  test("a bad variable names the variable, what was expected and what was given", () => {
    const problems = problemsOf(() => loadConfig({ env: { ...regionsEnv, WORKFORCE_POLICY: "greedy" } }));
    expect(problems).toHaveLength(1);
    expect(problems[0]?.where).toBe("WORKFORCE_POLICY");
    expect(problems[0]?.message).toMatch(/step.*proportional/);
    expect(problems[0]?.message).toMatch(/"greedy"/);
  });

  test("every problem is reported at once", () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: { ...regionsEnv, WORKFORCE_CONCURRENCY: "0", WORKFORCE_DRY_RUN: "maybe", WORKFORCE_JITTER: "2" },
      }),
    );
    expect(problems.map((p) => p.where).sort()).toEqual([
      "WORKFORCE_CONCURRENCY",
      "WORKFORCE_DRY_RUN",
      "WORKFORCE_JITTER",
    ]);
  });

  test("a secret's value is never echoed in an error", () => {
    const secret = "AccountKey=c2VjcmV0LXNlY3JldA==";
    const problems = problemsOf(() =>
      loadConfig({
        env: {
          ...regionsEnv,
          WORKFORCE_QUEUE_CONNECTION_STRING: " ".repeat(0) + secret,
          WORKFORCE_CONCURRENCY: "x",
        },
      }),
    );
    expect(JSON.stringify(problems)).not.toContain("c2VjcmV0");
    const file = tempFile(
      "wf.json",
      JSON.stringify({ regions: [{ ...localRegion, capacity: -1 }], queueConnectionString: 5 }),
    );
    const fileProblems = problemsOf(() => loadConfig({ env: { WORKFORCE_CONFIG: file } }));
    expect(fileProblems.find((p) => p.where.startsWith("queueConnectionString"))?.message).not.toContain("5");
  });

  test("region errors carry the field path", () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {
          WORKFORCE_REGIONS: JSON.stringify([localRegion, { ...localRegion, name: "two", capacity: "lots" }]),
        },
      }),
    );
    expect(problems[0]?.where).toBe("WORKFORCE_REGIONS[1].capacity");
    expect(problems[0]?.message).toMatch(/number/);
    expect(problems[0]?.message).toMatch(/"lots"/);
  });

  test("an unknown region kind and duplicate names are rejected", () => {
    const unknownKind = problemsOf(() =>
      loadConfig({ env: { WORKFORCE_REGIONS: JSON.stringify([{ ...localRegion, kind: "gcp" }]) } }),
    );
    expect(unknownKind[0]?.where).toBe("WORKFORCE_REGIONS[0].kind");
    const duplicate = problemsOf(() =>
      loadConfig({ env: { WORKFORCE_REGIONS: JSON.stringify([localRegion, localRegion]) } }),
    );
    expect(duplicate[0]?.message).toMatch(/duplicate region name "here"/);
  });

  test("file problems name the file and the key; unknown keys are typos, not silence", () => {
    const file = tempFile("wf.yaml", `concurency: 4\nregions: []\n`);
    const problems = problemsOf(() => loadConfig({ env: { WORKFORCE_CONFIG: file } }));
    expect(problems.map((p) => p.where)).toEqual([`concurency (in ${file})`, `regions (in ${file})`]);
    expect(
      problemsOf(() => loadConfig({ env: { WORKFORCE_CONFIG: "/nonexistent/wf.yaml" } }))[0]?.message,
    ).toMatch(/ENOENT/);
    expect(
      problemsOf(() => loadConfig({ env: { WORKFORCE_CONFIG: tempFile("bad.yaml", "a: [1,\n") } }))[0]
        ?.message,
    ).toMatch(/YAML/);
  });

  test("no regions is an error unless the command does not need any", () => {
    expect(problemsOf(() => loadConfig({ env: {} }))[0]?.where).toBe("WORKFORCE_REGIONS");
    expect(loadConfig({ env: {}, regionsOptional: true }).regions).toEqual([]);
  });
});

describe("custom policy module", () => {
  test("a module's default export becomes the policy", async () => {
    const path = tempFile("policy.mjs", "export default (input) => Math.min(input.queueDepth, 3);");
    const policy = await loadPolicy({ policy: "step", policyModule: path });
    expect(
      policy({
        queueDepth: 100,
        concurrency: 1,
        running: 0,
        pending: 0,
        maxWorkers: 10,
        minWorkers: 0,
        rampFactor: 10,
      }),
    ).toBe(3);
  });

  test("a bad module is a configuration error naming the variable", async () => {
    await expect(
      loadPolicy({ policy: "step", policyModule: "/nonexistent/policy.mjs" }),
    ).rejects.toBeInstanceOf(ConfigError);
    const noFunction = tempFile("nofn.mjs", "export const answer = 42;");
    await expect(loadPolicy({ policy: "step", policyModule: noFunction })).rejects.toThrow(
      /must export a policy function/,
    );
  });
});

describe("the CLI on bad configuration", () => {
  test("`workforce run` exits 2 and says what is wrong", () => {
    const result = spawnSync(workforceArgv("run")[0]!, workforceArgv("run").slice(1), {
      env: { PATH: process.env.PATH, WORKFORCE_METRICS_PORT: "99999", ...regionsEnv },
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/WORKFORCE_METRICS_PORT/);
  });

  test("a bad policy module makes `workforce run` exit 2", () => {
    const result = spawnSync(workforceArgv("run")[0]!, workforceArgv("run").slice(1), {
      env: {
        PATH: process.env.PATH,
        ...regionsEnv,
        WORKFORCE_QUEUE: "http://127.0.0.1:1/devstoreaccount1/q",
        WORKFORCE_POLICY_MODULE: "/nonexistent/policy.mjs",
        AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
      },
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/WORKFORCE_POLICY_MODULE/);
  });
});

describe("connection strings", () => {
  test("a malformed queue connection string is bad configuration, and its value is not echoed", () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: { ...regionsEnv, WORKFORCE_QUEUE_CONNECTION_STRING: "not-a-connection-string-s3cret" },
      }),
    );
    expect(problems[0]?.where).toBe("WORKFORCE_QUEUE_CONNECTION_STRING");
    expect(problems[0]?.message).toMatch(/expected a Storage connection string/);
    expect(JSON.stringify(problems)).not.toContain("s3cret");
  });

  test("Storage, Azurite and Service Bus connection strings are accepted", () => {
    for (const value of [
      "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
      "UseDevelopmentStorage=true",
      "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;SharedAccessSignature=sv=1",
      "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a2V5",
    ]) {
      expect(
        loadConfig({ env: { ...regionsEnv, WORKFORCE_QUEUE_CONNECTION_STRING: value } })
          .queueConnectionString,
      ).toBe(value);
    }
  });
});
