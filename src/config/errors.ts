import { redactText } from "../logging/redact.js";

export interface ConfigProblem {
  /** Variable or field path, e.g. "WORKFORCE_CONCURRENCY" or "regions[1].capacity (in /etc/wf.yaml)". */
  where: string;
  /** What was expected and, unless secret, what was given. */
  message: string;
}

/** Bad configuration. The daemon exits 2 on it. */
export class ConfigError extends Error {
  readonly code = "ConfigError";
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    // A secret pasted into the wrong field (a connection string as WORKFORCE_QUEUE) is echoed as "given".
    const redacted = problems.map((problem) => ({
      where: problem.where,
      message: redactText(problem.message),
    }));
    super(
      `invalid configuration:\n${redacted.map((problem) => `  - ${problem.where}: ${problem.message}`).join("\n")}`,
    );
    this.problems = redacted;
    this.name = "ConfigError";
  }
}
