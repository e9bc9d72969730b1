import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CLI_PATH, REPO_ROOT } from "../support/cli.js";

// Runs documented command lines with bash, as a reader would paste them, from the repository's root:
// `workforce` is the built CLI (a wrapper on PATH), and every Node process (the CLI, the emulators, the
// workers they start) loads test/support/loopback-only.ts, so nothing can connect beyond 127.0.0.1.

export interface Finished {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const LOOPBACK_GUARD = join(REPO_ROOT, "dist", "test", "support", "loopback-only.js");

/** The environment every documented command starts from: no Azure or workforce settings of this shell. */
export function baseEnv(scratch: string): Record<string, string> {
  const bin = join(scratch, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "workforce"), `#!/bin/sh\nexec "${process.execPath}" "${CLI_PATH}" "$@"\n`);
  chmodSync(join(bin, "workforce"), 0o755);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined && !/^(WORKFORCE_|AZURE_|NODE_EXTRA_CA_CERTS|NODE_OPTIONS|JOBQ_)/.test(name))
      env[name] = value;
  return {
    ...env,
    PATH: `${bin}:${env.PATH ?? ""}`,
    // Never DefaultAzureCredential's probe of 169.254.169.254 (the loopback guard would refuse it anyway).
    AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
    NODE_OPTIONS: `--import=${pathToFileURL(LOOPBACK_GUARD).href}`,
  };
}

/** One command line through `bash -c` (pipefail), killed after `timeoutMs`. */
export function runLine(command: string, env: Record<string, string>, timeoutMs = 60_000): Promise<Finished> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn("bash", ["-o", "pipefail", "-c", command], { cwd: REPO_ROOT, env, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[doc-commands] killed after ${timeoutMs} ms`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ command, code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** `export A=B C="$(...)"` evaluated by bash: the environment it leaves. */
export async function evalExport(line: string, env: Record<string, string>): Promise<Record<string, string>> {
  const result = await runLine(`${line} && env -0`, env, 30_000);
  if (result.code !== 0) throw new Error(`${line}: exit ${result.code}: ${result.stderr}`);
  const next: Record<string, string> = {};
  for (const entry of result.stdout.split("\0")) {
    const at = entry.indexOf("=");
    if (at > 0) next[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return next;
}

/** A process that keeps running (a server, the daemon, the demo): started, watched, then stopped. */
export class Background {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  private readonly exited: Promise<Finished>;
  private readonly started = Date.now();

  constructor(
    readonly command: string,
    env: Record<string, string>,
  ) {
    // exec: the signal reaches the program itself, not a shell around it.
    this.child = spawn("bash", ["-c", `exec ${command}`], { cwd: REPO_ROOT, env, stdio: "pipe" });
    this.child.stdout!.on("data", (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.child.stderr!.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) =>
      this.child.on("close", (code, signal) =>
        resolve({
          command,
          code,
          signal,
          stdout: this.stdout,
          stderr: this.stderr,
          ms: Date.now() - this.started,
        }),
      ),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once `ready()` holds (polled every 50 ms); fails if the process exits first or time runs out. */
  async waitFor(what: string, ready: () => boolean, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (!this.running)
        throw new Error(`${this.command}: exited (${this.child.exitCode}) before ${what}: ${this.stderr}`);
      if (Date.now() > deadline)
        throw new Error(`${this.command}: no ${what} within ${timeoutMs} ms: ${this.stdout}${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Sends `signal` (none: waits for it to end by itself) and waits for the exit; SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals | null = "SIGTERM", graceMs = 20_000): Promise<Finished> {
    if (this.running && signal) this.child.kill(signal);
    const kill = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    const finished = await this.exited;
    clearTimeout(kill);
    return finished;
  }
}
