/* eslint-disable @typescript-eslint/no-explicit-any -- examples are untyped YAML, read by path */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv } from "ajv";
import type { Command } from "commander";
import { parse as parseYaml, stringify } from "yaml";
import { describe, expect, test } from "vitest";
import { buildProgram } from "../../src/cli/main.js";
import { resolveConfig } from "../../src/config/load.js";
import { knownVariables } from "../../src/config/variables.js";
import { loadJobTemplate } from "../../src/regions/azureml/template.js";
import { REPO_ROOT } from "../support/cli.js";
import { loadChart, renderManifests } from "./deploy-gotemplate.js";

// Examples are tests: every YAML block of the README and docs/ is loaded by the code that would read it,
// and every `workforce ...` command they show parses with the real command line, so a wrong example fails.

const DOCS = ["README.md", ...readdirSync(join(REPO_ROOT, "docs")).map((file) => `docs/${file}`)].filter(
  (file) => file.endsWith(".md"),
);
const CHART_DIR = join(REPO_ROOT, "helm", "workforce-autoscaler");
const chart = loadChart(CHART_DIR);
const validateValues = new Ajv({ allErrors: true, strict: false }).compile(
  JSON.parse(readFileSync(join(CHART_DIR, "values.schema.json"), "utf8")),
);
const scratch = mkdtempSync(join(tmpdir(), "wf-doc-examples-"));

interface Block {
  file: string;
  line: number;
  lang: string;
  text: string;
}

function blocks(file: string): Block[] {
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].map((match) => ({
    file,
    line: text.slice(0, match.index).split("\n").length,
    lang: match[1]!,
    text: match[2]!,
  }));
}

const allBlocks = DOCS.flatMap(blocks);
const yamlBlocks = allBlocks.filter((block) => block.lang === "yaml");

/** Placeholders such as <version> or `...` become values the loaders accept. */
function fillPlaceholders(text: string): string {
  return text.replace(/<[^<>\n]+>/g, "x1");
}

function loadAsConfigFile(document: unknown): ReturnType<typeof resolveConfig> {
  const path = join(scratch, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, stringify(document));
  return resolveConfig({ env: { WORKFORCE_CONFIG: path } });
}

const PLACEHOLDER = /^(\$?[A-Z][A-Z_]*|\$\{?\w+\}?)$/;

/** Commander's verdict on an argv, without running the command: unknown command, option or operand. */
function commandProblem(argv: readonly string[]): string | undefined {
  const program = buildProgram();
  const [name, ...args] = argv;
  if (name?.startsWith("-")) {
    // Options of the program itself (`workforce --help`, `workforce --version`).
    const options = program.createHelp().visibleOptions(program);
    const unknownOption = argv.find(
      (word) => word.startsWith("-") && !options.some((o) => o.short === word || o.long === word),
    );
    return unknownOption === undefined ? undefined : `unknown option ${unknownOption}`;
  }
  const command = program.commands.find((candidate: Command) => candidate.name() === name);
  if (!command) return `unknown command ${JSON.stringify(name)}`;
  command.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  let parsed: { operands: string[]; unknown: string[] };
  try {
    parsed = command.parseOptions([...args]);
  } catch (error) {
    // A placeholder (N, QUEUE, $QUEUE) is not a valid value for a parsed option; anything else is a bug.
    if (args.some((word) => PLACEHOLDER.test(word))) return undefined;
    return (error as Error).message;
  }
  const { operands, unknown } = parsed;
  if (unknown.length > 0 && unknown[0]!.startsWith("-")) return `unknown option ${unknown[0]}`;
  const declared = command.registeredArguments;
  const variadic = declared.some((argument) => argument.variadic);
  if (!variadic && operands.length + unknown.length > declared.length)
    return `too many arguments: ${[...operands, ...unknown].join(" ")}`;
  return undefined;
}

/** Shell words of a command line up to its first operator (|, &&, ;, &, a redirection); quotes kept apart. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === "'" || char === '"') {
      const close = line.indexOf(char, i + 1);
      current += line.slice(i + 1, close < 0 ? undefined : close);
      inWord = true;
      i = close < 0 ? line.length : close;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else if (/[|;&<>]/.test(char) || (char === "2" && line[i + 1] === ">" && !inWord)) {
      break;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}

/** `workforce ...` in one command line: synopsis brackets and ellipses dropped, comments cut. */
function workforceCommand(line: string): string[] | undefined {
  const match = /(?:^|\s)(?:npx )?workforce (.*)$/.exec(line.replace(/\s#\s.*$/, ""));
  if (!match) return undefined;
  const words = shellWords(match[1]!.replace(/\[|\]|\.\.\./g, " ")).filter((word) => word !== "");
  // The wrapped command after `--` is the worker's, not ours.
  const end = words.indexOf("--");
  return end >= 0 ? words.slice(0, end + 1) : words;
}

/** Commands in code: shell and plain fenced blocks, inline code spans, and YAML `command:` values. */
function docCommands(file: string): string[][] {
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  const lines: string[] = [];
  for (const block of blocks(file)) {
    // A command continued over several lines with `\` is one command line.
    if (block.lang === "sh" || block.lang === "")
      lines.push(...block.text.replace(/\\\n\s*/g, " ").split("\n"));
  }
  const prose = text.replace(/^```[\s\S]*?^```/gm, "");
  for (const match of prose.matchAll(/`([^`\n]+)`/g)) lines.push(match[1]!);
  return lines
    .map(workforceCommand)
    .filter((argv): argv is string[] => argv !== undefined && argv.length > 0);
}

/** What a YAML block is, by its shape, and the loader that reads it. */
function checkYamlBlock(block: Block): { kind: string; problems: string[] } {
  const document = parseYaml(fillPlaceholders(block.text)) as any;
  if (Array.isArray(document) && document.every((item) => item && typeof item.kind === "string")) {
    const resolved = loadAsConfigFile({ regions: document });
    return { kind: "region list item", problems: resolved.problems.map((p) => `${p.where}: ${p.message}`) };
  }
  if (document && typeof document === "object" && ("image" in document || "configFiles" in document)) {
    // Helm validates the user's values merged over the chart's defaults.
    const problems = validateValues(mergeChartDefaults(document))
      ? []
      : (validateValues.errors ?? []).map((error) => `${error.instancePath} ${error.message}`);
    const manifests = renderManifests(chart, mergeChartDefaults(document), {
      name: "wf",
      namespace: "batch",
    });
    const configMap = manifests.find((manifest) => manifest.kind === "ConfigMap")!;
    const daemonFile = parseYaml(configMap.data["config.yaml"]);
    problems.push(
      ...loadAsConfigFile(daemonFile).problems.map((p) => `config.yaml: ${p.where}: ${p.message}`),
    );
    for (const [name, text] of Object.entries(document.configFiles ?? {})) {
      const parsed = parseYaml(String(text));
      if (parsed && typeof parsed === "object" && "command" in parsed)
        problems.push(...templateProblems(parsed, name));
    }
    return { kind: "Helm values", problems };
  }
  if (document && typeof document === "object" && ("regions" in document || "queue" in document)) {
    const resolved = loadAsConfigFile(document);
    return { kind: "config file", problems: resolved.problems.map((p) => `${p.where}: ${p.message}`) };
  }
  if (document && typeof document === "object" && "command" in document) {
    // A whole job template, or the part of one a doc is about (command and variables).
    const problems = "environment" in document ? templateProblems(document, "template") : [];
    const argv = workforceCommand(String(document.command));
    const problem = argv ? commandProblem(argv) : undefined;
    if (problem) problems.push(`command: ${problem}`);
    for (const name of Object.keys(document.environment_variables ?? {}))
      if (name.startsWith("WORKFORCE_") && !knownVariables().includes(name))
        problems.push(`environment_variables: unknown ${name}`);
    return { kind: "job template", problems };
  }
  return {
    kind: "unknown",
    problems: ["no loader recognises this block: teach doc-examples.test.ts its shape"],
  };
}

function templateProblems(document: unknown, where: string): string[] {
  try {
    loadJobTemplate(document as Record<string, unknown>, "workforce-env");
    return [];
  } catch (error) {
    return [`${where}: ${(error as Error).message}`];
  }
}

function mergeChartDefaults(values: Record<string, unknown>): Record<string, unknown> {
  const defaults = parseYaml(readFileSync(join(CHART_DIR, "values.yaml"), "utf8")) as Record<string, any>;
  const merged: Record<string, any> = structuredClone(defaults);
  for (const [key, value] of Object.entries(values)) {
    merged[key] =
      value && typeof value === "object" && !Array.isArray(value) ? { ...merged[key], ...value } : value;
  }
  return merged;
}

describe("every YAML example in the README and docs/ loads with the code that reads it", () => {
  test("there are examples of each kind", () => {
    const kinds = new Set(yamlBlocks.map((block) => checkYamlBlock(block).kind));
    for (const kind of ["config file", "region list item", "Helm values", "job template"])
      expect(kinds, kind).toContain(kind);
  });

  test.each(yamlBlocks.map((block) => [`${block.file}:${block.line}`, block]))("%s", (_where, block) => {
    expect(checkYamlBlock(block).problems).toEqual([]);
  });
});

describe("every `workforce ...` command the docs show parses", () => {
  const commands = DOCS.flatMap((file) =>
    docCommands(file).map((argv) => [file, argv.join(" "), argv] as const),
  );

  test("the docs show commands", () => {
    expect(commands.length).toBeGreaterThan(20);
  });

  test.each(commands)("%s: workforce %s", (_file, _text, argv) => {
    expect(commandProblem([...argv])).toBeUndefined();
  });

  test("the checker catches a wrong option of the program itself", () => {
    expect(commandProblem(["--helpp"])).toBe("unknown option --helpp");
  });

  test("the checker catches a wrong option (the old azureml.md job command)", () => {
    expect(commandProblem(["worker", "--queue", "$QUEUE", "--concurrency", "4"])).toBe(
      "unknown option --queue",
    );
  });
});

describe("the deploy/ manifests' templates load", () => {
  test("deploy/containerapp.yaml's region templates are jobs the daemon accepts", () => {
    const app = parseYaml(readFileSync(join(REPO_ROOT, "deploy", "containerapp.yaml"), "utf8")) as any;
    const regions = app.properties.template.containers[0].env.find(
      (e: any) => e.name === "WORKFORCE_REGIONS",
    );
    const parsed = JSON.parse(fillPlaceholders(regions.value)) as any[];
    for (const region of parsed) expect(templateProblems(region.template, region.name)).toEqual([]);
  });
});

describe("the docs agree with each other", () => {
  test("the workers' queue role is Storage Queue Data Contributor everywhere (they create {queue}-failed)", () => {
    for (const file of DOCS) {
      const text = readFileSync(join(REPO_ROOT, file), "utf8");
      expect(text, file).not.toMatch(/Storage Queue Data Message Processor/);
    }
  });

  test("every WORKFORCE_* variable the docs name exists (or is a service link or a typo shown as one)", () => {
    const shownAsExamples = /^WORKFORCE_(AUTOSCALER_\w+|DRYRUN|CONCURENCY|METRIC_PORT|MAX_WORKES)$/;
    for (const file of DOCS) {
      const names =
        readFileSync(join(REPO_ROOT, file), "utf8").match(/\bWORKFORCE_[A-Z0-9_]*[A-Z0-9]\b/g) ?? [];
      const unknown = [...new Set(names)].filter(
        (name) => !knownVariables().includes(name) && !shownAsExamples.test(name),
      );
      expect(unknown, file).toEqual([]);
    }
  });
});
