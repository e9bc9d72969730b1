import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { REPO_ROOT, workforceArgv } from "../support/cli.js";
import { killQuietly, startStub, tempDir, waitUntil, type Stub } from "./agent-support.js";

/**
 * A second, independent client on the back channel: Python's azure-servicebus (Debian's python3-azure, on
 * uamqp), over AMQP with TLS and SAS tokens as against Azure, reading control messages the way ai4s-jobq's
 * listener does (`json.loads(str(message))`). Our side runs as the built CLI, trusting the test CA through
 * NODE_EXTRA_CA_CERTS as a user would trust a private CA.
 */

const PYTHON = "/usr/bin/python3";
const SCRIPT = join(REPO_ROOT, "test", "python", "servicebus_control.py");
/** CI installs Debian's python3-azure (.ci/run); elsewhere these tests say they were skipped. */
const hasPythonSdk =
  existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import azure.servicebus, uamqp"]).status === 0;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

const running: Array<ReturnType<typeof spawn>> = [];
/** Asynchronously: the emulator runs in this process and must keep answering meanwhile. */
function run(
  argv: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<Run> & { output(): string } {
  const [command, ...args] = argv;
  const child = spawn(command!, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const done = new Promise<Run>((resolve) =>
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
  return Object.assign(done, { output: () => stdout + stderr });
}

let emulator: ServiceBusEmulator;
const LISTEN_ONLY = { name: "listen-only", key: "bGlzdGVuLW9ubHkta2V5", rights: ["Listen" as const] };
const SEND_ONLY = { name: "send-only", key: "c2VuZC1vbmx5LWtleQ==", rights: ["Send" as const] };
const WRONG_KEY = "d3Jvbmcta2V5LWZvci10aGUtcm9vdA==";
let topicCounter = 0;
const stubs: Stub[] = [];

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ rules: [LISTEN_ONLY, SEND_ONLY] });
});
afterEach(() => {
  running.splice(0).forEach(killQuietly);
  stubs.splice(0).forEach((stub) => killQuietly(stub.child));
});
afterAll(async () => {
  await emulator?.stop();
});

/** A topic name with '/', as Azure allows, and its `shutdown` subscription. */
function newTopic(): string {
  topicCounter += 1;
  const topic = `team-a/py.interop_${topicCounter}`;
  emulator.createTopic(topic);
  emulator.createSubscription(topic, "shutdown");
  return topic;
}

const python = (...args: string[]) =>
  run([PYTHON, SCRIPT, ...args], {
    SB_CONNECTION_STRING: emulator.tlsConnectionString,
    SB_CA: emulator.caPath,
  });

function signal(connectionString: string, topic: string, ...args: string[]) {
  const region = {
    name: "eastus",
    kind: "azureml",
    subscriptionId: "00000000-0000-0000-0000-000000000000",
    resourceGroup: "rg",
    workspace: "ws",
    experiment: "wf",
    compute: "cpu",
    template: { properties: { jobType: "Command" } },
    backChannel: { connectionString, topic, adminEndpoint: emulator.adminEndpoint, autoCreate: false },
  };
  return run(workforceArgv("signal", "--region", "eastus", "--ca-file", emulator.caPath, ...args), {
    WORKFORCE_REGIONS: JSON.stringify([region]),
    NODE_EXTRA_CA_CERTS: emulator.caPath,
  });
}

function agent(connectionString: string, topic: string, pidDir: string) {
  return run(workforceArgv("agent", "--pid-dir", pidDir, "--receive-wait", "5"), {
    WORKFORCE_BACK_CHANNEL_CONNECTION_STRING: connectionString,
    WORKFORCE_CONTROL_TOPIC_NAME: topic,
    NODE_EXTRA_CA_CERTS: emulator.caPath,
  });
}

describe.skipIf(!hasPythonSdk)("Python azure-servicebus against the emulator over TLS", () => {
  it("receives the control messages `workforce signal` sends, and reads them as upstream's listener does", async () => {
    const topic = newTopic();
    const sent = await signal(
      emulator.tlsConnectionString,
      topic,
      "--operation",
      "do-not-accept-new-tasks",
      "--count",
      "2",
    );
    expect(sent.status, sent.stderr).toBe(0);
    const received = await python("receive", topic, "shutdown", "2");
    expect(received.status, received.stderr).toBe(0);
    expect(
      received.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line)),
    ).toEqual([{ operation: "do-not-accept-new-tasks" }, { operation: "do-not-accept-new-tasks" }]);
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(0);
  });

  it("sends a control message that our agent takes over TLS and turns into a signal", async () => {
    const topic = newTopic();
    const dir = tempDir("py-agent");
    const pidDir = join(dir, "pids");
    const stub = await startStub({ dir, name: "worker", pidDir, taskMs: 200 });
    stubs.push(stub);
    const listening = agent(emulator.tlsConnectionString, topic, pidDir);
    await waitUntil(() => listening.output().includes("listening for control messages"), 20_000, "the agent");
    const sent = await python("send", topic, "graceful-downscale");
    expect(sent.status, sent.stderr).toBe(0);
    const result = await listening;
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toContain("control message taken: signalled 1 worker");
    expect(await stub.exited).toBe(0);
    expect(stub.lines()).toContain("signal SIGINT");
  });
});

describe("refused tokens give a named error", () => {
  it("workforce signal: a wrong key (InvalidSignature) and a rule without Send ('Send' claim)", async () => {
    const topic = newTopic();
    const wrong = await signal(
      emulator.connectionStringFor({ name: "RootManageSharedAccessKey", key: WRONG_KEY }, { tls: true }),
      topic,
    );
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/Service Bus refused access to .*InvalidSignature/);
    expect(wrong.stderr).not.toContain(WRONG_KEY);
    const listenOnly = await signal(emulator.connectionStringFor(LISTEN_ONLY, { tls: true }), topic);
    expect(listenOnly.status).not.toBe(0);
    expect(listenOnly.stderr).toMatch(/Service Bus refused access to .*'Send' claim/);
    expect(listenOnly.stderr).not.toContain(LISTEN_ONLY.key);
    expect(emulator.counts(`${topic}/Subscriptions/shutdown`).active).toBe(0);
  });

  it("workforce agent: a wrong key (InvalidSignature) and a rule without Listen ('Listen' claim)", async () => {
    const topic = newTopic();
    const dir = tempDir("py-refused");
    const pidDir = join(dir, "pids");
    stubs.push(await startStub({ dir, name: "worker", pidDir, taskMs: 200 }));
    for (const [connectionString, expected, key] of [
      [
        emulator.connectionStringFor({ name: "RootManageSharedAccessKey", key: WRONG_KEY }, { tls: true }),
        /the back channel refused access.*InvalidSignature/,
        WRONG_KEY,
      ],
      [
        emulator.connectionStringFor(SEND_ONLY, { tls: true }),
        /the back channel refused access.*'Listen' claim/,
        SEND_ONLY.key,
      ],
    ] as const) {
      const listening = agent(connectionString, topic, pidDir);
      await waitUntil(() => expected.test(listening.output()), 30_000, `the agent to log ${expected}`);
      expect(listening.output()).not.toContain(key);
      killQuietly(running.at(-1)!);
    }
  });
});
