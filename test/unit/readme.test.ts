import { describe, expect, test } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { settingsTable } from "../../src/config/docs.js";
import { createMetrics } from "../../src/metrics/registry.js";
import { buildProgram } from "../../src/cli/main.js";
import { REPO_ROOT } from "../support/cli.js";

const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");

describe("README stays true to the code", () => {
  test("the settings table is the one generated from the schema (run `npm run docs` after changing settings)", () => {
    expect(readme).toContain(settingsTable());
  });

  test("every workforce_ metric is documented", async () => {
    const names = (await createMetrics({ processMetrics: false }).registry.getMetricsAsJSON()).map(
      (metric) => metric.name,
    );
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) expect(readme, `${name} missing from README`).toContain(`\`${name}\``);
  });

  test("every CLI command is in the command-line reference", () => {
    const commands = buildProgram().commands.map((command) => command.name());
    for (const name of commands)
      expect(readme, `workforce ${name} missing from README`).toContain(`\`workforce ${name}`);
  });

  test("the first screen has the two commands", () => {
    const firstScreen = readme.split("\n").slice(0, 15).join("\n");
    expect(firstScreen).toContain("npm ci && npm start");
    expect(firstScreen).toContain("npm ci && npm test");
  });
});
