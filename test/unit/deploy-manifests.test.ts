import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { SETTINGS } from "../../src/config/settings.js";
import { loadConfig } from "../../src/config/load.js";
import { createMetrics } from "../../src/metrics/registry.js";
import { REPO_ROOT } from "../support/cli.js";

// Static checks of the Azure Container Apps manifest and the Grafana dashboard; the dashboard's queries
// are run against a real Prometheus in test/integration/prometheus-dashboard.test.ts.

interface EnvVar {
  name: string;
  value?: string;
  secretRef?: string;
}
interface ContainerApp {
  type: string;
  identity: { type: string; userAssignedIdentities: Record<string, unknown> };
  properties: {
    configuration: {
      activeRevisionsMode: string;
      ingress: { external: boolean; targetPort: number };
      secrets: { name: string; value?: string; keyVaultUrl?: string; identity?: string }[];
    };
    template: {
      scale: { minReplicas: number; maxReplicas: number };
      containers: {
        args: string[];
        env: EnvVar[];
        probes: { type: string; httpGet: { path: string; port: number } }[];
      }[];
    };
  };
}

const app = parseYaml(readFileSync(join(REPO_ROOT, "deploy", "containerapp.yaml"), "utf8")) as ContainerApp;

describe("Azure Container Apps manifest", () => {
  const container = app.properties.template.containers[0]!;
  const env = new Map(container.env.map((entry) => [entry.name, entry]));

  it("runs exactly one replica of `workforce run` under a user-assigned identity", () => {
    expect(app.type).toBe("Microsoft.App/containerApps");
    // Two revisions or replicas side by side would both act on the same queue.
    expect(app.properties.template.scale).toEqual({ minReplicas: 1, maxReplicas: 1 });
    expect(app.properties.configuration.activeRevisionsMode).toBe("Single");
    expect(container.args).toEqual(["run"]);
    expect(app.identity.type).toBe("UserAssigned");
    expect(Object.keys(app.identity.userAssignedIdentities)).toHaveLength(1);
    // DefaultAzureCredential needs the client id to pick a user-assigned identity.
    expect(env.get("AZURE_CLIENT_ID")?.value).toBeTruthy();
  });

  it("sets every WORKFORCE_* setting, secrets only as Key Vault references, and the daemon loads them", () => {
    const secrets = new Map(app.properties.configuration.secrets.map((secret) => [secret.name, secret]));
    for (const spec of SETTINGS) {
      const entry = env.get(spec.env);
      expect(entry, spec.env).toBeDefined();
      if ("secret" in spec && spec.secret) {
        expect(entry!.value, `${spec.env} must not be a literal`).toBeUndefined();
        const secret = secrets.get(entry!.secretRef!);
        expect(secret?.keyVaultUrl, `${spec.env}: secret ${entry!.secretRef} from Key Vault`).toMatch(
          /^https:\/\//,
        );
        expect(secret?.value).toBeUndefined();
      }
    }
    const plain = Object.fromEntries(
      container.env.filter((entry) => entry.value !== undefined).map((entry) => [entry.name, entry.value!]),
    );
    const config = loadConfig({ env: plain });
    expect(config.regions.map((region) => region.kind)).toContain("azureml");
    for (const spec of SETTINGS.filter((s) => !("secret" in s && s.secret) && s.key !== "queue")) {
      expect((config as unknown as Record<string, unknown>)[spec.key], spec.key).toEqual(spec.default);
    }
  });

  it("exposes the metrics port inside the environment and probes /healthz on it", () => {
    const port = Number(env.get("WORKFORCE_METRICS_PORT")!.value);
    expect(app.properties.configuration.ingress).toMatchObject({ external: false, targetPort: port });
    expect(container.probes).toContainEqual(
      expect.objectContaining({ type: "Liveness", httpGet: { path: "/healthz", port } }),
    );
  });
});

interface Panel {
  id: number;
  title: string;
  type: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
}
const dashboard = JSON.parse(
  readFileSync(join(REPO_ROOT, "deploy", "grafana", "workforce-autoscaler.json"), "utf8"),
) as {
  panels: Panel[];
  templating: {
    list: { name: string; type: string; query?: unknown; multi?: boolean; includeAll?: boolean }[];
  };
};
const panels = dashboard.panels.filter((panel) => panel.type !== "row");
const exprs = panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));

describe("Grafana dashboard", () => {
  it("takes its datasource from a variable and offers regions as a multi-value variable", () => {
    const variables = new Map(dashboard.templating.list.map((variable) => [variable.name, variable]));
    expect(variables.get("datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    expect(variables.get("region")).toMatchObject({ type: "query", multi: true, includeAll: true });
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
      for (const target of panel.targets ?? [])
        expect(target.datasource?.uid, panel.title).toBe("${datasource}");
    }
    expect(new Set(dashboard.panels.map((panel) => panel.id)).size).toBe(dashboard.panels.length);
  });

  it("queries only metrics the daemon exports", async () => {
    const registry = createMetrics({ processMetrics: false }).registry;
    const exported = new Set<string>();
    for (const metric of await registry.getMetricsAsJSON()) {
      exported.add(metric.name);
      if (String(metric.type) === "histogram")
        for (const suffix of ["_bucket", "_sum", "_count"]) exported.add(metric.name + suffix);
    }
    const used = new Set(exprs.flatMap((expr) => expr.match(/\bworkforce_[a-z_]+/g) ?? []));
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });

  it("shows what an operator needs: queue vs target vs workers, actions, errors, latency, staleness, dry-run", () => {
    const shown = (pattern: RegExp) => exprs.some((expr) => pattern.test(expr));
    const wanted: Record<string, RegExp> = {
      "queue depth": /workforce_queue_depth/,
      target: /workforce_target_workers/,
      "workers by state and region": /by \((region, )?state\) \(workforce_workers/,
      "hires per region": /by \(region\) \(rate\(workforce_hired_total/,
      "cancels per region": /by \(region\) \(rate\(workforce_cancelled_total/,
      "drains per region": /by \(region\) \(rate\(workforce_drain_requests_total/,
      "region errors by operation": /by \(region, operation\) \(rate\(workforce_region_errors_total/,
      "reconcile p50": /histogram_quantile\(0\.5, .*workforce_reconcile_duration_seconds_bucket/,
      "reconcile p95": /histogram_quantile\(0\.95, .*workforce_reconcile_duration_seconds_bucket/,
      "time since last successful tick": /time\(\) - max\(workforce_last_reconcile_success_timestamp_seconds/,
      "dry-run indicator": /workforce_dry_run/,
      "unplaced demand": /workforce_unplaced_workers/,
      "worker exits by outcome": /by \(region, outcome\) \(rate\(workforce_worker_exits_total/,
      "failed scale-ups by reason": /by \(region, reason\) \(rate\(workforce_failed_scale_ups_total/,
      "drain latency": /workforce_drain_duration_seconds_sum/,
      "expired drains": /workforce_drains_expired_total/,
      "last scale-up": /workforce_last_scale_up_timestamp_seconds/,
      "last scale-down": /workforce_last_scale_down_timestamp_seconds/,
      "per-region ceilings": /workforce_region_max_workers/,
      "start backoff": /workforce_region_start_backoff/,
    };
    expect(
      Object.entries(wanted)
        .filter(([, pattern]) => !shown(pattern))
        .map(([what]) => what),
    ).toEqual([]);
    // Panels that are about regions follow the region variable.
    for (const expr of exprs.filter((e) => /workforce_(workers|hired|cancelled|drain|region_)/.test(e))) {
      expect(expr).toContain('region=~"$region"');
    }
  });
});
