import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface HealthState {
  /** Unix ms of the last successful tick, or undefined before the first. */
  lastSuccessAt(): number | undefined;
  /** Interval between ticks, ms: ready means a tick succeeded within 3 intervals. */
  intervalMs: number;
  /** When the process started (the first tick gets 3 intervals too). */
  startedAt: number;
  /** Errors that will not heal by themselves: not ready while there is one. */
  permanentProblems?: () => readonly string[];
  now?: () => number;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * /metrics (Prometheus text), /healthz (the process answers), /readyz (a tick succeeded within the last
 * three intervals: a daemon that cannot reach its queue is alive but not ready).
 */
export async function startMetricsServer(
  registry: Registry,
  health: HealthState,
  listen: { port: number; host: string },
): Promise<MetricsServer> {
  const now = health.now ?? Date.now;
  const server: Server = createServer(async (request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    try {
      if (request.method !== "GET" && request.method !== "HEAD") {
        response.writeHead(405, { allow: "GET, HEAD" }).end();
      } else if (path === "/metrics") {
        const body = await registry.metrics();
        response.writeHead(200, { "content-type": registry.contentType }).end(body);
      } else if (path === "/healthz") {
        response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else if (path === "/readyz") {
        const last = health.lastSuccessAt();
        const window = 3 * health.intervalMs;
        const permanent = health.permanentProblems?.() ?? [];
        const ready = permanent.length === 0 && (last !== undefined ? now() - last <= window : false);
        const detail =
          permanent.length > 0
            ? `permanent error: ${permanent.join("; ")}`
            : last === undefined
              ? "no successful tick yet"
              : `last successful tick ${Math.round((now() - last) / 1000)} s ago (limit ${Math.round(window / 1000)} s)`;
        response
          .writeHead(ready ? 200 : 503, { "content-type": "text/plain" })
          .end(`${ready ? "ready" : "not ready"}: ${detail}\n`);
      } else {
        response
          .writeHead(404, { "content-type": "text/plain" })
          .end("not found: try /metrics, /healthz, /readyz\n");
      }
    } catch (error) {
      response.writeHead(500, { "content-type": "text/plain" }).end(`error: ${(error as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        // Say which setting to change: the bare "listen EADDRINUSE" does not.
        new Error(
          `metrics server: cannot listen on ${listen.host}:${listen.port} (${error.code ?? error.message}); ` +
            "set WORKFORCE_METRICS_PORT to a free port, or 0 for any free port",
          { cause: error },
        ),
      ),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
