import { afterEach, describe, expect, test } from "vitest";
import { createMetrics } from "../../src/metrics/registry.js";
import { startMetricsServer, type MetricsServer } from "../../src/metrics/server.js";

let server: MetricsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("metrics server", () => {
  test("/metrics serves the contract names; /healthz is alive; /readyz follows the last successful tick", async () => {
    const metrics = createMetrics({ processMetrics: false });
    let now = 1_000_000;
    const health: { lastSuccess?: number } = {};
    server = await startMetricsServer(
      metrics.registry,
      { lastSuccessAt: () => health.lastSuccess, intervalMs: 60_000, startedAt: now, now: () => now },
      { port: 0, host: "127.0.0.1" },
    );
    const base = `http://127.0.0.1:${server.port}`;
    const body = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      "workforce_queue_depth",
      "workforce_queue_read_errors_total",
      "workforce_target_workers",
      "workforce_workers",
      "workforce_region_capacity",
      "workforce_hired_total",
      "workforce_cancelled_total",
      "workforce_drain_requests_total",
      "workforce_region_errors_total",
      "workforce_reconcile_duration_seconds",
      "workforce_reconcile_total",
      "workforce_last_reconcile_success_timestamp_seconds",
      "workforce_dry_run",
    ]) {
      expect(body).toContain(`# TYPE ${name} `);
    }
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503); // no tick yet
    health.lastSuccess = now;
    now += 2 * 60_000;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    now += 2 * 60_000; // 4 intervals since the last success
    const stale = await fetch(`${base}/readyz`);
    expect(stale.status).toBe(503);
    expect(await stale.text()).toMatch(/240 s ago/);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
