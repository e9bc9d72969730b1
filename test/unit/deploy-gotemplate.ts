/**
 * A small Go-template evaluator for the subset of Helm templating our chart uses, so the deploy tests can
 * render the chart without a helm binary. Unknown functions, unknown actions and printing a missing value
 * throw, so a template edit outside the subset fails the test loudly instead of passing unchecked.
 * Supported: {{ }} with - trimming, comments, if / else if / else, with / else, range (lists and maps,
 * with $i, $v :=), define, include, variables, pipelines, parentheses, and the Sprig functions listed in
 * FUNCTIONS.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are untyped YAML, read by path */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml, parseAllDocuments, stringify as toYamlText } from "yaml";

type Value = unknown;

type Arg =
  | { kind: "field"; base: "dot" | "root" | "var"; name?: string; path: string[] }
  | { kind: "literal"; value: Value }
  | { kind: "ident"; name: string }
  | { kind: "pipeline"; pipeline: Pipeline };
interface Pipeline {
  declare: string[];
  commands: Arg[][];
}
type Node =
  | { kind: "text"; text: string }
  | { kind: "action"; pipeline: Pipeline }
  | { kind: "if" | "with"; pipeline: Pipeline; then: Node[]; otherwise: Node[] }
  | { kind: "range"; pipeline: Pipeline; body: Node[]; otherwise: Node[] };

// ---------- lexing ----------

interface Token {
  text?: string;
  action?: string;
}

function lexTemplate(source: string, where: string): Token[] {
  const tokens: Token[] = [];
  let position = 0;
  while (position < source.length) {
    const open = source.indexOf("{{", position);
    if (open < 0) {
      tokens.push({ text: source.slice(position) });
      break;
    }
    let text = source.slice(position, open);
    const close = source.indexOf("}}", open);
    if (close < 0) throw new Error(`${where}: unclosed {{`);
    let inner = source.slice(open + 2, close);
    let after = close + 2;
    if (/^-\s/.test(inner)) {
      text = text.replace(/\s+$/, "");
      inner = inner.slice(1);
    }
    if (/\s-$/.test(inner)) {
      inner = inner.slice(0, -1);
      const rest = source.slice(after);
      after += rest.length - rest.replace(/^\s+/, "").length;
    }
    tokens.push({ text });
    const trimmed = inner.trim();
    if (!(trimmed.startsWith("/*") && trimmed.endsWith("*/"))) tokens.push({ action: trimmed });
    position = after;
  }
  return tokens.filter((token) => token.action !== undefined || token.text !== "");
}

function splitWords(action: string, where: string): string[] {
  const words: string[] = [];
  const pattern = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|:=|[()|,]|[^\s()|,"`]+)/y;
  let match: RegExpExecArray | null;
  let index = 0;
  while (index < action.length) {
    pattern.lastIndex = index;
    match = pattern.exec(action);
    if (!match) {
      if (action.slice(index).trim() === "") break;
      throw new Error(`${where}: cannot read "${action.slice(index)}"`);
    }
    words.push(match[1]!);
    index = pattern.lastIndex;
  }
  return words;
}

// ---------- parsing ----------

function parsePipeline(words: string[], where: string): Pipeline {
  let cursor = 0;
  const declare: string[] = [];
  const assign = words.indexOf(":=");
  if (assign > 0 && words.slice(0, assign).every((word) => word === "," || word.startsWith("$"))) {
    declare.push(...words.slice(0, assign).filter((word) => word !== ","));
    cursor = assign + 1;
  }
  const commands: Arg[][] = [[]];
  while (cursor < words.length) {
    const word = words[cursor]!;
    if (word === "|") {
      commands.push([]);
      cursor++;
      continue;
    }
    if (word === "(") {
      let depth = 1;
      let end = cursor + 1;
      for (; end < words.length && depth > 0; end++) {
        if (words[end] === "(") depth++;
        if (words[end] === ")") depth--;
      }
      if (depth !== 0) throw new Error(`${where}: unbalanced parentheses`);
      commands
        .at(-1)!
        .push({ kind: "pipeline", pipeline: parsePipeline(words.slice(cursor + 1, end - 1), where) });
      cursor = end;
      continue;
    }
    commands.at(-1)!.push(parseArg(word, where));
    cursor++;
  }
  if (commands.some((command) => command.length === 0))
    throw new Error(`${where}: empty command in pipeline`);
  return { declare, commands };
}

function parseArg(word: string, where: string): Arg {
  if (word.startsWith('"')) return { kind: "literal", value: JSON.parse(word) };
  if (word.startsWith("`")) return { kind: "literal", value: word.slice(1, -1) };
  if (/^-?\d+(\.\d+)?$/.test(word)) return { kind: "literal", value: Number(word) };
  if (word === "true" || word === "false") return { kind: "literal", value: word === "true" };
  if (word === "nil") return { kind: "literal", value: undefined };
  if (word === ".") return { kind: "field", base: "dot", path: [] };
  if (word.startsWith(".")) return { kind: "field", base: "dot", path: word.slice(1).split(".") };
  if (word === "$") return { kind: "field", base: "root", path: [] };
  if (word.startsWith("$.")) return { kind: "field", base: "root", path: word.slice(2).split(".") };
  if (word.startsWith("$")) {
    const [name, ...path] = word.split(".");
    return { kind: "field", base: "var", name: name!, path };
  }
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) return { kind: "ident", name: word };
  throw new Error(`${where}: unexpected "${word}"`);
}

function parseNodes(tokens: Token[], where: string): { defines: Map<string, Node[]>; nodes: Node[] } {
  const defines = new Map<string, Node[]>();
  let index = 0;
  // Parses until one of the stop keywords; returns the nodes and the keyword action that stopped it.
  function parseUntil(stops: string[]): { nodes: Node[]; stop?: string } {
    const nodes: Node[] = [];
    while (index < tokens.length) {
      const token = tokens[index++]!;
      if (token.text !== undefined) {
        nodes.push({ kind: "text", text: token.text });
        continue;
      }
      const action = token.action!;
      const keyword = action.split(/\s+/)[0]!;
      if (stops.includes(keyword)) return { nodes, stop: action };
      if (keyword === "if" || keyword === "with" || keyword === "range") {
        nodes.push(parseBlock(keyword, action.slice(keyword.length)));
      } else if (keyword === "define") {
        const name = JSON.parse(action.slice("define".length).trim()) as string;
        const body = parseUntil(["end"]);
        if (body.stop === undefined) throw new Error(`${where}: define "${name}" has no end`);
        defines.set(name, body.nodes);
      } else if (["end", "else", "template", "block", "break", "continue"].includes(keyword)) {
        throw new Error(`${where}: unexpected or unsupported {{ ${action} }}`);
      } else {
        nodes.push({ kind: "action", pipeline: parsePipeline(splitWords(action, where), where) });
      }
    }
    if (stops.length > 0) throw new Error(`${where}: missing {{ end }}`);
    return { nodes };
  }
  function parseBlock(keyword: "if" | "with" | "range", rest: string): Node {
    const pipeline = parsePipeline(splitWords(rest, where), where);
    const first = parseUntil(["else", "end"]);
    let otherwise: Node[] = [];
    if (first.stop?.startsWith("else")) {
      const elseRest = first.stop.slice("else".length).trim();
      if (elseRest.startsWith("if ") || elseRest.startsWith("with ")) {
        // "else if" chains share the outer block's {{ end }}.
        const inner = elseRest.startsWith("if ") ? "if" : "with";
        otherwise = [parseBlock(inner, elseRest.slice(inner.length))];
        return keyword === "range"
          ? { kind: "range", pipeline, body: first.nodes, otherwise }
          : { kind: keyword, pipeline, then: first.nodes, otherwise };
      }
      const second = parseUntil(["end"]);
      otherwise = second.nodes;
    }
    return keyword === "range"
      ? { kind: "range", pipeline, body: first.nodes, otherwise }
      : { kind: keyword, pipeline, then: first.nodes, otherwise };
  }
  const { nodes } = parseUntil([]);
  return { defines, nodes };
}

// ---------- evaluation ----------

function truthy(value: Value): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === "") return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object") return Object.keys(value as object).length > 0;
  return true;
}

function goString(value: Value): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw new Error(`cannot print ${JSON.stringify(value)} as text (use toYaml)`);
}

function goPrintf(format: string, args: Value[]): string {
  let next = 0;
  return format.replace(/%[sdvq%]/g, (verb) => {
    if (verb === "%%") return "%";
    const value = args[next++];
    return verb === "%q" ? JSON.stringify(goString(value)) : goString(value);
  });
}

interface Scope {
  dot: Value;
  root: Value;
  vars: Map<string, Value>;
}

export interface Chart {
  dir: string;
  chart: Record<string, unknown>;
  defines: Map<string, Node[]>;
  /** Template files that produce output (not _*.tpl), by path relative to the chart. */
  templates: Map<string, Node[]>;
}

export function loadChart(dir: string): Chart {
  const chart = parseYaml(readFileSync(join(dir, "Chart.yaml"), "utf8")) as Record<string, unknown>;
  const defines = new Map<string, Node[]>();
  const templates = new Map<string, Node[]>();
  const name = String(chart.name);
  for (const file of readdirSync(join(dir, "templates")).sort()) {
    const relative = `templates/${file}`;
    const parsed = parseNodes(lexTemplate(readFileSync(join(dir, relative), "utf8"), relative), relative);
    for (const [defineName, body] of parsed.defines) defines.set(defineName, body);
    if (file.startsWith("_") || file.endsWith(".txt")) continue;
    templates.set(relative, parsed.nodes);
    // Helm lets a template include another by its path (used for checksum annotations).
    defines.set(`${name}/${relative}`, parsed.nodes);
  }
  return { dir, chart, defines, templates };
}

export interface Release {
  name: string;
  namespace: string;
}

/** Render every template with the given values; returns the output text by template path. */
export function renderChart(chart: Chart, values: unknown, release: Release): Map<string, string> {
  const chartName = String(chart.chart.name);
  const out = new Map<string, string>();
  for (const [path, nodes] of chart.templates) {
    const root = {
      Values: values,
      Release: { Name: release.name, Namespace: release.namespace, Service: "Helm", IsInstall: true },
      Chart: {
        Name: chart.chart.name,
        Version: chart.chart.version,
        AppVersion: chart.chart.appVersion,
      },
      Template: { Name: `${chartName}/${path}`, BasePath: `${chartName}/templates` },
      Files: { Get: (file: string) => readFileSync(join(chart.dir, file), "utf8") },
    };
    out.set(path, renderNodes(chart, nodes, { dot: root, root, vars: new Map([["$", root]]) }, path));
  }
  return out;
}

/** Render and parse: every non-empty YAML document of every template. */
export function renderManifests(chart: Chart, values: unknown, release: Release): Record<string, any>[] {
  const documents: Record<string, any>[] = [];
  for (const [path, text] of renderChart(chart, values, release)) {
    for (const document of parseAllDocuments(text)) {
      if (document.errors.length > 0) {
        throw new Error(`${path} renders invalid YAML: ${document.errors[0]!.message}\n${text}`);
      }
      const parsed = document.toJS() as unknown;
      if (parsed !== null && parsed !== undefined) documents.push(parsed as Record<string, any>);
    }
  }
  return documents;
}

function renderNodes(chart: Chart, nodes: Node[], scope: Scope, where: string): string {
  let out = "";
  for (const node of nodes) {
    switch (node.kind) {
      case "text":
        out += node.text;
        break;
      case "action": {
        const value = evalPipeline(chart, node.pipeline, scope, where);
        if (node.pipeline.declare.length > 0) break;
        if (value === undefined)
          throw new Error(`${where}: prints a missing value (${describe(node.pipeline)})`);
        out += goString(value);
        break;
      }
      case "if":
      case "with": {
        const inner: Scope = { ...scope, vars: new Map(scope.vars) };
        const value = evalPipeline(chart, node.pipeline, inner, where);
        if (truthy(value)) {
          if (node.kind === "with") inner.dot = value;
          out += renderNodes(chart, node.then, inner, where);
        } else {
          out += renderNodes(chart, node.otherwise, scope, where);
        }
        break;
      }
      case "range": {
        const value = evalPipeline(chart, { declare: [], commands: node.pipeline.commands }, scope, where);
        const entries: [Value, Value][] = Array.isArray(value)
          ? value.map((item, index) => [index, item])
          : value && typeof value === "object"
            ? Object.keys(value)
                .sort()
                .map((key) => [key, (value as Record<string, Value>)[key]])
            : [];
        if (entries.length === 0) out += renderNodes(chart, node.otherwise, scope, where);
        for (const [key, item] of entries) {
          const vars = new Map(scope.vars);
          const names = node.pipeline.declare;
          if (names.length === 1) vars.set(names[0]!, item);
          if (names.length === 2) {
            vars.set(names[0]!, key);
            vars.set(names[1]!, item);
          }
          out += renderNodes(chart, node.body, { ...scope, dot: item, vars }, where);
        }
        break;
      }
    }
  }
  return out;
}

function describe(pipeline: Pipeline): string {
  return JSON.stringify(
    pipeline.commands.map((command) => command.map((arg) => ("path" in arg ? arg.path.join(".") : arg.kind))),
  );
}

function lookup(base: Value, path: string[], where: string): Value {
  let current = base;
  for (const [index, part] of path.entries()) {
    if (current === undefined || current === null || typeof current !== "object") {
      throw new Error(`${where}: nil pointer evaluating .${path.slice(0, index).join(".")}.${part}`);
    }
    current = (current as Record<string, Value>)[part];
  }
  return current;
}

function evalArg(chart: Chart, arg: Arg, scope: Scope, where: string, extra: Value[] = []): Value {
  switch (arg.kind) {
    case "literal":
      return arg.value;
    case "pipeline":
      return evalPipeline(chart, arg.pipeline, scope, where);
    case "ident":
      return callFunction(chart, arg.name, extra, scope, where);
    case "field": {
      let base: Value;
      if (arg.base === "dot") base = scope.dot;
      else if (arg.base === "root") base = scope.root;
      else {
        if (!scope.vars.has(arg.name!)) throw new Error(`${where}: undefined variable ${arg.name}`);
        base = scope.vars.get(arg.name!);
      }
      const value = lookup(base, arg.path, where);
      return typeof value === "function" ? (value as (...args: Value[]) => Value)(...extra) : value;
    }
  }
}

function evalPipeline(chart: Chart, pipeline: Pipeline, scope: Scope, where: string): Value {
  let piped: Value;
  let hasPiped = false;
  for (const command of pipeline.commands) {
    const [head, ...rest] = command;
    const args = rest.map((arg) => evalArg(chart, arg, scope, where));
    if (hasPiped) args.push(piped);
    if (head!.kind === "ident" || (head!.kind === "field" && args.length > 0)) {
      piped = evalArg(chart, head!, scope, where, args);
    } else {
      if (args.length > 0) throw new Error(`${where}: ${describe(pipeline)} is not a function`);
      piped = evalArg(chart, head!, scope, where);
    }
    hasPiped = true;
  }
  if (pipeline.declare.length === 1) scope.vars.set(pipeline.declare[0]!, piped);
  return piped;
}

function indent(spaces: number, text: string): string {
  const pad = " ".repeat(spaces);
  return text
    .split("\n")
    .map((line) => pad + line)
    .join("\n");
}

function callFunction(chart: Chart, name: string, args: Value[], scope: Scope, where: string): Value {
  const str = (index: number) => goString(args[index]);
  switch (name) {
    case "include": {
      const body = chart.defines.get(str(0));
      if (!body) throw new Error(`${where}: include of unknown template "${str(0)}"`);
      return renderNodes(chart, body, { ...scope, dot: args[1], vars: new Map([["$", scope.root]]) }, where);
    }
    case "default":
      return truthy(args[1]) ? args[1] : args[0];
    case "quote":
      return args
        .map((arg) => (arg === undefined || arg === null ? "" : JSON.stringify(goString(arg))))
        .join(" ");
    case "toYaml":
      return args[0] === undefined || args[0] === null ? "null" : toYamlText(args[0]).replace(/\n$/, "");
    case "nindent":
      return `\n${indent(Number(args[0]), str(1))}`;
    case "indent":
      return indent(Number(args[0]), str(1));
    case "trunc":
      return str(1).slice(0, Number(args[0]));
    case "trimSuffix":
      return str(1).endsWith(str(0)) ? str(1).slice(0, -str(0).length || undefined) : str(1);
    case "contains":
      return str(1).includes(str(0));
    case "printf":
      return goPrintf(str(0), args.slice(1));
    case "print":
      return args.map((arg) => goString(arg)).join("");
    case "sha256sum":
      return createHash("sha256").update(str(0)).digest("hex");
    case "dict": {
      const result: Record<string, Value> = {};
      for (let index = 0; index + 1 < args.length; index += 2) result[str(index)] = args[index + 1];
      return result;
    }
    case "upper":
      return str(0).toUpperCase();
    case "snakecase":
      // Sprig (xstrings.ToSnakeCase): an underscore before each upper-case letter that follows a lower-case
      // letter or digit, then lower case.
      return str(0)
        .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
        .toLowerCase();
    case "not":
      return !truthy(args[0]);
    case "and":
      return args.find((arg) => !truthy(arg)) ?? args.at(-1);
    case "or":
      return args.find((arg) => truthy(arg)) ?? args.at(-1);
    case "eq":
      return args.slice(1).some((arg) => arg === args[0]);
    case "ne":
      return args[0] !== args[1];
    case "required":
      if (!truthy(args[1])) throw new Error(`${where}: required: ${str(0)}`);
      return args[1];
    default:
      throw new Error(
        `${where}: function "${name}" is not supported by the test renderer (add it to deploy-gotemplate.ts)`,
      );
  }
}
