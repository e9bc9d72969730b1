import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../config/errors.js";
import type { Settings } from "../config/settings.js";
import type { PolicyFunction } from "../policy/types.js";
import { proportionalPolicy, stepPolicy } from "../policy/step.js";
import { DEFAULT_PAYBACK_RATIO, predictivePolicy } from "../policy/predictive.js";

export type PredictiveSettings = Pick<Settings, "paybackRatio" | "taskSeconds" | "startupSeconds">;

const PREDICTIVE_DEFAULTS: PredictiveSettings = {
  paybackRatio: DEFAULT_PAYBACK_RATIO,
  taskSeconds: 600,
  startupSeconds: 300,
};

/** A built-in policy by name; `predictive` takes its knob and hints from the settings. */
export function builtinPolicy(
  name: Settings["policy"],
  settings: Partial<PredictiveSettings> = {},
): PolicyFunction {
  if (name === "predictive") return predictivePolicy({ ...PREDICTIVE_DEFAULTS, ...settings });
  return name === "proportional" ? proportionalPolicy : stepPolicy;
}

/** The built-in policies with default settings (`predictive` with its default knob and hints). */
export const BUILTIN_POLICIES: Record<Settings["policy"], PolicyFunction> = {
  step: stepPolicy,
  proportional: proportionalPolicy,
  predictive: builtinPolicy("predictive"),
};

/**
 * The policy function: a built-in one, or the module named by WORKFORCE_POLICY_MODULE (its default
 * export, or a named export `policy`). A module that cannot be loaded, or exports no function, is a
 * configuration error: the daemon refuses to start rather than scale on a guess.
 */
export async function loadPolicy(
  settings: Pick<Settings, "policy" | "policyModule"> & Partial<PredictiveSettings>,
): Promise<PolicyFunction> {
  if (!settings.policyModule) return builtinPolicy(settings.policy, definedOnly(settings));
  const path = isAbsolute(settings.policyModule) ? settings.policyModule : resolve(settings.policyModule);
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError([
      { where: "WORKFORCE_POLICY_MODULE", message: `cannot load ${path}: ${(error as Error).message}` },
    ]);
  }
  const candidate = typeof module.default === "function" ? module.default : module.policy;
  if (typeof candidate !== "function") {
    throw new ConfigError([
      {
        where: "WORKFORCE_POLICY_MODULE",
        message: `${path} must export a policy function (default export or "policy"); it exports ${Object.keys(module).join(", ") || "nothing"}`,
      },
    ]);
  }
  return candidate as PolicyFunction;
}

function definedOnly(settings: Partial<PredictiveSettings>): Partial<PredictiveSettings> {
  return Object.fromEntries(
    (["paybackRatio", "taskSeconds", "startupSeconds"] as const)
      .filter((key) => settings[key] !== undefined)
      .map((key) => [key, settings[key]]),
  );
}
