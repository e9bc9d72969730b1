import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { REPO_ROOT } from "../support/cli.js";

// Every command the README and docs/ show, as a reader would copy it: the lines of shell blocks (in order,
// a block being one session), synopsis lines of plain blocks, inline code that starts with a command, and
// the `command:` of the job templates and local regions in YAML blocks.

export const DOC_FILES = [
  "README.md",
  ...readdirSync(join(REPO_ROOT, "docs"))
    .filter((file) => file.endsWith(".md"))
    .sort()
    .map((file) => `docs/${file}`),
];

export interface DocCommand {
  file: string;
  line: number;
  /** As written: continuation lines joined, whitespace collapsed, markdown's `\|` unescaped. */
  text: string;
  /** A trailing shell comment: what the doc says the command does or prints. */
  comment?: string;
  origin: "shell" | "synopsis" | "inline" | "job";
  /** Shell lines: the block they belong to (`file:line` of its fence); a block runs in order. */
  block?: string;
  /** Job and local-region commands given as an argv list. */
  argv?: string[];
  /** Job commands: the template's environment_variables. */
  env?: Record<string, string>;
  /** A plain block right after a shell block: what its last command prints. */
  output?: string[];
}

export interface Fence {
  file: string;
  line: number;
  lang: string;
  text: string;
  /** Text between the previous fence (or the file's start) and this one. */
  before: string;
}

export function fences(file: string): Fence[] {
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  const found: Fence[] = [];
  let last = 0;
  for (const match of text.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)) {
    found.push({
      file,
      line: text.slice(0, match.index).split("\n").length,
      lang: match[1]!,
      text: match[2]!,
      before: text.slice(last, match.index),
    });
    last = match.index + match[0].length;
  }
  return found;
}

const SHELL = new Set(["sh", "bash", "shell", "console"]);
/** Inline code that is a command line (not a metric, a file or a package named `workforce...`). */
const INLINE_COMMAND =
  /^(?:[A-Z_]+=\S+ )*(?:workforce (?:<|[a-z])|npx |npm |node |az |helm |kubectl |docker |apt-get |\/usr\/bin\/python3 )/;

function normalize(text: string): string {
  return text.replace(/\\\|/g, "|").replace(/\s+/g, " ").trim();
}

/** A shell line's trailing comment, outside quotes. */
function splitComment(line: string): { text: string; comment?: string } {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (quote) {
      if (char === quote) quote = undefined;
    } else if (char === "'" || char === '"') quote = char;
    else if (char === "#" && (i === 0 || /\s/.test(line[i - 1]!)))
      return { text: line.slice(0, i).trim(), comment: line.slice(i + 1).trim() };
  }
  return { text: line.trim() };
}

function shellCommands(fence: Fence, next: Fence | undefined): DocCommand[] {
  const block = `${fence.file}:${fence.line}`;
  const commands: DocCommand[] = [];
  const lines = fence.text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    while (line.endsWith("\\") && i + 1 < lines.length) line = line.slice(0, -1) + " " + lines[++i]!;
    const { text, comment } = splitComment(line);
    if (text === "") continue;
    commands.push({
      file: fence.file,
      line: fence.line + 1 + start,
      text: normalize(text),
      ...(comment ? { comment } : {}),
      origin: "shell",
      block,
    });
  }
  // A plain block that follows at once is the output of the block's last command.
  if (next && next.lang === "" && next.before.trim() === "" && commands.length > 0)
    commands.at(-1)!.output = next.text.split("\n").filter((l) => l.trim() !== "");
  return commands;
}

/** `command:` values anywhere in a YAML document, including YAML text held in a string (configFiles). */
function yamlCommands(fence: Fence): DocCommand[] {
  const found: DocCommand[] = [];
  const visit = (node: unknown): void => {
    if (typeof node === "string") {
      if (/^command:|\ncommand:/.test(node)) visit(parseYaml(node));
      return;
    }
    if (!node || typeof node !== "object") return;
    if (Array.isArray(node)) return node.forEach(visit);
    const record = node as Record<string, unknown>;
    const command = record.command;
    if (typeof command === "string" || Array.isArray(command)) {
      const argv = Array.isArray(command) ? command.map(String) : undefined;
      const env = record.environment_variables as Record<string, string> | undefined;
      found.push({
        file: fence.file,
        line: fence.line,
        text: normalize(argv ? argv.join(" ") : String(command)),
        origin: "job",
        ...(argv ? { argv } : {}),
        ...(env ? { env } : {}),
      });
    }
    Object.values(record).forEach(visit);
  };
  visit(parseYaml(fence.text));
  return found;
}

export function docCommands(file: string): DocCommand[] {
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  const all = fences(file);
  const commands: DocCommand[] = [];
  all.forEach((fence, index) => {
    if (SHELL.has(fence.lang)) commands.push(...shellCommands(fence, all[index + 1]));
    else if (fence.lang === "yaml") commands.push(...yamlCommands(fence));
    else if (fence.lang === "")
      fence.text.split("\n").forEach((line, offset) => {
        if (line.startsWith("workforce "))
          commands.push({ file, line: fence.line + 1 + offset, text: normalize(line), origin: "synopsis" });
      });
  });
  // Inline code in the prose (fences blanked, so line numbers hold); a span may wrap over lines.
  const prose = text.replace(/^```[\s\S]*?^```/gm, (block) => block.replace(/[^\n]/g, " "));
  for (const match of prose.matchAll(/`([^`]+)`/g)) {
    const span = normalize(match[1]!);
    if (INLINE_COMMAND.test(span))
      commands.push({
        file,
        line: text.slice(0, match.index).split("\n").length,
        text: span,
        origin: "inline",
      });
  }
  return commands.sort((a, b) => a.line - b.line);
}

export function allDocCommands(): DocCommand[] {
  return DOC_FILES.flatMap(docCommands);
}

/** The first YAML block after a sentence naming `name` (e.g. "with `emulators.yaml`"). */
export function namedYamlBlock(file: string, name: string): string {
  const fence = fences(file).find((f) => f.lang === "yaml" && f.before.includes(`\`${name}\``));
  if (!fence) throw new Error(`${file}: no YAML block introduced as \`${name}\``);
  return fence.text;
}
