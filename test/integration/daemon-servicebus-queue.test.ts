import { afterAll, beforeAll, expect, test } from "vitest";
import { ServiceBusClient } from "@azure/service-bus";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { loadConfig } from "../../src/config/load.js";
import { buildWorkforce } from "../../src/controller/workforce.js";
import { createLogger } from "../../src/logging/logger.js";
import { MemoryRegion } from "../support/memory-region.js";

let sb: ServiceBusEmulator;
beforeAll(async () => {
  sb = await startServiceBusEmulator({ queues: ["tasks"] });
});
afterAll(async () => {
  await sb?.stop();
});

test("the daemon reads its queue depth from a Service Bus queue (sb:// spec, separate admin endpoint) and hires for it", async () => {
  const client = new ServiceBusClient(sb.connectionString);
  const sender = client.createSender("tasks");
  await sender.sendMessages(Array.from({ length: 30 }, (_, i) => ({ body: { id: i } })));
  await client.close();

  const config = loadConfig({
    env: {
      WORKFORCE_QUEUE: "sb://127.0.0.1/tasks",
      WORKFORCE_QUEUE_CONNECTION_STRING: sb.connectionString,
      WORKFORCE_QUEUE_ADMIN_ENDPOINT: `127.0.0.1:${sb.adminPort}`,
    },
    regionsOptional: true,
  });
  const region = new MemoryRegion("r");
  const workforce = await buildWorkforce(config, {
    logger: createLogger({ level: "silent" }),
    tlsCa: sb.ca,
    regions: [region],
  });
  try {
    const report = await workforce.reconciler.tick();
    expect(report.snapshot.queue.depth).toBe(30);
    expect(region.pending).toBe(10); // step policy: 30 tasks -> step 15, ramp 10
  } finally {
    await workforce.close();
  }
});
