import type { Settings } from "./settings.js";
import type { ConfigProblem } from "./load.js";

/** Where a setting's value came from. */
export type Source = "variable" | "file" | "default" | "unset";

type Locate = (key: string) => { where: string; source: Source };

/**
 * Settings that must make sense together, checked once each is valid on its own. Every problem names both
 * settings and where each was given. Returns the values adjusted by a rule (a default that would break a
 * pair follows the other setting instead).
 */
export function checkPairs(
  settings: Partial<Settings>,
  locate: Locate,
): { problems: ConfigProblem[]; adjusted: Partial<Settings>; warnings: string[] } {
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const adjusted: Partial<Settings> = {};
  const named = (key: string) => {
    const { where, source } = locate(key);
    return source === "default" ? `${key} (default)` : where;
  };

  const { minWorkers, maxWorkers } = settings;
  if (typeof minWorkers === "number" && typeof maxWorkers === "number" && minWorkers > maxWorkers) {
    problems.push({
      where: `${named("minWorkers")} and ${named("maxWorkers")}`,
      message: `the floor (${minWorkers}) is above the ceiling (${maxWorkers}): expected minWorkers <= maxWorkers`,
    });
  }

  // A call given a deadline longer than the interval delays the ticks behind it when it hangs: worth a
  // warning (fault drills do it on purpose), not a refusal.
  const { callTimeoutSeconds, intervalSeconds } = settings;
  if (
    typeof callTimeoutSeconds === "number" &&
    typeof intervalSeconds === "number" &&
    callTimeoutSeconds > intervalSeconds &&
    locate("callTimeoutSeconds").source !== "default"
  ) {
    warnings.push(
      `${named("callTimeoutSeconds")} (${callTimeoutSeconds} s) is above ${named("intervalSeconds")} (${intervalSeconds} s): a hung call delays the next tick`,
    );
  }

  // A control message that outlives its drain could stop a worker the daemon has since asked again.
  const { controlMessageTtlSeconds, drainTimeoutSeconds } = settings;
  if (
    typeof controlMessageTtlSeconds === "number" &&
    typeof drainTimeoutSeconds === "number" &&
    controlMessageTtlSeconds > drainTimeoutSeconds
  ) {
    problems.push({
      where: `${named("controlMessageTtlSeconds")} and ${named("drainTimeoutSeconds")}`,
      message: `a control message lives ${controlMessageTtlSeconds} s, longer than a drain counts (${drainTimeoutSeconds} s): expected controlMessageTtlSeconds <= drainTimeoutSeconds`,
    });
  }
  return { problems, adjusted, warnings };
}
