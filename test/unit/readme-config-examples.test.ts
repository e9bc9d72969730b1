import { describe, expect, test } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml, stringify } from "yaml";
import { loadConfig } from "../../src/config/load.js";
import { REPO_ROOT } from "../support/cli.js";

// An operator copies these blocks into a file named by WORKFORCE_CONFIG: each must load.
const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const examples = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
  .map((match) => match[1]!)
  .filter((text) => /^regions:|^- kind:/m.test(text));

describe("the README's configuration examples", () => {
  test("there are the file example, the two region examples and the emulator example", () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  test.each(examples.map((text) => [text.split("\n")[0], text]))("%s ... loads", (_first, text) => {
    // A region snippet is an item of the file's `regions:` list.
    const parsed: unknown = parseYaml(text);
    const fileText = Array.isArray(parsed) ? stringify({ regions: parsed }) : text;
    const path = join(mkdtempSync(join(tmpdir(), "wf-readme-")), "workforce.yaml");
    writeFileSync(path, fileText);
    const config = loadConfig({ env: { WORKFORCE_CONFIG: path } });
    expect(config.regions.length).toBeGreaterThan(0);
  });
});
