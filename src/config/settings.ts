import { z } from "zod";
import { isStorageConnectionString, looksLikeConnectionString } from "./connection-strings.js";

/**
 * Every scalar setting of the daemon, once: its environment variable, its key in the config file, its
 * schema, default and meaning. The loader, the README's settings table and the Helm chart's wiring test are
 * all derived from this list, so they cannot drift apart.
 */
export interface SettingSpec<S extends z.ZodType = z.ZodType> {
  /** Key in the config file and in the parsed Settings object. */
  key: string;
  /** Environment variable that overrides the file. */
  env: string;
  schema: S;
  /** Default, already in parsed form; undefined means "unset". */
  default?: z.output<S>;
  description: string;
  /** Never echoed in errors, logs or metrics. */
  secret?: boolean;
}

const BOOLEAN_WORDS = ["true", "false", "1", "0", "yes", "no"] as const;
const boolFromEnv = z.union(
  [z.boolean(), z.enum(BOOLEAN_WORDS).transform((v) => v === "true" || v === "1" || v === "yes")],
  { error: `expected true or false (or ${BOOLEAN_WORDS.slice(2).join(", ")})` },
);
const number = () => z.coerce.number({ error: "expected a number" });
const int = (min: number) =>
  number()
    .int({ error: "expected a whole number" })
    .min(min, { error: `expected a whole number >= ${min}` });
/** Node's timers hold at most 2^31-1 ms: a longer delay fires at once (a hot loop), so no duration may exceed it. */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
const TIMER_LIMIT = `${MAX_TIMER_SECONDS} (about 24 days: Node timers overflow above 2^31-1 ms)`;
const seconds = (min: number) =>
  number()
    .min(min, { error: `expected a number of seconds from ${min} to ${TIMER_LIMIT}` })
    .max(MAX_TIMER_SECONDS, { error: `expected a number of seconds from ${min} to ${TIMER_LIMIT}` });
const positiveSeconds = () =>
  number()
    .positive({ error: `expected a number of seconds > 0 and <= ${TIMER_LIMIT}` })
    .max(MAX_TIMER_SECONDS, { error: `expected a number of seconds > 0 and <= ${TIMER_LIMIT}` });
const PORT_RANGE = "expected a port from 1 to 65535 (or 0 for any free port)";
const port = () =>
  number().int({ error: PORT_RANGE }).min(0, { error: PORT_RANGE }).max(65535, { error: PORT_RANGE });

// Overloads keep the key literal and remember whether a default exists, so Settings below is exact.
function setting<const K extends string, S extends z.ZodType>(
  spec: SettingSpec<S> & { key: K; default: z.output<S> },
): SettingSpec<S> & { key: K; default: z.output<S> };
function setting<const K extends string, S extends z.ZodType>(
  spec: SettingSpec<S> & { key: K; default?: undefined },
): SettingSpec<S> & { key: K; default?: undefined };
function setting(spec: SettingSpec): SettingSpec {
  return spec;
}

export const SETTINGS = [
  setting({
    key: "queue",
    env: "WORKFORCE_QUEUE",
    schema: z.string().min(1),
    description:
      "Task queue: `ACCOUNT/QUEUE` (Storage), `sb://NAMESPACE/QUEUE` (Service Bus), a queue URL, or a bare queue name with WORKFORCE_QUEUE_CONNECTION_STRING.",
  }),
  setting({
    key: "queueConnectionString",
    env: "WORKFORCE_QUEUE_CONNECTION_STRING",
    schema: z.string().min(1).refine(looksLikeConnectionString, {
      error:
        "expected a Storage connection string (AccountName=...;AccountKey=... or QueueEndpoint=...) or a Service Bus one (Endpoint=sb://...)",
    }),
    secret: true,
    description:
      "Connection string for the task queue (Storage or Service Bus). Without it, Azure AD is used.",
  }),
  setting({
    key: "queueAdminEndpoint",
    env: "WORKFORCE_QUEUE_ADMIN_ENDPOINT",
    schema: z.string().min(1),
    description:
      "Service Bus queues only: where the administration (HTTPS) endpoint is, when it is not the namespace itself (emulators), e.g. `127.0.0.1:5443`.",
  }),
  setting({
    key: "concurrency",
    env: "WORKFORCE_CONCURRENCY",
    schema: int(1),
    default: 1,
    description: "Tasks one worker runs at once (ai4s-jobq's `--num-workers`).",
  }),
  setting({
    key: "policy",
    env: "WORKFORCE_POLICY",
    schema: z.enum(["step", "proportional", "predictive"]),
    default: "step",
    description:
      "Built-in scaling policy: `step` (ai4s-jobq's), `proportional` (ceil(queue / concurrency)) or `predictive` (learns task and start-up times; see 'How it decides').",
  }),
  setting({
    key: "policyModule",
    env: "WORKFORCE_POLICY_MODULE",
    schema: z.string().min(1),
    description: "Path of an ES module exporting a custom policy function; replaces WORKFORCE_POLICY.",
  }),
  setting({
    key: "paybackRatio",
    env: "WORKFORCE_PAYBACK_RATIO",
    schema: number().min(0, { error: "expected a number >= 0" }),
    default: 8,
    description:
      "`predictive` only: hire a worker only if it should stay busy this many times its start-up. Higher is cheaper and slower; 0 is as fast as `proportional`.",
  }),
  setting({
    key: "taskSeconds",
    env: "WORKFORCE_TASK_SECONDS",
    schema: seconds(1),
    default: 600,
    description: "`predictive` only: task time to assume until the daemon has measured it.",
  }),
  setting({
    key: "startupSeconds",
    env: "WORKFORCE_STARTUP_SECONDS",
    schema: seconds(0),
    default: 300,
    description: "`predictive` only: worker start-up time to assume until measured in a region.",
  }),
  setting({
    key: "maxWorkers",
    env: "WORKFORCE_MAX_WORKERS",
    schema: int(0),
    default: 50000,
    description: "Ceiling on active workers (running + pending) over all regions.",
  }),
  setting({
    key: "minWorkers",
    env: "WORKFORCE_MIN_WORKERS",
    schema: int(0),
    default: 0,
    description: "Floor on the target while the queue is non-empty.",
  }),
  setting({
    key: "rampFactor",
    env: "WORKFORCE_RAMP_FACTOR",
    schema: number().positive({ error: "expected a number > 0" }),
    default: 10,
    description: "The target never exceeds rampFactor x (running + 1).",
  }),
  setting({
    key: "scaleDownDelaySeconds",
    env: "WORKFORCE_SCALE_DOWN_DELAY_SECONDS",
    schema: seconds(0),
    default: 300,
    description: "Shrink only to the highest target seen in this window (growing is immediate).",
  }),
  setting({
    key: "intervalSeconds",
    env: "WORKFORCE_INTERVAL_SECONDS",
    schema: positiveSeconds(),
    default: 60,
    description: "Time between reconcile ticks.",
  }),
  setting({
    key: "jitter",
    env: "WORKFORCE_JITTER",
    schema: number()
      .min(0, { error: "expected a fraction from 0 to below 1" })
      .lt(1, { error: "expected a fraction from 0 to below 1 (1 would allow a zero interval)" }),
    default: 0.1,
    description: "Random spread of the interval, as a fraction from 0 to below 1 (0.1 = +/-10%).",
  }),
  setting({
    key: "callTimeoutSeconds",
    env: "WORKFORCE_CALL_TIMEOUT_SECONDS",
    schema: positiveSeconds(),
    default: 30,
    description:
      "Deadline of each queue or region call within a tick (one set above the interval is warned about).",
  }),
  setting({
    key: "readConcurrency",
    env: "WORKFORCE_READ_CONCURRENCY",
    schema: int(1),
    default: 100,
    description:
      "Regions read (and acted on) at once. Calls mostly wait on the network: keep it at least the number of regions so a tick costs about one round of calls.",
  }),
  setting({
    key: "staleTicks",
    env: "WORKFORCE_STALE_TICKS",
    schema: int(0),
    default: 3,
    description:
      "Ticks a region's last good observation may stand in for a failed read while the other regions hire. The region itself gets no action while unreadable and keeps counting (its last reading plus the hires made there since); past this many ticks nobody is hired until it answers.",
  }),
  setting({
    key: "hireGraceSeconds",
    env: "WORKFORCE_HIRE_GRACE_SECONDS",
    schema: seconds(1),
    default: 300,
    description:
      "How long a submission whose outcome is unknown (timed out, cut off, reset) counts as a pending worker while the region's listing does not show it. ARM gives up on a request after about a minute; five leave room for a slow listing. Too short risks a duplicate hire, too long only delays a replacement.",
  }),
  setting({
    key: "dryRun",
    env: "WORKFORCE_DRY_RUN",
    schema: boolFromEnv,
    default: false,
    description: "Plan and log, but hire, cancel and drain nothing.",
  }),
  setting({
    key: "drainOperation",
    env: "WORKFORCE_DRAIN_OPERATION",
    schema: z.enum(["graceful-downscale", "do-not-accept-new-tasks"]),
    default: "graceful-downscale",
    description:
      "Control message sent to drain a worker over the back channel (see 'Graceful downscale' for what Python workers do with each).",
  }),
  setting({
    key: "drainTimeoutSeconds",
    env: "WORKFORCE_DRAIN_TIMEOUT_SECONDS",
    schema: seconds(1),
    default: 3600,
    description: "How long a drain request counts as in flight before the worker may be asked again.",
  }),
  setting({
    key: "controlMessageTtlSeconds",
    env: "WORKFORCE_CONTROL_MESSAGE_TTL_SECONDS",
    schema: seconds(1),
    default: 120,
    description: "Time-to-live of control messages: one nobody takes must not stop a worker hired later.",
  }),
  setting({
    key: "stateConnectionString",
    env: "WORKFORCE_STATE_CONNECTION_STRING",
    schema: z.string().min(1).refine(isStorageConnectionString, {
      error: "expected a Storage connection string (AccountName=...;AccountKey=... or BlobEndpoint=...)",
    }),
    secret: true,
    description:
      "Storage connection string for the daemon's own state (drain ledger, leader lease). Defaults to the queue's storage account.",
  }),
  setting({
    key: "stateContainer",
    env: "WORKFORCE_STATE_CONTAINER",
    schema: z.string().min(3),
    default: "workforce-autoscaler",
    description: "Blob container for the drain ledger and the leader lease.",
  }),
  setting({
    key: "leaderElection",
    env: "WORKFORCE_LEADER_ELECTION",
    schema: boolFromEnv,
    default: false,
    description: "Hold a blob lease so that only one replica acts (for replicas > 1).",
  }),
  setting({
    key: "leaderLeaseSeconds",
    env: "WORKFORCE_LEADER_LEASE_SECONDS",
    schema: int(15).max(60, {
      error: "expected a whole number of seconds from 15 to 60 (Azure blob leases)",
    }),
    default: 15,
    description:
      "Length of the leader lease (15-60 s, what Azure blob leases allow). The leader renews every third of it and stops writing a fifth before its end by its own clock; a standby takes over within it plus about a second when the leader dies.",
  }),
  setting({
    key: "metricsPort",
    env: "WORKFORCE_METRICS_PORT",
    schema: port(),
    default: 9464,
    description: "Port of /metrics, /healthz and /readyz (0 = any free port).",
  }),
  setting({
    key: "metricsHost",
    env: "WORKFORCE_METRICS_HOST",
    schema: z.string().min(1),
    default: "0.0.0.0",
    description: "Address the metrics server binds to.",
  }),
  setting({
    key: "logLevel",
    env: "WORKFORCE_LOG_LEVEL",
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    default: "info",
    description: "pino log level.",
  }),
  setting({
    key: "allowUnknownVariables",
    env: "WORKFORCE_ALLOW_UNKNOWN_VARIABLES",
    schema: boolFromEnv,
    default: false,
    description:
      "Accept WORKFORCE_* variables that no setting reads (warned about) instead of refusing them as typos (exit 2).",
  }),
] as const;

type SettingsList = typeof SETTINGS;
type SpecOf<K extends SettingsList[number]["key"]> = Extract<SettingsList[number], { key: K }>;

/** The parsed scalar settings. Keys without a default may be undefined. */
export type Settings = {
  [K in SettingsList[number]["key"]]: SpecOf<K> extends { default: NonNullable<unknown> }
    ? z.output<SpecOf<K>["schema"]>
    : z.output<SpecOf<K>["schema"]> | undefined;
};
