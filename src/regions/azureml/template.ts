import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";

/**
 * Job templates. Users already write AzureML CLI v2 command jobs for `az ml job create`; we accept those,
 * and raw ARM JSON, and turn either into the `properties` of an ARM CommandJob. The template is parsed once
 * and never mutated: every job is built from a fresh copy.
 */

export class TemplateError extends Error {
  readonly code = "TemplateError";
  constructor(
    /** Field path inside the template, e.g. "environment.image". */
    readonly field: string,
    message: string,
  ) {
    super(`template ${field}: ${message}`);
    this.name = "TemplateError";
  }
}

export interface InlineImage {
  image: string;
  /** Environment name and version the image is registered under (version = content hash: reused as is). */
  name: string;
  version: string;
  description?: string;
}

export interface JobTemplate {
  format: "cli-v2" | "arm";
  /** ARM CommandJob properties without computeId, experimentName (set per region) and, for an inline image, environmentId. */
  properties: Readonly<Record<string, unknown>>;
  /** An environment reference to resolve against the workspace (`azureml:name:version`). */
  environmentRef?: { name: string; version: string };
  inlineImage?: InlineImage;
}

type Dict = Record<string, unknown>;

const isDict = (value: unknown): value is Dict =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function expectString(value: unknown, field: string): string {
  if (typeof value !== "string" || value.length === 0)
    throw new TemplateError(field, `expected a non-empty string; given ${describe(value)}`);
  return value;
}

function stringMap(value: unknown, field: string): Record<string, string> {
  if (!isDict(value))
    throw new TemplateError(field, `expected a mapping of names to values; given ${describe(value)}`);
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item === null || typeof item === "object")
      throw new TemplateError(
        `${field}.${key}`,
        `expected a string, number or boolean; given ${describe(item)}`,
      );
    out[key] = String(item);
  }
  return out;
}

/** `PT{n}S` from CLI v2's seconds (an ISO 8601 duration passes through). */
function isoDuration(value: unknown, field: string): string {
  if (typeof value === "number" && Number.isFinite(value) && value > 0) return `PT${Math.round(value)}S`;
  if (typeof value === "string" && /^\d+$/.test(value)) return `PT${value}S`;
  if (typeof value === "string" && /^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/.test(value))
    return value;
  throw new TemplateError(
    field,
    `expected seconds (e.g. 7200) or an ISO 8601 duration (e.g. PT2H); given ${describe(value)}`,
  );
}

const IDENTITY_TYPES: Record<string, string> = {
  managed: "Managed",
  managed_identity: "Managed",
  aml_token: "AMLToken",
  user_identity: "UserIdentity",
};

function identity(value: unknown): Dict {
  if (!isDict(value))
    throw new TemplateError("identity", `expected a mapping with a type; given ${describe(value)}`);
  const type = IDENTITY_TYPES[String(value.type).toLowerCase()];
  if (!type)
    throw new TemplateError(
      "identity.type",
      `expected one of ${Object.keys(IDENTITY_TYPES).join(", ")}; given ${describe(value.type)}`,
    );
  const out: Dict = { identityType: type };
  if (type === "Managed") {
    if (value.client_id !== undefined) out.clientId = expectString(value.client_id, "identity.client_id");
    if (value.object_id !== undefined) out.objectId = expectString(value.object_id, "identity.object_id");
    if (value.msi_resource_id !== undefined)
      out.resourceId = expectString(value.msi_resource_id, "identity.msi_resource_id");
  }
  return out;
}

function resources(value: unknown): Dict {
  if (!isDict(value)) throw new TemplateError("resources", `expected a mapping; given ${describe(value)}`);
  const out: Dict = { instanceCount: 1 };
  for (const [key, item] of Object.entries(value)) {
    switch (key) {
      case "instance_count":
        if (!Number.isInteger(item) || (item as number) < 1)
          throw new TemplateError(
            "resources.instance_count",
            `expected an integer >= 1; given ${describe(item)}`,
          );
        out.instanceCount = item;
        break;
      case "instance_type":
        out.instanceType = expectString(item, "resources.instance_type");
        break;
      case "shm_size":
        // The service's pattern is \d+[bBkKmMgG]: a size without its unit is refused at submit.
        if (typeof item !== "string" || !SHM_SIZE.test(item))
          throw new TemplateError(
            "resources.shm_size",
            `expected a size with its unit (b, k, m or g), such as 8g or 512m; given ${describe(item)}`,
          );
        out.shmSize = item;
        break;
      case "docker_args":
        out.dockerArgs = expectString(item, "resources.docker_args");
        break;
      case "properties":
        if (!isDict(item))
          throw new TemplateError("resources.properties", `expected a mapping; given ${describe(item)}`);
        out.properties = item;
        break;
      default:
        throw new TemplateError(
          `resources.${key}`,
          "not supported (expected instance_count, instance_type, shm_size, docker_args or properties)",
        );
    }
  }
  return out;
}

/** The service's patterns (REST spec 2022-10-01): shmSize `\d+[bBkKmMgG]`, environment names below. */
const SHM_SIZE = /^\d+[bBkKmMgG]$/;
export const ENVIRONMENT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$/;
const ENVIRONMENT_NAME_HINT = "letters, digits, '-' and '_', starting with a letter or digit, at most 255";
/** An environment shared through a registry: valid as a job's environmentId as it is. */
const REGISTRY_ENVIRONMENT = /^azureml:\/\/registries\/[^/]+\/environments\/[^/]+\/versions\/[^/]+$/;

/**
 * `azureml:name:version`, a full environment version ARM id, or a registry environment
 * (`azureml://registries/NAME/environments/ENV/versions/V`) -> reference or id; `@latest` is refused: ARM
 * needs a version.
 */
function environmentReference(
  value: string,
  field = "environment",
): { ref?: { name: string; version: string }; id?: string } {
  if (value.startsWith("azureml://")) {
    if (REGISTRY_ENVIRONMENT.test(value)) return { id: value };
    throw new TemplateError(
      field,
      `expected a registry environment azureml://registries/NAME/environments/ENV/versions/VERSION; given ${describe(value)}`,
    );
  }
  const text = value.replace(/^azureml:/, "");
  if (text.startsWith("/subscriptions/")) return { id: text };
  const match = /^([^:]+):([A-Za-z0-9_.-]+)$/.exec(text);
  if (!match) {
    throw new TemplateError(
      field,
      `expected azureml:NAME:VERSION, an environment version ARM id, a registry environment or a mapping with an image; given ${describe(value)}` +
        (text.includes("@") ? " (name@label is not supported by the ARM job API: pin a version)" : ""),
    );
  }
  if (!ENVIRONMENT_NAME.test(match[1]!))
    throw new TemplateError(
      field,
      `expected an environment name (${ENVIRONMENT_NAME_HINT}); given ${describe(match[1])}`,
    );
  return { ref: { name: match[1]!, version: match[2]! } };
}

function inlineImage(value: Dict, defaultName: string): InlineImage {
  for (const key of Object.keys(value)) {
    if (!["image", "name", "version", "description"].includes(key)) {
      throw new TemplateError(
        `environment.${key}`,
        "not supported for an inline environment (expected image, name, version, description; build conda environments into the image)",
      );
    }
  }
  const image = expectString(value.image, "environment.image");
  const name = value.name === undefined ? defaultName : expectString(value.name, "environment.name");
  if (!ENVIRONMENT_NAME.test(name))
    throw new TemplateError(
      value.name === undefined ? "environment" : "environment.name",
      `expected an environment name (${ENVIRONMENT_NAME_HINT}); given ${describe(name)}` +
        (value.name === undefined ? " (the default {experiment}-image: set environmentName)" : ""),
    );
  // The version is derived from the image, so the same template reuses the same environment version.
  const version =
    value.version === undefined
      ? createHash("sha256").update(image).digest("hex").slice(0, 16)
      : String(value.version);
  return {
    image,
    name,
    version,
    ...(typeof value.description === "string" ? { description: value.description } : {}),
  };
}

/** Keys of a CLI v2 command job we read; `compute`, `name` and `experiment_name` are set by the region. */
const CLI_KEYS = new Set([
  "$schema",
  "type",
  "name",
  "experiment_name",
  "compute",
  "display_name",
  "description",
  "tags",
  "properties",
  "command",
  "code",
  "environment",
  "environment_variables",
  "identity",
  "resources",
  "limits",
]);

function fromCliV2(doc: Dict, defaultEnvironmentName: string): JobTemplate {
  // Every unsupported key at once: an operator fixing a copied template should not learn them one a run.
  const unsupported = Object.keys(doc).filter((key) => !CLI_KEYS.has(key));
  if (unsupported.length > 0) {
    throw new TemplateError(
      unsupported.join(", "),
      `not supported (supported keys: ${[...CLI_KEYS].join(", ")}); inputs/outputs and distributions are not submitted by the autoscaler`,
    );
  }
  if (doc.type !== undefined && doc.type !== "command")
    throw new TemplateError("type", `expected "command"; given ${describe(doc.type)}`);
  const properties: Dict = { jobType: "Command", command: expectString(doc.command, "command") };
  if (doc.display_name !== undefined) properties.displayName = expectString(doc.display_name, "display_name");
  if (doc.description !== undefined) properties.description = expectString(doc.description, "description");
  if (doc.tags !== undefined) properties.tags = stringMap(doc.tags, "tags");
  if (doc.properties !== undefined) properties.properties = stringMap(doc.properties, "properties");
  if (doc.environment_variables !== undefined)
    properties.environmentVariables = stringMap(doc.environment_variables, "environment_variables");
  if (doc.identity !== undefined) properties.identity = identity(doc.identity);
  properties.resources = doc.resources === undefined ? { instanceCount: 1 } : resources(doc.resources);
  if (doc.limits !== undefined) {
    if (!isDict(doc.limits))
      throw new TemplateError("limits", `expected a mapping with timeout; given ${describe(doc.limits)}`);
    properties.limits = {
      jobLimitsType: "Command",
      timeout: isoDuration(doc.limits.timeout, "limits.timeout"),
    };
  }
  if (doc.code !== undefined) {
    const code = expectString(doc.code, "code").replace(/^azureml:/, "");
    if (!code.startsWith("/subscriptions/")) {
      throw new TemplateError(
        "code",
        "a local code folder needs an upload, which the autoscaler does not do: bake the code into the image or register it and give its ARM id (azureml:/subscriptions/.../codes/NAME/versions/V)",
      );
    }
    properties.codeId = code;
  }
  const template: JobTemplate = { format: "cli-v2", properties };
  if (typeof doc.environment === "string") {
    const env = environmentReference(doc.environment);
    if (env.id) properties.environmentId = env.id;
    else template.environmentRef = env.ref!;
  } else if (isDict(doc.environment)) {
    template.inlineImage = inlineImage(doc.environment, defaultEnvironmentName);
  } else {
    throw new TemplateError(
      "environment",
      `expected azureml:NAME:VERSION or a mapping with an image; given ${describe(doc.environment)}`,
    );
  }
  return deepFreeze(template);
}

function fromArm(doc: Dict): JobTemplate {
  const properties = isDict(doc.properties) ? doc.properties : doc;
  if (properties.jobType !== "Command")
    throw new TemplateError(
      "properties.jobType",
      `expected "Command"; given ${describe(properties.jobType)}`,
    );
  expectString(properties.command, "properties.command");
  const copy: Dict = structuredClone(properties);
  const shm = (copy.resources as Dict | undefined)?.shmSize;
  if (shm !== undefined && (typeof shm !== "string" || !SHM_SIZE.test(shm)))
    throw new TemplateError(
      "properties.resources.shmSize",
      `expected a size with its unit (b, k, m or g), such as 8g or 512m; given ${describe(shm)}`,
    );
  delete copy.computeId;
  delete copy.experimentName;
  const template: JobTemplate = { format: "arm", properties: copy };
  if (typeof copy.environmentId === "string" && copy.environmentId.startsWith("azureml:")) {
    const env = environmentReference(copy.environmentId, "properties.environmentId");
    delete copy.environmentId;
    if (env.id) copy.environmentId = env.id;
    else template.environmentRef = env.ref!;
  } else {
    expectString(copy.environmentId, "properties.environmentId");
  }
  return deepFreeze(template);
}

/** Nodes one worker takes: `resources.instanceCount` of the template (default 1). */
export function nodesPerWorker(template: JobTemplate): number {
  const count = (template.properties.resources as { instanceCount?: unknown } | undefined)?.instanceCount;
  return typeof count === "number" && Number.isInteger(count) && count >= 1 ? count : 1;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** Parse a template given inline or as a path to a YAML/JSON file. */
export function loadJobTemplate(
  source: string | Record<string, unknown>,
  defaultEnvironmentName: string,
): JobTemplate {
  let doc: unknown = source;
  if (typeof source === "string") {
    let text: string;
    try {
      text = readFileSync(source, "utf8");
    } catch (error) {
      throw new TemplateError(
        "(file)",
        `cannot read ${source}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
    try {
      doc = parseYaml(text);
    } catch (error) {
      throw new TemplateError("(file)", `${source} is not valid YAML or JSON: ${(error as Error).message}`);
    }
  }
  if (!isDict(doc))
    throw new TemplateError(
      "(root)",
      `expected a mapping (a CLI v2 command job or ARM JSON); given ${describe(doc)}`,
    );
  const looksArm = isDict(doc.properties) ? "jobType" in doc.properties : "jobType" in doc;
  return looksArm ? fromArm(doc) : fromCliV2(doc, defaultEnvironmentName);
}

export interface JobContext {
  experiment: string;
  computeId: string;
  /** Full ARM id of the environment version, when the template does not name one itself. */
  environmentId?: string;
  tagKey: string;
}

/** A fresh ARM job body for one worker; the template is not touched. */
export function buildJobBody(template: JobTemplate, context: JobContext): { properties: Dict } {
  const properties = structuredClone(template.properties) as Dict;
  properties.experimentName = context.experiment;
  properties.computeId = context.computeId;
  if (!properties.environmentId && context.environmentId) properties.environmentId = context.environmentId;
  properties.tags = {
    ...((properties.tags as Record<string, string> | undefined) ?? {}),
    [context.tagKey]: context.experiment,
  };
  return { properties };
}
