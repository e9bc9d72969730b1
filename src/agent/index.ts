import type { TokenCredential } from "@azure/core-auth";
import type { ServiceBusReceiver } from "@azure/service-bus";
import { constants } from "node:os";
import { ConfigError, type ConfigProblem } from "../config/load.js";
import type { Logger } from "../logging/logger.js";
import { createServiceBusClient, namespaceOf } from "../backchannel/clients.js";
import { SHUTDOWN_SUBSCRIPTION } from "../backchannel/config.js";
import { explainServiceBusError } from "../backchannel/errors.js";
import { CONTROL_OPERATIONS, isControlOperation, type ControlOperation } from "../backchannel/message.js";
import { listenForControl, type ControlOutcome } from "./listener.js";
import { scanPidDir } from "./pids.js";
import { SIGNAL_LOCK_TIMEOUT_MS, takeSignalLock } from "./lock.js";
import { signalOnce, workersToStop as workersToStopIn } from "./signal-once.js";
import { startWrappedWorker, type WrappedWorker } from "./wrap.js";
import { ignoreWorkerLeaveSignals } from "../process/stray-signals.js";

export {
  chooseTargets,
  judgePidFile,
  scanPidDir,
  processInfo,
  recordSignalled,
  signalledBefore,
  SIGNALLED_FILE,
  type PidFileState,
  type PidFileVerdict,
} from "./pids.js";
export { SIGNAL_LOCK_FILE, SIGNAL_LOCK_TIMEOUT_MS, takeSignalLock } from "./lock.js";
export { signalOnce, type SignalOnceResult } from "./signal-once.js";
export { listenForControl, type ListenOptions, type ListenResult } from "./listener.js";
export { startWrappedWorker, exitCodeOf, type WrappedWorker } from "./wrap.js";

/** Env vars, as ai4s-jobq names them. */
export { AGENT_ENV } from "./env.js";
import { AGENT_ENV } from "./env.js";

/** Where the agent listens; undefined when the back channel is not configured (wrap mode then only waits). */
export interface AgentChannel {
  connectionString?: string;
  fullyQualifiedNamespace?: string;
  topic: string;
  subscription: string;
}

/** The back channel named by the environment, or undefined when none is; a half-set one is a ConfigError. */
export function agentChannelFromEnv(
  env: NodeJS.ProcessEnv,
  subscription = SHUTDOWN_SUBSCRIPTION,
): AgentChannel | undefined {
  const namespace = env[AGENT_ENV.namespace] || undefined;
  const connectionString = env[AGENT_ENV.connectionString] || undefined;
  const topic = env[AGENT_ENV.topic] || undefined;
  if (!namespace && !connectionString && !topic) return undefined;
  const problems: ConfigProblem[] = [];
  if (!topic)
    problems.push({
      where: AGENT_ENV.topic,
      message: "the control topic name is required with a back channel",
    });
  if (!namespace && !connectionString) {
    problems.push({
      where: AGENT_ENV.namespace,
      message: `set it (or ${AGENT_ENV.connectionString}) to listen on ${topic}`,
    });
  }
  if (namespace && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(namespace.replace(/^sb:\/\//, "").replace(/\/$/, ""))) {
    problems.push({
      where: AGENT_ENV.namespace,
      message: `expected a host name such as NAME.servicebus.windows.net; given "${namespace}"`,
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    // A connection string wins: it is what local runs and emulators use.
    ...(connectionString
      ? { connectionString }
      : { fullyQualifiedNamespace: namespace!.replace(/^sb:\/\//, "").replace(/\/$/, "") }),
    topic: topic!,
    subscription,
  };
}

/** Which signal each operation delivers. Default SIGINT for both (the seed's behaviour). */
export type SignalPlan = Record<ControlOperation, NodeJS.Signals>;

export function parseSignalName(text: string, where: string): NodeJS.Signals {
  const upper = text.trim().toUpperCase();
  const name = (upper.startsWith("SIG") ? upper : `SIG${upper}`) as NodeJS.Signals;
  if (!(name in constants.signals) || name === "SIGKILL" || name === "SIGSTOP") {
    throw new ConfigError([
      { where, message: `expected a catchable signal name such as SIGINT, SIGUSR1; given "${text}"` },
    ]);
  }
  return name;
}

/** `--signal` for every operation, then `--signal-for OP=SIG` overrides. */
export function signalPlan(defaultSignal = "SIGINT", overrides: readonly string[] = []): SignalPlan {
  const base = parseSignalName(defaultSignal, "--signal");
  const plan = Object.fromEntries(CONTROL_OPERATIONS.map((operation) => [operation, base])) as SignalPlan;
  for (const override of overrides) {
    const [operation, signal] = override.split("=", 2);
    if (!isControlOperation(operation) || !signal) {
      throw new ConfigError([
        {
          where: "--signal-for",
          message: `expected OPERATION=SIGNAL with OPERATION one of ${CONTROL_OPERATIONS.join(", ")}; given "${override}"`,
        },
      ]);
    }
    plan[operation] = parseSignalName(signal, `--signal-for ${operation}`);
  }
  return plan;
}

export interface AgentOptions {
  channel: AgentChannel | undefined;
  /** Needed for a namespace without a connection string (managed identity on the node). */
  credential?: () => TokenCredential;
  pidDir: string;
  signals: SignalPlan;
  logger: Logger;
  /** Wrap mode: the worker to start and watch. */
  wrap?: { argv: string[]; workerId: string; pidFileGraceMs?: number };
  /** Stops the agent from outside (tests); SIGTERM/SIGINT do so in standalone mode. */
  signal?: AbortSignal;
  /** Longest wait of one receive call (default 60 s). */
  maxWaitMs?: number;
  /** How long to wait for the node's signal lock, held by another agent (default 5 s). */
  lockTimeoutMs?: number;
}

/**
 * The wrapped worker's environment. While the agent listens, the back-channel variables are taken out: a
 * jobq worker that sees them starts its own listener on the same subscription, and a message would then
 * reach either of the two, with different signals.
 */
export function workerEnv(env: NodeJS.ProcessEnv, agentListens: boolean): NodeJS.ProcessEnv {
  if (!agentListens) return { ...env };
  const copy = { ...env };
  for (const name of [AGENT_ENV.namespace, AGENT_ENV.connectionString, AGENT_ENV.topic]) delete copy[name];
  return copy;
}

/**
 * The node agent. Listens on the back channel; on a control message, signals every live worker of this
 * node and stops listening (so the next message goes to another node). Standalone it then exits 0; in wrap
 * mode it waits for its worker and exits with the worker's code.
 */
export async function runAgent(options: AgentOptions): Promise<number> {
  const { logger, pidDir } = options;
  const stop = new AbortController();
  const stopNow = () => stop.abort();
  options.signal?.addEventListener("abort", stopNow, { once: true });

  let worker: WrappedWorker | undefined;
  const standaloneSignals: NodeJS.Signals[] = ["SIGTERM", "SIGINT"];
  const leavingSignals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2"];
  let stopIgnoringLeaveSignals: (() => void) | undefined;
  if (options.wrap) {
    worker = startWrappedWorker({
      ...options.wrap,
      pidDir,
      logger,
      env: workerEnv(process.env, options.channel !== undefined),
    });
    // The worker left on its own (empty queue, failure): nothing to listen for any more.
    void worker.exited.then(stopNow);
    // The worker was told to leave (Ctrl-C or a cancel reaches the whole process group; SIGTERM, SIGUSR1 and
    // SIGUSR2 are passed on): this node is leaving, so a control message is for another node. Taking one now would spend it on
    // a worker that leaves anyway, and the worker it was meant for would stay.
    for (const signal of leavingSignals) process.on(signal, stopNow);
  } else {
    for (const signal of standaloneSignals) process.on(signal, stopNow);
    // Standalone, a leave signal sent to the agent is one meant for the workers (wrap mode passes it on).
    stopIgnoringLeaveSignals = ignoreWorkerLeaveSignals(
      logger,
      "the agent takes its orders from the back channel (a control message) and signals the workers itself; " +
        `to make a worker leave now, signal the worker's PID (PID files in ${pidDir}), not the agent's`,
    );
  }

  /** Live workers of this node not yet asked to leave (a second signal would be a hard stop). */
  const workersToStop = (states = scanPidDir(pidDir)): number[] =>
    workersToStopIn(pidDir, worker?.pid, states);

  const onControl = (operation: ControlOperation): ControlOutcome => {
    const states = scanPidDir(pidDir);
    for (const state of states) {
      if (state.verdict.status !== "live")
        logger.info({ pidFile: state.path, ...state.verdict }, "PID file skipped");
    }
    const targets = workersToStop(states);
    if (targets.length === 0) return { kind: "nothing-here" };
    // Another agent of the node is signalling and does not finish: give the message back rather than
    // complete it and find out afterwards (the lock is not held across the completion, a broker call).
    const probe = takeSignalLock(pidDir, { timeoutMs: options.lockTimeoutMs ?? SIGNAL_LOCK_TIMEOUT_MS });
    if (probe.kind === "busy") return { kind: "give-back", reason: probe.reason };
    probe.release();
    const signal = options.signals[operation];
    return {
      kind: "act",
      act: () => {
        const result = signalOnce({
          pidDir,
          targets,
          signal,
          logger,
          ...(worker?.pid !== undefined ? { childPid: worker.pid } : {}),
          ...(options.lockTimeoutMs !== undefined ? { lockTimeoutMs: options.lockTimeoutMs } : {}),
        });
        if (result.kind === "busy") {
          logger.error(
            { operation, signal, pids: targets, reason: result.reason },
            `control message taken, but no worker signalled: ${result.reason}`,
          );
          return false;
        }
        logger.info(
          { operation, signal, pids: result.pids },
          `control message taken: signalled ${result.pids.length} worker process(es)`,
        );
        return true;
      },
    };
  };

  try {
    if (!options.channel) {
      if (!worker)
        throw new Error(
          "the agent needs a back channel (WORKFORCE_CONTROL_TOPIC_NAME and a namespace or connection string)",
        );
      logger.info("back channel not configured: running the worker without listening");
    } else if (!stop.signal.aborted) {
      const channel = options.channel;
      const client = createServiceBusClient(
        channel,
        options.credential ? { credential: options.credential } : {},
      );
      let receiver: ServiceBusReceiver | undefined;
      try {
        receiver = client.createReceiver(channel.topic, channel.subscription, {
          receiveMode: "peekLock",
          // The raw bytes: decoded under the Python listener's rules, not the SDK's.
          skipParsingBodyAsJson: true,
          maxAutoLockRenewalDurationInMs: 0,
        });
        const where = {
          namespace: namespaceOf(channel),
          topic: channel.topic,
          subscription: channel.subscription,
          pidDir,
        };
        // "listening" only once the first receive has answered: before that, it is only trying.
        logger.info(where, "connecting to the back channel");
        const result = await listenForControl({
          listeningFields: where,
          receiver,
          logger,
          onControl,
          hasWorkers: () => workersToStop().length > 0,
          explainError: (error) =>
            explainServiceBusError(error, {
              namespace: namespaceOf(channel),
              entity: `${channel.topic}/Subscriptions/${channel.subscription}`,
              claim: "Listen",
            }),
          signal: stop.signal,
          ...(options.maxWaitMs !== undefined ? { maxWaitMs: options.maxWaitMs } : {}),
        });
        if (result.kind === "acted")
          logger.info({ operation: result.operation }, "stopped listening: this node is leaving");
      } finally {
        // Closing the receiver is what makes the next message go to another node.
        await receiver?.close().catch(() => undefined);
        await client.close().catch(() => undefined);
      }
    }
    if (!worker) return 0;
    const code = await worker.exited;
    logger.info({ exitCode: code }, "worker exited");
    return code;
  } finally {
    worker?.dispose();
    options.signal?.removeEventListener("abort", stopNow);
    for (const signal of [...standaloneSignals, ...leavingSignals]) process.off(signal, stopNow);
    stopIgnoringLeaveSignals?.();
  }
}
