import pLimit from "p-limit";
import { CHECKS } from "./doc-commands-checks.js";
import type { DocCommand } from "./doc-commands-extract.js";
import { LISTED } from "./doc-commands-listed.js";
import { isLongRunning, Session, type Hooks, type Ran } from "./doc-commands-session.js";
import { baseEnv, runLine } from "./doc-commands-shell.js";

// When and where each documented command runs: the demos first, then side by side the docs' stateful
// commands in doc order (two chains) against the shared peers, each long shell block (the README's
// walkthrough, the Python one) as its own session, and the rest through a pool of two.

export type Part =
  | { kind: "listed"; text: string }
  | { kind: "mention"; name: string }
  | { kind: "help" }
  | { kind: "npx" }
  | { kind: "run"; text: string };

/** What the test does with each `&&`-separated part of a command that is not in a shell block. */
export function partsOf(command: DocCommand): Part[] {
  return command.text.split(" && ").map((text): Part => {
    if (text in LISTED) return { kind: "listed", text };
    const mention = /^workforce ([a-z-]+)$/.exec(text);
    if (mention) return { kind: "mention", name: mention[1]! };
    if (text === "workforce <command> --help") return { kind: "help" };
    if (text === "npx workforce ...") return { kind: "npx" };
    return { kind: "run", text };
  });
}

export const key = (command: DocCommand) => `${command.file}:${command.line}`;

/** Runs `work` after `previous` has settled (a chain of commands that share state). */
function after(previous: Promise<unknown>, work: () => Promise<Ran[]>): Promise<Ran[]> {
  const next = previous.then(work, work);
  next.catch(() => undefined); // reported by the command's own test
  return next;
}

/** At most `limit` of the independent commands at once: two cores, and other test files run too. */
function pool(limit: number): (work: () => Promise<Ran[]>) => Promise<Ran[]> {
  const run = pLimit(limit);
  return (work) => {
    const next = run(work);
    next.catch(() => undefined); // reported by the command's own test
    return next;
  };
}

/** The region's commands read a queue of their own, kept empty: the queue's chain runs beside them. */
export const REGION_QUEUE = "region-tasks";

function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T | Promise<T>) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T | Promise<T>) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((yes, no) => ((resolve = yes), (reject = no)));
  return { promise, resolve, reject };
}

const isDemo = (mapped: string) => /^workforce demo\b/.test(mapped) && !mapped.includes("--help");

function expectPushed(ran: Ran): void {
  if (ran.code !== 0) throw new Error(`could not push the agent's task: ${ran.stderr}`);
}

/** What the shared peers give the commands: the docs' environment and the Service Bus emulator. */
export interface Peers {
  env: Record<string, string>;
  busConnectionString: string;
}

export class DocRuns {
  /** Each run, by what ran (the same mapped command in two docs runs once). */
  readonly runs = new Map<string, Promise<Ran[]>>();
  /** Each shell line's run, by file:line. */
  readonly lines = new Map<string, Promise<Ran[]>>();
  private readonly sessions: Session[] = [];
  private peers?: Peers;
  private peersUp!: () => void;
  /** Resolves once the shared peers are up, so the runs that need them can start. */
  private readonly ready = new Promise<void>((resolve) => (this.peersUp = resolve));

  constructor(
    private readonly scratch: string,
    private readonly commands: readonly DocCommand[],
  ) {}

  /** The shared peers are up. */
  start(peers: Peers): void {
    this.peers = peers;
    this.peersUp();
  }

  /** Waits for every run, then stops whatever still runs. */
  async close(): Promise<Ran[]> {
    const all = await Promise.allSettled([...this.runs.values(), ...this.lines.values()]);
    await Promise.allSettled(this.sessions.map((session) => session.close()));
    // A shell line shown inline too is one run: count it once.
    return [...new Set(all.flatMap((result) => (result.status === "fulfilled" ? result.value : [])))];
  }

  private blockSession(): Session {
    const session = new Session(this.scratch, baseEnv(this.scratch));
    this.sessions.push(session);
    return session;
  }

  private docsSession(command: DocCommand, chain?: "region" | "queue"): Session {
    const env: Record<string, string> = {
      ...this.peers!.env,
      ...(chain === "region" ? { WORKFORCE_QUEUE: REGION_QUEUE } : {}),
    };
    for (const [name, value] of Object.entries(command.env ?? {})) {
      // A job's namespace becomes the emulator's connection string: no Entra ID here.
      if (name === "WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE")
        env.WORKFORCE_BACK_CHANNEL_CONNECTION_STRING = this.peers!.busConnectionString;
      else env[name] = value.replace(/^(?:myaccount|mystorageaccount)\//, "");
    }
    const session = new Session(this.scratch, env);
    this.sessions.push(session);
    return session;
  }

  /**
   * Starts every run; resolves once the demos are up (or failed). The demos go first, each starting its
   * own Azurite: they must be up before the other peers and the ~100 other commands load the machine
   * (the demo gives Azurite 20 s).
   */
  schedule(): Promise<unknown> {
    const demosUp: Array<Promise<unknown>> = [];
    /** Hooks that also report when a demo is up (or failed to come up). */
    // One demo starts once the one before is up: each starts an Azurite, which the demo gives 20 s.
    const gated = (mapped: string, hooks: Hooks): Hooks & { before?: Promise<unknown> } => {
      if (!isDemo(mapped)) return hooks;
      const before = Promise.allSettled([...demosUp]);
      let up!: () => void;
      demosUp.push(new Promise<void>((resolve) => (up = resolve)));
      return { ...hooks, before, onStart: (started) => void started.then(up, up) };
    };
    const afterDemos = () => Promise.allSettled(demosUp);
    const independent = pool(2);
    const chains: Record<"region" | "queue", Promise<unknown>> = {
      region: this.ready,
      queue: this.ready,
    };
    const blocks = new Map<string, DocCommand[]>();
    for (const command of this.commands)
      if (command.origin === "shell")
        blocks.set(command.block!, [...(blocks.get(command.block!) ?? []), command]);
    for (const block of blocks.values()) {
      if (block.every((line) => partsOf(line).every((part) => part.kind === "listed"))) continue;
      const session = this.blockSession();
      const mapped = (part: string) => {
        try {
          return session.map(part);
        } catch {
          return part; // its run reports the error
        }
      };
      const demo = block.some((line) =>
        line.text.split(" && ").some((part) => !(part in LISTED) && isDemo(mapped(part))),
      );
      const results = block.map(() => deferred<Ran[]>());
      const hooksOf = (line: DocCommand, part: string) => gated(mapped(part), CHECKS[line.text] ?? {});
      // Hooks first (they register the demos), then the lines in order, in one session.
      const lineHooks = block.map((line) =>
        line.text
          .split(" && ")
          .filter((part) => !(part in LISTED))
          .map((part) => hooksOf(line, part)),
      );
      const whole = async () => {
        if (!demo) await afterDemos();
        for (const [index, line] of block.entries()) {
          try {
            const ran: Ran[] = [];
            let later: Promise<Ran[]> | undefined;
            const parts = line.text.split(" && ").filter((part) => !(part in LISTED));
            for (const [at, part] of parts.entries()) {
              const done = await session.line(part, lineHooks[index]![at]!);
              ran.push(...done.ran);
              later = done.later;
            }
            results[index]!.resolve(later ?? ran);
          } catch (error) {
            results[index]!.reject(error);
          }
        }
        await session.close();
        return [];
      };
      // The long walkthroughs and the demo's block run on their own; the short blocks share the pool.
      const python = block.some((line) => line.text.startsWith("/usr/bin/python3"));
      const before = lineHooks.flat().find((hooks) => hooks.before)?.before;
      void (demo || python || block.length > 4
        ? after(before ?? Promise.resolve(), whole)
        : independent(whole));
      block.forEach((line, index) => {
        results[index]!.promise.catch(() => undefined);
        this.lines.set(key(line), results[index]!.promise);
        // The same command shown inline (`npm start`) is this run, not a second one.
        const parts = line.text.split(" && ").filter((part) => !(part in LISTED));
        if (parts.length === 1 && !parts[0]!.endsWith("&"))
          this.runs.set(`${mapped(parts[0]!)} {}`, results[index]!.promise);
      });
    }
    for (const command of this.commands) {
      if (command.origin === "shell") continue;
      for (const part of partsOf(command)) {
        if (part.kind !== "run") continue;
        const mapped = new Session(this.scratch, {}).map(part.text);
        const id = `${mapped} ${JSON.stringify(command.env ?? {})}`;
        if (this.runs.has(id)) continue;
        // Commands that change state run in doc order, in two chains: the region's (workers, hires) and the
        // queue's with the back channel (tasks, workers, agents, control messages); the rest side by side.
        const chain = /^workforce (status|once|hire|lay-off|scale-to|run)\b/.test(mapped)
          ? "region"
          : /^workforce (push|worker|agent|signal)\b/.test(mapped) || /^"[^"]+" "[^"]+" worker\b/.test(mapped)
            ? "queue"
            : undefined;
        const hooks = gated(mapped, CHECKS[command.text] ?? {});
        // A job's agent on a node with a back channel runs until its worker leaves: the test gives the worker
        // one task of 8 s, checks the agent listens, then stops it as the node would (SIGTERM): the worker
        // finishes its task and both exit 0.
        const nodeAgent = /^workforce agent\b/.test(mapped) && command.env !== undefined;
        const work = async () => {
          if (!isDemo(mapped)) await Promise.all([this.ready, afterDemos()]);
          // The demos start their own Azurite and need none of the shared peers.
          const session = isDemo(mapped) ? this.blockSession() : this.docsSession(command, chain);
          if (nodeAgent) expectPushed(await runLine("workforce push tasks -c 'sleep 8'", session.env));
          return [
            isLongRunning(mapped) || nodeAgent
              ? await session.bounded(mapped, hooks)
              : await runLine(mapped, session.env),
          ];
        };
        const run = isDemo(mapped)
          ? after(hooks.before ?? Promise.resolve(), work)
          : chain
            ? (chains[chain] = after(chains[chain], work))
            : independent(work);
        this.runs.set(id, run);
      }
    }
    return afterDemos();
  }
}
