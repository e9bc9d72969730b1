import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * Runs every bench module in this folder: a file named `*.bench.ts` whose default export is
 * `async () => void` and prints its own results (timings, ratios). `npm run bench` builds first and runs
 * the compiled modules; pass names to run only some: `node dist/bench/run.js azureml`.
 */
const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const modules = readdirSync(here)
  .filter((file) => file.endsWith(".bench.js"))
  .filter((file) => only.length === 0 || only.some((name) => file.includes(name)))
  .sort();

let failed = 0;
for (const file of modules) {
  console.log(`\n## ${file.replace(/\.bench\.js$/, "")}`);
  try {
    const module = (await import(pathToFileURL(join(here, file)).href)) as { default?: () => Promise<void> };
    if (typeof module.default !== "function") throw new Error(`${file} has no default export function`);
    await module.default();
  } catch (error) {
    failed++;
    console.error(`bench ${file} failed:`, error);
  }
}
if (modules.length === 0) console.log("no bench modules found");
process.exit(failed > 0 ? 1 : 0);
