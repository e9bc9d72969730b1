import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { buildProgram } from "../../src/cli/main.js";
import { startArmEmulator, type ArmEmulator } from "../emulators/azureml/server.js";
import { startMlApiEmulator, type MlApiEmulator } from "../emulators/azureml/ml-api.js";
import { startServiceBusEmulator, type ServiceBusEmulator } from "../emulators/servicebus/index.js";
import { startAzurite, type AzuriteInstance } from "../support/azurite.js";
import { REPO_ROOT } from "../support/cli.js";
import { allDocCommands, DOC_FILES, fences, type DocCommand } from "./doc-commands-extract.js";
import { CHECKS, expectStarted, type CheckContext } from "./doc-commands-checks.js";
import { LISTED } from "./doc-commands-listed.js";
import { DocRuns, key, partsOf, REGION_QUEUE } from "./doc-commands-schedule.js";
import { Session, type Ran } from "./doc-commands-session.js";
import { baseEnv, runLine } from "./doc-commands-shell.js";

// Examples are tests: every command the README and docs/ show is run here, as written but for the stand-ins
// of doc-commands-map.ts (placeholders, Azurite and the emulators on 127.0.0.1 for Azure), or listed in
// doc-commands-listed.ts with why it cannot run and what is checked instead. A command the docs add that is
// neither fails "every documented command is run or listed". Shell blocks run as one session each, in
// order; the other commands run against one shared set of peers (Azurite, the ARM and ml.azure.com
// emulators, the Service Bus emulator) with the config below, commands that change state in doc order.

const scratch = mkdtempSync(join(tmpdir(), "wf-doc-commands-"));
const shown = allDocCommands();
/** DOC_COMMANDS_ONLY=docs/azureml.md runs one file's commands (while editing it); the drift checks see all. */
const commands = shown.filter((command) => command.file.startsWith(process.env.DOC_COMMANDS_ONLY ?? ""));
const commandNames = buildProgram().commands.map((command) => command.name());
const hasPythonSdk =
  existsSync("/usr/bin/python3") &&
  spawnSync("/usr/bin/python3", ["-c", "import azure.servicebus, uamqp"]).status === 0;

let azurite: AzuriteInstance;
let arm: ArmEmulator;
let ml: MlApiEmulator;
let bus: ServiceBusEmulator;
let docsEnv: Record<string, string>;
const docRuns = new DocRuns(scratch, commands);
const { runs, lines } = docRuns;

function context(command: DocCommand): CheckContext {
  return { command, scratch, bus };
}

/** The docs' shared config: one region, eastus, on the emulators; the queue `tasks` in Azurite. */
function writeDocsConfig(): string {
  const path = join(scratch, "docs.yaml");
  writeFileSync(
    path,
    [
      "concurrency: 2",
      "intervalSeconds: 5",
      "metricsPort: 0",
      "regions:",
      "  - kind: azureml",
      "    name: eastus",
      "    subscriptionId: 00000000-0000-0000-0000-000000000000",
      "    resourceGroup: ml-rg",
      "    workspace: ml-docs",
      "    experiment: jobq-docs",
      "    compute: cpu-cluster",
      '    template: { type: command, command: sleep 3600, environment: "azureml:jobq-worker:1" }',
      `    armEndpoint: ${arm.url}`,
      `    mlEndpoint: ${ml.url}`,
      "    credential: { type: emulator }",
      "    backChannel:",
      `      connectionString: "${bus.connectionString}"`,
      `      adminEndpoint: ${bus.adminNamespace}`,
      "      topic: eastus",
    ].join("\n") + "\n",
  );
  return path;
}

beforeAll(async () => {
  await docRuns.schedule();
  [azurite, arm, bus] = await Promise.all([
    startAzurite(),
    startArmEmulator({ autoCreate: { clusterName: "cpu-cluster", maxNodeCount: 10 } }),
    startServiceBusEmulator({
      topics: ["eastus", "wf-eastus"],
      subscriptions: ["eastus/Subscriptions/shutdown", "wf-eastus/Subscriptions/shutdown"],
    }),
  ]);
  ml = await startMlApiEmulator({ arm });
  await new QueueClient(azurite.connectionString, REGION_QUEUE).create();
  // The README's custom policy, for `--policy-module PATH`.
  const policy = fences("README.md").find((f) => f.lang === "js" && f.text.includes("my-policy.mjs"))!;
  writeFileSync(join(scratch, "my-policy.mjs"), policy.text);
  docsEnv = {
    ...baseEnv(scratch),
    WORKFORCE_CONFIG: writeDocsConfig(),
    // The queue as the docs set it for every command (push and worker read the variable, not the file).
    WORKFORCE_QUEUE: "tasks",
    WORKFORCE_QUEUE_CONNECTION_STRING: azurite.connectionString,
    NODE_EXTRA_CA_CERTS: join(REPO_ROOT, "test", "emulators", "tls", "ca.pem"),
  };
  docRuns.start({ env: docsEnv, busConnectionString: bus.connectionString });
});

afterAll(async () => {
  const ran = await docRuns.close();
  if (process.env.DOC_COMMANDS_REPORT) {
    for (const each of ran.sort((a, b) => b.ms - a.ms).slice(0, 25))
      console.log(`${String(each.ms).padStart(6)} ms  ${each.command}`);
    console.log(`${ran.length} runs, ${ran.reduce((sum, each) => sum + each.ms, 0)} ms in all`);
  }
  await Promise.allSettled([ml?.close(), arm?.close(), bus?.stop(), azurite?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
});

/** What every run must show: the exit the doc gives (0 unless it says otherwise), no traffic beyond loopback. */
function expectClean(ran: Ran, exit = 0): void {
  expect(ran.stderr + ran.stdout, ran.command).not.toContain("[loopback-only] blocked");
  const tail = ran.stderr.slice(-2000);
  expect({ command: ran.command, code: ran.code, signal: ran.signal, stderr: tail }).toEqual({
    command: ran.command,
    code: exit,
    signal: null,
    stderr: tail,
  });
  if (ran.healthz !== undefined) expect(ran.healthz, `${ran.command}: GET /healthz`).toBe(200);
}

async function verify(command: DocCommand, text: string, ran: Ran[]): Promise<void> {
  const check = CHECKS[command.text];
  if (text.endsWith("&")) ran.forEach(expectStarted);
  else ran.forEach((each) => expectClean(each, check?.exit));
  if (check?.verify) {
    expect(ran, "one command ran").toHaveLength(1);
    await check.verify(ran[0]!, context(command));
  } else if (command.comment || command.output)
    expect(check, "the doc says what this prints: teach doc-commands-checks.ts to check it").toBeDefined();
}

async function checkCommand(command: DocCommand): Promise<void> {
  if (command.origin === "shell") {
    const parts = command.text.split(" && ");
    for (const part of parts.filter((text) => text in LISTED)) await LISTED[part]!.check(scratch);
    // Lines whose every part is listed are not run.
    const ran = await lines.get(key(command));
    if (ran && ran.length > 0) await verify(command, parts.at(-1)!, ran);
    return;
  }
  for (const part of partsOf(command)) {
    if (part.kind === "listed") await LISTED[part.text]!.check(scratch);
    else if (part.kind === "mention") expect(commandNames).toContain(part.name);
    else if (part.kind === "help") {
      for (const name of commandNames) {
        const ran = await runLine(`workforce ${name} --help`, docsEnv);
        expectClean(ran);
        expect(ran.stdout).toMatch(new RegExp(`^Usage: workforce ${name}\\b`));
      }
    } else if (part.kind === "npx") {
      // From a clone, npx finds the package's own bin without the registry.
      const ran = await runLine("npx --no-install workforce --version", docsEnv);
      expectClean(ran);
      expect(ran.stdout.trim()).toBe(
        JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).version,
      );
    } else {
      const id = `${new Session(scratch, docsEnv).map(part.text)} ${JSON.stringify(command.env ?? {})}`;
      await verify(command, part.text, await runs.get(id)!);
    }
  }
}

describe("every command of the README and docs/ runs as documented", () => {
  test.each(commands.map((command) => [`${key(command)} ${command.text}`, command] as const))(
    "%s",
    async (_name, command) => {
      if (!hasPythonSdk && command.text.startsWith("/usr/bin/python3")) {
        console.warn(
          `skipped ${command.text}: /usr/bin/python3 has no azure-servicebus (.ci/run installs it)`,
        );
        return;
      }
      await checkCommand(command);
    },
    150_000,
  );
});

describe("the docs cannot drift from this test", () => {
  test("every listed command is one the docs still show", () => {
    const texts = new Set(shown.flatMap((command) => command.text.split(" && ")));
    expect(Object.keys(LISTED).filter((text) => !texts.has(text))).toEqual([]);
  });

  test("every check is for a command the docs still show", () => {
    const texts = new Set(shown.map((command) => command.text));
    expect(Object.keys(CHECKS).filter((text) => !texts.has(text))).toEqual([]);
  });

  test("a command that is neither listed nor known is run (and fails if it cannot); unknown placeholders are refused", () => {
    const helm = {
      file: "docs/x.md",
      line: 1,
      text: "helm upgrade wf helm/workforce-autoscaler",
      origin: "inline",
    } as const;
    expect(partsOf(helm)).toEqual([{ kind: "run", text: helm.text }]);
    expect(() => new Session(scratch, {}).map("workforce hire N --region R --budget B")).toThrow(
      /placeholder B/,
    );
  });

  test("every Azure role the docs name is a built-in role's exact name", () => {
    const known = new Set([
      "AzureML Data Scientist",
      "Storage Queue Data Reader",
      "Storage Queue Data Contributor",
      "Storage Blob Data Contributor",
      "Azure Service Bus Data Owner",
      "Azure Service Bus Data Sender",
      "Azure Service Bus Data Receiver",
      "AcrPull",
      "Key Vault Secrets User",
    ]);
    const candidates =
      /\b(?:(?:Azure Service Bus|Storage Queue|Storage Blob) Data(?: Message)? [A-Z]\w+|AzureML \w+ (?:Scientist|Operator|User)|Acr\w+|Key Vault \w+ (?:User|Officer|Reader))\b/g;
    for (const file of DOC_FILES) {
      const named = readFileSync(join(REPO_ROOT, file), "utf8").match(candidates) ?? [];
      expect(
        [...new Set(named)].filter((role) => !known.has(role)),
        file,
      ).toEqual([]);
    }
  });

  test("README's and deploy.md's role tables give the daemon the same roles", () => {
    const rolesIn = (file: string, rows: RegExp) =>
      new Set(
        [...readFileSync(join(REPO_ROOT, file), "utf8").matchAll(rows)].flatMap((row) =>
          row[1]!.split(";").map((role) => role.replace(/\(.*\)/, "").trim()),
        ),
      );
    const readme = rolesIn("README.md", /^\| Daemon[^|]* \| ([^|]+) \|/gm);
    const deploy = rolesIn("docs/deploy.md", /^\| (?!What|---)[^|]+ \| ([^|]+) \| [^|]+ \|$/gm);
    expect([...readme].sort()).toEqual([...deploy].sort());
    expect(rolesIn("README.md", /^\| Workers[^|]* \| ([^|]+) \|/gm)).toEqual(
      new Set(["Storage Queue Data Contributor", "Azure Service Bus Data Receiver"]),
    );
  });

  test("the docs show the commands this test is about", () => {
    expect(shown.filter((command) => command.origin === "shell").length).toBeGreaterThan(30);
    expect(parseYaml(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).scripts.start).toBe(
      "node dist/src/cli/main.js demo",
    );
  });
});
