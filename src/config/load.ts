import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { SETTINGS, type Settings } from "./settings.js";
import { regionListSchema, type RegionConfig } from "./regions.js";

export interface Config extends Settings {
  regions: RegionConfig[];
  /** Where the file came from, if any (for messages). */
  configFile?: string;
}

export { ConfigError, type ConfigProblem } from "./errors.js";
import { ConfigError, type ConfigProblem } from "./errors.js";

export interface LoadOptions {
  /** Environment to read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Regions used when neither the file nor WORKFORCE_REGIONS gives any (e.g. the embedded demo). */
  defaultRegions?: unknown[];
  /** Skip the "at least one region" rule (for commands like `plan` and `push`). */
  regionsOptional?: boolean;
}

const FILE_ENV = "WORKFORCE_CONFIG";
/** Field names whose values are never echoed back. */
const SECRET_FIELD = /connectionstring|key|secret|token|password|sas/i;
const REGIONS_ENV = "WORKFORCE_REGIONS";

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === "number" ? `[${part}]` : `.${String(part)}`)).join("");
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const part of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return current;
}

function issueMessages(
  error: z.ZodError,
  input: unknown,
  where: (path: string) => string,
  secret: boolean,
): ConfigProblem[] {
  return error.issues.flatMap((issue): ConfigProblem[] => {
    // Name the misspelt field itself rather than quoting the whole object around it.
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        where: where(formatPath([...issue.path, key])),
        message: "unknown field (check its spelling)",
      }));
    }
    const value = valueAt(input, issue.path);
    if (value === undefined && issue.code === "invalid_type") {
      return [{ where: where(formatPath(issue.path)), message: `required (expected ${issue.expected})` }];
    }
    const hidden = secret || issue.path.some((part) => SECRET_FIELD.test(String(part)));
    const given = hidden ? "" : `; given ${describeValue(value)}`;
    return [{ where: where(formatPath(issue.path)), message: `${issue.message}${given}` }];
  });
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError([
      { where: FILE_ENV, message: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}` },
    ]);
  }
  let parsed: unknown;
  try {
    // YAML is a superset of JSON, so one parser serves both.
    parsed = parseYaml(text);
  } catch (error) {
    // The parser quotes the offending line, cut to 80 characters: a key cut there escapes redaction.
    const firstLine = (error as Error).message.split("\n")[0]!.replace(/:$/, "");
    throw new ConfigError([{ where: path, message: `not valid YAML or JSON: ${firstLine}` }]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError([
      { where: path, message: `expected a mapping of settings; given ${describeValue(parsed)}` },
    ]);
  }
  return parsed as Record<string, unknown>;
}

/** WORKFORCE_* variables read by the node side (agent, worker), not by the daemon's settings. */
const NODE_SIDE_VARIABLES = [
  "WORKFORCE_BACK_CHANNEL_CONNECTION_STRING",
  "WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE",
  "WORKFORCE_CONTROL_TOPIC_NAME",
  "WORKFORCE_WORKER_ID",
  "WORKFORCE_AGENT_SIGNAL",
];

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * WORKFORCE_* variables nobody reads (a typo leaves its setting at the default without a word), each with
 * the closest known name when one is near. Not an error: a deployment may carry variables for other tools.
 */
export function unknownVariables(env: NodeJS.ProcessEnv): Array<{ name: string; suggestion?: string }> {
  const known = [...SETTINGS.map((spec) => spec.env), FILE_ENV, REGIONS_ENV, ...NODE_SIDE_VARIABLES];
  return Object.keys(env)
    .filter((name) => name.startsWith("WORKFORCE_") && !known.includes(name))
    .sort()
    .map((name) => {
      const [closest] = known
        .map((candidate) => ({ candidate, distance: editDistance(name, candidate) }))
        .sort((x, y) => x.distance - y.distance);
      return closest && closest.distance <= 3 ? { name, suggestion: closest.candidate } : { name };
    });
}

/**
 * Settings come from an optional file (WORKFORCE_CONFIG, YAML or JSON) and from WORKFORCE_* variables;
 * a variable overrides the file. Every problem is collected, then reported at once.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const filePath = env[FILE_ENV] || undefined;
  const file = filePath ? readConfigFile(filePath) : {};
  const problems: ConfigProblem[] = [];
  const settings: Record<string, unknown> = {};

  const knownKeys = new Set<string>([...SETTINGS.map((spec) => spec.key), "regions"]);
  for (const key of Object.keys(file)) {
    if (!knownKeys.has(key)) {
      problems.push({
        where: `${key} (in ${filePath})`,
        message: `unknown setting; expected one of ${[...knownKeys].join(", ")}`,
      });
    }
  }

  for (const spec of SETTINGS) {
    const fromEnv = env[spec.env];
    const useEnv = fromEnv !== undefined && fromEnv !== "";
    const raw = useEnv ? fromEnv : file[spec.key];
    if (raw === undefined || raw === null) {
      settings[spec.key] = spec.default;
      continue;
    }
    // Numeric settings coerce text (variables are text), but must not take a file's `true` as 1 or [7] as 7.
    const notANumber = typeof spec.default === "number" && typeof raw !== "number" && typeof raw !== "string";
    const result = notANumber
      ? ({ success: false, error: { issues: [{ message: "expected a number" }] } } as const)
      : (spec.schema as z.ZodType).safeParse(raw);
    if (result.success) {
      settings[spec.key] = result.data;
    } else {
      const where = useEnv ? spec.env : `${spec.key} (in ${filePath})`;
      const detail = result.error.issues.map((issue) => issue.message).join("; ");
      const given = spec.secret ? "" : `; given ${describeValue(raw)}`;
      problems.push({ where, message: `${detail}${given}` });
    }
  }

  let regionsInput: unknown = file.regions;
  let regionsWhere = (path: string) => `regions${path} (in ${filePath})`;
  const regionsEnv = env[REGIONS_ENV];
  let regionsUnparsable = false;
  if (regionsEnv) {
    regionsWhere = (path: string) => `${REGIONS_ENV}${path}`;
    try {
      regionsInput = JSON.parse(regionsEnv);
    } catch (error) {
      problems.push({
        where: REGIONS_ENV,
        // V8 quotes a slice of the text, which may cut a key in half where redaction cannot see it.
        message: `expected a JSON array of regions: ${(error as Error).message.replace(/,\s*(\.\.\.)?".*$/s, "")} (text not shown: it may hold secrets)`,
      });
      regionsInput = undefined;
      regionsUnparsable = true;
    }
  }
  if (regionsInput === undefined && options.defaultRegions) {
    regionsInput = options.defaultRegions;
    regionsWhere = (path: string) => `default regions${path}`;
  }

  let regions: RegionConfig[] = [];
  if (regionsInput === undefined) {
    // An unparsable WORKFORCE_REGIONS is reported once, not again as "no regions".
    if (!options.regionsOptional && !regionsUnparsable) {
      problems.push({
        where: REGIONS_ENV,
        message: `no regions: set ${REGIONS_ENV} (JSON) or "regions" in the file named by ${FILE_ENV}`,
      });
    }
  } else {
    const result = regionListSchema.safeParse(regionsInput);
    if (result.success) regions = result.data;
    else problems.push(...issueMessages(result.error, regionsInput, regionsWhere, false));
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return { ...(settings as Settings), regions, ...(filePath ? { configFile: filePath } : {}) };
}
