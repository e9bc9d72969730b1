/**
 * workforce-autoscaler as a library: the building blocks of the daemon, with types, so a program can
 * script what upstream's Python Workforce offers (hire, lay off, scale to, state) and run ticks in code.
 */

// Configuration
export { loadConfig, ConfigError, type Config, type ConfigProblem, type LoadOptions } from "./config/load.js";
export { SETTINGS, type Settings, type SettingSpec } from "./config/settings.js";
export { regionConfigSchema, regionListSchema, type RegionConfig } from "./config/regions.js";

// Policy (pure)
export * from "./policy/index.js";

// Regions
export type {
  Region,
  RegionObservation,
  CallOptions,
  HireResult,
  CancelResult,
  DrainResult,
} from "./regions/types.js";
export type { RegionContext } from "./regions/context.js";
export { createRegion } from "./regions/factory.js";
export {
  createAzuremlRegion,
  azuremlRegionSchema,
  type AzuremlRegionConfig,
} from "./regions/azureml/index.js";

// Queues and tasks
export {
  createQueueProbe,
  createQueueClient,
  parseQueueSpec,
  describeQueueSpec,
  StorageQueueProbe,
  ServiceBusQueueProbe,
  createServiceBusQueueProbe,
  type QueueProbe,
  type QueueSpec,
} from "./queue/index.js";
export { pushTasks, type PushOptions, type PushResult } from "./queue/push.js";
export { runWorker, type WorkerOptions, type WorkerSummary } from "./queue/worker.js";

// Graceful downscale
export { createDrainChannel, drainChannelFactory, type DrainChannel } from "./backchannel/index.js";

// Controller
export { Reconciler, type ReconcilerOptions, type TickReport } from "./controller/reconciler.js";
export { buildWorkforce, type Workforce, type WorkforceDeps } from "./controller/workforce.js";
export { startDaemon, type Daemon, type DaemonOptions } from "./controller/daemon.js";
export {
  workforceState,
  layOff,
  scaleTo,
  type RegionState,
  type LayOffResult,
  type ScaleToResult,
} from "./controller/operations.js";
export { loadPolicy, builtinPolicy, BUILTIN_POLICIES } from "./controller/policy-loader.js";
export { predictivePolicy, predictiveSizing, DEFAULT_PAYBACK_RATIO } from "./policy/predictive.js";
export { WorkloadLearner } from "./controller/learner.js";
export {
  simulate,
  parseTrace,
  parseCluster,
  renderChart,
  type SimulationResult,
  type Cluster,
  type Task,
} from "./simulate/index.js";

// Metrics and logs
export { createMetrics, initRegionSeries, type WorkforceMetrics } from "./metrics/registry.js";
export { startMetricsServer, type MetricsServer } from "./metrics/server.js";
export { createLogger, redactText, type Logger } from "./logging/logger.js";
