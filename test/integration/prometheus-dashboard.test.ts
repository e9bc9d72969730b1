import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_PATH, REPO_ROOT } from "../support/cli.js";
import {
  NO_PROMETHEUS,
  NO_PROMETHEUS_MESSAGE,
  promtool,
  startPrometheus,
  stopProcess,
  waitFor,
  type PrometheusServer,
} from "./prometheus-support.js";

// The daemon in its embedded mode (`workforce demo`: Azurite, a demo workload, a local region of worker
// processes) scraped every second by a real Prometheus; then every panel of the Grafana dashboard is
// evaluated through Prometheus' HTTP API, as Grafana would.

const DASHBOARD_PATH = join(REPO_ROOT, "deploy", "grafana", "workforce-autoscaler.json");
const ALERTS_PATH = join(REPO_ROOT, "deploy", "prometheus", "alerts.yaml");
/** What Grafana gives $__rate_interval for a 1 s scrape interval: max(4 x scrape, interval + scrape). */
const RATE_INTERVAL = "4s";
/** The window the panels are evaluated over (and what $__range stands for). */
const WINDOW_SECONDS = 20;

interface Target {
  expr: string;
  refId: string;
}
interface Panel {
  title: string;
  type: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  multi?: boolean;
  query?: string | { query: string };
}
const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, "utf8")) as {
  panels: Panel[];
  templating: { list: Variable[] };
};
const panels = dashboard.panels.flatMap((panel) => (panel.type === "row" ? (panel.panels ?? []) : [panel]));

if (NO_PROMETHEUS) console.warn(`SKIPPED prometheus-dashboard.test.ts: ${NO_PROMETHEUS_MESSAGE}`);

describe.skipIf(NO_PROMETHEUS)("the Grafana dashboard against a real Prometheus scraping the daemon", () => {
  let daemon: ChildProcess | undefined;
  let daemonOutput = "";
  let metricsUrl = "";
  let prometheus: PrometheusServer | undefined;

  beforeAll(async () => {
    // Its own process group, so that Azurite and the worker processes go with it at the end. Metrics on
    // any free port, read from the demo's log: a port picked here and bound later by the demo could be
    // taken meanwhile by another process of this busy machine.
    daemon = spawn(
      process.execPath,
      [
        CLI_PATH,
        "demo",
        "--metrics-port",
        "0",
        "--interval",
        "1",
        "--tasks",
        "60",
        "--task-seconds",
        "1-3",
        "--capacity",
        "4",
      ],
      {
        cwd: REPO_ROOT,
        detached: true,
        env: { ...process.env, WORKFORCE_LOG_LEVEL: "info" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    daemon.stdout!.on("data", (chunk: Buffer) => (daemonOutput += chunk.toString()));
    daemon.stderr!.on("data", (chunk: Buffer) => (daemonOutput += chunk.toString()));
    metricsUrl = await waitFor(
      "the demo to say where its metrics are",
      async () => {
        if (daemon!.exitCode !== null) throw new Error(`workforce demo exited with ${daemon!.exitCode}`);
        const running = daemonOutput.split("\n").find((line) => line.includes("demo: daemon running"));
        return running ? new URL((JSON.parse(running) as { metrics: string }).metrics).origin : undefined;
      },
      60_000,
      () => `\n${daemonOutput.slice(-2_000)}`,
    );
    await waitFor(
      "the daemon's /readyz",
      async () => {
        if (daemon!.exitCode !== null) throw new Error(`workforce demo exited with ${daemon!.exitCode}`);
        const response = await fetch(`${metricsUrl}/readyz`, { signal: AbortSignal.timeout(1_000) });
        return response.ok ? true : undefined;
      },
      60_000,
      () => `\n${daemonOutput.slice(-2_000)}`,
    );
    prometheus = await startPrometheus({ targets: [new URL(metricsUrl).host], ruleFiles: [ALERTS_PATH] });
    // Enough scrapes for rate() over $__rate_interval and the histogram quantiles to have data.
    await waitFor(
      "8 scrapes and 3 reconcile ticks in Prometheus",
      async () => {
        const scrapes = await prometheus!.query<{ result: unknown[] }>("/api/v1/query", {
          query: 'count_over_time(up{job="workforce-autoscaler"}[30s]) >= 8 and up == 1',
        });
        const ticks = await prometheus!.query<{ result: unknown[] }>("/api/v1/query", {
          query: "sum(workforce_reconcile_duration_seconds_count) >= 3",
        });
        return scrapes.result.length > 0 && ticks.result.length > 0 ? true : undefined;
      },
      60_000,
      () => `\n${prometheus!.logs().slice(-2_000)}\n${daemonOutput.slice(-2_000)}`,
    );
  }, 150_000);

  afterAll(async () => {
    await prometheus?.stop();
    if (daemon?.pid) {
      await stopProcess(daemon, 10_000);
      try {
        process.kill(-daemon.pid, "SIGKILL"); // anything of its group that outlived it
      } catch {
        // the group is already gone
      }
    }
  }, 30_000);

  it("serves /metrics that promtool check metrics accepts without a remark", async () => {
    const text = await (await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    expect(text).toContain("workforce_reconcile_total");
    const result = promtool(["check", "metrics"], text);
    expect(result.output).toBe("");
    expect(result.status).toBe(0);
  });

  it("loads the alert rules, and every rule evaluates without error on the daemon's series", async () => {
    // Until every rule has been evaluated at least once (health "unknown" before), so a rule with a bad
    // match would show its error: about two rounds of 1 s, longer on a loaded machine.
    type Rule = { name: string; health: string; lastError?: string };
    const readRules = async () =>
      (await prometheus!.query<{ groups: { rules: Rule[] }[] }>("/api/v1/rules", {})).groups.flatMap(
        (group) => group.rules,
      );
    let rules = await readRules();
    for (const until = Date.now() + 30_000; Date.now() < until; rules = await readRules()) {
      if (rules.length > 0 && rules.every((rule) => rule.health !== "unknown")) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(rules.map((rule) => rule.name)).toEqual(
      expect.arrayContaining([
        "WorkforceReconcileStalled",
        "WorkforceRegionFailing",
        "WorkforceQueueStarved",
        "WorkforceHiresFailing",
      ]),
    );
    expect(
      rules.filter((rule) => rule.health !== "ok").map((rule) => `${rule.name}: ${rule.lastError}`),
    ).toEqual([]);
    // A healthy daemon that ticks every second is not stalled.
    const alerts = await prometheus!.query<{ alerts: { labels: { alertname: string } }[] }>(
      "/api/v1/alerts",
      {},
    );
    expect(alerts.alerts.map((alert) => alert.labels.alertname)).not.toContain("WorkforceReconcileStalled");
  });

  it("shows the demo at work: tasks waiting, a target above zero, workers hired", async () => {
    const highest = async (query: string) => {
      const data = await prometheus!.query<{ result: { value: [number, string] }[] }>("/api/v1/query", {
        query,
      });
      return Math.max(0, ...data.result.map((series) => Number(series.value[1])));
    };
    expect(await highest("max_over_time(workforce_queue_depth[1m])")).toBeGreaterThan(0);
    expect(await highest("max_over_time(workforce_target_workers[1m])")).toBeGreaterThan(0);
    expect(await highest("sum(max_over_time(workforce_hired_total[1m]))")).toBeGreaterThan(0);
  });

  it("returns data for every query of every panel, with the variables Grafana would substitute", async () => {
    const end = Math.floor(Date.now() / 1000);
    const start = end - WINDOW_SECONDS;
    const values: Record<string, string> = {
      __rate_interval: RATE_INTERVAL,
      __interval: "1s",
      __range: `${WINDOW_SECONDS}s`,
    };
    const substitute = (expr: string) => {
      const result = expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced: string, bare: string) => {
        const name = braced ?? bare;
        if (!(name in values)) throw new Error(`unknown variable ${whole} in ${expr}`);
        return values[name]!;
      });
      expect(result, `unsubstituted variable in ${result}`).not.toContain("$");
      return result;
    };

    // Query variables, in order, as Grafana resolves them: label_values(selector, label).
    const variables = dashboard.templating.list;
    expect(variables.find((v) => v.name === "datasource")?.type).toBe("datasource");
    expect(variables.find((v) => v.name === "region")?.multi).toBe(true);
    for (const variable of variables.filter((v) => v.type === "query")) {
      const definition = typeof variable.query === "string" ? variable.query : variable.query!.query;
      const [, selector, label] = /^label_values\((.+),\s*(\w+)\)$/.exec(definition)!;
      const series = await prometheus!.query<Record<string, string>[]>("/api/v1/series", {
        "match[]": substitute(selector!),
        start: String(start),
        end: String(end),
      });
      const options = [
        ...new Set(series.map((labels) => labels[label!]).filter((value) => value !== undefined)),
      ];
      expect(options, `options of $${variable.name} (${definition})`).not.toEqual([]);
      // All options selected: Grafana writes a multi-value variable as a regex alternation.
      values[variable.name] =
        `(${options.map((option) => option!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`;
    }
    // The datasource variable is used only as the panels' datasource uid.
    values.datasource = "prometheus";

    const empty: string[] = [];
    let evaluated = 0;
    for (const panel of panels) {
      expect(panel.targets?.length, `panel "${panel.title}" has queries`).toBeGreaterThan(0);
      for (const target of panel.targets!) {
        const query = substitute(target.expr);
        const data = await prometheus!.query<{ result: { values: [number, string][] }[] }>(
          "/api/v1/query_range",
          {
            query,
            start: String(start),
            end: String(end),
            step: "1",
          },
        );
        evaluated++;
        const finite = data.result.some((series) =>
          series.values.some(([, value]) => Number.isFinite(Number(value))),
        );
        if (!finite) empty.push(`"${panel.title}" ${target.refId}: ${query}`);
      }
    }
    expect(empty, "panel queries without data").toEqual([]);
    console.info(`evaluated ${evaluated} queries of ${panels.length} panels through Prometheus`);
    expect(evaluated).toBe(panels.reduce((sum, panel) => sum + (panel.targets?.length ?? 0), 0));
  });
});

describe.skipIf(NO_PROMETHEUS)("promtool check rules", () => {
  for (const file of [ALERTS_PATH, join(REPO_ROOT, "helm", "workforce-autoscaler", "files", "alerts.yaml")]) {
    it(`accepts ${file.slice(REPO_ROOT.length + 1)}`, () => {
      const result = promtool(["check", "rules", file]);
      expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
      expect(result.status).toBe(0);
    });
  }
});
