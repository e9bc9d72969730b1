import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cli.js";

// No Docker engine on these machines: these checks cover what a build would trip over first.

interface Instruction {
  command: string;
  args: string;
}
interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines = text
    .replace(/\\\r?\n/g, " ")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, command, rest] = /^(\S+)\s+(.*)$/.exec(line)!;
    const instruction = { command: command!.toUpperCase(), args: rest!.trim() };
    if (instruction.command === "FROM") {
      const [image, , name] = instruction.args.split(/\s+/);
      stages.push({ image: image!, ...(name ? { name } : {}), instructions: [] });
    } else if (stages.length === 0 && instruction.command === "ARG") {
      const [key, value] = instruction.args.split("=");
      args.set(key!, value ?? "");
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { args, stages };
}

/** .dockerignore semantics: the last pattern that matches a path or one of its parents decides. */
function inBuildContext(path: string, patterns: string[]): boolean {
  const toRegExp = (glob: string) =>
    new RegExp(
      `^${glob
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replace(/\*\*/g, "\u0000")
        .replace(/\*/g, "[^/]*")
        .replace(/\?/g, "[^/]")
        .replaceAll("\u0000", ".*")}$`,
    );
  const parents = path.split("/").map((_, index, parts) => parts.slice(0, index + 1).join("/"));
  let included = true;
  for (const pattern of patterns) {
    const negated = pattern.startsWith("!");
    const matcher = toRegExp(negated ? pattern.slice(1) : pattern);
    if (parents.some((candidate) => matcher.test(candidate))) included = negated;
  }
  return included;
}

const dockerfile = parseDockerfile(readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8"));
const ignore = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8")
  .split(/\r?\n/)
  .map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"));
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  version: string;
  bin: { workforce: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const runtime = dockerfile.stages.at(-1)!;
const of = (stage: Stage, command: string) => stage.instructions.filter((i) => i.command === command);
const workdir = of(runtime, "WORKDIR").at(-1)!.args;

function copies(stage: Stage) {
  return of(stage, "COPY").map((instruction) => {
    const words = instruction.args.split(/\s+/);
    const from = words.find((word) => word.startsWith("--from="))?.slice("--from=".length);
    const paths = words.filter((word) => !word.startsWith("--"));
    return { from, sources: paths.slice(0, -1), destination: paths.at(-1)! };
  });
}

describe("Dockerfile", () => {
  it("copies only files that exist and that .dockerignore lets into the build context", () => {
    const sources = dockerfile.stages
      .flatMap((stage) => copies(stage).filter((copy) => !copy.from))
      .flatMap((c) => c.sources);
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(join(REPO_ROOT, source)), `${source} exists`).toBe(true);
      expect(
        inBuildContext(source.replace(/^\.\//, "").replace(/\/$/, ""), ignore),
        `${source} in context`,
      ).toBe(true);
    }
    // And the context stays small and free of local state.
    for (const excluded of [
      "node_modules/x",
      "dist/src/cli/main.js",
      ".git/config",
      "test/unit/a.ts",
      ".env",
    ]) {
      expect(inBuildContext(excluded, ignore), excluded).toBe(false);
    }
  });

  it("starts the package's `workforce` bin under tini, with `run` as the default command", () => {
    const entrypoint = JSON.parse(of(runtime, "ENTRYPOINT").at(-1)!.args) as string[];
    expect(entrypoint.slice(0, 3)).toEqual(["/usr/bin/tini", "--", "node"]);
    expect(entrypoint[3]).toBe(`${workdir}/${pkg.bin.workforce}`);
    expect(JSON.parse(of(runtime, "CMD").at(-1)!.args)).toEqual(["run"]);
    // The runtime stage receives the compiled bin (and package.json, which the CLI reads its version from).
    const runtimeCopies = copies(runtime);
    const built = runtimeCopies.find((copy) => copy.from === dockerfile.stages[0]!.name)!;
    expect(pkg.bin.workforce.startsWith(built.sources[0]!.replace(/^\/src\//, ""))).toBe(true);
    expect(runtimeCopies.some((copy) => !copy.from && copy.sources.includes("package.json"))).toBe(true);
    expect(of(dockerfile.stages[0]!, "RUN").map((i) => i.args)).toContain("npm run build");
  });

  it("ships production dependencies only, as a numeric non-root user, on a pinned base", () => {
    const deps = dockerfile.stages.find((stage) =>
      copies(runtime).some((c) => c.from === stage.name && c.sources[0]!.endsWith("node_modules")),
    )!;
    expect(of(deps, "RUN").some((i) => /npm ci .*--omit=dev/.test(i.args))).toBe(true);
    const user = of(runtime, "USER").at(-1)!.args;
    expect(user).toMatch(/^[1-9]\d*:\d+$/);
    const base = dockerfile.args.get("NODE_IMAGE")!;
    expect(base).toMatch(/^node:20\.\d+\.\d+-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/);
    for (const stage of dockerfile.stages) expect([base, "${NODE_IMAGE}"]).toContain(stage.image);
  });

  it("bakes in no secret", () => {
    const declared = dockerfile.stages
      .flatMap((stage) => [...of(stage, "ENV"), ...of(stage, "ARG")])
      .map((i) => i.args.split(/[=\s]/)[0]!);
    expect(declared.filter((name) => /key|secret|token|password|connection|sas/i.test(name))).toEqual([]);
    expect(inBuildContext(".npmrc", ignore)).toBe(false);
  });
});

describe("what the image runs", () => {
  // The runtime stage's layout: /app/package.json, /app/dist/src, /app/node_modules. Built by `npm test`.
  it("starts from the image's layout and finds its version there", () => {
    const app = mkdtempSync(join(tmpdir(), "wf-image-"));
    try {
      cpSync(join(REPO_ROOT, "dist", "src"), join(app, "dist", "src"), { recursive: true });
      cpSync(join(REPO_ROOT, "package.json"), join(app, "package.json"));
      symlinkSync(join(REPO_ROOT, "node_modules"), join(app, "node_modules"));
      const run = (...args: string[]) =>
        spawnSync(process.execPath, [join(app, pkg.bin.workforce), ...args], { cwd: app, encoding: "utf8" });
      expect(run("--version").stdout.trim()).toBe(pkg.version);
      // `run` is the image's default CMD: it must exist.
      const help = run("run", "--help");
      expect(help.status, help.stderr).toBe(0);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });

  // The image has no devDependencies: anything the CLI imports at load time must be a dependency.
  it("imports only production dependencies and files under src/ from the CLI entry point", () => {
    const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
    const entry = join(REPO_ROOT, "src", "cli", "main.ts");
    const seen = new Set<string>();
    const problems: string[] = [];
    const queue = [entry];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const text = readFileSync(file, "utf8");
      // Static imports and re-exports only; `await import()` is how dev-only tools are loaded lazily.
      for (const match of text.matchAll(
        /^\s*(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']|^\s*import\s+["']([^"']+)["']/gm,
      )) {
        const specifier = (match[1] ?? match[2])!;
        if (/^import\s+type\s/.test(match[0].trim())) continue;
        if (specifier.startsWith(".")) {
          const target = resolve(dirname(file), specifier.replace(/\.js$/, ".ts"));
          if (!relative(join(REPO_ROOT, "src"), target).startsWith("..") && existsSync(target))
            queue.push(target);
          else problems.push(`${relative(REPO_ROOT, file)} imports ${specifier}, outside src/ or missing`);
          continue;
        }
        const name = specifier.startsWith("node:")
          ? specifier.slice(5)
          : specifier
              .split("/")
              .slice(0, specifier.startsWith("@") ? 2 : 1)
              .join("/");
        if (!allowed.has(name))
          problems.push(`${relative(REPO_ROOT, file)} imports ${name}, not a dependency`);
      }
    }
    expect(seen.size).toBeGreaterThan(1);
    expect(problems).toEqual([]);
  });
});
