/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests and package.json are untyped */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { expect } from "vitest";
import { REPO_ROOT } from "../support/cli.js";
import { loadChart, renderManifests } from "../unit/deploy-gotemplate.js";
import { fences } from "./doc-commands-extract.js";
import { baseEnv, runLine } from "./doc-commands-shell.js";

// The documented commands that cannot run here, each with why, and what the test checks instead. A
// command in the docs that is neither run nor listed here fails doc-commands.test.ts; so does an entry
// that no doc shows any more.

export interface Listed {
  reason: string;
  /** `scratch`: the test's folder for files it writes. */
  check: (scratch: string) => void | Promise<void>;
}

const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");
const pkg = () => JSON.parse(read("package.json")) as any;
const CHART_DIR = join(REPO_ROOT, "helm", "workforce-autoscaler");

/** The chart rendered as `helm install wf ... --namespace batch -f my-values.yaml` (deploy.md) would. */
function renderDocsRelease(extra: Record<string, unknown> = {}): Record<string, any>[] {
  const myValues = fences("docs/deploy.md").find(
    (f) => f.lang === "yaml" && f.before.includes("`my-values.yaml`"),
  );
  const values = parseYaml(read("helm/workforce-autoscaler/values.yaml")) as Record<string, any>;
  for (const [key, value] of Object.entries({ ...parseYaml(myValues!.text), ...extra }))
    values[key] =
      value && typeof value === "object" && !Array.isArray(value) ? { ...values[key], ...value } : value;
  return renderManifests(loadChart(CHART_DIR), values, { name: "wf", namespace: "batch" });
}

function npmScript(name: string): Listed {
  return {
    reason: `long or recursive (${name}: the build, a benchmark or this suite); npm test builds first`,
    check: () => expect(pkg().scripts[name], `package.json scripts.${name}`).toBeTruthy(),
  };
}

const noHelm = "no helm binary here (DEVELOPERS.md); the chart is rendered by test/unit/deploy-gotemplate.ts";
const helmChart: Listed = {
  reason: noHelm,
  check: () => {
    expect(existsSync(join(CHART_DIR, "Chart.yaml"))).toBe(true);
    // `-f my-values.yaml` is deploy.md's block; the release `wf` in `batch` is what the other commands name.
    const deployment = renderDocsRelease().find((m) => m.kind === "Deployment")!;
    expect(deployment.metadata.name).toBe("wf-workforce-autoscaler");
  },
};
const noDocker =
  "no Docker engine here (DEVELOPERS.md); test/unit/deploy-image.test.ts checks the Dockerfile";
const dockerfile: Listed = {
  reason: noDocker,
  check: () => {
    expect(read("Dockerfile")).toMatch(/^ARG NODE_IMAGE=node:20\.20\.2-bookworm-slim$/m);
    // The tag the docs use is the package's version.
    expect(pkg().version).toBe("0.1.0");
  },
};
const noCluster = "no Kubernetes cluster here";
const kubectlConfig: Listed = {
  reason: `${noCluster}; \`workforce config\` itself runs in doc-commands.test.ts`,
  check: () => {
    const deployment = renderDocsRelease().find((m) => m.kind === "Deployment")!;
    expect(deployment.metadata.name).toBe("wf-workforce-autoscaler");
    expect(deployment.spec.template.spec.containers[0].args ?? ["run"]).toContain("run");
  },
};
const noAzure = "no Azure here (nothing may leave 127.0.0.1)";
const containerApp: Listed = {
  reason: `${noAzure}; the manifest's container is checked with \`workforce config --check\` instead`,
  check: async (scratch) => {
    const app = parseYaml(read("deploy/containerapp.yaml")) as any;
    expect(app.name).toBe("workforce-autoscaler");
    const container = app.properties.template.containers[0];
    expect(container.args).toEqual(["run"]);
    // Its environment, placeholders filled and the Key Vault secrets given as connection strings, is a
    // configuration the daemon accepts without a warning.
    const env: Record<string, string> = { ...baseEnv(scratch) };
    for (const entry of container.env)
      env[entry.name] = entry.secretRef
        ? "DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=a2V5;EndpointSuffix=core.windows.net"
        : String(entry.value).replace(/<[^<>]+>/g, "x1");
    const ran = await runLine("workforce config --check", env);
    expect({ code: ran.code, stdout: ran.stdout, stderr: ran.stderr }).toEqual({
      code: 0,
      stdout: "configuration ok\n",
      stderr: "",
    });
  },
};

export const LISTED: Record<string, Listed> = {
  "npm ci": {
    reason: "reinstalls node_modules from the registry: what .ci/run does on a clean clone",
    check: () => expect(JSON.parse(read("package-lock.json")).lockfileVersion).toBeGreaterThanOrEqual(2),
  },
  "npm test": {
    reason: "this suite itself",
    check: () => {
      expect(pkg().scripts.test).toBe("vitest run");
      expect(pkg().scripts.pretest).toBe("npm run build");
    },
  },
  "npm run build": npmScript("build"),
  "npm run bench": npmScript("bench"),
  "npm run docs": npmScript("docs"),
  "npm run lint": npmScript("lint"),
  "npm run test:mutation": npmScript("test:mutation"),
  "npm link": {
    reason: "writes to npm's global prefix",
    check: () => expect(pkg().bin.workforce).toBe("dist/src/cli/main.js"),
  },
  "npm ci --omit=dev": {
    reason: `a step of the image build; ${noDocker}`,
    check: () => expect(read("Dockerfile")).toMatch(/npm ci --omit=dev/),
  },
  "npx tsc -p .": {
    reason: "the build (npm test builds first)",
    check: () => expect(pkg().scripts.build).toBe("tsc -p tsconfig.json"),
  },
  "DRILL_REPORT=1 npx vitest run test/integration/fault-drill.test.ts": {
    reason: "a test of this suite (about 60 s), run by npm test",
    check: () => expect(read("test/integration/fault-drill.test.ts")).toMatch(/DRILL_REPORT/),
  },
  "DOC_COMMANDS_ONLY=docs/azureml.md npx vitest run test/integration/doc-commands.test.ts": {
    reason: "this test itself",
    check: () =>
      expect(read("test/integration/doc-commands.test.ts")).toMatch(/process\.env\.DOC_COMMANDS_ONLY/),
  },
  "apt-get install prometheus": {
    reason: "needs root and Debian's mirror; .ci/run installs it",
    check: () => expect(read(".ci/run")).toMatch(/packages\+=\(prometheus\)/),
  },
  "apt-get install -y prometheus": {
    reason: "needs root and Debian's mirror; .ci/run installs it",
    check: () => expect(read(".ci/run")).toMatch(/apt-get install -y/),
  },
  "docker build -t REGISTRY/workforce-autoscaler:0.1.0 .": dockerfile,
  "docker build --build-arg NODE_IMAGE=node:20.20.2-bookworm-slim@sha256:<digest> -t ... .": dockerfile,
  "docker build -t workforce-autoscaler:dev .": dockerfile,
  "docker run --rm --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges -e WORKFORCE_QUEUE=... -e WORKFORCE_REGIONS='[...]' -p 9464:9464 REGISTRY/workforce-autoscaler:0.1.0":
    {
      reason: noDocker,
      check: () => {
        // The published port is the daemon's default metrics port; USER and tini as the docs say.
        expect(read("src/config/settings.ts")).toMatch(/metricsPort[\s\S]{0,400}9464/);
        expect(read("Dockerfile")).toMatch(/^USER 10001/m);
      },
    },
  "helm install wf helm/workforce-autoscaler -f my-values.yaml": helmChart,
  "helm install wf helm/workforce-autoscaler --namespace batch --create-namespace -f my-values.yaml":
    helmChart,
  "helm install": helmChart,
  "helm lint helm/workforce-autoscaler": helmChart,
  "helm template wf helm/workforce-autoscaler -f my-values.yaml": helmChart,
  "helm template wf helm/workforce-autoscaler -f my-values.yaml | kubeconform -strict -ignore-missing-schemas":
    helmChart,
  "helm lint helm/workforce-autoscaler --set prometheusRule.enabled=true --set serviceMonitor.enabled=true": {
    reason: noHelm,
    check: () => {
      // Every --set key is a value of the chart, and the chart renders with them.
      const values = parseYaml(read("helm/workforce-autoscaler/values.yaml")) as any;
      expect(values.prometheusRule).toHaveProperty("enabled");
      expect(values.serviceMonitor).toHaveProperty("enabled");
      const kinds = renderDocsRelease({
        prometheusRule: { enabled: true },
        serviceMonitor: { enabled: true },
      }).map((m) => m.kind);
      expect(kinds).toEqual(expect.arrayContaining(["PrometheusRule", "ServiceMonitor"]));
    },
  },
  "kubectl exec ... -- workforce config": kubectlConfig,
  "kubectl exec deploy/wf-workforce-autoscaler -- workforce config": kubectlConfig,
  "az containerapp create --resource-group RG --name workforce-autoscaler --yaml deploy/containerapp.yaml":
    containerApp,
  "az containerapp create --yaml": containerApp,
  "az ml job create --file": {
    reason: `${noAzure}; the templates shown are loaded by test/unit/doc-examples.test.ts`,
    check: () => {
      const job = fences("docs/azureml.md").find(
        (f) => f.lang === "yaml" && f.text.includes("commandJob.schema"),
      );
      expect(parseYaml(job!.text).type).toBe("command");
    },
  },
  "az aks update --enable-oidc-issuer --enable-workload-identity": {
    reason: noAzure,
    check: () => {
      // What the cluster feature is for: the chart's pod label and ServiceAccount annotation.
      const manifests = renderDocsRelease();
      const deployment = manifests.find((m) => m.kind === "Deployment")!;
      expect(deployment.spec.template.metadata.labels["azure.workload.identity/use"]).toBe("true");
      const account = manifests.find((m) => m.kind === "ServiceAccount")!;
      expect(account.metadata.annotations["azure.workload.identity/client-id"]).toBeTruthy();
    },
  },
  'az identity federated-credential create --name wf --identity-name ID --resource-group RG --issuer "$(az aks show -n AKS -g RG --query oidcIssuerProfile.issuerUrl -o tsv)" --subject system:serviceaccount:batch:wf-workforce-autoscaler --audiences api://AzureADTokenExchange':
    {
      reason: noAzure,
      check: () => {
        // The subject must be the ServiceAccount that `helm install wf ... --namespace batch` creates.
        const account = renderDocsRelease().find((m) => m.kind === "ServiceAccount")!;
        expect(`system:serviceaccount:batch:${account.metadata.name}`).toBe(
          "system:serviceaccount:batch:wf-workforce-autoscaler",
        );
        expect(account.metadata.namespace ?? "batch").toBe("batch");
      },
    },
  "az ml job cancel": {
    reason: `${noAzure}; named in prose as one way someone else cancels a job (outcome \`stopped\`)`,
    check: () => expect(read("docs/azureml.md")).toMatch(/by someone else \(the Studio, `az ml job cancel`/),
  },
  "sleep 3600": {
    reason:
      "the job command of the README's emulated region: the ARM emulator schedules jobs, it runs no command",
    check: () => expect(read("test/emulators/azureml/main.ts")).not.toMatch(/child_process/),
  },
  "...": {
    reason: "deploy.md's job template leaves the worker command to the reader",
    check: () => expect(read("docs/deploy.md")).toMatch(/job\.yaml: \|\n\s+command: \.\.\./),
  },
  "workforce lay-off --cancel-running": {
    reason: "names an option in prose, not a whole command; `lay-off N --region R --cancel-running` runs",
    check: () => expect(read("README.md")).toMatch(/`workforce lay-off N --region R \[--cancel-running\]`/),
  },
};
