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
): { problems: ConfigProblem[]; adjusted: Partial<Settings> } {
  const problems: ConfigProblem[] = [];
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

  // A call given a deadline longer than the interval holds every tick behind it: an explicit one above
  // the interval is a mistake. (The default, 30 s, stays: short intervals are for tests and demos, whose
  // calls may still need it on a loaded machine.)
  const { callTimeoutSeconds, intervalSeconds } = settings;
  if (typeof callTimeoutSeconds === "number" && typeof intervalSeconds === "number") {
    if (callTimeoutSeconds > intervalSeconds && locate("callTimeoutSeconds").source !== "default") {
      problems.push({
        where: `${named("callTimeoutSeconds")} and ${named("intervalSeconds")}`,
        message: `a call may last ${callTimeoutSeconds} s but ticks come every ${intervalSeconds} s: expected callTimeoutSeconds <= intervalSeconds`,
      });
    }
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
  return { problems, adjusted };
}
