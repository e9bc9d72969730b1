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

describe("the README's library example", () => {
  test("every name it imports from the package is exported", async () => {
    const library = (await import("../../src/index.js")) as Record<string, unknown>;
    const imports = [...readme.matchAll(/import \{([^}]+)\} from "workforce-autoscaler"/g)].flatMap((match) =>
      match[1]!.split(",").map((name) => name.trim()),
    );
    expect(imports.length).toBeGreaterThan(3);
    for (const name of imports) expect(typeof library[name], `${name} is not exported`).toBe("function");
    for (const name of [
      "stepPolicy",
      "proportionalPolicy",
      "decide",
      "spreadHires",
      "planShrink",
      "stabilizeTarget",
    ]) {
      expect(typeof library[name], `${name} is not exported`).toBe("function");
    }
  });
});
