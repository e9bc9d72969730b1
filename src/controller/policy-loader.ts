import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../config/load.js";
import type { Settings } from "../config/settings.js";
import type { PolicyFunction } from "../policy/types.js";
import { proportionalPolicy, stepPolicy } from "../policy/step.js";

export const BUILTIN_POLICIES: Record<Settings["policy"], PolicyFunction> = {
  step: stepPolicy,
  proportional: proportionalPolicy,
};

/**
 * The policy function: a built-in one, or the module named by WORKFORCE_POLICY_MODULE (its default
 * export, or a named export `policy`). A module that cannot be loaded, or exports no function, is a
 * configuration error: the daemon refuses to start rather than scale on a guess.
 */
export async function loadPolicy(
  settings: Pick<Settings, "policy" | "policyModule">,
): Promise<PolicyFunction> {
  if (!settings.policyModule) return BUILTIN_POLICIES[settings.policy];
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
