import { describe, expect, test } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { ConfigError, loadConfig, unknownVariables } from "../../src/config/load.js";
import { workforceArgv } from "../support/cli.js";

// What an operator sees when they get the configuration or the command line wrong.

const ACCOUNT_KEY = "Zm9vYmFyc2VjcmV0a2V5MTIzNDU2Nzg5MA==";
const STORAGE_CS = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:1/devstoreaccount1`;
const localRegion = { kind: "local", name: "here", capacity: 4, command: ["true"], stateDir: "/tmp/x" };

function problemsOf(env: NodeJS.ProcessEnv): Array<{ where: string; message: string }> {
  try {
    loadConfig({ env });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "wf-operator-")), "workforce.yaml");
  writeFileSync(path, text);
  return path;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const [command, ...rest] = workforceArgv(...args);
  return spawnSync(command!, rest, {
    env: { PATH: process.env.PATH, AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential", ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
}

describe("configuration errors an operator can act on", () => {
  test("a connection string pasted into WORKFORCE_QUEUE is refused without echoing its key", () => {
    const env = { WORKFORCE_QUEUE: STORAGE_CS, WORKFORCE_REGIONS: JSON.stringify([localRegion]) };
    const result = cli(["status"], env);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/WORKFORCE_QUEUE: .*looks like a connection string/);
    expect(result.stderr).toMatch(/WORKFORCE_QUEUE_CONNECTION_STRING/);
    expect(result.stdout + result.stderr).not.toContain(ACCOUNT_KEY);
  });

  test("a key quoted in any problem's given value is redacted", () => {
    // A region field that is not a secret by name but holds one.
    const problems = problemsOf({
      WORKFORCE_REGIONS: JSON.stringify([{ ...localRegion, capacity: `AccountKey=${ACCOUNT_KEY}` }]),
    });
    expect(problems.map((p) => p.where)).toContain("WORKFORCE_REGIONS[0].capacity");
    expect(JSON.stringify(problems)).not.toContain(ACCOUNT_KEY);
  });

  test("malformed WORKFORCE_REGIONS JSON is reported once, without the slice of text V8 quotes", () => {
    const tail = ACCOUNT_KEY.slice(-6);
    const text = `[{"kind":"local","backChannel":{"connectionString":"Endpoint=sb://x/;SharedAccessKey=${ACCOUNT_KEY}"}}, oops]`;
    const problems = problemsOf({ WORKFORCE_REGIONS: text });
    expect(problems).toEqual([
      {
        where: "WORKFORCE_REGIONS",
        message: expect.stringMatching(/^expected a JSON array of regions: Unexpected token/),
      },
    ]);
    expect(JSON.stringify(problems)).not.toContain(tail);
  });

  test("a YAML syntax error gives line and column, not the line itself (cut where a key escapes redaction)", () => {
    const key = `SECRETSBKEY${ACCOUNT_KEY}`;
    const path = configFile(
      `queue: tasks\nregions: [{kind: local, backChannel: {connectionString: Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=${key}, topic: t}, oops: [}]\n`,
    );
    const problems = problemsOf({ WORKFORCE_CONFIG: path });
    expect(problems).toEqual([
      { where: path, message: expect.stringMatching(/^not valid YAML or JSON: .* at line 2, column \d+$/) },
    ]);
    expect(JSON.stringify(problems)).not.toContain(key.slice(0, 12));
  });

  test("numbers of the wrong type in the file are refused, not coerced (true is not 1)", () => {
    const path = configFile("concurrency: true\nmaxWorkers: [7]\nintervalSeconds: '30'\n");
    const problems = problemsOf({ WORKFORCE_CONFIG: path, WORKFORCE_REGIONS: JSON.stringify([localRegion]) });
    expect(problems).toEqual([
      { where: `concurrency (in ${path})`, message: "expected a number; given true" },
      { where: `maxWorkers (in ${path})`, message: "expected a number; given [7]" },
    ]);
    // Numeric text stays accepted: variables are text.
    expect(
      loadConfig({ env: { WORKFORCE_CONCURRENCY: "4", WORKFORCE_REGIONS: JSON.stringify([localRegion]) } })
        .concurrency,
    ).toBe(4);
  });

  test("a bad boolean says which words are accepted", () => {
    const problems = problemsOf({
      WORKFORCE_DRY_RUN: "maybe",
      WORKFORCE_REGIONS: JSON.stringify([localRegion]),
    });
    expect(problems).toEqual([
      { where: "WORKFORCE_DRY_RUN", message: 'expected true or false (or 1, 0, yes, no); given "maybe"' },
    ]);
  });

  test("a missing region field says 'required' and a misspelt one is named by its path", () => {
    const { command: _omitted, ...noCommand } = localRegion;
    const problems = problemsOf({
      WORKFORCE_REGIONS: JSON.stringify([{ ...noCommand, comand: ["true"] }]),
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        { where: "WORKFORCE_REGIONS[0].command", message: "required (expected array)" },
        { where: "WORKFORCE_REGIONS[0].comand", message: "unknown field (check its spelling)" },
      ]),
    );
  });

  test("a local region's unknown drain signal or command placeholder is bad configuration (exit 2)", () => {
    const problems = problemsOf({
      WORKFORCE_REGIONS: JSON.stringify([
        { ...localRegion, drainSignal: "SIGFOO", command: ["{node}", "{workforce}", "worker", "{queu}"] },
      ]),
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          where: "WORKFORCE_REGIONS[0].command",
          message: expect.stringMatching(/^unknown placeholder \{queu\} \(expected \{queue\}, /),
        }),
        expect.objectContaining({
          where: "WORKFORCE_REGIONS[0].drainSignal",
          message: expect.stringMatching(/a signal name such as SIGINT; given "SIGFOO"/),
        }),
      ]),
    );
    expect(
      loadConfig({ env: { WORKFORCE_REGIONS: JSON.stringify([{ ...localRegion, drainSignal: "SIGUSR1" }]) } })
        .regions[0],
    ).toMatchObject({ drainSignal: "SIGUSR1" });
  });
});

describe("runtime failures say what failed", () => {
  test("push to a queue that refuses it names the queue, exits 1 and never shows the key", async () => {
    // A Storage endpoint that refuses every request at once (403 is not retried, so the test is quick).
    const refusing = createHttpServer((_request, response) => {
      response
        .writeHead(403, { "content-type": "application/xml", "x-ms-error-code": "AuthenticationFailed" })
        .end('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code></Error>');
    });
    await new Promise<void>((resolve) => refusing.listen(0, "127.0.0.1", resolve));
    const port = (refusing.address() as { port: number }).port;
    try {
      const connectionString = STORAGE_CS.replace("127.0.0.1:1", `127.0.0.1:${port}`);
      const [command, ...args] = workforceArgv("push", "tasks", "-c", "echo hi");
      const child = spawn(command!, args, {
        env: { PATH: process.env.PATH, WORKFORCE_QUEUE_CONNECTION_STRING: connectionString },
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      expect(code, output).toBe(1);
      expect(output).toMatch(/push to storage:\(connection string\)\/tasks failed: .*AuthenticationFailed/);
      expect(output).not.toContain(ACCOUNT_KEY);
    } finally {
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
  });
});

describe("status when the queue cannot be read", () => {
  test("says the next tick holds, once, and exits 1", async () => {
    const refusing = createHttpServer((_request, response) => {
      response.writeHead(403, { "x-ms-error-code": "AuthenticationFailed" }).end();
    });
    await new Promise<void>((resolve) => refusing.listen(0, "127.0.0.1", resolve));
    const port = (refusing.address() as { port: number }).port;
    const stateDir = mkdtempSync(join(tmpdir(), "wf-op-"));
    try {
      const [command, ...args] = workforceArgv("status");
      const child = spawn(command!, args, {
        env: {
          PATH: process.env.PATH,
          WORKFORCE_QUEUE: "tasks",
          WORKFORCE_QUEUE_CONNECTION_STRING: STORAGE_CS.replace("127.0.0.1:1", `127.0.0.1:${port}`),
          WORKFORCE_REGIONS: JSON.stringify([{ ...localRegion, stateDir }]),
        },
      });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      expect(code).toBe(1);
      expect(stdout).toContain("next tick: queue depth unknown: holding (no hire, no shrink)\n");
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
  });
});

describe("a misspelt variable is not silently ignored", () => {
  test("unknown WORKFORCE_* variables are listed with the closest known name; node-side ones are known", () => {
    expect(
      unknownVariables({
        WORKFORCE_CONCURENCY: "4",
        WORKFORCE_CONTROL_TOPIC_NAME: "eastus",
        WORKFORCE_WORKER_ID: "w1",
        WORKFORCE_SOMETHING_ELSE_ENTIRELY: "x",
        WORKFORCE_CONCURRENCY: "2",
        HOME: "/root",
      }),
    ).toEqual([
      { name: "WORKFORCE_CONCURENCY", suggestion: "WORKFORCE_CONCURRENCY" },
      { name: "WORKFORCE_SOMETHING_ELSE_ENTIRELY" },
    ]);
  });

  test("a one-shot command refuses it (exit 2), naming the variable but never its value", () => {
    // An unknown region stops it right after the warning, before any queue call.
    const result = cli(["hire", "1", "--region", "nowhere"], {
      WORKFORCE_QUEUE: "tasks",
      WORKFORCE_QUEUE_CONNECTION_STRING: STORAGE_CS,
      WORKFORCE_REGIONS: JSON.stringify([localRegion]),
      WORKFORCE_MAX_WORKES: `AccountKey=${ACCOUNT_KEY}`,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(
      /WORKFORCE_MAX_WORKES: unknown variable \(did you mean WORKFORCE_MAX_WORKERS\?\)/,
    );
    expect(result.stdout + result.stderr).not.toContain(ACCOUNT_KEY);
  });
});

describe("command-line usage errors exit 2 and name the option", () => {
  test.each([
    [["plan", "--queue", "abc", "--running", "1"], /--queue must be a whole number >= 0; given "abc"/],
    [
      ["plan", "--queue", "10", "--running", "0", "--policy", "linear"],
      /--policy must be one of step, proportional/,
    ],
    [["plan", "--queue", "10", "--running", "0", "--concurrency", "0"], /--concurrency must be >= 1/],
    [["hire", "2.5", "--region", "here"], /count must be a whole number >= 0; given "2.5"/],
    [["plan", "--queue", "10"], /required option '--running <n>' not specified/],
  ])("workforce %j", (args, message) => {
    const result = cli(args);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  test("workforce --help says where configuration comes from and what the exit codes mean", () => {
    const result = cli(["--help"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("WORKFORCE_CONFIG");
    expect(result.stdout).toContain(
      "Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage, 3 did less than asked.",
    );
  });

  test("plan --help shows a worked example and which options are required", () => {
    const result = cli(["plan", "--help"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/--queue <n> +tasks in the queue \(waiting \+ in flight\) \(required\)/);
    expect(result.stdout).toContain("workforce plan --queue 1600 --concurrency 4 --running 3");
    // The example's printed answer is what the command prints.
    const example = cli(["plan", "--queue", "1600", "--concurrency", "4", "--running", "3"]);
    for (const line of example.stdout.trim().split("\n")) expect(result.stdout).toContain(line);
  });
});
