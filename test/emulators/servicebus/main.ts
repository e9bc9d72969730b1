#!/usr/bin/env node
import { parseArgs } from "node:util";
import { startServiceBusEmulator } from "./index.js";

/**
 * Runs the Service Bus emulator on its own:
 *   node dist/test/emulators/servicebus/main.js --amqp-port 5672 --admin-port 5443 \
 *     --queue tasks --topic control --subscription control/Subscriptions/shutdown
 * Prints the connection strings as JSON on one line, then serves until SIGINT/SIGTERM.
 */

function port(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`--${name}: expected a port number 0-65535, got "${value}"\n`);
    process.exit(2);
  }
  return n;
}

const { values } = parseArgs({
  options: {
    "amqp-port": { type: "string" },
    "admin-port": { type: "string" },
    "tls-port": { type: "string" },
    host: { type: "string" },
    queue: { type: "string", multiple: true },
    topic: { type: "string", multiple: true },
    subscription: { type: "string", multiple: true },
  },
});

const emulator = await startServiceBusEmulator({
  amqpPort: port("amqp-port", values["amqp-port"]),
  adminPort: port("admin-port", values["admin-port"]),
  tlsPort: port("tls-port", values["tls-port"]),
  ...(values.host ? { host: values.host } : {}),
  queues: values.queue ?? [],
  topics: values.topic ?? [],
  subscriptions: values.subscription ?? [],
});
// Stop on a signal from the moment it says it is up: a caller may signal it right after the line below.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void emulator.stop().then(() => process.exit(0));
  });
}
process.stdout.write(
  JSON.stringify({
    connectionString: emulator.connectionString,
    adminConnectionString: emulator.adminConnectionString,
    adminEndpoint: emulator.adminEndpoint,
    tlsConnectionString: emulator.tlsConnectionString,
    caPath: emulator.caPath,
    amqpPort: emulator.amqpPort,
    tlsPort: emulator.tlsPort,
    adminPort: emulator.adminPort,
  }) + "\n",
);
