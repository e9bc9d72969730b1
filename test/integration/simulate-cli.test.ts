import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, workforceArgv } from "../support/cli.js";

/** `workforce simulate` as a user runs it: the built CLI, files in, a table, JSON or a chart out. */
let dir: string;
const EXAMPLE_TRACE = join(REPO_ROOT, "examples", "simulate", "trace.json");
const EXAMPLE_CLUSTER = join(REPO_ROOT, "examples", "simulate", "cluster.yaml");

function run(...args: string[]) {
  const [node, ...rest] = workforceArgv("simulate", ...args);
  const result = spawnSync(node!, rest, { encoding: "utf8", cwd: REPO_ROOT, timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The README's example trace and cluster, with the options under test. */
function runExample(...args: string[]) {
  return run("--trace", EXAMPLE_TRACE, "--cluster", EXAMPLE_CLUSTER, ...args);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wf-simulate-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("workforce simulate", () => {
  test("several policies side by side, with ratios against the first", () => {
    const { code, stdout } = runExample("--policy", "step", "--policy", "predictive");
    expect(code).toBe(0);
    const [header, ...rows] = stdout.trimEnd().split("\n");
    expect(header).toMatch(/^\s+step\s+predictive$/);
    expect(rows.find((row) => row.startsWith("tasks finished"))).toMatch(/300\s+300$/);
    expect(rows.find((row) => row.startsWith("tasks interrupted"))).toMatch(/0\s+0$/);
    expect(rows.find((row) => row.startsWith("makespan (min)"))).toMatch(/\(0\.\d\dx\)$/);
    expect(stdout).toContain("(ratios against step)");
  });

  test("the README's examples print what the README says", () => {
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    const shown = readme
      .split("--policy step --policy predictive --chart run.svg\n```\n```\n")[1]!
      .split("\n...")[0]!;
    const chart = join(dir, "readme.svg");
    const { code, stdout } = runExample("--policy", "step", "--policy", "predictive", "--chart", chart);
    expect(code).toBe(0);
    expect(stdout.startsWith(shown)).toBe(true);

    const [node, ...args] = workforceArgv(
      ..."plan --queue 300 --concurrency 4 --running 10 --policy predictive --task-seconds 1200 --startup-seconds 330".split(
        " ",
      ),
    );
    const plan = spawnSync(node!, args, { encoding: "utf8" });
    expect(plan.stdout).toContain(
      "target 25 (predictive; ramp limit 110, payback 30 workers in 3 waves -> 25",
    );
    expect(readme).toContain(
      "workforce plan --queue 300 --concurrency 4 --running 10 --policy predictive --task-seconds\n1200 --startup-seconds 330",
    );
  });

  test("--json: the totals a script needs, per policy", () => {
    const { code, stdout } = runExample("--policy", "step,proportional", "--json");
    expect(code).toBe(0);
    const body = JSON.parse(stdout);
    expect(Object.keys(body)).toEqual(["step", "proportional"]);
    for (const result of Object.values(body) as Array<Record<string, number>>) {
      for (const key of [
        "makespanSeconds",
        "nodeHours",
        "utilization",
        "tasksFinished",
        "tasksInterrupted",
        "drains",
        "cancels",
        "maxActive",
        "meanWaitSeconds",
      ]) {
        expect(typeof result[key], key).toBe("number");
      }
      expect(result.tasksFinished).toBe(300);
      expect(result.tasksInterrupted).toBe(0);
    }
    // Proportional hires one worker per 4 tasks at once (75); step's table stops at 15.
    expect(body.proportional.maxActive).toBe(75);
    expect(body.step.maxActive).toBe(15);
    expect(body.proportional.makespanSeconds).toBeLessThan(body.step.makespanSeconds);
  });

  test("a CSV trace, a JSON cluster, the same seed twice gives the same run", () => {
    const trace = join(dir, "trace.csv");
    writeFileSync(trace, "seconds,at\n600,0\n600,0\n300,120\n" + "900,0\n".repeat(40));
    const cluster = join(dir, "cluster.json");
    writeFileSync(
      cluster,
      JSON.stringify({ concurrency: 2, regions: [{ name: "x", nodes: 5, startupSeconds: [60, 300] }] }),
    );
    const first = run(
      "--trace",
      trace,
      "--cluster",
      cluster,
      "--policy",
      "predictive",
      "--seed",
      "7",
      "--json",
    );
    const second = run(
      "--trace",
      trace,
      "--cluster",
      cluster,
      "--policy",
      "predictive",
      "--seed",
      "7",
      "--json",
    );
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual(JSON.parse(second.stdout));
    expect(JSON.parse(first.stdout)).toMatchObject({ policy: "predictive", tasks: 43, tasksFinished: 43 });
  });

  test("--policy-module runs a custom policy beside the built-in ones", () => {
    const module = join(dir, "five.mjs");
    writeFileSync(module, "export default ({ queueDepth }) => (queueDepth > 0 ? 5 : 0);\n");
    const { code, stdout } = runExample("--policy-module", module, "--json");
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ policy: "five.mjs", maxActive: 5, tasksFinished: 300 });
  });

  test("--chart draws a labelled SVG: the policy and totals in the title, every line named", () => {
    const chart = join(dir, "run.svg");
    const { code, stdout } = runExample("--policy", "step", "--policy", "predictive", "--chart", chart);
    expect(code).toBe(0);
    expect(stdout).toContain(`chart: ${chart}`);
    const svg = readFileSync(chart, "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toMatch(/step: all done in [\d.]+ min, [\d.]+ node-hours, 300 of 300 tasks, 0 interrupted/);
    expect(svg).toMatch(/predictive: all done in/);
    for (const label of [
      "tasks in the queue",
      "target",
      "running",
      "starting (pending)",
      "minutes since the first task was enqueued",
    ]) {
      expect(svg).toContain(`>${label}<`);
    }
  });

  test("bad input: exit 2 with the file and the field", () => {
    const trace = join(dir, "bad.json");
    writeFileSync(trace, JSON.stringify({ tasks: [{ seconds: 60 }, { seconds: -5 }] }));
    const bad = run("--trace", trace, "--cluster", EXAMPLE_CLUSTER);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${trace}: tasks.1.seconds: expected a number of seconds > 0`);

    const cluster = join(dir, "bad.yaml");
    writeFileSync(
      cluster,
      "concurrency: 0\nregions:\n  - { name: x, nodes: 3, startupSeconds: [300, 60] }\n",
    );
    const badCluster = run("--trace", EXAMPLE_TRACE, "--cluster", cluster);
    expect(badCluster.code).toBe(2);
    expect(badCluster.stderr).toContain("concurrency: expected a whole number >= 1");
    expect(badCluster.stderr).toContain("regions.0.startupSeconds: expected [low, high] with low <= high");

    const unknown = run("--trace", EXAMPLE_TRACE, "--cluster", EXAMPLE_CLUSTER, "--policy", "greedy");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      '--policy must be one of step, proportional, predictive; given "greedy"',
    );
  });

  test("10,000 tasks simulate in a few seconds", () => {
    const trace = join(dir, "big.json");
    writeFileSync(trace, JSON.stringify({ tasks: Array.from({ length: 10_000 }, () => ({ seconds: 600 })) }));
    const { code, stdout } = run(
      "--trace",
      trace,
      "--cluster",
      EXAMPLE_CLUSTER,
      "--policy",
      "step,predictive",
      "--json",
    );
    expect(code).toBe(0);
    expect(JSON.parse(stdout).predictive.tasksFinished).toBe(10_000);
  });
});
