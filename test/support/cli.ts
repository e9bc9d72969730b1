import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

/** Root of the repository. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The built CLI; `npm test` builds before running tests. */
export const CLI_PATH = join(REPO_ROOT, "dist", "src", "cli", "main.js");

/** argv that runs the built `workforce` CLI with the given arguments. */
export function workforceArgv(...args: string[]): string[] {
  return [process.execPath, CLI_PATH, ...args];
}
