import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { SETTINGS, type Settings } from "./settings.js";
import { regionListSchema, type RegionConfig } from "./regions.js";
import { redactText } from "../logging/redact.js";
import { FILE_ENV, REGIONS_ENV, closestName, unknownVariables } from "./variables.js";
import { checkPairs, type Source } from "./pairs.js";

export { unknownVariables } from "./variables.js";
export type { Source } from "./pairs.js";

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

/** Field names whose values are never echoed back. */
const SECRET_FIELD = /connectionstring|key|secret|token|password|sas/i;

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

/** Where one setting's effective value came from. */
export interface SettingSource {
  key: string;
  /** Its variable (WORKFORCE_REGIONS for the region list). */
  env: string;
  source: Source;
  /** The effective value; undefined for secrets (never shown) and unset settings. */
  value?: unknown;
  secret: boolean;
  /** Given, but refused (the problem says why). */
  invalid?: boolean;
}

/** Everything `workforce config` shows: values, their sources, problems and warnings, without I/O. */
export interface ResolvedConfig {
  config?: Config;
  sources: SettingSource[];
  problems: ConfigProblem[];
  /** Not wrong, but worth a look: a variable overriding the file, an unknown variable that is allowed. */
  warnings: string[];
}

/**
 * Settings come from an optional file (WORKFORCE_CONFIG, YAML or JSON) and from WORKFORCE_* variables;
 * a variable overrides the file. Every problem is collected, then reported at once.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const resolved = resolveConfig(options);
  if (resolved.problems.length > 0 || !resolved.config) throw new ConfigError(resolved.problems);
  return resolved.config;
}

/** As loadConfig, but returns problems instead of throwing, with the source of every value. */
export function resolveConfig(options: LoadOptions = {}): ResolvedConfig {
  const env = options.env ?? process.env;
  const filePath = env[FILE_ENV] || undefined;
  let file: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  if (filePath) {
    try {
      file = readConfigFile(filePath);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      // Nothing else is worth checking against a file that cannot be read.
      return { sources: [], problems: error.problems, warnings };
    }
  }
  const settings: Record<string, unknown> = {};
  const sources: SettingSource[] = [];

  const knownKeys = [...SETTINGS.map((spec) => spec.key), "regions"];
  for (const key of Object.keys(file)) {
    if (!knownKeys.includes(key)) {
      const suggestion = closestName(key, knownKeys);
      problems.push({
        where: `${key} (in ${filePath})`,
        message: suggestion
          ? `unknown setting (did you mean ${suggestion}?)`
          : `unknown setting; expected one of ${knownKeys.join(", ")}`,
      });
    }
  }

  for (const spec of SETTINGS) {
    const fromEnv = env[spec.env];
    const useEnv = fromEnv !== undefined && fromEnv !== "";
    const raw = useEnv ? fromEnv : file[spec.key];
    const secret = "secret" in spec && spec.secret === true;
    // An empty string means unset, in a variable as in the file (the chart's values use "" for unset).
    if (raw === undefined || raw === null || raw === "") {
      settings[spec.key] = spec.default;
      sources.push({
        key: spec.key,
        env: spec.env,
        source: spec.default === undefined ? "unset" : "default",
        ...(spec.default === undefined ? {} : { value: spec.default }),
        secret,
      });
      continue;
    }
    // Numeric settings coerce text (variables are text), but must not take a file's `true` as 1 or [7] as 7.
    const notANumber = typeof spec.default === "number" && typeof raw !== "number" && typeof raw !== "string";
    const result = notANumber
      ? ({ success: false, error: { issues: [{ message: "expected a number" }] } } as const)
      : (spec.schema as z.ZodType).safeParse(raw);
    if (result.success) {
      settings[spec.key] = result.data;
      sources.push({
        key: spec.key,
        env: spec.env,
        source: useEnv ? "variable" : "file",
        ...(secret ? {} : { value: result.data }),
        secret,
      });
      const fileValue = file[spec.key];
      if (useEnv && fileValue !== undefined && fileValue !== null) {
        const parsedFile = (spec.schema as z.ZodType).safeParse(fileValue);
        if (!parsedFile.success || parsedFile.data !== result.data) {
          warnings.push(
            `${spec.env} overrides ${spec.key} of ${filePath}${secret ? "" : ` (${describeValue(result.data)} instead of ${describeValue(fileValue)})`}: keep one of them`,
          );
        }
      }
    } else {
      sources.push({
        key: spec.key,
        env: spec.env,
        source: useEnv ? "variable" : "file",
        secret,
        invalid: true,
      });
      const where = useEnv ? spec.env : `${spec.key} (in ${filePath})`;
      const detail = result.error.issues.map((issue) => issue.message).join("; ");
      const given = secret ? "" : `; given ${describeValue(raw)}`;
      problems.push({ where, message: `${detail}${given}` });
    }
  }
  const sourceOf = (key: string) => sources.find((entry) => entry.key === key);
  const pairs = checkPairs(settings as Partial<Settings>, (key) => {
    const entry = sourceOf(key);
    if (!entry) return { where: key, source: "default" as Source };
    const where = entry.source === "file" ? `${key} (in ${filePath})` : entry.env;
    return { where, source: entry.source };
  });
  problems.push(...pairs.problems);
  warnings.push(...pairs.warnings);
  for (const [key, value] of Object.entries(pairs.adjusted)) {
    settings[key] = value;
    const entry = sourceOf(key);
    if (entry) entry.value = value;
  }

  // A typo in a variable name would leave its setting at the default, or act for real instead of dry-run.
  const allowUnknown = settings.allowUnknownVariables === true;
  for (const { name, suggestion } of unknownVariables(env)) {
    const hint = suggestion ? ` (did you mean ${suggestion}?)` : "";
    if (allowUnknown) warnings.push(`unknown variable ${name} ignored${hint}`);
    else
      problems.push({
        where: name,
        message: `unknown variable${hint}; set WORKFORCE_ALLOW_UNKNOWN_VARIABLES=true to allow variables no setting reads`,
      });
  }

  let regionsInput: unknown = file.regions;
  let regionsSource: Source = "file";
  let regionsWhere = (path: string) => `regions${path} (in ${filePath})`;
  const regionsEnv = env[REGIONS_ENV];
  let regionsUnparsable = false;
  if (regionsEnv) {
    regionsWhere = (path: string) => `${REGIONS_ENV}${path}`;
    regionsSource = "variable";
    if (file.regions !== undefined)
      warnings.push(`${REGIONS_ENV} overrides regions of ${filePath}: keep one of them`);
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
    regionsSource = "default";
    regionsWhere = (path: string) => `default regions${path}`;
  }

  let regions: RegionConfig[] = [];
  if (regionsInput === undefined) {
    regionsSource = "unset";
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
  sources.push({
    key: "regions",
    env: REGIONS_ENV,
    source: regionsSource,
    value: regions.map((region) => `${region.name} (${region.kind})`),
    secret: false,
  });

  const redactedProblems = new ConfigError(problems).problems;
  if (problems.length > 0) return { sources, problems: redactedProblems, warnings: warnings.map(redactText) };
  return {
    config: { ...(settings as Settings), regions, ...(filePath ? { configFile: filePath } : {}) },
    sources,
    problems: [],
    warnings: warnings.map(redactText),
  };
}
