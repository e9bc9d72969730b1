import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus";
import { afterEach, describe, expect, it } from "vitest";
import { loadTestTls } from "../emulators/tls/index.js";
import { REPO_ROOT } from "../support/cli.js";

// The emulator run on its own (built: `npm test` / `npx tsc -p .` first), as a developer or a demo uses it.
const MAIN = join(REPO_ROOT, "dist", "test", "emulators", "servicebus", "main.js");

let child: ChildProcess | undefined;

afterEach(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
  child = undefined;
});

async function firstLine(proc: ChildProcess): Promise<string> {
  const lines = createInterface({ input: proc.stdout! });
  const [line] = (await once(lines, "line")) as [string];
  lines.close();
  return line;
}

describe("standalone Service Bus emulator", () => {
  it("prints its connection strings and serves AMQP and the admin API until SIGTERM", async () => {
    child = spawn(process.execPath, [MAIN, "--amqp-port", "0", "--admin-port", "0", "--queue", "tasks"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const info = JSON.parse(await firstLine(child)) as {
      connectionString: string;
      adminConnectionString: string;
    };
    expect(info.connectionString).toMatch(
      /^Endpoint=sb:\/\/127\.0\.0\.1:\d+;.*UseDevelopmentEmulator=true;$/,
    );

    const client = new ServiceBusClient(info.connectionString);
    try {
      await client.createSender("tasks").sendMessages({ body: "hello" });
      const admin = new ServiceBusAdministrationClient(info.adminConnectionString, {
        tlsOptions: { ca: loadTestTls().ca },
      });
      expect((await admin.getQueueRuntimeProperties("tasks")).activeMessageCount).toBe(1);
    } finally {
      await client.close();
    }
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(0);
  });

  it("exits 2 naming the flag on a bad port", async () => {
    child = spawn(process.execPath, [MAIN, "--amqp-port", "nope"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain('--amqp-port: expected a port number 0-65535, got "nope"');
  });
});
