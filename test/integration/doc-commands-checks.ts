/* eslint-disable @typescript-eslint/no-explicit-any -- command output is JSON read by path */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ServiceBusClient } from "@azure/service-bus";
import { expect } from "vitest";
import type { ServiceBusEmulator } from "../emulators/servicebus/index.js";
import type { DocCommand } from "./doc-commands-extract.js";
import type { Hooks, Ran, Session } from "./doc-commands-session.js";
import { runLine } from "./doc-commands-shell.js";

// What the docs say a command prints or does, checked on its run (by the command as the doc writes it).
// A command without an entry must exit 0; a shell line whose comment or output block says what it prints
// must have one.

export interface CheckContext {
  command: DocCommand;
  scratch: string;
  bus: ServiceBusEmulator;
}

export interface Check extends Hooks {
  /** The exit the doc gives (default 0). */
  exit?: number;
  verify?: (ran: Ran, context: CheckContext) => void | Promise<void>;
}

const json = (ran: Ran): any => JSON.parse(ran.stdout);
/** Lines of stderr (or stdout) that are JSON log records with this msg. */
const logs = (text: string, msg: string): any[] =>
  text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line))
    .filter((record) => record.msg === msg);

/** Control messages waiting in a topic's subscription, read with the Service Bus SDK (peek: none taken). */
async function peekControlMessages(connectionString: string, topic: string): Promise<unknown[]> {
  const client = new ServiceBusClient(connectionString);
  try {
    const receiver = client.createReceiver(topic, "shutdown");
    const messages = await receiver.peekMessages(10);
    await receiver.close();
    // The SDK hands a JSON data section over parsed; anything else as bytes.
    return messages.map((message) =>
      Buffer.isBuffer(message.body) ? JSON.parse(message.body.toString("utf8")) : message.body,
    );
  } finally {
    await client.close();
  }
}

/** `workforce status --json` with the session's settings, until `done` holds (at most `ms`). */
async function statusUntil(env: Record<string, string>, done: (status: any) => boolean, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ran = await runLine("workforce status --json", env);
    const status = ran.code === 0 ? JSON.parse(ran.stdout) : undefined;
    if ((status && done(status)) || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
const eastus = (status: any) => status?.regions.find((region: any) => region.name === "eastus")?.observation;

const demoStops = (ran: Ran) => {
  expect(ran.healthz).toBe(200);
  expect(ran.stdout).toContain("no worker or Azurite process left behind");
};

export const CHECKS: Record<string, Check> = {
  // README, the first block and the demo
  "npm ci && npm start": { verify: demoStops },
  "npm start": { verify: demoStops },
  "npm start -- --metrics-port 0": { verify: demoStops },
  "npm start -- --help": { verify: (ran) => expect(ran.stdout).toMatch(/^Usage: workforce demo/) },
  "workforce demo [--tasks N] [--metrics-port P] [--exit-when-done]": {
    verify: (ran) => {
      expect(ran.healthz).toBe(200);
      expect(ran.stdout).toContain("demo: the queue is empty and every worker has left");
    },
  },
  // How it decides
  "workforce plan --queue 1600 --concurrency 4 --running 3": {
    // "r = 400, step 50, ramp 40 → target 40"
    verify: (ran) => expect(ran.stdout).toMatch(/^target 40 \(step; ramp limit 40, step 50, /),
  },
  "workforce plan --queue 300 --concurrency 4 --running 10 --policy predictive --task-seconds 1200 --startup-seconds 330":
    {
      // "30 workers pay back 8 start-ups each; they need 3 waves, and so do 25: target 25"
      verify: (ran) =>
        expect(ran.stdout).toMatch(/^target 25 \(predictive; .*payback 30 workers in 3 waves -> 25/),
    },
  "workforce simulate ... --task-seconds 1200": {
    // "with WORKFORCE_TASK_SECONDS=1200 it reaches 0.65 at 1.03 node-hours"
    verify: (ran) => {
      expect(ran.stdout).toMatch(/^makespan \(min\)\s+109\.4\s+[\d.]+ \(0\.65x\)$/m);
      expect(ran.stdout).toMatch(/^node-hours\s+26\.4\s+[\d.]+ \(1\.03x\)$/m);
    },
  },
  "workforce simulate --trace examples/simulate/trace.json --cluster examples/simulate/cluster.yaml --policy step --policy predictive --chart run.svg":
    {
      verify: (ran, { command, scratch }) => {
        // The output block below the command, line by line (spacing aside).
        const shown = command.output!.filter((line) => line.trim() !== "...");
        const printed = ran.stdout.split("\n").map((line) => line.trim().replace(/\s+/g, " "));
        for (const line of shown) expect(printed).toContain(line.trim().replace(/\s+/g, " "));
        expect(readFileSync(join(scratch, "run.svg"), "utf8")).toMatch(/^<svg/);
      },
    },
  "workforce simulate --trace FILE --cluster FILE [--policy P]... [--policy-module PATH] [--seed N] [--json] [--chart FILE.svg]":
    {
      verify: (ran, { scratch }) => {
        expect(Object.keys(json(ran))).toEqual(["step", "my-policy.mjs"]);
        expect(existsSync(join(scratch, "chart.svg"))).toBe(true);
      },
    },
  // Configuration and the command line
  "workforce config --check": {
    verify: (ran) => expect(ran.stdout + ran.stderr).not.toMatch(/warn|problem/i),
  },
  "workforce config [--check] [--json]": { verify: (ran) => expect(json(ran)).toBeTypeOf("object") },
  "workforce once --json 2>/dev/null | jq .plan": {
    verify: (ran) => expect(json(ran)).toMatchObject({ target: expect.any(Number), hire: expect.anything() }),
  },
  "workforce once [--dry-run] [--json]": { verify: (ran) => expect(json(ran).plan).toBeTypeOf("object") },
  "workforce status [--json]": { verify: (ran) => expect(eastus(json(ran))).toBeDefined() },
  "workforce run [--dry-run]": { verify: (ran) => expect(ran.healthz).toBe(200) },
  "workforce hire N --region R": {
    verify: (ran) => expect(json(ran)).toMatchObject({ region: "eastus", hired: 1 }),
  },
  "workforce signal --region R --count N [--operation OP]": {
    verify: (ran) => expect(json(ran)).toMatchObject({ sent: 1, operation: "do-not-accept-new-tasks" }),
  },
  "workforce signal --region eastus --count 2 [--operation do-not-accept-new-tasks] [--ttl 120] [--ca-file ca.pem]":
    {
      // prints {"region", "namespace", "topic", "operation", "requested", "sent"}
      verify: (ran) => {
        const printed = json(ran);
        expect(Object.keys(printed).sort()).toEqual(
          ["region", "namespace", "topic", "operation", "requested", "sent"].sort(),
        );
        expect(printed).toMatchObject({ region: "eastus", topic: "eastus", requested: 2, sent: 2 });
      },
    },
  // A job's command on a node (README, graceful-downscale.md): listens, and on SIGTERM lets the task finish.
  "workforce agent --signal SIGUSR1 -- ai4s-jobq mystorageaccount/tasks worker --num-workers 4": {
    verify: (ran) => {
      expect(ran.ready).toBeDefined();
      // The worker's task of 8 s (given by the test) finished after the SIGTERM: the node left cleanly.
      expect(logs(ran.stdout, "task succeeded").some((task) => task.seconds >= 7)).toBe(true);
    },
  },
  // The README's walkthrough against all three emulators
  "node dist/test/emulators/azureml/main.js --port 8443 --ml-port 8444 &": {
    // "any workspace; cluster cpu-cluster, 10 nodes"
    verify: (ran) => expect(ran.ready).toMatchObject({ cluster: "cpu-cluster", maxNodes: 10 }),
  },
  "node dist/test/emulators/servicebus/main.js --amqp-port 5672 --admin-port 5443 &": {
    // "prints its connection strings"
    verify: (ran) => expect(ran.ready!.connectionString).toMatch(/^Endpoint=sb:\/\/127\.0\.0\.1:\d+;/),
  },
  "npx workforce status": {
    // "queue depth 3; eastus 0 running, capacity 10; next tick: hire 1"
    verify: (ran) => {
      expect(ran.stdout).toMatch(/^queue depth: 3$/m);
      expect(ran.stdout).toMatch(/^eastus\s+0\s+0\s+0\s+10\s+hire 1$/m);
    },
  },
  "npx workforce once --dry-run": {
    // 'one "msg":"tick" line (on stderr), planned hire 1, hired 0'
    verify: (ran) => {
      const ticks = logs(ran.stderr, "tick");
      expect(ticks).toHaveLength(1);
      expect(ticks[0]).toMatchObject({ planned: { hire: 1 }, hired: 0 });
    },
  },
  "npx workforce hire 3 --region eastus": {
    // "3 jobs, Running a moment later"
    settle: (ran) => statusUntil(ran[0]!.env!, (status) => eastus(status)?.running === 3, 30_000),
    verify: (ran) => {
      expect(json(ran)).toMatchObject({ region: "eastus", hired: 3 });
      expect(eastus(ran.observed)).toMatchObject({ running: 3, pending: 0 });
    },
  },
  "npx workforce lay-off 1 --region eastus": {
    // "creates topic eastus + subscription shutdown, sends 1 control message"
    settle: (_ran, session: Session) =>
      peekControlMessages(String(session.ready.get("servicebus")!.connectionString), "eastus"),
    verify: (ran) => {
      expect(json(ran)).toMatchObject({ region: "eastus", drained: 1 });
      expect(logs(ran.stderr, "back channel topic and subscription ready")).toMatchObject([
        { topic: "eastus", subscription: "shutdown", topicState: "created", subscriptionState: "created" },
      ]);
      expect(ran.observed).toEqual([{ operation: "graceful-downscale" }]);
    },
  },
  // docs/azureml.md and docs/servicebus-emulator.md: the emulators standalone
  "node dist/test/emulators/azureml/main.js --port 8443 --ml-port 8444 --max-nodes 10 --cluster cpu-cluster --run-ms 60000":
    {
      verify: (ran) => {
        // "prints the URL and the CA file"
        expect(ran.ready).toMatchObject({ cluster: "cpu-cluster", maxNodes: 10 });
        expect(String(ran.ready!.url)).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        expect(existsSync(String(ran.ready!.caFile))).toBe(true);
      },
    },
  "node dist/test/emulators/servicebus/main.js --amqp-port 5672 --admin-port 5443 --topic control --subscription control/Subscriptions/shutdown --queue tasks":
    {
      // "It prints one JSON line (connectionString, adminConnectionString, adminEndpoint, tlsConnectionString,
      // caPath, amqpPort, tlsPort, adminPort ...)"; the entities named on the command line exist.
      whileUp: async (ready) => {
        const client = new ServiceBusClient(String(ready.connectionString));
        try {
          const queue = client.createReceiver("tasks");
          const subscription = client.createReceiver("control", "shutdown");
          return [await queue.peekMessages(1), await subscription.peekMessages(1)];
        } finally {
          await client.close();
        }
      },
      verify: (ran) => {
        for (const field of [
          "connectionString",
          "adminConnectionString",
          "adminEndpoint",
          "tlsConnectionString",
        ])
          expect(ran.ready).toHaveProperty(field);
        for (const field of ["caPath", "amqpPort", "tlsPort", "adminPort"])
          expect(ran.ready).toHaveProperty(field);
        expect(ran.observed).toEqual([[], []]);
      },
    },
  "/usr/bin/python3 test/python/servicebus_control.py receive ctl shutdown 1": {
    // {"operation": "graceful-downscale"}
    verify: (ran) => expect(ran.stdout.trim()).toBe('{"operation": "graceful-downscale"}'),
  },
};

/** A shell line that starts a job (`cmd &`): up and ready is what it promises. */
export function expectStarted(ran: Ran): void {
  expect(ran.ready, ran.command).toBeDefined();
}
