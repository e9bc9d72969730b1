/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are untyped YAML, read by path */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Ajv } from "ajv";
import { parse as parseYaml } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { SETTINGS } from "../../src/config/settings.js";
import { resolveConfig } from "../../src/config/load.js";
import { REPO_ROOT } from "../support/cli.js";
import { loadChart, renderManifests } from "./deploy-gotemplate.js";

const CHART_DIR = join(REPO_ROOT, "helm", "workforce-autoscaler");
const chart = loadChart(CHART_DIR);
const schema = JSON.parse(readFileSync(join(CHART_DIR, "values.schema.json"), "utf8")) as Record<string, any>;
const defaultValues = parseYaml(readFileSync(join(CHART_DIR, "values.yaml"), "utf8")) as Record<string, any>;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
const release = { name: "wf", namespace: "batch" };

const plainSettings = SETTINGS.filter((spec) => !("secret" in spec && spec.secret));
const secretSettings = SETTINGS.filter((spec) => "secret" in spec && spec.secret);

/** Deep copy of the chart's defaults with changes applied. */
function valuesWith(change: (values: Record<string, any>) => void): Record<string, any> {
  const values = structuredClone(defaultValues);
  change(values);
  return values;
}

function schemaErrors(values: unknown): string[] {
  return validate(values)
    ? []
    : (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message}`);
}

function render(values: Record<string, any>) {
  expect(schemaErrors(values)).toEqual([]);
  const manifests = renderManifests(chart, values, release);
  const byKind = (kind: string) => manifests.filter((manifest) => manifest.kind === kind);
  const deployment = byKind("Deployment")[0]!;
  const container = deployment.spec.template.spec.containers[0];
  return { manifests, byKind, deployment, pod: deployment.spec.template, container };
}

/** A valid value for every plain setting, different from its default: proves each one is carried through. */
const OVERRIDES: Record<string, string | number | boolean> = {
  queue: "myaccount/tasks",
  queueAdminEndpoint: "127.0.0.1:5443",
  concurrency: 4,
  policy: "proportional",
  paybackRatio: 4.5,
  taskSeconds: 1800,
  startupSeconds: 90,
  policyModule: "/etc/workforce/policy.mjs",
  maxWorkers: 120,
  minWorkers: 2,
  rampFactor: 3.5,
  scaleDownDelaySeconds: 45,
  intervalSeconds: 15,
  jitter: 0.25,
  callTimeoutSeconds: 12,
  readConcurrency: 3,
  staleTicks: 5,
  hireGraceSeconds: 240,
  dryRun: true,
  drainOperation: "do-not-accept-new-tasks",
  drainTimeoutSeconds: 900,
  controlMessageTtlSeconds: 60,
  stateContainer: "wf-state",
  leaderElection: true,
  leaderLeaseSeconds: 20,
  metricsPort: 9100,
  metricsHost: "127.0.0.1",
  logLevel: "debug",
  allowUnknownVariables: true,
};

const LOCAL_REGION = {
  name: "lab",
  kind: "local",
  capacity: 2,
  command: ["{node}", "worker.js"],
  stateDir: "/tmp/wf",
};

const scratch = mkdtempSync(join(tmpdir(), "wf-chart-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * What the daemon would load in the rendered pod: the container's env (secretKeyRef resolved from the
 * given Secrets) and the file at the path WORKFORCE_CONFIG names, from the ConfigMap or from the Secret
 * mounted instead (given in `secrets` too).
 */
function resolveAsDaemon(
  rendered: ReturnType<typeof render>,
  secrets: Record<string, Record<string, string>> = {},
) {
  const env: Record<string, string> = {};
  for (const entry of rendered.container.env as any[]) {
    if (entry.valueFrom) {
      const ref = entry.valueFrom.secretKeyRef;
      env[entry.name] = secrets[ref.name]![ref.key]!;
    } else env[entry.name] = entry.value;
  }
  const configPath = env.WORKFORCE_CONFIG!;
  const mount = (rendered.container.volumeMounts as any[]).find((m) => m.mountPath === dirname(configPath));
  expect(mount, `a volume mounted at ${dirname(configPath)}`).toBeDefined();
  const volume = (rendered.pod.spec.volumes as any[]).find((v) => v.name === mount.name);
  const fileName = configPath.slice(dirname(configPath).length + 1);
  const files: Record<string, string> = volume.secret
    ? secrets[volume.secret.secretName]!
    : rendered.byKind("ConfigMap").find((cm) => cm.metadata.name === volume.configMap.name)!.data;
  const localFile = join(scratch, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(localFile, files[fileName]!);
  return { resolved: resolveConfig({ env: { ...env, WORKFORCE_CONFIG: localFile } }), env };
}

function loadAsDaemon(
  rendered: ReturnType<typeof render>,
  secrets: Record<string, Record<string, string>> = {},
) {
  const { resolved } = resolveAsDaemon(rendered, secrets);
  expect(resolved.problems).toEqual([]);
  return resolved.config!;
}

describe("values.schema.json", () => {
  it("accepts the chart's values.yaml", () => {
    expect(schemaErrors(defaultValues)).toEqual([]);
  });

  it("rejects what helm install should refuse", () => {
    const bad: [string, (values: Record<string, any>) => void][] = [
      ["unknown setting", (v) => (v.config.intervalSecond = 30)],
      ["bad enum", (v) => (v.config.policy = "greedy")],
      ["wrong type", (v) => (v.config.concurrency = "four")],
      ["port 0", (v) => (v.config.metricsPort = 0)],
      [
        "secret given inline",
        (v) => (v.secrets.queueConnectionString = "DefaultEndpointsProtocol=https;..."),
      ],
      ["secret name without key", (v) => (v.secrets.stateConnectionString = { name: "wf", key: "" })],
      ["workload identity without client id", (v) => (v.azureWorkloadIdentity.enabled = true)],
      ["region without kind", (v) => (v.regions = [{ name: "eastus" }])],
      ["region name unusable as a label", (v) => (v.regions = [{ name: "east us", kind: "azureml" }])],
      [
        "a secret in the region list (it would land in a ConfigMap)",
        (v) =>
          (v.regions = [
            { ...LOCAL_REGION, backChannel: { connectionString: "Endpoint=sb://x/;SharedAccessKey=k" } },
          ]),
      ],
      [
        "an extra file that would replace config.yaml",
        (v) => (v.configFiles = { "config.yaml": "regions: []" }),
      ],
    ];
    for (const [why, change] of bad) expect(schemaErrors(valuesWith(change)), why).not.toEqual([]);
  });

  it("has one entry per setting, with the daemon's enums and defaults", () => {
    expect(Object.keys(schema.properties.config.properties).sort()).toEqual(
      plainSettings.map((s) => s.key).sort(),
    );
    expect(Object.keys(schema.properties.secrets.properties).sort()).toEqual(
      secretSettings.map((s) => s.key).sort(),
    );
    const valuesText = readFileSync(join(CHART_DIR, "values.yaml"), "utf8");
    // Only given keys are set; values.yaml lists every key with the daemon's default, as a comment.
    expect(defaultValues.config).toEqual({});
    for (const spec of plainSettings) {
      const zodEnum = spec.schema as unknown as { def: { type: string }; options: unknown[] };
      if (zodEnum.def.type === "enum")
        expect(schema.properties.config.properties[spec.key].enum, spec.key).toEqual(zodEnum.options);
      const shown = spec.default === undefined ? '""' : String(spec.default);
      expect(valuesText, `values.yaml documents config.${spec.key}`).toMatch(
        new RegExp(`^#   ${spec.key}: ${shown.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}( |$)`, "m"),
      );
    }
    expect(Object.keys(OVERRIDES).sort()).toEqual(plainSettings.map((s) => s.key).sort());
  });
});

describe("Helm chart wiring", () => {
  it("maps each settings key to its variable the way the template does (snakecase | upper)", () => {
    const rendered = render(
      valuesWith((v) => {
        v.existingConfigSecret = "wf-config";
        Object.assign(v.config, OVERRIDES);
      }),
    );
    const names = (rendered.container.env as any[]).map((entry) => entry.name).sort();
    expect(names).toEqual(["WORKFORCE_CONFIG", ...plainSettings.map((spec) => spec.env)].sort());
  });

  it("carries every setting from values to the daemon, secrets through secretKeyRef only", () => {
    const values = valuesWith((v) => {
      Object.assign(v.config, OVERRIDES);
      v.secrets.queueConnectionString = { name: "wf-queue", key: "connection" };
      v.secrets.stateConnectionString = { name: "wf-state", key: "connection" };
      v.regions = [LOCAL_REGION];
    });
    const rendered = render(values);
    for (const spec of secretSettings) {
      const entry = (rendered.container.env as any[]).find((e) => e.name === spec.env);
      expect(entry, spec.env).toBeDefined();
      expect(entry.value, `${spec.env} must not be a literal`).toBeUndefined();
      expect(entry.valueFrom.secretKeyRef).toEqual(values.secrets[spec.key]);
    }
    const config = loadAsDaemon(rendered, {
      "wf-queue": { connection: "UseDevelopmentStorage=true;queue" },
      "wf-state": { connection: "UseDevelopmentStorage=true;state" },
    });
    for (const spec of plainSettings)
      expect((config as any)[spec.key], spec.key).toEqual(OVERRIDES[spec.key]);
    expect(config.queueConnectionString).toBe("UseDevelopmentStorage=true;queue");
    expect(config.stateConnectionString).toBe("UseDevelopmentStorage=true;state");
    expect(config.regions.map((r) => r.name)).toEqual(["lab"]);
    // One source of truth: the ConfigMap's file. No variable could fight it.
    const variables = (rendered.container.env as any[]).map((entry) => entry.name);
    expect(variables.sort()).toEqual(["WORKFORCE_CONFIG", ...secretSettings.map((spec) => spec.env)].sort());
    // The port the daemon listens on is the one the probes, the Service and the ServiceMonitor use.
    expect(rendered.container.ports).toEqual([{ name: "metrics", containerPort: 9100, protocol: "TCP" }]);
  });

  it("with default values, the daemon gets its own defaults and no secret at all", () => {
    const rendered = render(valuesWith((v) => (v.regions = [LOCAL_REGION])));
    const names = (rendered.container.env as any[]).map((e) => e.name);
    for (const spec of secretSettings) expect(names, spec.env).not.toContain(spec.env);
    expect(rendered.byKind("Secret")).toEqual([]);
    const config = loadAsDaemon(rendered);
    for (const spec of plainSettings) expect((config as any)[spec.key], spec.key).toEqual(spec.default);
  });

  it("honours the settings of a config file given as existingConfigSecret (values do not override it)", () => {
    const fileText = `concurrency: 4\nintervalSeconds: 30\nmaxWorkers: 200\nregions:\n  - ${JSON.stringify(LOCAL_REGION)}\n`;
    const rendered = render(valuesWith((v) => (v.existingConfigSecret = "wf-config")));
    const { resolved } = resolveAsDaemon(rendered, { "wf-config": { "config.yaml": fileText } });
    expect(resolved.problems).toEqual([]);
    expect(resolved.warnings).toEqual([]);
    expect(resolved.config).toMatchObject({ concurrency: 4, intervalSeconds: 30, maxWorkers: 200 });
    const source = (key: string) => resolved.sources.find((entry) => entry.key === key)!.source;
    expect(source("concurrency")).toBe("file");
    expect(source("rampFactor")).toBe("default");

    // A key given under `config` as well is an explicit override: it wins, and the daemon says so.
    const both = render(
      valuesWith((v) => {
        v.existingConfigSecret = "wf-config";
        v.config.concurrency = 2;
      }),
    );
    const overridden = resolveAsDaemon(both, { "wf-config": { "config.yaml": fileText } }).resolved;
    expect(overridden.config!.concurrency).toBe(2);
    expect(overridden.warnings).toEqual([
      expect.stringMatching(/^WORKFORCE_CONCURRENCY overrides concurrency of .* \(2 instead of 4\)/),
    ]);
  });

  it("turns off service links, so a Service's WORKFORCE_*_SERVICE_HOST never reaches the daemon", () => {
    expect(render(defaultValues).pod.spec.enableServiceLinks).toBe(false);
  });

  it("runs one replica, non-root, read-only, with every capability dropped", () => {
    const { deployment, pod, container } = render(defaultValues);
    expect(deployment.spec.replicas).toBe(1);
    // Without leader election two pods must never overlap during a rollout.
    expect(deployment.spec.strategy.type).toBe("Recreate");
    const dockerUser = /^USER\s+(\d+)/m.exec(readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8"))![1];
    expect(pod.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: Number(dockerUser),
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(container.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    const tmp = (container.volumeMounts as any[]).find((m) => m.mountPath === "/tmp");
    expect((pod.spec.volumes as any[]).find((v) => v.name === tmp.name).emptyDir).toBeDefined();
    expect(container.args).toEqual(["run"]);
    expect(container.resources.requests).toBeDefined();
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "metrics" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "metrics" });
  });

  it("selects its own pod from the Service, the ServiceMonitor and the PodDisruptionBudget", () => {
    const values = valuesWith((v) => {
      v.serviceMonitor.enabled = true;
      v.serviceMonitor.labels = { release: "kube-prometheus-stack" };
    });
    const { byKind, pod } = render(values);
    const service = byKind("Service")[0]!;
    const monitor = byKind("ServiceMonitor")[0]!;
    const pdb = byKind("PodDisruptionBudget")[0]!;
    expect(pod.metadata.labels).toMatchObject(service.spec.selector);
    // A daemon that fails its ticks is not ready, and that is when its metrics matter most.
    expect(service.spec.publishNotReadyAddresses).toBe(true);
    expect(pod.metadata.labels).toMatchObject(pdb.spec.selector.matchLabels);
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.metadata.labels.release).toBe("kube-prometheus-stack");
    expect(monitor.spec.namespaceSelector.matchNames).toEqual([release.namespace]);
    expect(service.spec.ports).toEqual([
      { name: "metrics", port: 9464, targetPort: "metrics", protocol: "TCP" },
    ]);
    expect(monitor.spec.endpoints).toMatchObject([{ port: "metrics", path: "/metrics" }]);
    expect(pdb.spec.maxUnavailable).toBe(1);
  });

  it("uses Azure workload identity when enabled", () => {
    const plain = render(defaultValues);
    expect(plain.pod.metadata.labels["azure.workload.identity/use"]).toBeUndefined();
    const values = valuesWith(
      (v) => (v.azureWorkloadIdentity = { enabled: true, clientId: "00000000-1111", tenantId: "" }),
    );
    const { byKind, pod } = render(values);
    const account = byKind("ServiceAccount")[0]!;
    expect(pod.spec.serviceAccountName).toBe(account.metadata.name);
    expect(account.metadata.annotations["azure.workload.identity/client-id"]).toBe("00000000-1111");
    expect(pod.metadata.labels["azure.workload.identity/use"]).toBe("true");
  });

  it("ships the alerts of deploy/prometheus as a PrometheusRule, only when asked", () => {
    expect(render(defaultValues).byKind("PrometheusRule")).toEqual([]);
    expect(render(defaultValues).byKind("ServiceMonitor")).toEqual([]);
    const rule = render(valuesWith((v) => (v.prometheusRule.enabled = true))).byKind("PrometheusRule")[0]!;
    const alerts = parseYaml(readFileSync(join(REPO_ROOT, "deploy", "prometheus", "alerts.yaml"), "utf8"));
    expect(rule.spec).toEqual(alerts);
    expect(rule.spec.groups[0].rules.length).toBeGreaterThanOrEqual(4);
  });

  it("mounts extra config files next to config.yaml, or an existing Secret instead of the ConfigMap", () => {
    const template = "command: python train.py\n";
    const withFile = render(valuesWith((v) => (v.configFiles = { "job.yaml": template })));
    const configMap = withFile.byKind("ConfigMap")[0]!;
    expect(configMap.data["job.yaml"]).toBe(template);
    const mount = (withFile.container.volumeMounts as any[]).find((m) => m.name === "config");
    const configPath = (withFile.container.env as any[]).find((e) => e.name === "WORKFORCE_CONFIG").value;
    expect(configPath).toBe(`${mount.mountPath}/config.yaml`);

    const fromSecret = render(valuesWith((v) => (v.existingConfigSecret = "wf-config")));
    expect(fromSecret.byKind("ConfigMap")).toEqual([]);
    const volume = (fromSecret.pod.spec.volumes as any[]).find((v) => v.name === "config");
    expect(volume).toEqual({ name: "config", secret: { secretName: "wf-config" } });
  });

  it("renders valid manifests when optional maps and lists are emptied", () => {
    const values = valuesWith((v) => {
      for (const key of [
        "livenessProbe",
        "readinessProbe",
        "resources",
        "podSecurityContext",
        "securityContext",
      ])
        v[key] = {};
      v.serviceMonitor.enabled = true;
      v.prometheusRule.enabled = true;
    });
    const { container, manifests } = render(values);
    expect(container.livenessProbe).toEqual({ httpGet: { path: "/healthz", port: "metrics" } });
    expect(manifests.map((manifest) => manifest.kind).sort()).toEqual([
      "ConfigMap",
      "Deployment",
      "PodDisruptionBudget",
      "PrometheusRule",
      "Service",
      "ServiceAccount",
      "ServiceMonitor",
    ]);
  });

  it("rolls the pod when the region list or a setting changes", () => {
    const checksum = (regions: unknown[], concurrency = 1) =>
      render(
        valuesWith((v) => {
          v.regions = regions;
          v.config.concurrency = concurrency;
        }),
      ).pod.metadata.annotations["checksum/config"];
    expect(checksum([LOCAL_REGION])).not.toBe(checksum([{ ...LOCAL_REGION, capacity: 3 }]));
    expect(checksum([LOCAL_REGION])).not.toBe(checksum([LOCAL_REGION], 2));
  });
});
