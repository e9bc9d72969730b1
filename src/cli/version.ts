import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

/** The package version, read from package.json (two levels above src/ or dist/src/). */
export function packageVersion(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [
    join(here, "..", "..", "package.json"),
    join(here, "..", "..", "..", "package.json"),
  ]) {
    try {
      const parsed = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version?: string };
      if (parsed.name === "workforce-autoscaler" && parsed.version) return parsed.version;
    } catch {
      // try the next candidate
    }
  }
  return "0.0.0";
}
