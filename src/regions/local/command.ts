import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PLACEHOLDER = /\{([A-Za-z]+)\}/g;
export const PLACEHOLDERS = ["queue", "concurrency", "workerId", "node", "workforce"] as const;
export type PlaceholderValues = Record<(typeof PLACEHOLDERS)[number], string>;

/** Unknown placeholders in an argv template, for a config error. */
export function unknownPlaceholders(template: readonly string[]): string[] {
  const unknown = new Set<string>();
  for (const arg of template) {
    for (const match of arg.matchAll(PLACEHOLDER)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(match[1]!)) unknown.add(`{${match[1]}}`);
    }
  }
  return [...unknown];
}

/** Fill the argv template; no shell is involved, so values need no quoting. */
export function expandCommand(template: readonly string[], values: PlaceholderValues): string[] {
  return template.map((arg) =>
    arg.replace(PLACEHOLDER, (whole, name: string) =>
      name in values ? values[name as keyof PlaceholderValues] : whole,
    ),
  );
}

/** Absolute path of this package's built CLI (dist/src/cli/main.js), from the built or the source tree. */
export function workforceCliPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json"))) return join(dir, "dist", "src", "cli", "main.js");
    dir = dirname(dir);
  }
  throw new Error("cannot find this package's root (package.json) to locate dist/src/cli/main.js");
}

/**
 * The argv template of a local worker that runs `workforce worker` on the daemon's queue, waiting
 * `idleTimeoutSeconds` on an empty queue before leaving: the usual local region command.
 */
export function workforceWorkerCommand(idleTimeoutSeconds: number): string[] {
  return [
    "{node}",
    "{workforce}",
    "worker",
    "{queue}",
    "--concurrency",
    "{concurrency}",
    "--idle-timeout",
    String(idleTimeoutSeconds),
  ];
}
