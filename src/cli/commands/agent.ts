import { AGENT_ENV } from "../../agent/env.js";
import { ConfigError } from "../../config/errors.js";
import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { Command, Option } from "commander";
import { CONTROL_OPERATIONS } from "../../backchannel/message.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface AgentCliOptions {
  pidDir?: string;
  signal: string;
  signalFor: string[];
  workerId?: string;
  subscription: string;
  receiveWait: number;
  pidFileGrace?: number;
  logLevel?: string;
}

export function register(program: Command): void {
  program
    .command("agent")
    .description(
      "Node agent for graceful downscale: listens on the back channel's `shutdown` subscription and, on a control message, " +
        "signals this node's workers (PID files in JOBQ_PID_DIR), then stops listening. " +
        "`workforce agent -- CMD ARGS...` also starts the worker and exits with its exit code.",
    )
    .argument("[command...]", "wrap mode: the worker command (after --), started without a shell")
    .option(
      "--pid-dir <dir>",
      `folder of worker PID files (default $${AGENT_ENV.pidDir}; wrap mode: a new temporary folder)`,
    )
    .addOption(
      new Option("--signal <name>", "signal for every operation").default(
        process.env.WORKFORCE_AGENT_SIGNAL || "SIGINT",
      ),
    )
    .option(
      "--signal-for <operation=signal>",
      `per-operation signal, e.g. do-not-accept-new-tasks=SIGUSR1 (operations: ${CONTROL_OPERATIONS.join(", ")}; repeatable)`,
      collect,
      [],
    )
    .option(
      "--worker-id <id>",
      "wrap mode: name of the PID file written for the worker (default agent-HOST-PID)",
    )
    .option("--subscription <name>", "subscription to listen on", "shutdown")
    .addOption(
      new Option("--receive-wait <seconds>", "longest wait of one receive call")
        .default(60)
        .argParser(Number)
        .hideHelp(),
    )
    .addOption(
      new Option(
        "--pid-file-grace <seconds>",
        "wrap mode, for a command that writes no PID file: after this long, write one for it (default: never; the worker is signalled only once its own PID file exists)",
      ).argParser(Number),
    )
    .option("--log-level <level>", "log level (default $WORKFORCE_LOG_LEVEL or info)")
    .action(async (command: string[], opts: AgentCliOptions) => {
      const { createLogger } = await import("../../logging/logger.js");
      const { agentChannelFromEnv, runAgent, signalPlan } = await import("../../agent/index.js");
      const { lazyDefaultCredential } = await import("../../azure/credentials.js");
      const logger = createLogger({
        level: opts.logLevel ?? (process.env.WORKFORCE_LOG_LEVEL || "info"),
        destination: process.stderr as never,
      }).child({
        component: "agent",
      });
      const channel = agentChannelFromEnv(process.env, opts.subscription);
      const signals = signalPlan(opts.signal, opts.signalFor);
      const wrap = command.length > 0;
      let pidDir = opts.pidDir ?? (process.env[AGENT_ENV.pidDir] || undefined);
      let ownPidDir = false;
      if (!pidDir) {
        if (!wrap)
          throw new ConfigError([
            { where: AGENT_ENV.pidDir, message: "the folder of worker PID files is required (or --pid-dir)" },
          ]);
        pidDir = mkdtempSync(join(tmpdir(), "workforce-agent-"));
        ownPidDir = true;
      }
      if (!channel && !wrap) {
        throw new ConfigError([
          {
            where: AGENT_ENV.topic,
            message: `set it and ${AGENT_ENV.namespace} (or ${AGENT_ENV.connectionString}) for the agent to listen`,
          },
        ]);
      }
      for (const [name, value] of [
        ["--receive-wait", opts.receiveWait],
        ["--pid-file-grace", opts.pidFileGrace],
      ] as const) {
        if (value === undefined) continue;
        if (!Number.isFinite(value) || value < 0)
          throw new ConfigError([{ where: name, message: `expected seconds >= 0; given ${value}` }]);
      }
      const code = await runAgent({
        channel,
        credential: lazyDefaultCredential(),
        pidDir,
        signals,
        logger,
        maxWaitMs: Math.max(1000, opts.receiveWait * 1000),
        ...(wrap
          ? {
              wrap: {
                argv: command,
                workerId: opts.workerId ?? `agent-${hostname()}-${process.pid}`,
                ...(opts.pidFileGrace !== undefined ? { pidFileGraceMs: opts.pidFileGrace * 1000 } : {}),
              },
            }
          : {}),
      });
      if (ownPidDir) rmSync(pidDir, { recursive: true, force: true });
      process.exitCode = code;
    });
}
