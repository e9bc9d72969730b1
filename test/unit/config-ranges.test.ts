import { describe, expect, test } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { ConfigError, loadConfig, resolveConfig } from "../../src/config/load.js";
import { workforceArgv } from "../support/cli.js";

// Issue 11, findings 4 and 8: every number has a range, pairs make sense, typos are refused.

const localRegion = { kind: "local", name: "here", capacity: 4, command: ["true"], stateDir: "/tmp/x" };
const base = { WORKFORCE_REGIONS: JSON.stringify([localRegion]) };
const SECRET = "Zm9vYmFyc2VjcmV0a2V5MTIzNDU2Nzg5MA==";

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig({ env: { ...base, ...env } });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => `${p.where}: ${p.message}`);
    throw error;
  }
  return [];
}

function tempFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "wf-ranges-")), "wf.yaml");
  writeFileSync(path, text);
  return path;
}

function cli(args: string[], env: NodeJS.ProcessEnv) {
  const [command, ...rest] = workforceArgv(...args);
  return spawnSync(command!, rest, {
    env: { PATH: process.env.PATH, AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential", ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
}

describe("durations stay within what a timer can hold", () => {
  test("an interval above 2^31-1 ms is refused, naming the limit", () => {
    const found = problems({ WORKFORCE_INTERVAL_SECONDS: "3000000" });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^WORKFORCE_INTERVAL_SECONDS: .*<= 2147483 .*2\^31-1 ms.*given "3000000"/);
  });

  test("a call timeout of 99999999 s is refused", () => {
    expect(problems({ WORKFORCE_CALL_TIMEOUT_SECONDS: "99999999" })[0]).toMatch(
      /^WORKFORCE_CALL_TIMEOUT_SECONDS: .*<= 2147483/,
    );
  });

  test("a call timeout set above the interval is warned about, naming both settings", () => {
    const resolved = resolveConfig({
      env: { ...base, WORKFORCE_INTERVAL_SECONDS: "10", WORKFORCE_CALL_TIMEOUT_SECONDS: "20" },
    });
    expect(resolved.problems).toEqual([]);
    expect(resolved.warnings).toEqual([
      "WORKFORCE_CALL_TIMEOUT_SECONDS (20 s) is above WORKFORCE_INTERVAL_SECONDS (10 s): a hung call delays the next tick",
    ]);
    expect(loadConfig({ env: { ...base, WORKFORCE_INTERVAL_SECONDS: "10" } }).callTimeoutSeconds).toBe(30);
  });

  test("a jitter of 1 (a zero interval) is refused", () => {
    expect(problems({ WORKFORCE_JITTER: "1" })[0]).toMatch(
      /^WORKFORCE_JITTER: expected a fraction from 0 to below 1/,
    );
  });

  test("a control message may not outlive its drain", () => {
    expect(
      problems({ WORKFORCE_CONTROL_MESSAGE_TTL_SECONDS: "600", WORKFORCE_DRAIN_TIMEOUT_SECONDS: "60" })[0],
    ).toMatch(/^WORKFORCE_CONTROL_MESSAGE_TTL_SECONDS and WORKFORCE_DRAIN_TIMEOUT_SECONDS: /);
  });
});

describe("numbers that must agree", () => {
  test("minWorkers above maxWorkers is refused, naming both", () => {
    expect(problems({ WORKFORCE_MIN_WORKERS: "100", WORKFORCE_MAX_WORKERS: "5" })).toEqual([
      "WORKFORCE_MIN_WORKERS and WORKFORCE_MAX_WORKERS: the floor (100) is above the ceiling (5): expected minWorkers <= maxWorkers",
    ]);
    const file = tempFile("minWorkers: 60000\n");
    expect(problems({ WORKFORCE_CONFIG: file })[0]).toBe(
      `minWorkers (in ${file}) and maxWorkers (default): the floor (60000) is above the ceiling (50000): expected minWorkers <= maxWorkers`,
    );
  });

  test("a port out of range says which range", () => {
    for (const port of ["70000", "-1", "80.5"])
      expect(problems({ WORKFORCE_METRICS_PORT: port })).toEqual([
        `WORKFORCE_METRICS_PORT: expected a port from 1 to 65535 (or 0 for any free port); given "${port}"`,
      ]);
  });
});

describe("typos are refused with the closest name", () => {
  test("an unknown WORKFORCE_* variable is a configuration error naming the closest one", () => {
    expect(problems({ WORKFORCE_CONCURENCY: "4" })).toEqual([
      "WORKFORCE_CONCURENCY: unknown variable (did you mean WORKFORCE_CONCURRENCY?); set WORKFORCE_ALLOW_UNKNOWN_VARIABLES=true to allow variables no setting reads",
    ]);
    // A misspelt dry-run must not act for real.
    expect(problems({ WORKFORCE_DRYRUN: "true" })[0]).toMatch(/did you mean WORKFORCE_DRY_RUN\?/);
  });

  test("WORKFORCE_ALLOW_UNKNOWN_VARIABLES turns them into warnings", () => {
    const resolved = resolveConfig({
      env: { ...base, WORKFORCE_CONCURENCY: "4", WORKFORCE_ALLOW_UNKNOWN_VARIABLES: "true" },
    });
    expect(resolved.problems).toEqual([]);
    expect(resolved.warnings).toEqual([
      "unknown variable WORKFORCE_CONCURENCY ignored (did you mean WORKFORCE_CONCURRENCY?)",
    ]);
  });

  test("Kubernetes service links of a Service named workforce-autoscaler are not typos", () => {
    const links = {
      WORKFORCE_AUTOSCALER_SERVICE_HOST: "10.0.0.12",
      WORKFORCE_AUTOSCALER_SERVICE_PORT: "9464",
      WORKFORCE_AUTOSCALER_SERVICE_PORT_METRICS: "9464",
      WORKFORCE_AUTOSCALER_PORT: "tcp://10.0.0.12:9464",
      WORKFORCE_AUTOSCALER_PORT_9464_TCP: "tcp://10.0.0.12:9464",
      WORKFORCE_AUTOSCALER_PORT_9464_TCP_PROTO: "tcp",
      WORKFORCE_AUTOSCALER_PORT_9464_TCP_PORT: "9464",
      WORKFORCE_AUTOSCALER_PORT_9464_TCP_ADDR: "10.0.0.12",
    };
    expect(problems(links)).toEqual([]);
    // Without its Service's host and port, a name of that shape is a typo like any other.
    expect(problems({ WORKFORCE_METRIC_PORT: "9000" })[0]).toMatch(
      /^WORKFORCE_METRIC_PORT: unknown variable \(did you mean WORKFORCE_METRICS_PORT\?\)/,
    );
  });

  test("a misspelt file key names the closest key, not all of them", () => {
    const file = tempFile("concurency: 4\n");
    expect(problems({ WORKFORCE_CONFIG: file })).toEqual([
      `concurency (in ${file}): unknown setting (did you mean concurrency?)`,
    ]);
  });
});

describe("workforce config: the effective configuration and where each value came from", () => {
  test("shows variable, file and default sources, hides secrets, warns when a variable overrides the file", () => {
    const file = tempFile(
      `concurrency: 4\nintervalSeconds: 30\nregions:\n  - ${JSON.stringify(localRegion)}\n`,
    );
    const env = {
      WORKFORCE_CONFIG: file,
      WORKFORCE_MAX_WORKERS: "200",
      WORKFORCE_INTERVAL_SECONDS: "20",
      WORKFORCE_QUEUE_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=a;AccountKey=${SECRET}`,
    };
    const result = cli(["config"], env);
    expect(result.status).toBe(0);
    const row = (key: string) => result.stdout.split("\n").find((line) => line.startsWith(`${key} `));
    expect(row("concurrency")).toMatch(new RegExp(`^concurrency +4 +file ${file}$`));
    expect(row("maxWorkers")).toMatch(/^maxWorkers +200 +variable WORKFORCE_MAX_WORKERS$/);
    expect(row("rampFactor")).toMatch(/^rampFactor +10 +default$/);
    expect(row("queueConnectionString")).toMatch(
      /\(set; hidden\) +variable WORKFORCE_QUEUE_CONNECTION_STRING$/,
    );
    expect(row("regions")).toMatch(new RegExp(`here \\(local\\) +file ${file}$`));
    expect(result.stdout).toContain(
      `warning: WORKFORCE_INTERVAL_SECONDS overrides intervalSeconds of ${file} (20 instead of 30): keep one of them`,
    );
    expect(result.stdout + result.stderr).not.toContain(SECRET);

    // --check fails on the override; the same file without the variable passes.
    expect(cli(["config", "--check"], env).status).toBe(2);
    const clean = cli(["config", "--check"], { WORKFORCE_CONFIG: file });
    expect(clean.stdout).toBe("configuration ok\n");
    expect(clean.status).toBe(0);
  });

  test("exits 2 and lists every problem, without touching the network", () => {
    const result = cli(["config"], {
      ...base,
      WORKFORCE_QUEUE: "tasks",
      WORKFORCE_QUEUE_CONNECTION_STRING:
        "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;QueueEndpoint=http://10.255.255.1:1/a",
      WORKFORCE_MIN_WORKERS: "100",
      WORKFORCE_MAX_WORKERS: "5",
      WORKFORCE_METRICS_PORT: "70000",
    });
    expect(result.status).toBe(2);
    expect(result.stdout).toMatch(/^metricsPort +\(invalid\) +variable WORKFORCE_METRICS_PORT$/m);
    expect(result.stdout).toContain("problem: WORKFORCE_METRICS_PORT: expected a port from 1 to 65535");
    expect(result.stdout).toContain("problem: WORKFORCE_MIN_WORKERS and WORKFORCE_MAX_WORKERS:");
  });
});
