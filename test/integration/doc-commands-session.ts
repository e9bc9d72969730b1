import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { namedYamlBlock } from "./doc-commands-extract.js";
import { azuriteConnectionString, mapCommand } from "./doc-commands-map.js";
import { Background, evalExport, runLine, type Finished } from "./doc-commands-shell.js";

// One shell session, as a reader's terminal: lines run in order, `export` carries over, `cmd &` starts a
// job that `kill %N` stops, and what the emulators print (their ports) replaces the ports the docs name.

export interface Ran extends Finished {
  /** What the command printed when it said it was ready (servers, the daemon, the demo). */
  ready?: Record<string, unknown>;
  /** The status of GET /healthz while it ran (the daemon, the demo). */
  healthz?: number;
  /** The environment it ran with. */
  env?: Record<string, string>;
  /** What a check's `whileUp` or `settle` saw (the doc's claims about what happens next). */
  observed?: unknown;
}

/** Hooks of a command's check that must run while its peers are still up (see doc-commands-checks.ts). */
export interface Hooks {
  /** Told when a long-running command starts, with the promise of its ready line. */
  onStart?: (ready: Promise<unknown>) => void;
  whileUp?: (ready: Record<string, unknown>) => Promise<unknown>;
  settle?: (ran: Ran[], session: Session) => Promise<unknown>;
}

/** Commands that run until stopped: run for a bounded time, checked while up, then stopped. */
export function isLongRunning(mapped: string): boolean {
  if (/--help\b/.test(mapped)) return false;
  return (
    /^workforce (demo|run)\b/.test(mapped) ||
    /^node \S*(emulators\/\w+\/main\.js|azurite\.js)/.test(mapped) ||
    /\bworker\b.*--idle-timeout [1-9]/.test(mapped)
  );
}

interface Readiness {
  what: string;
  /** Parsed from the output once ready; undefined until then. */
  parse: (output: string) => Record<string, unknown> | undefined;
}

/** How each long-running program says it is up. */
export function readinessOf(command: string): Readiness | undefined {
  if (command.includes("azurite.js"))
    return {
      what: "Azurite's listening lines",
      parse: (out) => {
        const port = (service: string) =>
          new RegExp(`Azurite ${service} service is successfully listening at http://127.0.0.1:(\\d+)`).exec(
            out,
          )?.[1];
        const blob = port("Blob");
        const queue = port("Queue");
        return blob && queue ? { blobPort: Number(blob), queuePort: Number(queue) } : undefined;
      },
    };
  const jsonLine = (test: (value: Record<string, unknown>) => boolean) => (out: string) => {
    for (const line of out.split("\n")) {
      try {
        const value = JSON.parse(line) as Record<string, unknown>;
        if (value && typeof value === "object" && test(value)) return value;
      } catch {
        // not a JSON line
      }
    }
    return undefined;
  };
  if (command.includes("emulators/azureml/main.js"))
    return { what: "its listening line", parse: jsonLine((v) => v.msg === "ARM emulator listening") };
  if (command.includes("emulators/servicebus/main.js"))
    return { what: "its connection strings", parse: jsonLine((v) => typeof v.connectionString === "string") };
  if (/^workforce demo\b/.test(command))
    return {
      what: "demo: daemon running",
      parse: jsonLine((v) => String(v.msg).startsWith("demo: daemon running")),
    };
  if (/^workforce run\b/.test(command))
    return {
      what: "a tick line",
      parse: (out) => {
        const started = jsonLine((v) => typeof v.metricsPort === "number")(out);
        return jsonLine((v) => v.msg === "tick")(out) && started;
      },
    };
  if (/^workforce agent\b/.test(command))
    return {
      what: "listening for control messages",
      parse: jsonLine((v) => v.msg === "listening for control messages"),
    };
  if (/\bworker\b/.test(command))
    return { what: "worker started", parse: jsonLine((v) => v.msg === "worker started") };
  return undefined;
}

export class Session {
  env: Record<string, string>;
  /** `cmd &` jobs, numbered for `kill %N`. */
  readonly jobs: Background[] = [];
  /** Long-running commands started in the foreground (servers, the daemon): stopped by the test. */
  readonly servers: Background[] = [];
  private readonly learned: Array<[string, string]> = [];
  private readonly pending: Array<Promise<unknown>> = [];
  /** What each job printed when ready, by program: `azurite`, `azureml`, `servicebus`. */
  readonly ready = new Map<string, Record<string, unknown>>();

  constructor(
    readonly scratch: string,
    env: Record<string, string>,
  ) {
    this.env = { ...env };
  }

  map(text: string): string {
    let mapped = mapCommand(text, this.scratch);
    for (const [from, to] of this.learned) mapped = mapped.replaceAll(from, to);
    // The README's walkthrough names its config file; it is the YAML block that follows it.
    const config = join(this.scratch, "emulators.yaml");
    if (mapped.includes(config)) {
      let yaml = namedYamlBlock("README.md", "emulators.yaml");
      for (const [from, to] of this.learned) yaml = yaml.replaceAll(from, to);
      writeFileSync(config, yaml);
    }
    return mapped;
  }

  private learn(program: string, info: Record<string, unknown>): void {
    this.ready.set(program, info);
    if (program === "azurite")
      this.learned.push([
        "UseDevelopmentStorage=true",
        `'${azuriteConnectionString(Number(info.blobPort), Number(info.queuePort))}'`,
      ]);
    if (program === "azureml") {
      this.learned.push(["https://127.0.0.1:8443", String(info.url)]);
      this.learned.push(["https://127.0.0.1:8444", String(info.mlEndpoint)]);
    }
    if (program === "servicebus") {
      this.learned.push(["127.0.0.1:5672", `127.0.0.1:${info.amqpPort}`]);
      this.learned.push(["127.0.0.1:5443", `127.0.0.1:${info.adminPort}`]);
    }
  }

  /** Starts a long-running command; resolves once it says it is ready (with what it said). */
  async start(mapped: string, asJob = false): Promise<{ job: Background; ready: Record<string, unknown> }> {
    const readiness = readinessOf(mapped);
    if (!readiness) throw new Error(`${mapped}: no readiness known for this long-running command`);
    const job = new Background(mapped, this.env);
    if (asJob) this.jobs.push(job);
    else this.servers.push(job);
    // Output redirected to a file (`> /tmp/sb.json`) is read from there.
    const redirect = / > (\S+)$/.exec(mapped)?.[1];
    const output = () =>
      redirect
        ? existsSync(redirect)
          ? readFileSync(redirect, "utf8")
          : ""
        : `${job.stdout}\n${job.stderr}`;
    let ready: Record<string, unknown> | undefined;
    await job.waitFor(readiness.what, () => (ready = readiness.parse(output())) !== undefined);
    const program = /azurite/.test(mapped)
      ? "azurite"
      : /emulators\/(azureml|servicebus)\//.exec(mapped)?.[1];
    if (program) this.learn(program, ready!);
    return { job, ready: ready! };
  }

  /**
   * One documented line: `export`, `cmd &`, `kill %N`, `sleep N` (the wait for the jobs' ready lines
   * stands in for it) or a command run to its end. `ran` is what ran; for `cmd &`, `later` resolves once
   * the job is up (the next line waits for it too).
   */
  async line(text: string, hooks: Hooks = {}): Promise<{ ran: Ran[]; later?: Promise<Ran[]> }> {
    await Promise.all(this.pending);
    if (/^export /.test(text)) {
      this.env = await evalExport(this.map(text), this.env);
      return { ran: [] };
    }
    if (/^sleep \d+$/.test(text)) return { ran: [] };
    const kill = /^kill ((?:%\d+\s*)+)$/.exec(text);
    if (kill) {
      const numbers = kill[1]!
        .trim()
        .split(/\s+/)
        .map((job) => Number(job.slice(1)));
      return { ran: await Promise.all(numbers.map((n) => this.jobs[n - 1]!.stop("SIGTERM"))) };
    }
    if (text.endsWith("&")) {
      // Jobs start side by side, as in a shell; the next other line waits until they are all up.
      const started = this.start(this.map(text.slice(0, -1).trim()), true);
      started.catch(() => undefined); // reported by the line's test and by the next line
      this.pending.push(started);
      const later = started.then(({ job, ready }): Ran[] => [
        {
          command: job.command,
          code: null,
          signal: null,
          stdout: job.stdout,
          stderr: job.stderr,
          ms: 0,
          ready,
        },
      ]);
      later.catch(() => undefined);
      return { ran: [], later };
    }
    const mapped = this.map(text);
    const ran = [
      isLongRunning(mapped)
        ? await this.bounded(mapped, hooks)
        : { ...(await runLine(mapped, this.env)), env: this.env },
    ];
    if (hooks.settle) ran[0]!.observed = await hooks.settle(ran, this).catch((error: unknown) => error);
    return { ran };
  }

  /**
   * A long-running command: started, checked once it says it is ready (GET /healthz for the daemon and
   * the demo), then stopped as a user would: Ctrl-C (SIGINT) for the demo, SIGTERM for the others. A demo
   * with --exit-when-done is left to finish by itself.
   */
  async bounded(mapped: string, hooks: Hooks = {}): Promise<Ran> {
    const starting = this.start(mapped);
    hooks.onStart?.(starting);
    const { job, ready } = await starting;
    const observed = hooks.whileUp ? await hooks.whileUp(ready).catch((error: unknown) => error) : undefined;
    const url =
      typeof ready.metrics === "string"
        ? ready.metrics.replace(/\/metrics$/, "/healthz")
        : typeof ready.metricsPort === "number"
          ? `http://127.0.0.1:${ready.metricsPort}/healthz`
          : undefined;
    const healthz = url ? (await fetch(url)).status : undefined;
    const demo = /^workforce demo\b/.test(mapped);
    const finished = demo && /--exit-when-done/.test(mapped) ? await job.stop(null, 120_000) : undefined;
    const stopped = finished ?? (await job.stop(demo ? "SIGINT" : "SIGTERM"));
    return { ...stopped, ready, env: this.env, observed, ...(url ? { healthz } : {}) };
  }

  /** Whatever still runs at the end (a block that kills nothing, a failed line) is stopped. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.jobs, ...this.servers].map((job) => job.stop("SIGTERM")));
  }
}
