/**
 * A real Prometheus (Debian's `prometheus` and `promtool`) for the dashboard and alert tests: found on
 * PATH, started on 127.0.0.1 with a throw-away config and storage, queried over its HTTP API.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function which(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const PROMETHEUS = which("prometheus");
export const PROMTOOL = which("promtool");
/** Tests skip only when neither binary exists (a machine without the Debian package). */
export const NO_PROMETHEUS = !PROMETHEUS && !PROMTOOL;
export const NO_PROMETHEUS_MESSAGE =
  "neither `prometheus` nor `promtool` is on PATH: install the Debian package (apt-get install -y prometheus; .ci/run does)";

/** Both binaries must exist once one does: a half-installed Prometheus is an error, not a skip. */
export function requireBinaries(): { prometheus: string; promtool: string } {
  if (!PROMETHEUS || !PROMTOOL) {
    throw new Error(
      `found prometheus=${PROMETHEUS ?? "missing"}, promtool=${PROMTOOL ?? "missing"}: both are needed`,
    );
  }
  return { prometheus: PROMETHEUS, promtool: PROMTOOL };
}

export interface ToolResult {
  status: number | null;
  output: string;
}

/** Run promtool with arguments and optional stdin; output is stdout and stderr together. */
export function promtool(args: string[], input?: string): ToolResult {
  const result = spawnSync(requireBinaries().promtool, args, { input, encoding: "utf8", timeout: 60_000 });
  return { status: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}`.trim() };
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  describeLast: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}${describeLast()}`,
  );
}

/** Stop a child process: SIGTERM, then SIGKILL if it lingers. */
export async function stopProcess(child: ChildProcess | undefined, graceMs = 5_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface PrometheusServer {
  url: string;
  /** GET an API path; resolves to the response's `data`, rejects when Prometheus reports an error. */
  query<T = unknown>(path: string, params: Record<string, string>): Promise<T>;
  logs(): string;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port targets scraped as job `workforce-autoscaler`. */
  targets: string[];
  ruleFiles?: string[];
  signal?: AbortSignal;
}

/** Start Prometheus scraping the targets every second, evaluating the rule files every second. */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const { prometheus } = requireBinaries();
  const dir = mkdtempSync(join(tmpdir(), "wf-prometheus-"));
  const config = [
    "global:",
    "  scrape_interval: 1s",
    "  scrape_timeout: 1s",
    "  evaluation_interval: 1s",
    ...(options.ruleFiles?.length
      ? ["rule_files:", ...options.ruleFiles.map((file) => `  - ${JSON.stringify(file)}`)]
      : []),
    "scrape_configs:",
    "  - job_name: workforce-autoscaler",
    "    static_configs:",
    `      - targets: ${JSON.stringify(options.targets)}`,
  ].join("\n");
  writeFileSync(join(dir, "prometheus.yml"), `${config}\n`);
  let output = "";
  // Any free port, as Prometheus reports it once listening ("Listening on" at info): a port picked here and
  // bound later could be taken meanwhile by another process of a busy machine.
  const child = spawn(
    prometheus,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      "--web.listen-address=127.0.0.1:0",
      "--storage.tsdb.retention.time=1h",
      "--log.level=info",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const stop = async () => {
    await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  };
  let url = "";
  try {
    url = await waitFor(
      "Prometheus to listen",
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}`);
        const port = /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(output)?.[1];
        return port ? `http://127.0.0.1:${port}` : undefined;
      },
      30_000,
      () => `\n${output}`,
    );
    await waitFor(
      "Prometheus to be ready",
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}`);
        const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) });
        return response.ok ? true : undefined;
      },
      30_000,
      () => `\n${output}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    logs: () => output,
    stop,
    async query<T>(path: string, params: Record<string, string>): Promise<T> {
      const response = await fetch(`${url}${path}?${new URLSearchParams(params)}`, {
        signal: options.signal ?? AbortSignal.timeout(10_000),
      });
      const body = (await response.json()) as { status: string; data: T; error?: string };
      if (body.status !== "success") throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
      return body.data;
    },
  };
}
