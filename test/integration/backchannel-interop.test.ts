import { execFileSync, spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServiceBusClient } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { workforceArgv } from "../support/cli.js";
import { CONTROL_OPERATIONS } from "../../src/backchannel/message.js";
import { createControlSender } from "../../src/backchannel/sender.js";
import { quietLogger, tempDir } from "./agent-support.js";

/**
 * What the Python listener of ai4s-jobq does with a received control message (workforce_monitor.py):
 *   message_dict = json.loads(str(message)); message_dict["operation"]
 * and str() of a received azure-servicebus message joins its AMQP data sections decoded as UTF-8 (a value
 * section gives str(value) instead). The script below applies exactly that to the sections we hand it.
 */
const PYTHON_LISTENER = `
import json, sys
body_type, payload = sys.argv[1], sys.stdin.buffer.read()
text = payload.decode("UTF-8") if body_type == "data" else str(payload)
message_dict = json.loads(text)
sys.stdout.write(json.dumps({"type": type(message_dict).__name__, "operation": message_dict["operation"]}))
`;

function pythonListener(bodyType: string, bytes: Buffer): { type: string; operation: string } {
  return JSON.parse(
    execFileSync("python3", ["-c", PYTHON_LISTENER, bodyType], { input: bytes, encoding: "utf8" }),
  );
}

let emulator: ServiceBusEmulator;
beforeAll(async () => {
  emulator = await startServiceBusEmulator();
});
afterAll(async () => {
  await emulator?.stop();
});

describe("interop with ai4s-jobq's Python listener", () => {
  it.each(CONTROL_OPERATIONS)(
    "%s arrives as one data section whose bytes are Python's json.dumps, and decodes to a dict",
    async (operation) => {
      const topic = `interop-${operation}`;
      const sender = createControlSender({
        target: {
          connectionString: emulator.connectionString,
          adminEndpoint: emulator.adminNamespace,
          topic,
          subscription: "shutdown",
          autoCreate: true,
        },
        ttlSeconds: 60,
        logger: quietLogger(),
        clientDeps: { tlsCa: emulator.ca },
      });
      const client = new ServiceBusClient(emulator.connectionString);
      try {
        expect((await sender.send(operation, 1)).sent).toBe(1);
        const expected = execFileSync("python3", [
          "-c",
          `import json,sys; sys.stdout.write(json.dumps({"operation": "${operation}"}))`,
        ]);

        // On the wire (the broker's copy): exactly those bytes.
        const [stored] = emulator.messages(`${topic}/Subscriptions/shutdown`);
        expect(stored!.bodyBytes?.equals(expected)).toBe(true);

        // As a receiver gets it: an AMQP data section (not a value section), the same bytes.
        const receiver = client.createReceiver(topic, "shutdown", {
          receiveMode: "peekLock",
          skipParsingBodyAsJson: true,
        });
        const [received] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
        expect(received!._rawAmqpMessage.bodyType).toBe("data");
        expect(Buffer.isBuffer(received!.body) && received!.body.equals(expected)).toBe(true);
        await receiver.completeMessage(received!);

        // And under the Python listener's rules it is a dict with the operation.
        expect(pythonListener("data", received!.body as Buffer)).toEqual({ type: "dict", operation });
      } finally {
        await sender.close();
        await client.close();
      }
    },
  );

  it("the check can fail: a JS string body reaches Python as a str, not a dict", async () => {
    const client = new ServiceBusClient(emulator.connectionString);
    try {
      emulator.createTopic("interop-string");
      emulator.createSubscription("interop-string", "shutdown");
      await client
        .createSender("interop-string")
        .sendMessages({ body: '{"operation": "graceful-downscale"}' });
      const [stored] = emulator.messages("interop-string/Subscriptions/shutdown");
      const result = spawnSync("python3", ["-c", PYTHON_LISTENER, "data"], {
        input: stored!.bodyBytes,
        encoding: "utf8",
      });
      // json.loads gives a str, and str["operation"] raises TypeError: the Python worker never stops.
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain("TypeError");
    } finally {
      await client.close();
    }
  });
});

describe("workforce signal", () => {
  const region = (topic: string) => ({
    name: "eastus",
    kind: "azureml",
    subscriptionId: "00000000-0000-0000-0000-000000000000",
    resourceGroup: "rg",
    workspace: "ws",
    experiment: "wf",
    compute: "cpu",
    template: { properties: { jobType: "Command" } },
    backChannel: {
      connectionString: emulator.connectionString,
      topic,
      adminEndpoint: emulator.adminEndpoint,
    },
  });
  /** Asynchronously: the emulator runs in this process and must keep answering meanwhile. */
  const run = (env: NodeJS.ProcessEnv, ...args: string[]) => {
    const [node, ...rest] = workforceArgv("signal", ...args);
    const child = spawn(node!, rest, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
      child.once("close", (status) => resolve({ status, stdout, stderr })),
    );
  };

  it("sends N raw control messages with the operation and TTL asked for", async () => {
    const env = {
      WORKFORCE_REGIONS: JSON.stringify([region("signal-cli")]),
      WORKFORCE_CONTROL_MESSAGE_TTL_SECONDS: "45",
    };
    const caFile = join(tempDir("signal"), "ca.pem");
    writeFileSync(caFile, emulator.ca);
    const result = await run(
      env,
      "--region",
      "eastus",
      "--operation",
      "do-not-accept-new-tasks",
      "--count",
      "3",
      "--ca-file",
      caFile,
    );
    expect(result.stderr).not.toContain("SharedAccessKey=");
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      region: "eastus",
      topic: "signal-cli",
      operation: "do-not-accept-new-tasks",
      sent: 3,
    });
    const messages = emulator.messages("signal-cli/Subscriptions/shutdown");
    expect(messages.map((message) => message.body)).toEqual(
      Array(3).fill({ operation: "do-not-accept-new-tasks" }),
    );
    expect(messages.every((message) => message.timeToLiveMs === 45_000)).toBe(true);
  });

  it("bad input exits 2 and names what is wrong", async () => {
    const env = { WORKFORCE_REGIONS: JSON.stringify([region("signal-bad")]) };
    const unknownRegion = await run(env, "--region", "westus", "--count", "1");
    expect(unknownRegion.status).toBe(2);
    expect(unknownRegion.stderr).toContain('no region named "westus"');
    const badCount = await run(env, "--region", "eastus", "--count", "none");
    expect(badCount.status).toBe(2);
    expect(badCount.stderr).toContain("--count");
    const badOperation = await run(env, "--region", "eastus", "--operation", "explode");
    expect(badOperation.status).toBe(2);
  });
});
