import { readFileSync, writeFileSync } from "node:fs";
import { withSettingsTable } from "../src/config/docs.js";

// Regenerates the README's settings table from src/config/settings.ts.
const path = new URL("../../README.md", import.meta.url);
writeFileSync(path, withSettingsTable(readFileSync(path, "utf8")));
console.log("README.md settings table updated");
