import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueueClient } from "@azure/storage-queue";
import pLimit from "p-limit";
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
import { isLongRunning, Session, type Hooks, type Ran } from "./doc-commands-session.js";
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

type Part =
  | { kind: "listed"; text: string }
  | { kind: "mention"; name: string }
  | { kind: "help" }
  | { kind: "npx" }
  | { kind: "run"; text: string };

/** What the test does with each `&&`-separated part of a command that is not in a shell block. */
function partsOf(command: DocCommand): Part[] {
  return command.text.split(" && ").map((text): Part => {
    if (text in LISTED) return { kind: "listed", text };
    const mention = /^workforce ([a-z-]+)$/.exec(text);
    if (mention) return { kind: "mention", name: mention[1]! };
    if (text === "workforce <command> --help") return { kind: "help" };
    if (text === "npx workforce ...") return { kind: "npx" };
    return { kind: "run", text };
  });
}

let azurite: AzuriteInstance;
let arm: ArmEmulator;
let ml: MlApiEmulator;
let bus: ServiceBusEmulator;
let docsEnv: Record<string, string>;
const started: Session[] = [];
/** Each run, by what ran (the same mapped command in two docs runs once). */
const runs = new Map<string, Promise<Ran[]>>();
/** Each shell line's run, by file:line. */
const lines = new Map<string, Promise<Ran[]>>();

const key = (command: DocCommand) => `${command.file}:${command.line}`;
let peersUp!: () => void;
/** Resolves once the shared peers are up (beforeAll), so the runs scheduled at load can start. */
const ready = { promise: new Promise<void>((resolve) => (peersUp = resolve)) };

/** Runs `work` after `previous` has settled (a chain of commands that share state). */
function after(previous: Promise<unknown>, work: () => Promise<Ran[]>): Promise<Ran[]> {
  const next = previous.then(work, work);
  next.catch(() => undefined); // reported by the command's own test
  return next;
}

/** At most `limit` of the independent commands at once: two cores, and other test files run too. */
function pool(limit: number): (work: () => Promise<Ran[]>) => Promise<Ran[]> {
  const run = pLimit(limit);
  return (work) => {
    const next = run(work);
    next.catch(() => undefined); // reported by the command's own test
    return next;
  };
}

/** The region's commands read a queue of their own, kept empty: the queue's chain runs beside them. */
const REGION_QUEUE = "region-tasks";

function docsSession(command: DocCommand, chain?: "region" | "queue"): Session {
  const env: Record<string, string> = {
    ...docsEnv,
    ...(chain === "region" ? { WORKFORCE_QUEUE: REGION_QUEUE } : {}),
  };
  for (const [name, value] of Object.entries(command.env ?? {})) {
    // A job's namespace becomes the emulator's connection string: no Entra ID here.
    if (name === "WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE")
      env.WORKFORCE_BACK_CHANNEL_CONNECTION_STRING = bus.connectionString;
    else env[name] = value.replace(/^(?:myaccount|mystorageaccount)\//, "");
  }
  const session = new Session(scratch, env);
  started.push(session);
  return session;
}

function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T | Promise<T>) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T | Promise<T>) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((yes, no) => ((resolve = yes), (reject = no)));
  return { promise, resolve, reject };
}

const isDemo = (mapped: string) => /^workforce demo\b/.test(mapped) && !mapped.includes("--help");

/**
 * Starts every run. The demos go first, each starting its own Azurite: they must be up before the other
 * peers and the ~100 other commands load the machine (the demo gives Azurite 20 s). Then, side by side:
 * the docs' stateful commands in doc order (two chains) against the shared peers; each long shell block (the README's
 * walkthrough, the Python one) as its own session; the rest through a pool of two.
 */
function expectPushed(ran: Ran): void {
  if (ran.code !== 0) throw new Error(`could not push the agent's task: ${ran.stderr}`);
}

function blockSession(): Session {
  const session = new Session(scratch, baseEnv(scratch));
  started.push(session);
  return session;
}

/** Schedules every run; resolves once the demos are up (or failed), when the rest may load the machine. */
function schedule(): Promise<unknown> {
  const demosUp: Array<Promise<unknown>> = [];
  /** Hooks that also report when a demo is up (or failed to come up). */
  // One demo starts once the one before is up: each starts an Azurite, which the demo gives 20 s.
  const gated = (mapped: string, hooks: Hooks): Hooks & { before?: Promise<unknown> } => {
    if (!isDemo(mapped)) return hooks;
    const before = Promise.allSettled([...demosUp]);
    let up!: () => void;
    demosUp.push(new Promise<void>((resolve) => (up = resolve)));
    return { ...hooks, before, onStart: (started) => void started.then(up, up) };
  };
  const afterDemos = () => Promise.allSettled(demosUp);
  const independent = pool(2);
  const chains: Record<"region" | "queue", Promise<unknown>> = {
    region: ready.promise,
    queue: ready.promise,
  };
  const blocks = new Map<string, DocCommand[]>();
  for (const command of commands)
    if (command.origin === "shell")
      blocks.set(command.block!, [...(blocks.get(command.block!) ?? []), command]);
  for (const block of blocks.values()) {
    if (block.every((line) => partsOf(line).every((part) => part.kind === "listed"))) continue;
    const session = blockSession();
    const mapped = (part: string) => {
      try {
        return session.map(part);
      } catch {
        return part; // its run reports the error
      }
    };
    const demo = block.some((line) =>
      line.text.split(" && ").some((part) => !(part in LISTED) && isDemo(mapped(part))),
    );
    const results = block.map(() => deferred<Ran[]>());
    const hooksOf = (line: DocCommand, part: string) => gated(mapped(part), CHECKS[line.text] ?? {});
    // Hooks first (they register the demos), then the lines in order, in one session.
    const lineHooks = block.map((line) =>
      line.text
        .split(" && ")
        .filter((part) => !(part in LISTED))
        .map((part) => hooksOf(line, part)),
    );
    const whole = async () => {
      if (!demo) await afterDemos();
      for (const [index, line] of block.entries()) {
        try {
          const ran: Ran[] = [];
          let later: Promise<Ran[]> | undefined;
          const parts = line.text.split(" && ").filter((part) => !(part in LISTED));
          for (const [at, part] of parts.entries()) {
            const done = await session.line(part, lineHooks[index]![at]!);
            ran.push(...done.ran);
            later = done.later;
          }
          results[index]!.resolve(later ?? ran);
        } catch (error) {
          results[index]!.reject(error);
        }
      }
      await session.close();
      return [];
    };
    // The long walkthroughs and the demo's block run on their own; the short blocks share the pool.
    const python = block.some((line) => line.text.startsWith("/usr/bin/python3"));
    const before = lineHooks.flat().find((hooks) => hooks.before)?.before;
    void (demo || python || block.length > 4
      ? after(before ?? Promise.resolve(), whole)
      : independent(whole));
    block.forEach((line, index) => {
      results[index]!.promise.catch(() => undefined);
      lines.set(key(line), results[index]!.promise);
      // The same command shown inline (`npm start`) is this run, not a second one.
      const parts = line.text.split(" && ").filter((part) => !(part in LISTED));
      if (parts.length === 1 && !parts[0]!.endsWith("&"))
        runs.set(`${mapped(parts[0]!)} {}`, results[index]!.promise);
    });
  }
  for (const command of commands) {
    if (command.origin === "shell") continue;
    for (const part of partsOf(command)) {
      if (part.kind !== "run") continue;
      const mapped = new Session(scratch, {}).map(part.text);
      const id = `${mapped} ${JSON.stringify(command.env ?? {})}`;
      if (runs.has(id)) continue;
      // Commands that change state run in doc order, in two chains: the region's (workers, hires) and the
      // queue's with the back channel (tasks, workers, agents, control messages); the rest side by side.
      const chain = /^workforce (status|once|hire|lay-off|scale-to|run)\b/.test(mapped)
        ? "region"
        : /^workforce (push|worker|agent|signal)\b/.test(mapped) || /^"[^"]+" "[^"]+" worker\b/.test(mapped)
          ? "queue"
          : undefined;
      const hooks = gated(mapped, CHECKS[command.text] ?? {});
      // A job's agent on a node with a back channel runs until its worker leaves: the test gives the worker
      // one task of 8 s, checks the agent listens, then stops it as the node would (SIGTERM): the worker
      // finishes its task and both exit 0.
      const nodeAgent = /^workforce agent\b/.test(mapped) && command.env !== undefined;
      const work = async () => {
        if (!isDemo(mapped)) await Promise.all([ready.promise, afterDemos()]);
        // The demos start their own Azurite and need none of the shared peers.
        const session = isDemo(mapped) ? blockSession() : docsSession(command, chain);
        if (nodeAgent) expectPushed(await runLine("workforce push tasks -c 'sleep 8'", session.env));
        return [
          isLongRunning(mapped) || nodeAgent
            ? await session.bounded(mapped, hooks)
            : await runLine(mapped, session.env),
        ];
      };
      const run = isDemo(mapped)
        ? after(hooks.before ?? Promise.resolve(), work)
        : chain
          ? (chains[chain] = after(chains[chain], work))
          : independent(work);
      runs.set(id, run);
    }
  }
  return afterDemos();
}

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
  await schedule();
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
  peersUp();
});

afterAll(async () => {
  const all = await Promise.allSettled([...runs.values(), ...lines.values()]);
  if (process.env.DOC_COMMANDS_REPORT) {
    // A shell line shown inline too is one run: count it once.
    const ran = [...new Set(all.flatMap((result) => (result.status === "fulfilled" ? result.value : [])))];
    for (const each of ran.sort((a, b) => b.ms - a.ms).slice(0, 25))
      console.log(`${String(each.ms).padStart(6)} ms  ${each.command}`);
    console.log(`${ran.length} runs, ${ran.reduce((sum, each) => sum + each.ms, 0)} ms in all`);
  }
  await Promise.allSettled(started.map((session) => session.close()));
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
